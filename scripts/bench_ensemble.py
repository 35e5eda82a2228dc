#!/usr/bin/env python
"""Time of ensembling N runs of M frames, for growing N and M: the cost should be linear in N x M.

Builds an annotations-only VA data root of M frames (in videos of ``--video-frames``) and N run folders of noisy
predictions in a temporary folder, then times ``abaw.posthoc.ensemble.ensemble_runs(..., method="mean")`` end to end
(reading, strict frame alignment, fusion, scoring, result files) and, separately, the alignment and fusion alone.
Prints one row per (N, M), the time per N x M cell, and a least-squares fit t = a + b * M + c * N * M with its
R^2 (work done once per frame, such as scoring and result files, grows with M alone).

    .venv/bin/python scripts/bench_ensemble.py --runs 2 4 8 --frames 20000 80000 320000
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from abaw import tasks
from abaw.fileio import write_json
from abaw.posthoc.ensemble import ensemble_runs, fuse_mean
from abaw.runs.outputs import load_run, stack_runs


def make_root(root: Path, n_frames: int, video_frames: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    folder = root / "annotations" / tasks.get_protocol("abaw2021").annotation_dir("va") / tasks.SPLIT_DIRS[
        "validation"]
    folder.mkdir(parents=True)
    videos = []
    for i, start in enumerate(range(0, n_frames, video_frames)):
        n = min(video_frames, n_frames - start)
        labels = np.tanh(np.cumsum(rng.normal(0, 0.05, (n, 2)), axis=0))
        np.savetxt(folder / f"vid{i:04d}.txt", labels, fmt="%.3f", delimiter=",", header="valence,arousal",
                   comments="")
        videos.append((f"vid{i:04d}", n))
    return videos


def make_run(runs: Path, run_id: str, root: Path, videos: list[tuple[str, int]], rng: np.random.Generator) -> Path:
    names = np.concatenate([np.full(n, name) for name, n in videos])
    frames = np.concatenate([np.arange(1, n + 1) for _, n in videos])
    df = pd.DataFrame({"name": names, "frame": frames, "valence": rng.uniform(-1, 1, len(names)),
                       "arousal": rng.uniform(-1, 1, len(names))})
    run_dir = runs / run_id
    (run_dir / "predictions").mkdir(parents=True)
    df.to_parquet(run_dir / "predictions" / "validation.parquet", index=False)
    write_json(run_dir / "run.json", {"run_id": run_id, "kind": "train", "protocol": "abaw2021",
                                      "data_root": str(root), "status": "finished"})
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--frames", type=int, nargs="+", default=[20000, 80000, 320000])
    parser.add_argument("--video-frames", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many timings")
    parser.add_argument("--method", default="mean", choices=("mean", "weighted", "stack"),
                        help="fusion of the end-to-end timing (default: mean)")
    parser.add_argument("--smooth", action="store_true", help="also tune smoothing in the end-to-end timing")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the annotations-only root has no videos; the reader would say so each time
    os.environ.setdefault("ABAW_DB", os.devnull)
    rng = np.random.default_rng(0)
    rows = []
    print(f"end-to-end: ensemble_runs(method={args.method!r}, smooth={args.smooth})")
    print(f"{'N':>3} {'M':>8} {'N*M':>10} {'align+mean s':>13} {'ensemble s':>11} {'ns/cell':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.frames:
            base = Path(tmp) / f"m{m}"
            root = base / "data"
            videos = make_root(root, m, args.video_frames, rng)
            run_dirs = [make_run(base / "runs", f"r{i}", root, videos, rng) for i in range(max(args.runs))]
            if m == args.frames[0]:  # warm up imports and caches so the first row is not penalised
                ensemble_runs(run_dirs[:2], "va", "mean", out_dir=base / "out")
            for n in args.runs:
                members = run_dirs[:n]
                t_align = t_full = np.inf
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    _, values = stack_runs([load_run(p) for p in members], "validation", list(tasks.VA_NAMES))
                    fuse_mean(values)
                    t_align = min(t_align, time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    ensemble_runs(members, "va", args.method, smooth=args.smooth, out_dir=base / "out")
                    t_full = min(t_full, time.perf_counter() - t0)
                rows.append((n, m, t_align, t_full))
                print(f"{n:>3} {m:>8} {n * m:>10} {t_align:>13.3f} {t_full:>11.3f} {1e9 * t_align / (n * m):>8.1f}")
    nm = np.array([r[0] * r[1] for r in rows], dtype=float)
    m_only = np.array([r[1] for r in rows], dtype=float)
    # per-frame work done once (labels, scoring, result files) grows with M alone; per-member work with N x M
    design = np.stack([np.ones_like(nm), m_only, nm], axis=1)
    for label, col in (("align+mean", 2), ("ensemble", 3)):
        t = np.array([r[col] for r in rows])
        coef, *_ = np.linalg.lstsq(design, t, rcond=None)
        r2 = 1 - ((t - design @ coef) ** 2).sum() / ((t - t.mean()) ** 2).sum()
        print(f"{label}: t = {coef[0]:.3f} s + {1e9 * coef[1]:.0f} ns x M + {1e9 * coef[2]:.0f} ns x N x M"
              f"   (R^2 = {r2:.3f})")

if __name__ == "__main__":
    main()
