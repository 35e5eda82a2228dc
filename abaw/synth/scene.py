"""Everything around the face: the room behind (a weak, slow valence cue: the colour of a window or lamp), the body
(moves more and opens up with arousal), head motion, lighting, occluders and blur."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from abaw.synth.face import LINE, Identity, Pose, _col
from abaw.synth.latent import low_pass, ou_process

#: The scene cue's colours (BGR) at low and high valence: a cold bluish and a warm golden light.
COLD = np.array([185.0, 125.0, 80.0], dtype=np.float32)
WARM = np.array([60.0, 165.0, 235.0], dtype=np.float32)


@dataclass
class Room:
    """A static background with a few shapes; tinted per frame by the valence cue."""

    base: np.ndarray  # (H, W, 3) float32 BGR
    warm: np.ndarray  # (3,) BGR direction of a "warm" tint
    glow: np.ndarray | None = None  # (H, W, 1) float32 in [0, 1]: where the scene's valence light shows

    def frame(self, cue: float, amount: float = 1.0) -> np.ndarray:
        """The background (H, W, 3) uint8 for a valence cue in [-1, 1]: a light whose colour goes from cold to warm
        (the same colours in every room, so the cue means the same everywhere), and a slight warm tint overall."""
        t = float(np.clip(0.5 + 0.5 * cue, 0.0, 1.0))
        img = self.base + amount * (self.warm * cue + 6.0 * cue)
        if self.glow is not None and amount > 0:
            colour = COLD * (1.0 - t) + WARM * t
            img = img + self.glow * (colour - img)
        return np.clip(img, 0, 255).astype(np.uint8)


def add_glow(rng: np.random.Generator, room: Room, person_xs: list[float]) -> Room:
    """A window or lamp in the upper part of the frame, away from the people (``person_xs``: their centres as
    fractions of the width), covering about a tenth of the frame."""
    h, w = room.base.shape[:2]
    gw, gh = int(w * rng.uniform(0.2, 0.26)), int(h * rng.uniform(0.36, 0.48))
    gaps = np.array([0.0] + sorted(person_xs) + [1.0])
    k = int(np.argmax(np.diff(gaps)))  # the widest gap between people (or the frame's edges)
    centre = 0.5 * (gaps[k] + gaps[k + 1]) * w + rng.uniform(-0.03, 0.03) * w
    if len(person_xs) == 1:  # one person in the middle: the window sits near the side
        centre = (0.12 if person_xs[0] > 0.5 else 0.88) * w + rng.uniform(-0.03, 0.03) * w
    x0 = int(np.clip(centre - gw / 2, 0, w - gw))
    y0 = int(h * rng.uniform(0.03, 0.12))
    glow = np.zeros((h, w, 1), dtype=np.float32)
    glow[y0:y0 + gh, x0:x0 + gw] = 1.0
    glow = cv2.GaussianBlur(glow, (0, 0), max(1.0, 0.01 * w))[:, :, None] * 0.9
    room.glow = glow
    return room


def random_room(rng: np.random.Generator, width: int, height: int) -> Room:
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(40, 180, 3)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    base = (top * (1 - ramp) + bottom * ramp).astype(np.float32) * np.ones((1, width, 1), np.float32)
    img = base.astype(np.uint8).copy()
    for _ in range(int(rng.integers(2, 6))):  # windows, shelves, pictures
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height * 2 // 3))
        w, h = int(rng.integers(width // 10, width // 3)), int(rng.integers(height // 10, height // 2))
        cv2.rectangle(img, (x, y), (x + w, y + h), tuple(float(c) for c in rng.uniform(20, 235, 3)), -1)
    if rng.random() < 0.5:  # a floor line
        y = int(rng.uniform(0.6, 0.85) * height)
        cv2.rectangle(img, (0, y), (width, height), tuple(float(c) for c in rng.uniform(30, 160, 3)), -1)
    return Room(base=img.astype(np.float32), warm=np.array([-14.0, 3.0, 16.0], dtype=np.float32))


@dataclass
class Motion:
    """Per-frame head pose, body sway and arm posture of one person."""

    poses: list[Pose]
    body_dx: np.ndarray  # (n,) torso sway in pixels
    arm_open: np.ndarray  # (n, 2) arm elevation in [0, 1] (right, left)
    occlusion: np.ndarray  # (n,) fraction of the face an occluder covers
    visible_frac: np.ndarray  # (n,) fraction of the face box inside the frame


def simulate_motion(rng: np.random.Generator, n: int, fps: float, arousal: np.ndarray, cx: float, cy: float,
                    scale: float, width: int, allow_exit: bool = True, force_noface: bool = False,
                    gain: float = 1.0) -> Motion:
    """Head pose and body motion; activity grows with arousal (energy = arousal mapped to [0, 1], times ``gain``
    around the middle).

    Events: looking away and leaving the frame (no face), an occluder sliding over the face; ``force_noface``
    guarantees one looking-away event."""
    energy = low_pass(np.clip(0.5 + 0.5 * gain * arousal, 0.0, 1.0), 0.3 * fps)
    jitter = ou_process(rng, n, 0.15 * fps, 1.0, 4) * (0.3 + 1.5 * energy[:, None])
    yaw = np.radians(rng.normal(0, 8) + ou_process(rng, n, 1.5 * fps, 14.0)[:, 0] + 3 * jitter[:, 0])
    pitch = np.radians(ou_process(rng, n, 1.5 * fps, 5.0)[:, 0] + 2 * jitter[:, 1])
    roll = np.radians(rng.normal(0, 3) + ou_process(rng, n, 2.0 * fps, 6.0)[:, 0] + 1.5 * jitter[:, 2])
    zoom = np.exp(ou_process(rng, n, 4.0 * fps, 0.1)[:, 0])
    drift = ou_process(rng, n, 3.0 * fps, 0.035 * width)[:, 0]
    t = np.arange(n) / fps
    sway_f = rng.uniform(0.4, 1.2)
    body_dx = drift + energy * 0.04 * width * np.sin(2 * np.pi * sway_f * t + rng.uniform(0, 6.3))
    body_dx += 0.01 * width * jitter[:, 3]
    # events: looking away (no face), leaving the frame (no face), an occluder sliding over the face
    occlusion = np.zeros(n)
    exit_dx = np.zeros(n)
    n_events = int(rng.poisson(0.5 * max(1.0, n / (8 * fps))))
    for e in range(n_events + int(force_noface)):
        if e == n_events:
            kind = "turn"
        else:
            kind = rng.choice(["turn", "exit", "occlude", "occlude"]) if allow_exit else rng.choice(["turn", "occlude"])
        dur = min(int(rng.uniform(0.6, 2.0) * fps), max(6, n // 3))
        start = int(rng.integers(0, max(1, n - dur)))
        env = np.sin(np.linspace(0, np.pi, dur)) ** 0.5
        sl = slice(start, start + dur)
        if kind == "turn":
            yaw[sl] += np.radians(rng.choice([-1, 1]) * 95) * env[: len(yaw[sl])]
        elif kind == "exit":
            exit_dx[sl] += rng.choice([-1, 1]) * 0.75 * width * env[: len(yaw[sl])]
        else:
            occlusion[sl] = np.maximum(occlusion[sl], rng.uniform(0.4, 1.0) * env[: len(yaw[sl])])
    body_dx = body_dx + exit_dx
    yaw = np.clip(yaw, np.radians(-100), np.radians(100))
    # arms: open and raised with arousal, plus gestures whose size follows arousal
    gest = ou_process(rng, n, 0.25 * fps, 1.0, 2)
    arm_open = np.clip(0.05 + 0.75 * energy[:, None] + 0.3 * energy[:, None] * gest, 0.0, 1.0)
    poses = [Pose(cx=float(cx + body_dx[i] + 0.02 * width * jitter[i, 3]), cy=float(cy + 0.02 * width * jitter[i, 1]),
                  scale=float(scale * zoom[i]), yaw=float(yaw[i]), pitch=float(pitch[i]), roll=float(roll[i]))
             for i in range(n)]
    return Motion(poses=poses, body_dx=body_dx, arm_open=arm_open, occlusion=occlusion, visible_frac=np.ones(n))


#: Bodily expression of each state (de Gelder 2006; Dael et al. 2012), at full intensity: (change of arm elevation,
#: change of forearm raise, slump: shoulders down and in). Open arms in happiness; hanging arms and a slump in sadness;
#: a raised fist in anger; hands up to the chest in fear; hands up in surprise; a hand half raised, turned in, in
#: disgust; arms held in, in contempt ("Other").
BODY_POSTURE: dict[str, tuple[float, float, float]] = {
    "Happiness": (0.3, 0.0, -0.3),
    "Sadness": (-0.45, -0.3, 1.0),
    "Anger": (0.1, 0.7, -0.4),
    "Fear": (-0.3, 0.9, 0.4),
    "Surprise": (0.35, 0.8, -0.3),
    "Disgust": (-0.3, 0.45, 0.2),
    "Other": (-0.25, -0.1, 0.0),
}


def body_posture(weights: np.ndarray, states: tuple[str, ...], gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame posture from the smoothed state weights (n, k): (arm changes (n, 2): elevation, forearm; slump (n,))
    scaled by ``gain`` (the cue strength times the person's bodily expressivity)."""
    table = np.array([BODY_POSTURE.get(s, (0.0, 0.0, 0.0)) for s in states])  # (k, 3)
    out = gain * np.clip(weights, 0.0, 1.0) @ table
    return out[:, :2], out[:, 2]


def draw_body(img: np.ndarray, ident: Identity, pose: Pose, arm_open: np.ndarray, light: float,
              forearm: np.ndarray | None = None, slump: float = 0.0) -> np.ndarray:
    """Torso, neck and arms under the head; returns the person box (x, y, w, h) before the head is added.

    ``arm_open`` (2,) sets each arm's elevation and, unless ``forearm`` (2,) is given, its forearm; ``slump`` lowers and
    narrows the shoulders."""
    s = pose.scale
    neck_top = (pose.cx, pose.cy + 1.3 * s)
    shoulder_y = pose.cy + (2.3 + 0.35 * slump) * s
    half = (1.6 - 0.2 * slump) * s
    forearm = arm_open if forearm is None else forearm
    cx = pose.cx
    cv2.rectangle(img, (int(cx - 0.35 * s), int(neck_top[1])), (int(cx + 0.35 * s), int(shoulder_y + 0.2 * s)),
                  _col(ident.skin, light * 0.85), -1)
    torso = np.array([[cx - half, shoulder_y + 0.25 * s], [cx - 0.6 * half, shoulder_y - 0.1 * s],
                      [cx + 0.6 * half, shoulder_y - 0.1 * s], [cx + half, shoulder_y + 0.25 * s],
                      [cx + 1.15 * half, shoulder_y + 4.5 * s], [cx - 1.15 * half, shoulder_y + 4.5 * s]])
    cv2.fillPoly(img, [np.round(torso * 16).astype(np.int32)], _col(ident.shirt, light), LINE, shift=4)
    pts = [torso]
    for side, k in ((-1, 0), (1, 1)):
        sh = np.array([cx + side * 0.95 * half, shoulder_y + 0.3 * s])
        ang = np.radians(100 - 120 * arm_open[k])  # angle from horizontal, down is positive
        elbow = sh + 1.9 * s * np.array([side * np.cos(ang) * 0.8 + side * 0.2, np.sin(ang)])
        ang2 = np.radians(80 - 170 * forearm[k])
        hand = elbow + 1.7 * s * np.array([side * 0.3 * np.cos(ang2) - side * 0.2, np.sin(ang2)])
        arm = np.stack([sh, elbow, hand])
        cv2.polylines(img, [np.round(arm * 16).astype(np.int32)], False, _col(ident.shirt, light * 0.85),
                      max(1, int(0.55 * s)), LINE, shift=4)
        cv2.circle(img, (int(hand[0]), int(hand[1])), max(1, int(0.3 * s)), _col(ident.skin, light), -1, LINE)
        pts.append(arm + np.array([[0, 0]]))
        pts.append(hand[None] + np.array([[-0.3 * s, -0.3 * s], [0.3 * s, 0.3 * s]]))
    allp = np.concatenate(pts)
    x0, y0 = allp.min(axis=0)
    x1, y1 = allp.max(axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0])


def draw_occluder(img: np.ndarray, box: np.ndarray, amount: float, colour: np.ndarray, from_left: bool) -> None:
    """An object (a sheet, a cup, a hand) sliding over the face box, covering ``amount`` of its width."""
    if amount <= 0.02:
        return
    x, y, w, h = box
    cover = amount * w * 1.1
    x0 = x - 0.1 * w if from_left else x + w - cover + 0.1 * w
    pts = np.array([[x0, y - 0.2 * h], [x0 + cover, y - 0.1 * h], [x0 + cover, y + 1.4 * h], [x0, y + 1.4 * h]])
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], _col(colour), LINE, shift=4)


def clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(width), box[0] + box[2]), min(float(height), box[1] + box[3])
    return np.array([x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)])


def inside_fraction(box: np.ndarray, width: int, height: int) -> float:
    area = box[2] * box[3]
    if area <= 0:
        return 0.0
    c = clip_box(box, width, height)
    return float(c[2] * c[3] / area)


def light_map(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A per-video lighting field (H, W, 3) float32: light from one side, a little darker at the top and bottom."""
    slope = rng.uniform(-0.35, 0.35)
    x = (1.0 + slope * np.linspace(-0.5, 0.5, width, dtype=np.float32))[None, :]
    y = (1.0 - 0.12 * np.linspace(-1, 1, height, dtype=np.float32) ** 2)[:, None]
    return np.repeat((x * y)[:, :, None], 3, axis=2)


def noise_planes(rng: np.random.Generator, width: int, height: int, sigma: float, count: int = 6) -> np.ndarray:
    """A few sensor-noise planes (count, H, W, 3) int16 that frames cycle through (drawing fresh noise per frame
    would cost more than the rest of the frame)."""
    planes = np.round(rng.normal(0, sigma, (count, height, width, 1))).astype(np.int16)
    return np.repeat(planes, 3, axis=3)


def finish_frame(img: np.ndarray, gain: float, light: np.ndarray, blur: float, noise: np.ndarray | None
                 ) -> np.ndarray:
    """Lighting (``gain`` times the ``light`` field), defocus/motion blur and sensor ``noise`` (int16 plane)."""
    out = cv2.multiply(img, light, scale=gain, dtype=cv2.CV_8U)
    if blur > 0.6:
        k = int(blur) * 2 + 1
        out = cv2.GaussianBlur(out, (k, k), blur / 2)
    if noise is not None:
        out = cv2.add(out, noise, dtype=cv2.CV_8U)
    return out
