#!/usr/bin/env python
"""Cost of reading training windows from a feature cache, in the global random order and in the video order.

Writes a fake feature cache in abaw's format (``features/<stream>/<extractor>/<name>.npz`` with ``feats`` and
``valid``, via :func:`abaw.fileio.save_npz`) for ``--videos`` videos of each length in ``--frames`` (``--dim``-d
float16), then reads ``--windows`` windows of ``--duration`` frames through a fresh
:class:`~abaw.data.stream_inputs.StreamLoader` (LRU of 8 videos) in the order of
:func:`~abaw.data.sequences.epoch_order` (``data.shuffle: global``) and of
:func:`~abaw.data.sequences.video_epoch_order` (``data.shuffle: video``), and prints seconds per window. The files
sit in the page cache after writing, so the figures are parse/copy cost, not disk.

    .venv/bin/python scripts/bench_cached_reads.py --videos 20 --frames 500 5000 --windows 400
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from abaw.data.sequences import epoch_order, video_epoch_order
from abaw.data.stream_inputs import StreamLoader, feature_path
from abaw.fileio import save_npz

STREAM, EXTRACTOR = "face", "bench"


def write_cache(root: Path, videos: int, frames: int, dim: int) -> list[SimpleNamespace]:
    """``videos`` fake feature files of ``frames`` x ``dim`` float16; returns the video records."""
    rng = np.random.default_rng(0)
    out = []
    for v in range(videos):
        name = f"v{frames}_{v:03d}"
        feats = rng.standard_normal((frames, dim), dtype=np.float32).astype(np.float16)
        save_npz(feature_path(root, STREAM, EXTRACTOR, name), feats=feats, valid=np.ones(frames, bool))
        out.append(SimpleNamespace(name=name, video=name, n_frames=frames, fps=30.0))
    return out


def time_order(root: Path, videos: list[SimpleNamespace], windows: np.ndarray, order: np.ndarray,
               duration: int) -> float:
    """Seconds per window to load ``windows[order]`` through a fresh StreamLoader."""
    loader = StreamLoader(root, [STREAM], mode="cached", extractors={STREAM: EXTRACTOR})
    t0 = time.perf_counter()
    for i in order:
        vi, start = (int(x) for x in windows[i])
        video = videos[vi]
        loader.load(video, np.arange(start, min(start + duration, video.n_frames)), duration)
    return (time.perf_counter() - t0) / max(1, len(order))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--frames", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--duration", type=int, default=32)
    ap.add_argument("--windows", type=int, default=400, help="windows read per order (the start of the epoch)")
    ap.add_argument("--block", type=int, default=4, help="videos shuffled together (data.shuffle_block)")
    args = ap.parse_args()
    print(f"{'frames/video':>12} {'global s/window':>16} {'video s/window':>15} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="abaw-bench-reads-") as tmp:
        root = Path(tmp)
        for frames in args.frames:
            videos = write_cache(root, args.videos, frames, args.dim)
            windows = np.asarray([(v, s) for v in range(len(videos)) for s in range(0, frames, args.duration)],
                                 dtype=np.int64)
            n = min(args.windows, len(windows))
            glob = time_order(root, videos, windows, epoch_order(len(windows), 0, 0)[:n], args.duration)
            grouped = time_order(root, videos, windows, video_epoch_order(windows, 0, 0, block=args.block)[:n],
                                 args.duration)
            print(f"{frames:>12} {glob:>16.5f} {grouped:>15.5f} {glob / grouped:>7.1f}")


if __name__ == "__main__":
    main()
