"""``generate_affectnet``: synthetic still faces in AffectNet's layout (``Manually_Annotated_Images/<dir>/<file>.jpg``,
``training.csv``, ``validation.csv``) from the same face renderer and affect model as the synthetic Aff-Wild2."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from abaw import tasks
from abaw.errors import AbawError
from abaw.fileio import atomic_open, write_json
from abaw.synth.defaults import AFFECTNET_DEFAULTS
from abaw.synth.face import Pose, draw_face, random_identity
from abaw.synth.latent import CH, CHANNELS, CIRCUMPLEX, prototype_matrix
from abaw.synth.latent import STATES as AFFECT_STATES
from abaw.synth.scene import finish_frame, light_map, noise_planes, random_room
from abaw.synth.writer import write_image

log = logging.getLogger(__name__)

IMAGE_DIR = "Manually_Annotated_Images"
CSV_FILES = {"train": "training.csv", "validation": "validation.csv"}
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
           "expression", "valence", "arousal")
#: Training-set class frequencies: AffectNet's own counts, square-rooted so small sets still hold every class.
TRAIN_WEIGHTS = {"Neutral": 274, "Happiness": 366, "Sadness": 158, "Surprise": 118, "Fear": 77, "Disgust": 63,
                 "Anger": 158, "Contempt": 63}
IMAGES_PER_DIR = 500


def affect_state(affectnet_class: str) -> str:
    """The affect model's state for an AffectNet class (contempt is the model's one-sided "Other" expression)."""
    return "Other" if affectnet_class == "Contempt" else affectnet_class


def _classes_for(rng: np.random.Generator, n_train: int, n_val: int) -> tuple[np.ndarray, np.ndarray]:
    k = len(tasks.AFFECTNET_CLASSES)
    w = np.array([TRAIN_WEIGHTS[c] for c in tasks.AFFECTNET_CLASSES], dtype=np.float64)
    train = rng.choice(k, size=n_train, p=w / w.sum())
    if n_train >= 2 * k:  # every class at least twice
        train[: 2 * k] = np.repeat(np.arange(k), 2)
    val = np.arange(n_val) % k  # AffectNet's validation set is balanced
    return rng.permutation(train), rng.permutation(val)


def render_still(rng: np.random.Generator, cls: int, size: int) -> tuple[np.ndarray, dict]:
    """One face image of AffectNet class ``cls``; returns (BGR image, CSV fields without the path)."""
    state = AFFECT_STATES.index(affect_state(tasks.AFFECTNET_CLASSES[cls]))
    protos = prototype_matrix()
    peak = rng.uniform(0.55, 1.0)
    actions = np.clip(peak * protos[state] + rng.normal(0, 0.07, len(CHANNELS)), 0, 1)
    actions[CH["speech"]] = 0.0
    actions[CH["blink"]] = 1.0 if rng.random() < 0.03 else 0.0
    v, a = CIRCUMPLEX[AFFECT_STATES[state]]
    va = np.clip(np.array([v, a]) * peak + rng.normal(0, 0.12, 2), -1, 1)
    room = random_room(rng, size, size)
    img = room.base.astype(np.uint8).copy()
    scale = size * rng.uniform(0.2, 0.26)
    pose = Pose(cx=size * rng.uniform(0.44, 0.56), cy=size * rng.uniform(0.34, 0.42), scale=scale,
                yaw=float(np.radians(rng.normal(0, 12))), pitch=float(np.radians(rng.normal(0, 5))),
                roll=float(np.radians(rng.normal(0, 6))))
    fr = draw_face(img, actions, random_identity(rng), pose)
    img = finish_frame(img, rng.uniform(0.75, 1.2), light_map(rng, size, size), float(rng.choice([0.0, 0.0, 1.0])),
                       noise_planes(rng, size, size, rng.uniform(0.5, 3), count=1)[0])
    x, y, w, h = fr.box
    fields = {"face_x": int(round(x)), "face_y": int(round(y)), "face_width": int(round(w)),
              "face_height": int(round(h)),
              "facial_landmarks": ";".join(f"{c:.2f}" for c in fr.landmarks68.reshape(-1)),
              "expression": cls, "valence": round(float(va[0]), 4), "arousal": round(float(va[1]), 4)}
    return img, fields


def generate_affectnet(out: str | Path, images: int = AFFECTNET_DEFAULTS["images"], seed: int = 0,
                       size: int = AFFECTNET_DEFAULTS["size"],
                       validation_fraction: float = 0.1) -> dict:
    """Write ``images`` synthetic faces in AffectNet's layout to ``out``; returns a summary.

    Expression codes follow :data:`abaw.tasks.AFFECTNET_CLASSES` (0 neutral ... 7 contempt); valence/arousal in
    [-1, 1]; landmarks are 68 points ``x;y;...`` (iBUG order) in image pixels.
    """
    if images < 2:
        raise AbawError(f"need at least 2 images (got {images})")
    if size < 48:
        raise AbawError(f"size must be at least 48 pixels (got {size})")
    started = time.perf_counter()
    out = Path(out)
    rng = np.random.default_rng([seed, 0xAFFEC7])
    n_val = max(1, int(round(images * validation_fraction)))
    train_cls, val_cls = _classes_for(rng, images - n_val, n_val)
    rows: dict[str, list[dict]] = {"train": [], "validation": []}
    final_dir = out / IMAGE_DIR
    tmp_dir = out / f".{IMAGE_DIR}.tmp"  # renamed into place when every image is written
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    i = 0
    for split, classes in (("train", train_cls), ("validation", val_cls)):
        for cls in classes:
            img_rng = np.random.default_rng([seed, 0xAFFEC7, i])
            img, fields = render_still(img_rng, int(cls), size)
            rel = f"{i // IMAGES_PER_DIR + 1}/{img_rng.bytes(20).hex()}.jpg"
            write_image(tmp_dir / rel, img)
            rows[split].append({"subDirectory_filePath": rel, **fields})
            i += 1
    if final_dir.exists():
        shutil.rmtree(final_dir)
    tmp_dir.rename(final_dir)
    for split, recs in rows.items():
        with atomic_open(out / CSV_FILES[split], "w") as fh:
            pd.DataFrame(recs, columns=list(COLUMNS)).to_csv(fh, index=False, lineterminator="\n")
    counts = {split: {tasks.AFFECTNET_CLASSES[k]: int((np.array([r["expression"] for r in recs]) == k).sum())
                      for k in range(len(tasks.AFFECTNET_CLASSES))} for split, recs in rows.items()}
    summary = {"out": str(out), "images": images, "train": len(rows["train"]), "validation": len(rows["validation"]),
               "size": size, "seed": seed, "class_counts": counts, "seconds": round(time.perf_counter() - started, 2)}
    write_json(out / "synth_affectnet.json", summary)
    log.debug("synthetic AffectNet: %d images in %s in %.1f s", images, out, summary["seconds"])
    return summary

