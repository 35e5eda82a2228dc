"""A tiny AffectNet-format image set whose colours give the classes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from abaw.data.affectnet import COLUMNS

#: One colour per AffectNet class, so a tiny CNN can learn the classes in a few steps.
_COLOURS = np.array([[200, 200, 200], [40, 200, 40], [40, 40, 200], [200, 200, 40], [200, 40, 200],
                     [40, 200, 200], [200, 40, 40], [120, 60, 20]], dtype=np.float32)


def write_tiny_affectnet(root: Path, images: int = 48, size: int = 40, seed: int = 0,
                         extra_codes: bool = False) -> Path:
    """A tiny AffectNet-format set: each image is a noisy face-sized patch whose colour gives its class (the reader's
    tests do not depend on the renderer of ``abaw.synth.affectnet``)."""
    rng = np.random.default_rng(seed)
    for split, fname, n in (("train", "training.csv", images), ("validation", "validation.csv", max(images // 3, 8))):
        rows = []
        for i in range(n):
            code = int(rng.integers(0, 8))
            img = rng.normal(90, 20, (size + 8, size + 8, 3))
            img[4:-4, 4:-4] = _COLOURS[code] + rng.normal(0, 25, (size, size, 3))
            rel = f"{i % 3}/{split}_{i:04d}.jpg"
            path = root / "Manually_Annotated_Images" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8)[:, :, ::-1])
            va = (-2.0, -2.0) if i % 7 == 3 else tuple(round(float(v), 3) for v in rng.uniform(-1, 1, 2))
            if extra_codes and i == 1:
                code = 9  # Uncertain
            rows.append({"subDirectory_filePath": rel, "face_x": 4, "face_y": 4, "face_width": size,
                         "face_height": size, "facial_landmarks": ";".join(["10.0"] * 136), "expression": code,
                         "valence": va[0], "arousal": va[1]})
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(root / fname, index=False)
    return root
