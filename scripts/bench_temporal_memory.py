"""Peak memory of ``abaw temporal`` on a fake source run: features are built per video in float32 (embeddings kept
in their stored float16), so the peak grows with rows x (statistics + embedding bytes), not with a float64 copy.

Writes an annotations-only Aff-Wild2 root (abaw2021 layout, VA/EXPR/AU labels) and a source run folder in abaw's
format (docs/design.md section 5: ``predictions/<split>.parquet`` and ``embeddings/<split>/<name>.npy`` float16),
three quarters of the videos in train and a quarter in validation, then runs ``abaw temporal`` (one epoch) in a
subprocess and prints its peak RSS (the child's own ``ru_maxrss`` from ``os.wait4``) and wall time. With ``--old
FILE`` (a copy of an older ``abaw/temporal/train.py``, e.g. ``git show HEAD:abaw/temporal/train.py >
/tmp/old_train.py``) it runs that module's ``fit_temporal`` on the same data too, for a before/after figure::

    .venv/bin/python scripts/bench_temporal_memory.py --videos 60 --frames 5000 --dim 512 --old /tmp/old_train.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from abaw import tasks
from abaw.fileio import save_npy, write_json

PROTOCOL = "abaw2021"
OLD_RUNNER = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("old_temporal_train", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = mod
spec.loader.exec_module(mod)
config = mod.load_config(None, {"epochs": 1, "threads": 1})
mod.fit_temporal(sys.argv[2], config, sys.argv[3], sys.argv[4], force=True)
"""


def make_source(base: Path, videos: int, frames: int, dim: int, seed: int = 0) -> tuple[Path, Path]:
    """(data root, source run folder) of ``videos`` videos of ``frames`` frames with a ``dim``-d embedding."""
    rng = np.random.default_rng(seed)
    proto = tasks.get_protocol(PROTOCOL)
    root, run_dir = base / "data", base / "runs" / "src"
    n_train = max(1, (3 * videos) // 4)
    splits = {"train": [f"t{i:04d}" for i in range(n_train)],
              "validation": [f"v{i:04d}" for i in range(max(1, videos - n_train))]}
    frame_ids = np.arange(1, frames + 1)
    for split, names in splits.items():
        tables = []
        for name in names:
            va = np.tanh(np.cumsum(rng.normal(0, 0.05, (frames, 2)), axis=0)).astype(np.float32)
            expr = rng.integers(0, proto.n_expr, frames)
            au = (rng.uniform(size=(frames, proto.n_au)) > 0.7).astype(np.int64)
            for track, arr, fmt in (("va", va, "%.4f"), ("expr", expr[:, None], "%d"), ("au", au, "%d")):
                folder = root / "annotations" / proto.annotation_dir(track) / tasks.SPLIT_DIRS[split]
                folder.mkdir(parents=True, exist_ok=True)
                np.savetxt(folder / f"{name}.txt", arr, fmt=fmt, delimiter=",", header=proto.header(track),
                           comments="")
            logits = 2.0 * np.eye(proto.n_expr)[expr] + rng.normal(0, 1, (frames, proto.n_expr))
            probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            au_p = 1 / (1 + np.exp(-(1.5 * (2 * au - 1) + rng.normal(0, 1, au.shape))))
            table = {"name": name, "frame": frame_ids, "valence": va[:, 0] + rng.normal(0, 0.2, frames),
                     "arousal": va[:, 1] + rng.normal(0, 0.2, frames)}
            table.update(dict(zip(tasks.expr_columns(PROTOCOL), probs.T, strict=True)))
            table.update(dict(zip(tasks.au_columns(PROTOCOL), au_p.T, strict=True)))
            tables.append(pd.DataFrame(table))
            save_npy(run_dir / "embeddings" / split / f"{name}.npy",
                     rng.standard_normal((frames, dim), dtype=np.float32).astype(np.float16))
        (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
        pd.concat(tables).to_parquet(run_dir / "predictions" / f"{split}.parquet", index=False)
    write_json(run_dir / "run.json", {"run_id": "src", "kind": "train", "protocol": PROTOCOL,
                                      "data_root": str(root), "tracks": list(tasks.TRACKS), "status": "finished"})
    write_json(run_dir / "config.json", {"protocol": PROTOCOL})
    return root, run_dir


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=60, help="videos in all (3/4 train, 1/4 validation)")
    parser.add_argument("--frames", type=int, default=5000, help="frames per video")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension")
    parser.add_argument("--old", type=Path, help="an older abaw/temporal/train.py to measure on the same data")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="abaw_bench_temporal_") as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        root, src = make_source(base, args.videos, args.frames, args.dim)
        made = time.perf_counter() - t0
        env = {**os.environ, "ABAW_DB": str(base / "abaw.sqlite")}
        rows = {split: len(pd.read_parquet(src / "predictions" / f"{split}.parquet", columns=["frame"]))
                for split in ("train", "validation")}
        figures: dict[str, dict[str, float]] = {}
        cmd = [sys.executable, "-m", "abaw", "temporal", "--source", str(src), "--data-root", str(root),
               "--out", str(base / "runs_new"), "--set", "epochs=1", "--force"]
        peak, wall = measure(cmd, env)
        figures["new"] = {"peak_rss_mb": round(peak, 1), "wall_s": round(wall, 1)}
        if args.old is not None:
            cmd = [sys.executable, "-c", OLD_RUNNER, str(args.old.resolve()), str(src), str(root),
                   str(base / "runs_old")]
            peak, wall = measure(cmd, env)
            figures["old"] = {"peak_rss_mb": round(peak, 1), "wall_s": round(wall, 1)}
    emb_mb = {s: n * args.dim * 2 / 2**20 for s, n in rows.items()}
    doc = {"videos": args.videos, "frames": args.frames, "dim": args.dim, "rows": rows,
           "embedding_float16_mb": {s: round(v, 1) for s, v in emb_mb.items()},
           "source_seconds": round(made, 1), "runs": figures}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{args.videos} videos x {args.frames} frames, {args.dim}-d embedding: train {rows['train']:,} rows, "
          f"validation {rows['validation']:,} rows (float16 embeddings on disk: "
          f"{emb_mb['train'] + emb_mb['validation']:.0f} MB; source made in {made:.1f} s)")
    for label, fig in figures.items():
        print(f"  {label:>4}: abaw temporal peak RSS {fig['peak_rss_mb']:8.1f} MB, wall {fig['wall_s']:6.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
