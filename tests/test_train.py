"""Training end to end on the tiny synthetic set: data windows and samplers, the loop, the run folder,
``load_model``, the command line and determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from abaw.data.sequences import (
    SequenceVideo,
    epoch_batches,
    epoch_order,
    make_windows,
    quadrant_weights,
    va_quadrants,
)
from abaw.train.config import resolve


def tiny_cfg(root: Path, **over: Any) -> dict[str, Any]:
    cfg = {"name": "tiny", "tasks": ["va"],
           "data": {"root": str(root), "streams": ["face"], "duration": 8, "batch_size": 4},
           "model": {"name": "demo_face", "kwargs": {"hidden_size": 8, "image_size": 32}},
           "train": {"epochs": 2, "seed": 3, "progress": False, "threads": 1}}
    return resolve(cfg, over)


def _video(n: int, va: np.ndarray | None = None) -> SequenceVideo:
    v = SequenceVideo(name=f"v{n}", video=f"v{n}", n_frames=n, fps=25.0, video_frames=n)
    if va is not None:
        v.labels["va"], v.valid["va"] = va.astype(np.float32), np.ones(n, bool)
    return v


def test_eval_windows_cover_every_frame_once() -> None:
    videos = [_video(n) for n in (1, 7, 8, 9, 20)]
    windows = make_windows(videos, duration=8)
    for vi, video in enumerate(videos):
        covered = np.zeros(video.n_frames, int)
        for wv, start in windows:
            if wv == vi:
                covered[start:start + 8] += 1
        assert (covered == 1).all()


def test_epoch_order_is_a_pure_function_of_seed_and_epoch() -> None:
    a, b = epoch_order(50, seed=1, epoch=2), epoch_order(50, seed=1, epoch=2)
    assert (a == b).all() and sorted(a.tolist()) == list(range(50))
    assert not (a == epoch_order(50, seed=1, epoch=3)).all()
    ranks = [epoch_batches(a, 4, rank=r, world=2) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])
    seen = sorted(i for r in ranks for batch in r for i in batch)
    assert set(seen) == set(range(50))


def test_va_quadrant_oversampling_reaches_the_target_shares() -> None:
    rng = np.random.default_rng(0)
    # 70 % of windows in quadrant 0, then 20/7/3 %: oversampling moves them towards 43/24/19/14 %
    quads = rng.choice(4, size=2000, p=[0.7, 0.2, 0.07, 0.03])
    signs = {0: (1, 1), 1: (-1, 1), 2: (-1, -1), 3: (1, -1)}
    va = np.array([[0.5 * signs[q][0], 0.5 * signs[q][1]] for q in quads])
    videos = [_video(2000, va)]
    windows = make_windows(videos, duration=1)
    got = va_quadrants(videos, windows, 1)
    assert (got == quads).all()
    weights = quadrant_weights(got)
    order = epoch_order(len(windows), seed=0, epoch=0, weights=weights)
    share = np.bincount(got[order], minlength=4) / len(order)
    assert np.allclose(share, [0.43, 0.24, 0.19, 0.14], atol=0.03)


def test_train_writes_the_run_folder(tiny_root_ro: Path, tmp_path: Path) -> None:
    from abaw.train.checkpoint import load_checkpoint, load_model
    from abaw.train.loop import train

    cfg = tiny_cfg(tiny_root_ro)
    run = train(cfg, out=tmp_path / "runs")
    for rel in ("config.json", "run.json", "metrics.jsonl", "scores.json", "checkpoints/best.pt",
                "checkpoints/last.pt", "predictions/validation.parquet", "plots/validation_va_time.png"):
        assert (run / rel).is_file(), rel
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["kind"] == "train" and info["tracks"] == ["va"]
    for key in ("run_id", "created", "git_commit", "config_hash", "data_root", "dataset_fingerprint", "protocol",
                "streams", "model", "n_params", "train_seconds"):
        assert key in info, key
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    scores = json.loads((run / "scores.json").read_text())
    assert scores["split"] == "validation" and set(scores["tracks"]) == {"va"}
    assert scores["score"] == pytest.approx(max(r["val_score"] for r in lines))
    table = pd.read_parquet(run / "predictions" / "validation.parquet")
    assert list(table.columns) == ["name", "frame", "valence", "arousal"]
    assert table["valence"].between(-1, 1).all()
    embeddings = list((run / "embeddings" / "validation").glob("*.npy"))
    assert embeddings and np.load(embeddings[0], allow_pickle=False).dtype == np.float16
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")  # weights_only=True inside
    assert {"model", "optimizer", "scheduler", "rng", "state"} <= set(ckpt)
    model, loaded_cfg = load_model(run)
    assert loaded_cfg == cfg and not model.training
    assert sum(p.numel() for p in model.parameters()) == info["n_params"]


def test_same_seed_same_numbers_and_padding_is_masked(tiny_root_ro: Path, tmp_path: Path) -> None:
    from abaw.train.loop import train

    # duration 7 does not divide the videos' 48 frames: the last window of each video is padded
    cfg = tiny_cfg(tiny_root_ro, **{"data.duration": 7, "train.epochs": 1, "tasks": ["va", "expr", "au"]})
    a = json.loads((train(cfg, out=tmp_path / "a") / "metrics.jsonl").read_text())
    b = json.loads((train(cfg, out=tmp_path / "b") / "metrics.jsonl").read_text())
    assert a["val"] == b["val"] and a["train_loss"] == b["train_loss"]
    assert np.isfinite(a["train_loss"]) and set(a["val"]) == {"va", "expr", "au"}


def test_padding_mask_reaches_the_loss(tiny_root_ro: Path) -> None:
    from abaw.data.affwild2 import AffWild2
    from abaw.data.sequences import SequenceDataset, load_videos
    from abaw.data.stream_inputs import StreamLoader
    from abaw.train.loop import compute_loss, make_loss

    cfg = tiny_cfg(tiny_root_ro, **{"data.duration": 40})
    videos = load_videos(AffWild2(tiny_root_ro), "train", ["va"])
    windows = make_windows(videos, 40)
    ds = SequenceDataset(videos, windows, 40, ["va"], StreamLoader(tiny_root_ro, ["face"], {}))
    item = next(ds[i] for i in range(len(ds)) if not ds[i]["mask"].all())
    batch = {k: ({kk: vv[None] for kk, vv in v.items()} if isinstance(v, dict) else v[None]) for k, v in item.items()}
    batch["valid"]["va"][:] = True  # even with labels marked valid, padded frames must not count
    loss_fn = make_loss(cfg)
    out = {"va": torch.tanh(torch.randn(1, 40, 2))}
    base, _ = compute_loss(loss_fn, out, batch)
    pad = ~batch["mask"][0]
    out["va"][0, pad] = torch.tensor([0.9, -0.9])
    batch["targets"]["va"][0, pad] = torch.tensor([-0.7, 0.3])
    again, _ = compute_loss(loss_fn, out, batch)
    assert float(base) == pytest.approx(float(again), abs=1e-6)


def test_cli_train_and_script(tiny_root_ro: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from abaw.cli import main

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"name": "cli", "model": {"name": "demo_face", "kwargs": {"image_size": 32}},
                               "data": {"duration": 8, "batch_size": 4}, "train": {"progress": False}}))
    code = main(["train", "-c", str(cfg), "--data-root", str(tiny_root_ro), "--track", "2", "--face",
                 "--epochs", "1", "--hidden_size", "8", "--cell_type", "lstm", "--out", str(tmp_path / "runs"),
                 "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["tracks"]) == {"expr"} and 0 <= out["tracks"]["expr"]["score"] <= 1
    run = Path(out["run_dir"])
    saved = json.loads((run / "config.json").read_text())
    assert saved["tasks"] == ["expr"] and saved["model"]["kwargs"]["cell_type"] == "lstm"
    table = pd.read_parquet(run / "predictions" / "validation.parquet")
    from abaw.tasks import expr_columns

    assert list(table.columns) == ["name", "frame", *expr_columns("abaw2021")]
    assert np.allclose(table[expr_columns("abaw2021")].sum(axis=1), 1, atol=1e-4)


def test_pretrained_affectnet_loads_the_face_backbone(tiny_root_ro: Path, tmp_path: Path) -> None:
    import argparse

    from abaw.commands.train import add_train_arguments, resolve_from_args
    from abaw.models.backbones import create_backbone, save_backbone_checkpoint
    from abaw.train.checkpoint import model_from_config

    torch.manual_seed(123)
    backbone = create_backbone("tiny_cnn")
    ckpt = save_backbone_checkpoint(backbone, "tiny_cnn", tmp_path / "affectnet.pt", task="expr")
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    cfg_path = tmp_path / "c.json"
    cfg_path.write_text(json.dumps({"model": {"name": "demo_face", "kwargs": {"image_size": 32}}}))
    args = p.parse_args(["-c", str(cfg_path), "--data-root", str(tiny_root_ro), "--pretrained_affectnet", str(ckpt)])
    cfg = resolve_from_args(args)
    assert cfg["model"]["kwargs"]["pretrained_face"] == str(ckpt.resolve())
    face = model_from_config(cfg).stream_encoders()["face"]
    for key, value in backbone.state_dict().items():
        assert torch.equal(face.state_dict()[key], value), key
