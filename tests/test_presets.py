"""Every training preset in configs/ builds, runs one training step and one validation on the tiny synthetic set
(with small overrides: a tiny backbone, small images, short sequences)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
#: Training presets: configs whose sections are those of abaw.train.config (others, e.g. temporal-model configs,
#: belong to other commands).
PRESETS = sorted(p for p in (PROJECT / "configs").glob("*.json")
                 if "model" in json.loads(p.read_text()) and "data" in json.loads(p.read_text()))


def test_the_presets_are_there() -> None:
    names = {p.stem for p in PRESETS}
    assert {"demo_va", "demo_expr", "demo_au", "demo_multitask", "ntua_cvsp_track1", "ntua_cvsp_track2",
            "multitask_late_fusion"} <= names
    from abaw.models import list_models

    assert {n for n in list_models("affwildnet*")} <= names  # one preset per registered AffWildNet model


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_trains_one_step_and_validates(preset: Path, prepared_root: Path, tmp_path: Path) -> None:
    from abaw.train.config import resolve
    from abaw.train.evaluate import evaluate_run
    from abaw.train.loop import train

    raw = json.loads(preset.read_text())
    cfg = resolve(preset, {"data.root": str(prepared_root), "data.duration": 4, "data.batch_size": 2,
                           "data.eval_batch_size": 16, "train.epochs": 1, "train.progress": False,
                           "train.threads": 1})
    small = {"backbone": "tiny_cnn", "pretrained": False, "image_size": 32, "body_size": 32, "context_size": 32,
             "hidden_size": 8, "audio_window_seconds": 0.5}
    cfg["model"]["kwargs"].update(small)
    assert cfg["tasks"] == raw["tasks"] and cfg["model"]["name"] == raw["model"]["name"]
    run = train(cfg, out=tmp_path, max_steps=1)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "stopped" and info["steps"] == 1
    result = evaluate_run(run, prepared_root, "validation", which="last", plots=False)
    assert set(result["tracks"]) == set(raw["tasks"])
    for track, s in result["tracks"].items():
        assert -1 <= s["score"] <= 1, (track, s)
