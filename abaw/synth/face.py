"""A cartoon face drawn with OpenCV from action intensities, head pose and identity.

Geometry lives in a face-local frame whose unit is the distance between the eyes, origin between the eyes, y down.
Each point carries a depth (how far it stands out towards the camera) so yaw moves the near features more than the
outline. The same points give the 5 YuNet-order landmarks and a 68-point (iBUG order) set for AffectNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from abaw.synth.latent import CH

#: Realistic skin tones (BGR), light to dark.
SKIN_TONES = np.array([
    (189, 208, 241), (160, 190, 234), (137, 173, 224), (120, 160, 215), (98, 134, 198), (74, 111, 170),
    (60, 90, 141), (45, 66, 105), (170, 196, 226), (110, 150, 200),
], dtype=np.float64)
HAIR_COLOURS = np.array([(20, 20, 25), (30, 45, 70), (40, 70, 120), (60, 110, 170), (150, 150, 150), (15, 30, 45)],
                        dtype=np.float64)
LINE = cv2.LINE_AA


@dataclass
class Identity:
    """What stays the same for one person: colours and face proportions."""

    skin: np.ndarray  # BGR float
    hair: np.ndarray
    lips: np.ndarray
    iris: np.ndarray
    shirt: np.ndarray
    face_w: float  # half-width of the face outline (eye-distance units)
    face_h: float  # half-height
    mouth_w: float
    lip_t: float
    brow_t: float
    brow_y: float
    hair_style: int  # 0 short, 1 long, 2 bald
    f0: float  # voice pitch in Hz (used by the audio)


def random_identity(rng: np.random.Generator) -> Identity:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.06)
    lips = np.clip(skin * np.array([0.62, 0.55, 0.92]) + np.array([10, 0, 25]), 0, 255)
    return Identity(
        skin=np.clip(skin, 0, 255),
        hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.8, 1.2),
        lips=lips,
        iris=np.array(rng.choice([(60, 40, 20), (40, 70, 40), (150, 110, 60), (30, 30, 60)]), dtype=np.float64),
        shirt=rng.uniform(30, 220, 3),
        face_w=rng.uniform(0.92, 1.12),
        face_h=rng.uniform(1.25, 1.45),
        mouth_w=rng.uniform(0.36, 0.46),
        lip_t=rng.uniform(0.05, 0.09),
        brow_t=rng.uniform(0.07, 0.12),
        brow_y=rng.uniform(-0.42, -0.34),
        hair_style=int(rng.integers(3)),
        f0=float(rng.uniform(95, 230)),
    )


@dataclass
class Pose:
    """Where and how the head is seen: centre (between the eyes) in pixels, eye distance in pixels, angles."""

    cx: float
    cy: float
    scale: float
    yaw: float = 0.0  # radians, positive turns the face to the image right
    pitch: float = 0.0
    roll: float = 0.0


@dataclass
class FaceRender:
    landmarks5: np.ndarray  # (5, 2) right eye, left eye, nose, right mouth corner, left mouth corner
    landmarks68: np.ndarray  # (68, 2)
    box: np.ndarray  # (4,) x, y, w, h
    outline: np.ndarray  # (m, 2) face outline polygon in pixels


HEAD_R = 1.15  # radius of the head sphere used for yaw


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 9) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def project(pts: np.ndarray, depth: np.ndarray | float, pose: Pose, silhouette: bool = False) -> np.ndarray:
    """Face-local points (n, 2) with protrusion ``depth`` to pixel coordinates (n, 2).

    Features on the face turn with the head (their x shrinks with cos(yaw) and shifts with their depth); the
    head's silhouette (``silhouette=True``) barely narrows, as a round head's outline does."""
    pts = np.asarray(pts, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    sin_y, cos_y = np.sin(pose.yaw), np.cos(pose.yaw)
    if silhouette:
        xr = x * (0.82 + 0.18 * cos_y) + 0.1 * HEAD_R * sin_y
        yr = y * np.cos(pose.pitch)
    else:
        z = np.sqrt(np.clip(HEAD_R**2 - 0.6 * x**2, 0.05, None)) + depth  # distance in front of the rotation axis
        xr = x * cos_y + (z - HEAD_R) * sin_y + 0.2 * HEAD_R * sin_y
        yr = y * np.cos(pose.pitch) + (z - HEAD_R) * np.sin(pose.pitch)
    c, s = np.cos(pose.roll), np.sin(pose.roll)
    px = pose.cx + pose.scale * (c * xr - s * yr)
    py = pose.cy + pose.scale * (s * xr + c * yr)
    return np.stack([px, py], axis=1)


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> tuple[float, float, float]:
    v = np.clip(a * (1 - t) + b * t, 0, 255)
    return (float(v[0]), float(v[1]), float(v[2]))


def _col(c: np.ndarray, gain: float = 1.0) -> tuple[float, float, float]:
    v = np.clip(np.asarray(c) * gain, 0, 255)
    return (float(v[0]), float(v[1]), float(v[2]))


def _poly(img: np.ndarray, pts: np.ndarray, colour: tuple[float, float, float]) -> None:
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], colour, LINE, shift=4)


def _line(img: np.ndarray, pts: np.ndarray, colour: tuple[float, float, float], thick: float, closed: bool = False
          ) -> None:
    cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], closed, colour, max(1, int(round(thick))), LINE,
                  shift=4)


def face_geometry(a: np.ndarray, ident: Identity) -> dict[str, tuple[np.ndarray, float]]:
    """Face-local curves for action intensities ``a`` (channels of :data:`abaw.synth.latent.CHANNELS`).

    Returns name -> (points (n, 2), depth).
    """
    g: dict[str, tuple[np.ndarray, float]] = {}
    au = {name: float(a[i]) for name, i in CH.items()}
    jaw = 0.32 * au["AU26"] + 0.06 * au["AU25"]
    # outline: upper half ellipse (forehead) and a jaw curve that lengthens when the jaw drops
    cy = 0.3
    th = np.linspace(np.pi, 2 * np.pi, 15)
    upper = np.stack([ident.face_w * np.cos(th), cy + 1.05 * ident.face_h * np.sin(th)], axis=1)
    th2 = np.linspace(0, np.pi, 17)
    lower = np.stack([ident.face_w * np.cos(th2) * (1 - 0.08 * np.sin(th2) ** 4),
                      cy + (ident.face_h * 0.95 + jaw) * np.sin(th2)], axis=1)
    g["outline"] = (np.concatenate([upper, lower[1:-1]]), -0.35)
    g["jaw"] = (lower[::-1], -0.35)  # subject's right (image left) to left
    # brows: inner, middle, outer per side; AU1 lifts the inner end, AU2 the outer, AU4 lowers and knits
    for side, sx in (("r", -1.0), ("l", 1.0)):
        by = ident.brow_y
        inner = np.array([sx * (0.2 - 0.07 * au["AU4"]), by - 0.24 * au["AU1"] + 0.13 * au["AU4"] + 0.05 * au["AU9"]])
        mid = np.array([sx * 0.5, by - 0.07 - 0.12 * au["AU1"] - 0.12 * au["AU2"] + 0.07 * au["AU4"]])
        outer = np.array([sx * 0.82, by - 0.25 * au["AU2"] + 0.02 * au["AU4"] + 0.04 * au["AU1"] * (1 - au["AU2"])])
        g[f"brow_{side}"] = (_bezier(inner, 2 * mid - 0.5 * (inner + outer), outer, 7), 0.08)
        # eyes: almond from inner to outer corner; AU5 widens, AU7 tightens, AU6 and blinks close
        open_u = 0.13 * (1 + 0.9 * au["AU5"] - 0.5 * au["AU7"] - 0.3 * au["AU6"]) * (1 - 0.95 * au["blink"])
        open_l = 0.075 * (1 + 0.4 * au["AU5"] - 0.7 * au["AU7"] - 0.6 * au["AU6"]) * (1 - 0.8 * au["blink"])
        ein, eout = np.array([sx * 0.27, 0.01]), np.array([sx * 0.74, -0.01])
        centre = 0.5 * (ein + eout)
        g[f"eye_u_{side}"] = (_bezier(ein, centre + [0, -2 * max(open_u, 0.004)], eout), 0.05)
        g[f"eye_l_{side}"] = (_bezier(ein, centre + [0, 2 * max(open_l, 0.004)], eout), 0.05)
        g[f"eye_c_{side}"] = (centre[None], 0.05)
        cheek_y = 0.55 - 0.12 * au["AU6"] - 0.04 * au["AU12"]
        g[f"cheek_{side}"] = (np.array([[sx * 0.58, cheek_y]]), 0.05)
    # nose: bridge, tip and nostrils (AU9 wrinkles and lifts the nostrils)
    lift = 0.06 * au["AU9"] + 0.03 * au["AU10"]
    g["nose_bridge"] = (np.array([[0, 0.12], [0, 0.25], [0, 0.38], [0, 0.5]]), 0.3)
    g["nose_tip"] = (np.array([[0.0, 0.6]]), 0.45)
    g["nostrils"] = (np.array([[-0.18, 0.64 - lift], [-0.09, 0.68 - lift], [0, 0.7 - lift], [0.09, 0.68 - lift],
                               [0.18, 0.64 - lift]]), 0.3)
    # mouth
    my = 1.02
    mw = ident.mouth_w * (1 + 0.22 * au["AU12"] + 0.3 * au["AU20"] - 0.22 * au["AU23"] - 0.08 * au["AU24"]
                          + 0.1 * au["AU14R"])
    corner_dy = 0.13 * au["AU15"] - 0.17 * au["AU12"] - 0.03 * au["AU20"] + 0.02 * au["AU10"]
    cr = np.array([-mw - 0.06 * au["AU14R"], my + corner_dy - 0.13 * au["AU14R"]])  # subject's right
    cl = np.array([mw, my + corner_dy])
    thin = 1 - 0.6 * max(au["AU23"], au["AU24"])
    t = ident.lip_t * thin
    gap = 0.035 * au["AU25"] + 0.03 * au["speech"] + 0.28 * au["AU26"] if au["AU25"] > 0.2 or au["AU26"] > 0.2 \
        else 0.0
    up_mid_y = my - 0.04 - 0.1 * au["AU10"] - 0.03 * au["AU12"] * (au["AU25"] > 0.3)
    lo_mid_y = my + gap + 0.02 + 0.04 * au["AU15"] - 0.02 * au["AU24"]
    up_in = _bezier(cr, np.array([0, 2 * up_mid_y - my - corner_dy]), cl, 11)
    lo_in = _bezier(cr, np.array([0, 2 * lo_mid_y - my - corner_dy]), cl, 11)
    up_out = up_in + np.stack([np.zeros(11), -t * 1.4 * np.sin(np.linspace(0, np.pi, 11)) ** 0.6], axis=1)
    up_out[5, 1] += 0.015  # cupid's bow
    lo_out = lo_in + np.stack([np.zeros(11), 1.7 * t * np.sin(np.linspace(0, np.pi, 11)) ** 0.6], axis=1)
    g["lip_up_in"], g["lip_lo_in"] = (up_in, 0.2), (lo_in, 0.2)
    g["lip_up_out"], g["lip_lo_out"] = (up_out, 0.2), (lo_out, 0.2)
    g["corners"] = (np.stack([cr, cl]), 0.15)
    # not a point: drawing hints (lip gap, how much teeth show) carried along with the curves
    g["gap"] = (np.array([[gap, au["AU10"] + au["AU12"]]]), 0.0)
    return g


def _landmarks68(p: dict[str, np.ndarray]) -> np.ndarray:
    jaw = p["jaw"]
    jaw17 = jaw[np.linspace(0, len(jaw) - 1, 17).round().astype(int)]
    brow_r = p["brow_r"][np.linspace(6, 0, 5).round().astype(int)]  # outer to inner, image left to right
    brow_l = p["brow_l"][np.linspace(0, 6, 5).round().astype(int)]
    nose = p["nose_bridge"]
    nostrils = p["nostrils"]

    def eye(side: str) -> np.ndarray:
        u, low = p[f"eye_u_{side}"], p[f"eye_l_{side}"]
        if side == "r":  # from outer corner (image left) clockwise
            return np.stack([u[-1], u[5], u[3], u[0], low[3], low[5]])
        return np.stack([u[0], u[3], u[5], u[-1], low[5], low[3]])

    uo, lo_, ui, li = p["lip_up_out"], p["lip_lo_out"], p["lip_up_in"], p["lip_lo_in"]
    # iBUG mouth: 12 outer points from the right corner over the upper lip and back, 8 inner points
    inner = np.stack([ui[1], ui[3], ui[5], ui[7], ui[9], li[7], li[5], li[3]])
    outer12 = np.stack([uo[0], uo[2], uo[4], uo[5], uo[6], uo[8], uo[10], lo_[8], lo_[6], lo_[5], lo_[4], lo_[2]])
    return np.concatenate([jaw17, brow_r, brow_l, nose, nostrils, eye("r"), eye("l"), outer12, inner])


def draw_face(img: np.ndarray, a: np.ndarray, ident: Identity, pose: Pose, light: float = 1.0) -> FaceRender:
    """Draw the head onto ``img`` (BGR uint8, in place) and return its landmarks and face box."""
    g = face_geometry(a, ident)
    p = {k: project(v, d, pose, silhouette=k in ("outline", "jaw")) for k, (v, d) in g.items() if k != "gap"}
    gap, teeth = g["gap"][0][0]
    s = pose.scale
    skin = ident.skin * light
    dark = _col(skin, 0.55)
    # hair behind the head
    head_c = project(np.array([[0.0, -0.05]]), 0.0, pose, silhouette=True)[0]
    hair_axes = (ident.face_w * 1.12 * s * (0.85 + 0.15 * np.cos(pose.yaw)), ident.face_h * 1.05 * s)
    if ident.hair_style == 1:  # long hair falls behind the face to the shoulders
        fw = ident.face_w
        locks = np.array([[-1.12 * fw, 0.0], [-1.22 * fw, 1.95], [-0.55 * fw, 1.8], [0.0, 1.1], [0.55 * fw, 1.8],
                          [1.22 * fw, 1.95], [1.12 * fw, 0.0]])
        _poly(img, project(locks, -0.5, pose, silhouette=True), _col(ident.hair, light))
    if ident.hair_style != 2:
        cv2.ellipse(img, (int(head_c[0]), int(head_c[1])), (int(hair_axes[0]), int(hair_axes[1])),
                    np.degrees(pose.roll), 180, 360, _col(ident.hair, light), -1, LINE)
    # ears
    for sx in (-1, 1):
        ear = project(np.array([[sx * ident.face_w * 0.98, 0.25]]), -0.9, pose)[0]
        vis = 1.0 - max(0.0, sx * np.sin(pose.yaw)) * 1.2
        if vis > 0.2:
            cv2.ellipse(img, (int(ear[0]), int(ear[1])), (max(1, int(0.13 * s * vis)), max(1, int(0.24 * s))),
                        np.degrees(pose.roll), 0, 360, _col(skin, 0.9), -1, LINE)
    _poly(img, p["outline"], _col(skin))
    if ident.hair_style == 0:  # fringe
        fr = project(np.array([[-0.95 * ident.face_w, -0.55], [-0.5, -0.9], [0.3, -0.85], [0.95 * ident.face_w, -0.5],
                               [0.9 * ident.face_w, -1.0], [0, -1.35], [-0.9 * ident.face_w, -1.0]]), 0.0, pose,
                     silhouette=True)
        _poly(img, fr, _col(ident.hair, light))
    # cheeks: AU6 raises and reddens them; nasolabial folds deepen with AU6/AU10/AU12
    cheek_amt = float(a[CH["AU6"]])
    for side in ("r", "l"):
        c = p[f"cheek_{side}"][0]
        col = _mix(skin, np.array([90, 90, 215]) * light, 0.12 + 0.3 * cheek_amt)
        cv2.ellipse(img, (int(c[0]), int(c[1])), (int(0.2 * s), int((0.12 + 0.05 * cheek_amt) * s)),
                    np.degrees(pose.roll), 0, 360, col, -1, LINE)
    fold = float(max(a[CH["AU6"]], a[CH["AU10"]], a[CH["AU12"]]))
    if fold > 0.25:
        for side, k in (("r", 0), ("l", -1)):
            # from above the nose wing, outwards, to beside and below the mouth corner
            out_dir = p["nostrils"][k] - p["nose_tip"][0]
            top = p["nostrils"][k] + out_dir * 0.9
            corner = p["corners"][0 if side == "r" else 1]
            end = corner + out_dir * 0.55 + (corner - p["nose_tip"][0]) * 0.15
            mid = 0.5 * (top + end) + out_dir * 0.6
            _line(img, _bezier(top, mid, end, 7), _mix(skin, skin * 0.6, 0.8 * fold), s * 0.025 * fold + 0.5)
    # eyes: sclera, iris, then lids covering the overflow
    for side in ("r", "l"):
        u, low = p[f"eye_u_{side}"], p[f"eye_l_{side}"]
        eye_poly = np.concatenate([u, low[::-1]])
        _poly(img, eye_poly, _col(np.array([235, 240, 245]), light))
        ec = p[f"eye_c_{side}"][0]
        cv2.circle(img, (int(round(ec[0] * 16)), int(round(ec[1] * 16))), int(0.1 * s * 16), _col(ident.iris, light),
                   -1, LINE, shift=4)
        cv2.circle(img, (int(round(ec[0] * 16)), int(round(ec[1] * 16))), int(0.045 * s * 16), (10, 10, 10), -1, LINE,
                   shift=4)
        lid_u = np.concatenate([u, (u + np.array([0, -0.16 * s]))[::-1]])
        lid_l = np.concatenate([low, (low + np.array([0, 0.16 * s]))[::-1]])
        _poly(img, lid_u, _col(skin, 0.97))
        _poly(img, lid_l, _col(skin, 1.0))
        _line(img, u, (25, 25, 30), 0.045 * s)
        _line(img, low, dark, 0.02 * s)
        # lid tightening and cheek raise show as a bulge under the eye; AU6 adds crow's feet
        bag = float(max(a[CH["AU7"]], a[CH["AU6"]]))
        if bag > 0.3:
            _line(img, low + np.array([0, 0.07 * s]), _mix(skin, skin * 0.6, bag), 0.02 * s * bag + 0.5)
        if a[CH["AU6"]] > 0.35:
            o = u[-1] if side == "l" else u[0]
            d = 1 if side == "l" else -1
            for k in (-1, 0, 1):
                _line(img, np.array([o + [d * 0.05 * s, 0], o + [d * 0.17 * s, k * 0.07 * s]]), dark, 0.02 * s)
    # brows and the frown lines between them (AU4)
    for side in ("r", "l"):
        _line(img, p[f"brow_{side}"], _col(ident.hair * 0.8 + 10, light), ident.brow_t * s)
    if a[CH["AU4"]] > 0.3:
        br, bl = p["brow_r"][0], p["brow_l"][0]
        for f in (0.38, 0.62):
            top = br * (1 - f) + bl * f
            _line(img, np.array([top + [0, 0.02 * s], top + [0, 0.2 * s]]), dark, 0.025 * s * a[CH["AU4"]] + 0.5)
    if a[CH["AU1"]] > 0.4 or a[CH["AU2"]] > 0.4:  # forehead wrinkles
        amt = float(max(a[CH["AU1"]], a[CH["AU2"]]))
        for k in (0.18, 0.3):
            row = project(np.array([[-0.5, ident.brow_y - k - 0.15], [0, ident.brow_y - k - 0.2],
                                    [0.5, ident.brow_y - k - 0.15]]), 0.05, pose)
            _line(img, _bezier(row[0], row[1], row[2], 7), _mix(skin, skin * 0.6, amt), 0.02 * s + 0.3)
    # nose (AU9 wrinkles the bridge)
    _line(img, p["nose_bridge"][1:], _mix(skin, skin * 0.6, 0.6), 0.03 * s)
    _line(img, p["nostrils"], _mix(skin, skin * 0.45, 0.8), 0.04 * s)
    if a[CH["AU9"]] > 0.3:
        for k in (0.18, 0.28, 0.38):
            row = project(np.array([[-0.12, k], [0.12, k]]), 0.3, pose)
            _line(img, row, dark, 0.025 * s)
    # mouth: interior, teeth, lips
    ui, li, uo, lo = p["lip_up_in"], p["lip_lo_in"], p["lip_up_out"], p["lip_lo_out"]
    if gap > 0.01:
        _poly(img, np.concatenate([ui, li[::-1]]), (40, 30, 70))
        if teeth > 0.4 or gap > 0.05:
            band = np.concatenate([ui, (ui + (li - ui) * 0.35)[::-1]])
            _poly(img, band, _col(np.array([220, 230, 235]), light))
    _poly(img, np.concatenate([uo, ui[::-1]]), _col(ident.lips, light * 0.92))
    _poly(img, np.concatenate([li, lo[::-1]]), _col(ident.lips, light))
    _line(img, ui, _mix(ident.lips * light, np.zeros(3), 0.5), 0.025 * s)
    if a[CH["AU14R"]] > 0.3:  # one-sided dimple
        c = p["corners"][0]
        cv2.circle(img, (int(c[0] - 0.05 * s), int(c[1])), max(1, int(0.03 * s)), dark, -1, LINE)

    lm5 = np.stack([p["eye_c_r"][0], p["eye_c_l"][0], p["nose_tip"][0], p["corners"][0], p["corners"][1]])
    outline = p["outline"]
    top = project(np.array([[0.0, ident.brow_y - 0.45]]), 0.0, pose)[0, 1]
    x0, x1 = outline[:, 0].min(), outline[:, 0].max()
    y1 = outline[:, 1].max()
    box = np.array([x0, top, x1 - x0, y1 - top])
    return FaceRender(landmarks5=lm5, landmarks68=_landmarks68(p), box=box, outline=outline)
