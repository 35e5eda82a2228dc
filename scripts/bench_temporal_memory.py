"""Peak memory of ``abaw temporal`` and ``abaw evaluate`` at Aff-Wild2 size (default 564 videos x 5,000 frames, a
512-d embedding: 2.8 M frames).

Writes an annotations-only Aff-Wild2 root (abaw2021 layout, VA/EXPR/AU labels, three quarters of the videos in
train and a quarter in validation) and two things on it in abaw's own formats:

- a fake source run (docs/design.md section 5: ``predictions/<split>.parquet`` and ``embeddings/<split>/<name>.npy``
  float16, ``--dim`` wide) for ``abaw temporal``, run with one epoch in its default mode (out of fold over the
  validation videos) and with ``fit_on=train`` (the training split's 2.1 M rows);
- a feature cache (``features/face/<extractor>/<name>.npz``, float16 ``--dim``-d, under the extractor name abaw
  computes) and a run folder holding an untrained small multi-task model over it (``demo_multitask`` with a
  ``resnet18`` face backbone, 512-d, cached mode), for ``abaw evaluate --split validation``.

Each command runs in a subprocess; its peak RSS is the child's own ``ru_maxrss`` (from ``os.wait4``), its CPU time
user + system. ``--work DIR`` keeps the data for another run (it is reused when present). With ``--old FILE`` (a copy
of an older ``abaw/temporal/train.py``, e.g. ``git show HEAD:abaw/temporal/train.py > /tmp/old_train.py``) it runs
that module's ``fit_temporal`` on the same data too, for a before/after figure::

    .venv/bin/python scripts/bench_temporal_memory.py                      # full size: ~7 GB of disk
    .venv/bin/python scripts/bench_temporal_memory.py --videos 40 --frames 2000 --old /tmp/old_train.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from abaw import tasks
from abaw.fileio import save_npy, save_npz, write_json

PROTOCOL = "abaw2021"
OLD_RUNNER = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("old_temporal_train", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = mod
spec.loader.exec_module(mod)
config = mod.load_config(None, {"epochs": 1, "threads": 1})  # an older module fits on the training split
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


def make_eval_run(root: Path, run_dir: Path, dim: int) -> None:
    """A feature cache of every name for a small cached-mode multi-task model over ``dim``-d features, and a run
    folder holding that (untrained) model, for ``abaw evaluate``."""
    import torch

    from abaw.presets import find_preset
    from abaw.train.checkpoint import model_from_config, save_checkpoint
    from abaw.train.config import resolve
    from abaw.train.extract import extractor_names

    backbone = {512: "resnet18", 2048: "tv_resnet50", 1280: "tv_mobilenet_v2"}.get(dim)
    if backbone is None:
        raise SystemExit(f"--dim {dim}: the evaluate part needs a backbone of that width (512, 1280 or 2048)")
    cfg = resolve(find_preset("demo_multitask"), {"data.root": str(root), "data.mode": "cached",
                                                  "data.streams": ["face"], "train.threads": 1}, check_root=False)
    cfg["model"]["kwargs"].update(backbone=backbone, pretrained=False)
    with torch.no_grad():
        model = model_from_config(cfg)
    extractor = extractor_names(cfg, model)["face"]
    names = sorted(p.stem for p in (root / "annotations").rglob("*.txt"))
    rng = np.random.default_rng(1)
    frames = len(np.loadtxt(next((root / "annotations").rglob("*.txt")), delimiter=",", skiprows=1, ndmin=2))
    base = rng.standard_normal((frames, dim), dtype=np.float32).astype(np.float16)
    valid = np.ones(frames, dtype=bool)
    for name in dict.fromkeys(names):  # one row shift per video: files differ, nothing generated per frame
        save_npz(root / tasks.FEATURES_DIR / "face" / extractor / f"{name}.npz",
                 feats=np.roll(base, int(rng.integers(frames)), axis=0), valid=valid)
    write_json(run_dir / "config.json", cfg)
    write_json(run_dir / "run.json", {"run_id": run_dir.name, "kind": "train", "protocol": PROTOCOL,
                                      "data_root": str(root), "tracks": list(tasks.TRACKS), "status": "finished"})
    save_checkpoint(run_dir / "checkpoints" / "best.pt", {"model": model.state_dict()})


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Peak RSS (MB), wall and CPU seconds of one subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
            "wall_s": round(seconds, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=564, help="videos in all (3/4 train, 1/4 validation)")
    parser.add_argument("--frames", type=int, default=5000, help="frames per video")
    parser.add_argument("--dim", type=int, default=512, help="embedding and cached feature dimension")
    parser.add_argument("--old", type=Path, help="an older abaw/temporal/train.py to measure on the same data")
    parser.add_argument("--skip", nargs="*", default=[], choices=("temporal", "temporal-train", "evaluate"),
                        help="leave out these measurements")
    parser.add_argument("--work", type=Path, help="folder for the data (kept, and reused when present)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    base = args.work or Path(tempfile.mkdtemp(prefix="abaw_bench_temporal_"))
    try:
        t0 = time.perf_counter()
        root, src = base / "data", base / "runs" / "src"
        if not (base / "made.json").is_file():
            shutil.rmtree(base / "data", ignore_errors=True)
            shutil.rmtree(base / "runs", ignore_errors=True)
            root, src = make_source(base, args.videos, args.frames, args.dim)
            if "evaluate" not in args.skip:
                make_eval_run(root, base / "runs" / "eval", args.dim)
            write_json(base / "made.json", vars(args) | {"old": None, "work": None})
        made = time.perf_counter() - t0
        env = {**os.environ, "ABAW_DB": str(base / "abaw.sqlite"), "OMP_NUM_THREADS": "1"}
        rows = {split: len(pd.read_parquet(src / "predictions" / f"{split}.parquet", columns=["frame"]))
                for split in ("train", "validation")}
        figures: dict[str, dict[str, float]] = {}
        temporal = [sys.executable, "-m", "abaw", "temporal", "--source", str(src), "--data-root", str(root),
                    "--out", str(base / "runs_new"), "--set", "epochs=1", "--force"]
        if "temporal" not in args.skip:
            figures["temporal (out of fold)"] = measure(temporal, env)
        if "temporal-train" not in args.skip:
            figures["temporal fit_on=train"] = measure([*temporal, "--set", "fit_on=train"], env)
        if args.old is not None:
            cmd = [sys.executable, "-c", OLD_RUNNER, str(args.old.resolve()), str(src), str(root),
                   str(base / "runs_old")]
            figures["temporal, older code"] = measure(cmd, env)
        if "evaluate" not in args.skip and (base / "runs" / "eval").is_dir():
            figures["evaluate validation"] = measure([sys.executable, "-m", "abaw", "evaluate",
                                                      str(base / "runs" / "eval"), "--data-root", str(root)], env)
    finally:
        if args.work is None:
            shutil.rmtree(base, ignore_errors=True)
    emb_mb = {s: n * args.dim * 2 / 2**20 for s, n in rows.items()}
    doc = {"videos": args.videos, "frames": args.frames, "dim": args.dim, "rows": rows,
           "embedding_float16_mb": {s: round(v, 1) for s, v in emb_mb.items()},
           "source_seconds": round(made, 1), "load": os.getloadavg(), "runs": figures}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{args.videos} videos x {args.frames} frames, {args.dim}-d embedding: train {rows['train']:,} rows, "
          f"validation {rows['validation']:,} rows (float16 embeddings on disk: "
          f"{emb_mb['train'] + emb_mb['validation']:.0f} MB; data made in {made:.1f} s); load average "
          f"{doc['load'][0]:.1f}")
    for label, fig in figures.items():
        print(f"  {label:<24} peak RSS {fig['peak_rss_mb']:8.1f} MB, wall {fig['wall_s']:7.1f} s, "
              f"CPU {fig['cpu_s']:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
