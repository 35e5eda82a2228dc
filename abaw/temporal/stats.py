"""Temporal statistical features: statistics over a block of the current and previous N-1 valid frames.

Frames without a valid input are skipped when forming the block (the block holds the last N valid frames up to
the current one); their own statistics are NaN. At the start of a video the block holds the frames seen so far.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from abaw.runs.outputs import video_slices

STATS: tuple[str, ...] = ("max", "min", "mean", "std")
BLOCKS: tuple[int, ...] = (4, 8, 16, 32)


def check_stats(stats: tuple[str, ...] | list[str], quantiles: tuple[float, ...] | list[float] = ()) -> None:
    bad = [s for s in stats if s not in STATS]
    if bad:
        raise ValueError(f"unknown statistic {bad[0]!r}; choose from {', '.join(STATS)}")
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(quantiles)}")
    if not stats and not quantiles:
        raise ValueError("choose at least one statistic or quantile")


def n_stat_features(k: int, stats: tuple[str, ...] | list[str], quantiles: tuple[float, ...] | list[float] = ()) -> int:
    return k * (len(stats) + len(quantiles))


def block_stats(values: np.ndarray, block: int, stats: tuple[str, ...] | list[str] = ("max", "min", "mean"),
                quantiles: tuple[float, ...] | list[float] = (), valid: np.ndarray | None = None) -> np.ndarray:
    """Statistics of ``values`` (n, k) over blocks of ``block`` valid frames: ``(n, k * (len(stats) + len(q)))``.

    Column order: statistic-major (all k columns of the first statistic, then the next, quantiles last).
    Standard deviations are population ones (ddof 0). Uses pandas' rolling windows (linear time for
    max/min/mean/std).
    """
    check_stats(stats, quantiles)
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}")
    values = np.asarray(values, dtype=np.float64)
    n, k = values.shape
    if valid is None:
        valid = ~np.isnan(values).any(axis=1)
    out = np.full((n, n_stat_features(k, stats, quantiles)), np.nan)
    if not valid.any():
        return out
    roll = pd.DataFrame(values[valid]).rolling(block, min_periods=1)
    parts = []
    for s in stats:
        parts.append(roll.std(ddof=0) if s == "std" else getattr(roll, s)())
    parts.extend(roll.quantile(q, interpolation="linear") for q in quantiles)
    out[valid] = np.concatenate([p.to_numpy() for p in parts], axis=1)
    return out


def video_block_stats(values: np.ndarray, names: np.ndarray, block: int,
                      stats: tuple[str, ...] | list[str] = ("max", "min", "mean"),
                      quantiles: tuple[float, ...] | list[float] = (), valid: np.ndarray | None = None) -> np.ndarray:
    """:func:`block_stats` of each video on its own (rows sorted by name, then frame)."""
    values = np.asarray(values, dtype=np.float64)
    if valid is None:
        valid = ~np.isnan(values).any(axis=1)
    out = np.empty((len(values), n_stat_features(values.shape[1], stats, quantiles)))
    for _, s, e in video_slices(names):
        out[s:e] = block_stats(values[s:e], block, stats, quantiles, valid[s:e])
    return out


def block_windows(values: np.ndarray, names: np.ndarray, block: int,
                  valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The block of each row as a sequence, oldest first: ``(n, block, k)`` float32 and its length per row.

    A row's block is its last ``length`` valid frames (length < block at a video's start), left-aligned and
    zero-padded after; an invalid row gets length 0. Feeds the BiLSTM variant.
    """
    values = np.asarray(values, dtype=np.float32)
    n, k = values.shape
    if valid is None:
        valid = ~np.isnan(values).any(axis=1)
    seq = np.zeros((n, block, k), dtype=np.float32)
    lengths = np.zeros(n, dtype=np.int64)
    for _, s, e in video_slices(names):
        rows = np.flatnonzero(valid[s:e]) + s
        if len(rows) == 0:
            continue
        padded = np.concatenate([np.full((block - 1, k), np.nan, np.float32), values[rows]])
        win = sliding_window_view(padded, block, axis=0).transpose(0, 2, 1)  # (m, block, k), newest last
        lens = np.minimum(np.arange(1, len(rows) + 1), block)
        # shift each window left so its real frames come first (padding after, as pack_padded_sequence wants)
        idx = (np.arange(block)[None, :] + (block - lens)[:, None]) % block
        shifted = np.take_along_axis(win, idx[:, :, None], axis=1)
        seq[rows] = np.nan_to_num(shifted, nan=0.0)
        lengths[rows] = lens
    return seq, lengths


def carry_index(names: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """For each row, the row whose block it uses: itself when valid, else the previous valid row of its video
    (the next one before a video's first valid row). Rows of a video without any valid row keep their own index."""
    idx = pd.Series(np.where(valid, np.arange(len(valid)), np.nan))
    groups = pd.Series(np.asarray(names, dtype=str))
    filled = idx.groupby(groups, sort=False).ffill()
    filled = filled.fillna(idx.groupby(groups, sort=False).bfill())
    return filled.fillna(pd.Series(np.arange(len(valid), dtype=float))).to_numpy().astype(np.int64)


def window_rows(valid: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of each row's block within one video, as :func:`block_windows` orders them: ``(n, block)`` int64
    row indices, oldest first, left-aligned, -1 after the last; and the length per row (0 for an invalid row)."""
    valid = np.asarray(valid, dtype=bool)
    n = len(valid)
    win = np.full((n, block), -1, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    rows = np.flatnonzero(valid)
    if len(rows) == 0:
        return win, lengths
    padded = np.concatenate([np.full(block - 1, -1, dtype=np.int64), rows])
    full = sliding_window_view(padded, block)  # (m, block), newest last
    lens = np.minimum(np.arange(1, len(rows) + 1), block)
    idx = (np.arange(block)[None, :] + (block - lens)[:, None]) % block
    shifted = np.take_along_axis(full, idx, axis=1)
    shifted[np.arange(block)[None, :] >= lens[:, None]] = -1
    win[rows] = shifted
    lengths[rows] = lens
    return win, lengths
