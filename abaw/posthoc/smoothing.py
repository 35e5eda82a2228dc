"""Temporal smoothing of per-frame predictions (box, Gaussian, median filters along time, per video), with the
filter and window tuned on validation and reported with a score from held-out videos.

Rows are the predicted frames of a video in frame order; frames without a prediction are skipped, so the filter
runs over consecutive predicted frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from abaw import tasks
from abaw.inference import score
from abaw.runs.outputs import grouped_folds, video_groups, video_slices

METHODS: tuple[str, ...] = ("box", "gaussian", "median")
#: Default window grid, in frames (1 = no smoothing, so the tuner may also choose not to smooth).
WINDOWS: tuple[int, ...] = (1, 3, 5, 9, 15, 25, 41, 65, 101)


def smooth(values: np.ndarray, method: str, window: int) -> np.ndarray:
    """Filter ``values`` (n, k) along axis 0. For ``gaussian`` the window spans +-3 sigma (sigma = window / 6)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) == 0:
        return values.copy()
    if method == "box":
        return ndimage.uniform_filter1d(values, size=window, axis=0, mode="nearest")
    if method == "gaussian":
        return ndimage.gaussian_filter1d(values, sigma=window / 6.0, axis=0, mode="nearest", truncate=3.0)
    if method == "median":
        return ndimage.median_filter(values, size=(window, 1), mode="nearest")
    raise ValueError(f"unknown smoothing method {method!r}; choose one of {', '.join(METHODS)}")


def smooth_by_video(track: str, values: np.ndarray, names: np.ndarray, method: str, window: int) -> np.ndarray:
    """Smooth each video's rows on their own (``names`` sorted, one contiguous block per video).

    Class probabilities are renormalised to sum to 1 after a median filter (the linear filters keep the sum).
    """
    out = np.empty(np.shape(values), dtype=np.float64)
    for _, s, e in video_slices(names):
        out[s:e] = smooth(values[s:e], method, window)
    if tasks.check_track(track) == "expr" and method == "median" and window > 1:
        out /= np.clip(out.sum(axis=1, keepdims=True), 1e-12, None)
    return out


@dataclass
class SmoothingResult:
    """The tuned filter, its in-sample score and its score on held-out videos (grouped cross-validation)."""

    method: str
    window: int
    in_sample_score: float
    cv_score: float
    unsmoothed_score: float
    #: out-of-fold smoothed values: each video smoothed with the filter chosen without it
    values: np.ndarray
    folds: list[dict[str, Any]] = field(default_factory=list)
    grid: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gain(self) -> float:
        """Held-out score minus the unsmoothed score."""
        return self.cv_score - self.unsmoothed_score

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "window": self.window, "unsmoothed_score": self.unsmoothed_score,
                "cv_score": self.cv_score, "in_sample_score": self.in_sample_score, "gain": self.gain,
                "note": "cv_score: filter chosen on the other videos' folds (grouped CV over validation videos); "
                        "in_sample_score: filter chosen and scored on the same frames",
                "folds": self.folds, "grid": self.grid}


def tune_smoothing(track: str, values: np.ndarray, true: np.ndarray, names: np.ndarray,
                   protocol: str | None = None, methods: tuple[str, ...] = METHODS,
                   windows: tuple[int, ...] = WINDOWS, n_splits: int = 5,
                   thresholds: np.ndarray | float = 0.5) -> SmoothingResult:
    """Choose the filter and window maximising the official score, by grid; report it honestly.

    Every candidate is applied to all videos once; each fold then picks the best candidate on its fit videos and
    takes that candidate's values for its held-out videos, so the held-out score never saw those videos.
    """
    names = np.asarray(names, dtype=str)
    folds = grouped_folds(video_groups(names), n_splits)
    candidates = [("box", 1)] + [(m, w) for m in methods for w in windows if w > 1]
    smoothed = [smooth_by_video(track, values, names, m, w) for m, w in candidates]

    def sc(vals: np.ndarray, rows: np.ndarray | slice) -> float:
        thr = thresholds[rows] if np.ndim(thresholds) == 2 else thresholds
        return float(score(track, vals[rows], true[rows], protocol, thr)["score"])

    everything = slice(None)
    full = [sc(v, everything) for v in smoothed]
    best = int(np.argmax(full))
    oof = np.empty_like(smoothed[0])
    fold_info = []
    for fit, held in folds:
        pick = int(np.argmax([sc(v, fit) for v in smoothed]))
        oof[held] = smoothed[pick][held]
        fold_info.append({"method": candidates[pick][0], "window": candidates[pick][1],
                          "held_out_videos": sorted(set(video_groups(names[held])))})
    return SmoothingResult(
        method=candidates[best][0] if candidates[best][1] > 1 else "none", window=candidates[best][1],
        in_sample_score=full[best], cv_score=sc(oof, everything), unsmoothed_score=full[0], values=oof,
        folds=fold_info, grid=[{"method": m, "window": w, "score": s} for (m, w), s in zip(candidates, full,
                                                                                          strict=True)])
