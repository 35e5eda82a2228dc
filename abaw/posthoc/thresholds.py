"""Per-AU decision thresholds tuned on validation for F1, reported with a score from held-out videos."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from abaw.inference import score
from abaw.runs.outputs import grouped_folds, video_groups

#: Default threshold grid.
GRID: tuple[float, ...] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


def f1_per_threshold(prob: np.ndarray, true: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of every AU at every threshold: ``(n_au, len(grid))``, a frame positive when ``prob >= threshold`` (the
    rule of :func:`abaw.inference.decide`). Labels other than 0/1 are ignored.

    Hand-written rather than calling sklearn's f1_score per cell: one broadcast gives the whole table.
    """
    valid = (true == 0) | (true == 1)
    pos = (true == 1)[:, :, None]
    pred = prob[:, :, None] >= grid[None, None, :]
    valid3 = valid[:, :, None]
    tp = (pred & pos & valid3).sum(axis=0)
    fp = (pred & ~pos & valid3).sum(axis=0)
    fn = (~pred & pos & valid3).sum(axis=0)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def tune_thresholds(prob: np.ndarray, true: np.ndarray, grid: tuple[float, ...] = GRID) -> np.ndarray:
    """The threshold maximising each AU's F1 (ties: the one nearest 0.5)."""
    grid_arr = np.asarray(grid, dtype=np.float64)
    table = f1_per_threshold(np.asarray(prob), np.asarray(true), grid_arr)
    # prefer 0.5-near thresholds among equals: sort candidates by distance to 0.5 before argmax
    order = np.argsort(np.abs(grid_arr - 0.5), kind="stable")
    best = order[np.argmax(table[:, order], axis=1)]
    return grid_arr[best]


@dataclass
class ThresholdResult:
    thresholds: np.ndarray  # fitted on all validation frames
    in_sample_score: float
    cv_score: float
    default_score: float
    #: per-row thresholds of the held-out evaluation (each video gets thresholds fitted without it)
    row_thresholds: np.ndarray
    folds: list[dict[str, Any]] = field(default_factory=list)

    def summary(self, au_names: list[str]) -> dict[str, Any]:
        return {"thresholds": dict(zip(au_names, self.thresholds.round(3).tolist(), strict=True)),
                "default_score": self.default_score, "cv_score": self.cv_score,
                "in_sample_score": self.in_sample_score, "gain": self.cv_score - self.default_score,
                "note": "cv_score: thresholds fitted on the other folds' videos (grouped CV over validation videos);"
                        " in_sample_score: fitted and scored on the same frames", "folds": self.folds}


def tune_thresholds_cv(prob: np.ndarray, true: np.ndarray, names: np.ndarray, protocol: str | None = None,
                       grid: tuple[float, ...] = GRID, n_splits: int = 5) -> ThresholdResult:
    """Tune per-AU thresholds on all validation frames and score them honestly with grouped CV."""
    names = np.asarray(names, dtype=str)
    row_thr = np.full(prob.shape, 0.5)
    folds = []
    for fit, held in grouped_folds(video_groups(names), n_splits):
        thr = tune_thresholds(prob[fit], true[fit], grid)
        row_thr[held] = thr
        folds.append({"thresholds": thr.round(3).tolist(), "held_out_videos": sorted(set(video_groups(names[held])))})
    full = tune_thresholds(prob, true, grid)
    return ThresholdResult(
        thresholds=full, in_sample_score=float(score("au", prob, true, protocol, full)["score"]),
        cv_score=float(score("au", prob, true, protocol, row_thr)["score"]),
        default_score=float(score("au", prob, true, protocol, 0.5)["score"]), row_thresholds=row_thr, folds=folds)
