"""Render one synthetic video: its people (latent affect, identity, motion), every frame, the face crops, the
ground-truth boxes table, the audio, and the per-name labels (invalid where there is no face)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from abaw import tasks
from abaw.synth import audio as audio_mod
from abaw.synth.face import Identity, Pose, draw_face, random_identity
from abaw.synth.latent import CH, STATES, AffectTrack, low_pass, simulate_person
from abaw.synth.params import Cues
from abaw.synth.scene import (
    add_glow,
    body_posture,
    clip_box,
    draw_body,
    draw_occluder,
    finish_frame,
    inside_fraction,
    light_map,
    noise_planes,
    random_room,
    simulate_motion,
)
from abaw.synth.writer import BOX_COLUMNS, VideoWriter, boxes_table, write_boxes, write_image
from abaw.video.align import align_face

#: A face counts as visible (crop written, labels valid) under these limits.
MAX_YAW = np.radians(50)
MAX_OCCLUSION = 0.55
MIN_INSIDE = 0.8


@dataclass
class VideoSpec:
    """What the planner decides about one video."""

    video: str
    seed: tuple[int, ...]
    frames: int
    fps: float
    width: int
    height: int
    two_person: bool = False
    force_noface: bool = False
    names: list[str] = field(default_factory=list)
    cues: Cues = field(default_factory=Cues)


@dataclass
class PersonLabels:
    """Ground truth of one annotation name, one row per frame (before the track's invalid stretches)."""

    name: str
    va: np.ndarray  # (n, 2)
    expr: np.ndarray  # (n,) index into EXPR_CLASSES_8
    au: np.ndarray  # (n, 12)
    face: np.ndarray  # (n,) bool: face visible and cropped
    actions: np.ndarray  # (n, channels) true intensities (for analysis)
    missing: dict[str, np.ndarray]  # track -> (n,) bool stretches left unannotated although the face is there


def names_for(video: str, two_person: bool) -> list[str]:
    return [video + s for s in tasks.TWO_PERSON_SUFFIXES] if two_person else [video]


def _missing_stretches(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    out = {}
    for track in tasks.TRACKS:
        m = np.zeros(n, dtype=bool)
        if rng.random() < 0.35:
            length = int(rng.uniform(0.05, 0.2) * n)
            start = int(rng.integers(0, max(1, n - length)))
            m[start:start + length] = True
        out[track] = m
    return out


def _back_of_head(img: np.ndarray, ident: Identity, pose: Pose) -> None:
    """The head turned away: skin ellipse mostly covered by hair."""
    s = pose.scale
    centre = (int(pose.cx), int(pose.cy + 0.3 * s))
    axes = (int(ident.face_w * s), int(ident.face_h * 1.05 * s))
    cv2.ellipse(img, centre, axes, np.degrees(pose.roll), 0, 360, tuple(float(c) for c in ident.skin), -1,
                cv2.LINE_AA)
    hair = tuple(float(c) for c in ident.hair) if ident.hair_style != 2 else tuple(float(c) * 0.9 for c in ident.skin)
    cv2.ellipse(img, (centre[0], centre[1] - int(0.2 * s)), (int(axes[0] * 1.02), int(axes[1] * 0.95)),
                np.degrees(pose.roll), 0, 360, hair, -1, cv2.LINE_AA)


def simulate_people(spec: VideoSpec, rng: np.random.Generator | None = None) -> list[AffectTrack]:
    """The latent affect of each person of a video: the first draws of the video's random stream, so the planner can
    see a video's labels (to stratify the splits) before it is rendered, and the renderer go on from there."""
    rng = rng if rng is not None else np.random.default_rng(list(spec.seed))
    return [simulate_person(rng, spec.frames, spec.fps, spec.cues) for _ in names_for(spec.video, spec.two_person)]


def render_video(root: Path, spec: VideoSpec) -> list[PersonLabels]:
    """Write ``videos/<video>.mp4``, ``cropped_aligned/<name>/``, ``boxes/<video>.csv``; return the labels."""
    cv2.setNumThreads(1)
    rng = np.random.default_rng(list(spec.seed))
    n, fps, w, h = spec.frames, spec.fps, spec.width, spec.height
    names = names_for(spec.video, spec.two_person)
    n_people = len(names)
    cues = spec.cues
    tracks = simulate_people(spec, rng)
    idents = [random_identity(rng) for _ in range(n_people)]
    room = random_room(rng, w, h)
    if n_people == 1:
        centres = [(w * rng.uniform(0.4, 0.6), h * rng.uniform(0.3, 0.42))]
        scales = [w * rng.uniform(0.1, 0.14)]
    else:
        centres = [(w * 0.28, h * rng.uniform(0.32, 0.42)), (w * 0.72, h * rng.uniform(0.32, 0.42))]
        scales = [w * rng.uniform(0.075, 0.095)] * 2
    motions = [simulate_motion(rng, n, fps, tracks[p].va[:, 1], *centres[p], scales[p], w,
                               allow_exit=n_people == 1, force_noface=spec.force_noface and p == 0,
                               gain=cues.body_arousal)
               for p in range(n_people)]
    room = add_glow(rng, room, [c[0] / w for c in centres])
    occ_colour = [rng.uniform(30, 230, 3) for _ in range(n_people)]
    occ_left = [bool(rng.random() < 0.5) for _ in range(n_people)]
    gain = rng.uniform(0.75, 1.2) * np.exp(0.05 * np.sin(np.arange(n) / fps * rng.uniform(0.2, 1.0) * 2 * np.pi))
    light = light_map(rng, w, h)
    base_blur = float(rng.choice([0.0, 0.0, 0.0, 1.0, 1.5]))
    noise = noise_planes(rng, w, h, float(rng.uniform(0.5, 4)))
    # the room's weak, slow valence cue: a warmer light when the people feel good (valence smoothed over seconds,
    # plus an offset of this room)
    slow = low_pass(np.mean([t.va[:, 0] for t in tracks], axis=0), cues.context_seconds * fps)
    valence_cue = np.clip(cues.context_valence * slow / 0.6 + rng.normal(0.0, cues.context_offset), -1.5, 1.5)
    jitter_rng = np.random.default_rng([*spec.seed, 1])  # per-frame alignment jitter (a noisy detector)
    # the body shows the expression too, each person to their own degree (a stream of its own, so that the cue's
    # strength changes nothing else of the video)
    body_rng = np.random.default_rng([*spec.seed, 2])
    arms: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per person: elevation (n, 2), forearm (n, 2), slump
    for p in range(n_people):
        change, slump = body_posture(tracks[p].weights, STATES, cues.body_expression * body_rng.uniform(0.4, 1.2))
        elevation = np.clip(motions[p].arm_open + change[:, :1], 0.0, 1.0)
        arms.append((elevation, np.clip(elevation + change[:, 1:], 0.0, 1.1), slump))

    voices = [audio_mod.voice(rng, tracks[p].va, tracks[p].actions[:, CH["speech"]], idents[p].f0, fps,
                              arousal_gain=cues.audio_arousal, valence_gain=cues.audio_valence,
                              expression=tracks[p].weights, states=STATES, expression_gain=cues.audio_expression)
              for p in range(n_people)]
    samples = audio_mod.mix(rng, voices)

    # crops go to hidden temporary folders renamed into place when the video is done (atomic per name; an fsync
    # per small file would cost more than rendering)
    final_dirs = [root / tasks.CROPS_DIR / name for name in names]
    crop_dirs = [d.with_name(f".{d.name}.tmp") for d in final_dirs]
    for d in crop_dirs:
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    cols: dict[str, np.ndarray] = {c: np.full(n * n_people, np.nan) for c in BOX_COLUMNS if c != "name"}
    face_ok = np.zeros((n_people, n), dtype=bool)
    prev_person = [np.array([0.0, 0.0, 1.0, 1.0]) for _ in range(n_people)]
    writer = VideoWriter(root / tasks.VIDEOS_DIR / f"{spec.video}.mp4", w, h, fps, audio_mod.SAMPLE_RATE)
    try:
        for i in range(n):
            img = room.frame(float(valence_cue[i]))
            renders = []
            for p in range(n_people):
                pose = motions[p].poses[i]
                elevation, forearm, slump = arms[p]
                person = draw_body(img, idents[p], pose, elevation[i], 1.0, forearm[i], float(slump[i]))
                if abs(pose.yaw) > MAX_YAW * 1.2:
                    _back_of_head(img, idents[p], pose)
                    renders.append(None)
                    prev = person
                else:
                    fr = draw_face(img, tracks[p].shown[i], idents[p], pose)
                    draw_occluder(img, fr.box, float(motions[p].occlusion[i]), occ_colour[p], occ_left[p])
                    if jitter_rng.random() < cues.face_occlusion:  # a hand across the face for one frame
                        draw_occluder(img, fr.box, float(jitter_rng.uniform(0.25, 0.5)), idents[p].skin * 0.85,
                                      bool(jitter_rng.random() < 0.5))
                    renders.append(fr)
                    prev = np.array([min(person[0], fr.box[0]), min(person[1], fr.box[1] - 0.3 * pose.scale),
                                     0.0, 0.0])
                    prev[2] = max(person[0] + person[2], fr.box[0] + fr.box[2]) - prev[0]
                    prev[3] = max(person[1] + person[3], fr.box[1] + fr.box[3]) - prev[1]
                prev = clip_box(prev, w, h)
                row = p * n + i
                cols["frame"][row], cols["timestamp"][row], cols["face_id"][row] = i + 1, i / fps, p
                if prev[2] > 1 and prev[3] > 1:
                    prev_person[p] = prev
                    cols["person_score"][row] = 1.0
                else:  # the person left the frame: keep the last box, derived
                    cols["person_score"][row] = 0.0
                cols["person_x"][row], cols["person_y"][row] = prev_person[p][0], prev_person[p][1]
                cols["person_w"][row], cols["person_h"][row] = prev_person[p][2], prev_person[p][3]
            speed = abs(motions[0].poses[i].cx - motions[0].poses[max(0, i - 1)].cx)
            frame = finish_frame(img, float(gain[i]), light, min(3.0, base_blur + 0.2 * speed), noise[i % len(noise)])
            writer.add_frame(frame)
            for p, fr in enumerate(renders):
                row = p * n + i
                visible = (fr is not None and abs(motions[p].poses[i].yaw) <= MAX_YAW
                           and motions[p].occlusion[i] < MAX_OCCLUSION
                           and inside_fraction(fr.box, w, h) >= MIN_INSIDE)
                if not visible:
                    cols["face_score"][row] = 0.0
                    continue
                face_ok[p, i] = True
                cols["face_x"][row], cols["face_y"][row], cols["face_w"][row], cols["face_h"][row] = fr.box
                cols["face_score"][row] = 1.0
                for k in range(5):
                    cols[f"lm{k}_x"][row], cols[f"lm{k}_y"][row] = fr.landmarks5[k]
                eye = float(np.linalg.norm(fr.landmarks5[1] - fr.landmarks5[0]))
                seen = fr.landmarks5 + jitter_rng.normal(0.0, cues.align_jitter * max(eye, 1.0), (5, 2))
                write_image(crop_dirs[p] / tasks.CROP_PATTERN.format(i + 1), align_face(frame, seen))
        writer.close(samples)
    except BaseException:
        writer.abort()
        raise
    for tmp, final in zip(crop_dirs, final_dirs, strict=True):
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    for c in ("frame", "face_id"):
        cols[c] = cols[c].astype(np.int64)
    write_boxes(root / tasks.BOXES_DIR / f"{spec.video}.csv", boxes_table(cols, names))
    return [PersonLabels(name=names[p], va=tracks[p].va, expr=tracks[p].expr, au=tracks[p].au, face=face_ok[p],
                         actions=tracks[p].actions, missing=_missing_stretches(rng, n)) for p in range(n_people)]
