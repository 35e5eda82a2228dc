"""Label roots (``LABELS/annotations/<track dir>/<Train_Set|Validation_Set|Test_Set>/<name>.txt``), the layout of the
synthetic generator's hidden ``test_labels/``, and labels that make every class and AU count in a score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from abaw import tasks
from helpers.data_roots import label_text


def covering_labels(track: str, n: int, protocol: str, seed: int = 0) -> np.ndarray:
    """``n`` frames of labels in which every class (EXPR) and both values of every AU occur and VA varies; the last
    frame is invalid. ``n`` must be at least the number of classes + 1."""
    proto = tasks.get_protocol(protocol)
    rng = np.random.default_rng(seed)
    if track == "va":
        lab = np.round(rng.uniform(-1, 1, (n, 2)), 3)
    elif track == "expr":
        lab = (np.arange(n) % proto.n_expr)[:, None].astype(float)
    else:
        lab = ((np.arange(n)[:, None] + np.arange(proto.n_au)[None, :]) % 2).astype(float)
    lab[-1] = tasks.INVALID[track]  # an unscored frame, as where the real labels have no face
    return lab.astype(np.float32)


def write_label_root(labels_root: Path, track: str, labels: dict[str, np.ndarray], protocol: str,
                     split: str = tasks.TEST_SPLIT) -> Path:
    """Write ``labels`` (name -> array) as annotation files of ``split`` under a label root; returns the folder."""
    proto = tasks.get_protocol(protocol)
    folder = labels_root / tasks.ANNOTATIONS_DIR / proto.annotation_dir(track) / tasks.LABEL_SPLIT_DIRS[split]
    folder.mkdir(parents=True, exist_ok=True)
    for name, lab in labels.items():
        (folder / f"{name}.txt").write_text(label_text(track, lab, protocol))
    return folder
