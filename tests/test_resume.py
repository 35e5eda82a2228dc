"""A training stopped mid-epoch and resumed ends with exactly the numbers of an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abaw.train.config import resolve


def _cfg(root: Path, ema_decay: float = 0.0) -> dict:
    return resolve({"name": "resume", "tasks": ["va", "expr"],
                    "data": {"root": str(root), "streams": ["face"], "duration": 6, "batch_size": 2},
                    # dropout makes the RNG state matter; plateau keeps scheduler state in play
                    "model": {"name": "demo_face", "kwargs": {"hidden_size": 8, "image_size": 32, "dropout": 0.3}},
                    "sched": {"name": "plateau", "patience": 0},
                    "train": {"epochs": 2, "seed": 5, "progress": False, "checkpoint_every": 3, "threads": 1,
                              "ema_decay": ema_decay}})


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["plain", "ema"])
def test_killed_mid_epoch_and_resumed_matches_uninterrupted(tiny_root_ro: Path, tmp_path: Path,
                                                             ema_decay: float) -> None:
    """With a moving average of the weights too: the average is resumed along with the weights it follows."""
    from abaw.train.loop import train

    cfg = _cfg(tiny_root_ro, ema_decay)
    full = train(cfg, out=tmp_path / "full")
    reference = _metrics(full)
    steps_per_epoch = reference[0]["step"]
    assert steps_per_epoch > 4

    stop_at = steps_per_epoch + 2  # in the middle of the second epoch, between two periodic checkpoints
    part = train(cfg, out=tmp_path / "part", max_steps=stop_at)
    info = json.loads((part / "run.json").read_text())
    assert info["status"] == "stopped" and not (part / "scores.json").exists()
    assert len(_metrics(part)) == 1

    resumed = train(resume=part)
    assert resumed == part
    got = _metrics(resumed)
    assert [r["val"] for r in got] == [r["val"] for r in reference]
    assert [r["train_loss"] for r in got] == pytest.approx([r["train_loss"] for r in reference], rel=0, abs=1e-12)
    a = json.loads((full / "scores.json").read_text())
    b = json.loads((resumed / "scores.json").read_text())
    assert a["tracks"] == b["tracks"]
    assert json.loads((resumed / "run.json").read_text())["status"] == "finished"


def test_ema_weights_are_validated_kept_and_loaded(tiny_root_ro: Path, tmp_path: Path) -> None:
    """``train.ema_decay``: the checkpoints' ``model`` is the average (what was validated, what ``load_model`` gives),
    the raw weights are kept beside it to train on, and the average differs from them."""
    import torch

    from abaw.train.checkpoint import load_checkpoint, load_model
    from abaw.train.loop import train

    run = train(_cfg(tiny_root_ro, 0.9), out=tmp_path / "ema")
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert set(last["model"]) == set(last["train_model"])
    assert any(not torch.equal(last["model"][k], last["train_model"][k]) for k in last["model"]
               if last["model"][k].is_floating_point())
    model, _ = load_model(run)
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())
    plain = load_checkpoint(train(_cfg(tiny_root_ro), out=tmp_path / "plain") / "checkpoints" / "last.pt")
    assert "train_model" not in plain


def test_resume_refuses_a_changed_config(tiny_root_ro: Path, tmp_path: Path) -> None:
    from abaw.errors import AbawError
    from abaw.train.loop import train

    cfg = _cfg(tiny_root_ro)
    part = train(cfg, out=tmp_path / "p", max_steps=1)
    saved = json.loads((part / "config.json").read_text())
    saved["optim"]["lr"] = 0.5
    (part / "config.json").write_text(json.dumps(saved))
    with pytest.raises(AbawError, match="config.json changed"):
        train(resume=part)
    with pytest.raises(AbawError, match="not a training run folder"):
        train(resume=tmp_path)
