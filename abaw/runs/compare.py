"""Paired comparison of runs scored on the same videos: a bootstrap over videos of a difference of official scores.

A score difference between two models on one test split mixes what the models do with which people the split drew;
resampling the split's videos (with replacement, the same draw for every run) gives the spread of the difference that
comes from the draw, and the pairing cancels what both models find easy or hard. Frames of one video are not
independent, so videos, not frames, are resampled. Each model may be several seeds: their scores are averaged on each
draw, as the table averages them on the split itself.

Each draw is scored exactly as ``abaw.metrics`` scores the split (pooled over frames: CCC from pooled moments, macro
F1 and accuracy from pooled counts, the protocol's weighting), but from each video's sufficient statistics, so a
thousand draws of dozens of runs take a second instead of minutes of scikit-learn calls (no library bootstraps a
pooled, per-video-clustered metric). ``tests/test_compare.py`` checks that the draw holding every video once gives
``score_track``'s score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from abaw import tasks
from abaw.metrics import au_combined, expr_combined, expr_indices
from abaw.tasks import valid_mask

#: Draws of the video bootstrap, and the seed of the draws (fixed: the same table every time).
N_BOOT = 1000
BOOT_SEED = 0

_VA_MOMENTS = 6  # n, sum p, sum t, sum p^2, sum t^2, sum p*t


def video_statistics(track: str, pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                     protocol: str | tasks.Protocol | None = None) -> np.ndarray:
    """(videos, d) sufficient statistics of each video's (prediction, labels), over frames with a valid label."""
    track = tasks.check_track(track)
    proto = tasks.get_protocol(protocol)
    rows = []
    for pred, true in pairs:
        pred, true = np.asarray(pred), np.asarray(true)
        if track == "va":
            keep = valid_mask("va", true)
            p, t = pred[keep].astype(np.float64), true[keep].astype(np.float64)
            rows.append(np.concatenate([[len(p), p[:, k].sum(), t[:, k].sum(), (p[:, k] ** 2).sum(),
                                         (t[:, k] ** 2).sum(), (p[:, k] * t[:, k]).sum()] for k in (0, 1)]))
        elif track == "expr":
            t = true.reshape(len(true), -1)[:, 0]
            p = expr_indices(pred, proto.n_expr)
            keep = valid_mask("expr", t)
            k = proto.n_expr
            t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
            if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k):
                raise ValueError(f"EXPR classes must be 0-{k - 1} under {proto.name}")
            rows.append(np.bincount(t * k + p, minlength=k * k).astype(np.float64))
        else:
            keep = valid_mask("au", true)
            t = true[keep].astype(np.int64)
            p = (np.asarray(pred[keep], dtype=np.float64) >= 0.5).astype(np.int64)
            tp, fp, fn = (t & p).sum(0), ((1 - t) & p).sum(0), (t & (1 - p)).sum(0)
            rows.append(np.concatenate([tp, fp, fn, [(t == p).sum(), t.size]]).astype(np.float64))
    return np.stack(rows)


def scores_from_statistics(track: str, stats: np.ndarray, protocol: str | tasks.Protocol | None = None
                           ) -> np.ndarray:
    """The official score from statistics summed over videos; ``stats`` (..., d) gives scores of shape (...)."""
    track = tasks.check_track(track)
    proto = tasks.get_protocol(protocol)
    stats = np.asarray(stats, dtype=np.float64)
    if track == "va":
        cccs = []
        for k in (0, 1):
            n, sp, st, spp, stt, spt = np.moveaxis(stats[..., k * _VA_MOMENTS:(k + 1) * _VA_MOMENTS], -1, 0)
            n = np.maximum(n, 1.0)
            mp, mt = sp / n, st / n
            var_p, var_t, cov = spp / n - mp**2, stt / n - mt**2, spt / n - mp * mt
            denom = var_p + var_t + (mp - mt) ** 2
            cccs.append(np.divide(2.0 * cov, denom, out=np.zeros_like(denom), where=denom > 0))
        return (cccs[0] + cccs[1]) / 2.0
    if track == "expr":
        k = proto.n_expr
        conf = stats.reshape(*stats.shape[:-1], k, k)
        tp = np.diagonal(conf, axis1=-2, axis2=-1)
        support, predicted = conf.sum(-1), conf.sum(-2)
        total = conf.sum((-2, -1))
        f1 = _f1(tp, support + predicted)
        accuracy = np.divide(tp.sum(-1), total, out=np.zeros_like(total), where=total > 0)
        return expr_combined(f1.mean(-1), accuracy, proto)
    n_au = proto.n_au
    tp, fp, fn = (stats[..., i * n_au:(i + 1) * n_au] for i in range(3))
    correct, decisions = stats[..., 3 * n_au], stats[..., 3 * n_au + 1]
    f1 = _f1(tp, 2 * tp + fp + fn)
    accuracy = np.divide(correct, decisions, out=np.zeros_like(decisions), where=decisions > 0)
    return au_combined(f1.mean(-1), accuracy, proto)


def _f1(tp: np.ndarray, true_plus_predicted: np.ndarray) -> np.ndarray:
    """F1 = 2 tp / (true + predicted), 0 where a class is neither (scikit-learn's ``zero_division=0``)."""
    return np.divide(2.0 * tp, true_plus_predicted, out=np.zeros_like(tp), where=true_plus_predicted > 0)


@dataclass(frozen=True)
class Difference:
    """``a`` minus ``b`` on the split, and the percentile interval of the difference over video draws (NaN with a
    single video)."""

    delta: float
    low: float
    high: float
    level: float
    n_videos: int
    n_boot: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_difference(track: str, a: Sequence[np.ndarray], b: Sequence[np.ndarray],
                      protocol: str | tasks.Protocol | None = None, n_boot: int = N_BOOT, level: float = 0.95,
                      seed: int = BOOT_SEED) -> Difference:
    """Mean score of the runs ``a`` minus that of the runs ``b`` (each a (videos, d) :func:`video_statistics` array
    over the same videos in the same order), with its bootstrap interval over videos."""
    runs = [np.asarray(s, dtype=np.float64) for s in (*a, *b)]
    if not a or not b:
        raise ValueError("paired_difference needs at least one run on each side")
    n_videos = len(runs[0])
    if any(r.shape != runs[0].shape for r in runs):
        raise ValueError("paired_difference: the runs were not scored on the same videos")
    stacked = np.stack(runs)  # (runs, videos, d)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_videos, np.full(n_videos, 1.0 / n_videos), size=n_boot).astype(np.float64)
    draws = np.concatenate([np.ones((1, n_videos)), counts])  # the split itself first
    scores = scores_from_statistics(track, np.einsum("bv,rvd->brd", draws, stacked), protocol)  # (1 + n_boot, runs)
    diff = scores[:, : len(a)].mean(1) - scores[:, len(a):].mean(1)
    if n_videos < 2:  # every draw is the split itself: no interval
        return Difference(float(diff[0]), math.nan, math.nan, level, n_videos, n_boot)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(diff[1:], [tail, 100.0 - tail])
    return Difference(float(diff[0]), float(low), float(high), level, n_videos, n_boot)
