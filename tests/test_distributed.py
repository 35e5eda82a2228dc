"""``torchrun --nproc_per_node=2 train_affwild2.py`` trains on CPU (gloo), and its validation score equals a
single-process evaluation of the same checkpoint (validation runs once, over the full unpadded set)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def _torchrun_train(cfg: dict, root: Path, tmp_path: Path, epochs: int) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 train_affwild2.py`` on track 1 with config ``cfg``; asserts it succeeded."""
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(PROJECT / "train_affwild2.py"), "-c", str(path), "--track", "1", "--face", "--epochs", str(epochs),
           "--hidden_size", "8", "--data-root", str(root), "--out", str(tmp_path / "runs"), "--json"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_torchrun_two_processes_matches_single_process_evaluation(tiny_root_ro: Path, tmp_path: Path) -> None:
    from abaw.train.evaluate import evaluate_run

    proc = _torchrun_train({"name": "ddp", "model": {"name": "demo_face", "kwargs": {"image_size": 32}},
                            "data": {"duration": 8, "batch_size": 2}, "train": {"progress": False, "threads": 1}},
                           tiny_root_ro, tmp_path, epochs=2)
    out = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    run = Path(out["run_dir"])
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["status"] == "finished"
    # the two ranks split the training windows: half the steps of one process per epoch
    epochs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 2
    from abaw.data.affwild2 import AffWild2
    from abaw.data.sequences import load_videos, make_windows

    n_windows = len(make_windows(load_videos(AffWild2(tiny_root_ro), "train", ["va"]), 8, drop_unlabelled=True))
    assert epochs[0]["step"] == math.ceil(math.ceil(n_windows / 2) / 2)
    single = evaluate_run(run, tiny_root_ro, "validation", plots=False)
    assert single["score"] == pytest.approx(out["score"], abs=1e-9)
    assert single["tracks"]["va"]["n_frames"] == out["tracks"]["va"]["n_frames"]


@pytest.mark.slow
def test_torchrun_cached_mode_every_rank_extracts_its_share(tiny_root: Path, tmp_path: Path) -> None:
    """In cached mode under two ranks the missing feature cache is extracted by both ranks, each its own share of the
    names (no rank works alone while the other waits), and every name's file is written exactly once."""
    from abaw.train.extract import all_videos

    proc = _torchrun_train({"name": "ddp_cached",
                            "model": {"name": "demo_face", "kwargs": {"backbone": "tiny_cnn", "image_size": 32}},
                            "data": {"duration": 8, "batch_size": 2, "mode": "cached"},
                            "train": {"progress": False, "threads": 1}}, tiny_root, tmp_path, epochs=1)
    written = [int(line.split(": ")[-1].split(" written")[0]) for line in proc.stderr.splitlines()
               if "extract face ->" in line and " written" in line]
    names = all_videos(tiny_root, "abaw2021")
    assert len(written) == 2 and all(n > 0 for n in written) and sum(written) == len(names)
    files = list((tiny_root / "features" / "face").rglob("*.npz"))
    assert sorted(f.stem for f in files) == sorted(v.name for v in names)
