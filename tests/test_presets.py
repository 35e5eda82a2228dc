"""The presets of configs/: shipped with the package, read with their parents (``extends``), resolved exactly as
recorded; and every training preset builds, runs one training step and one validation on the tiny synthetic set
(with small overrides: a tiny backbone, small images, short sequences)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abaw.errors import AbawError
from abaw.presets import find_preset, list_presets, preset_dir, read_preset

PROJECT = Path(__file__).resolve().parents[1]
#: Today's resolved config (and config hash) of every preset, recorded before presets could extend each other.
RESOLVED = json.loads((Path(__file__).parent / "data" / "resolved_presets.json").read_text())
#: Training presets: configs whose sections are those of abaw.train.config (others, e.g. temporal-model configs,
#: belong to other commands).
PRESETS = [find_preset(name) for name in list_presets() if "model" in read_preset(find_preset(name))]


def test_presets_ship_with_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import resources

    assert preset_dir() == Path(str(resources.files("abaw.configs")))  # configs/, installed as abaw.configs
    shipped = {p.relative_to(preset_dir()) for p in preset_dir().rglob("*.json")}
    assert shipped == {p.relative_to(PROJECT / "configs") for p in (PROJECT / "configs").rglob("*.json")}
    monkeypatch.chdir(tmp_path)  # found from anywhere, not from the working directory
    assert find_preset("demo_va") == preset_dir() / "demo_va.json" == find_preset("demo_va.json")
    assert "demo_va" in list_presets() and not any(name.startswith("base") for name in list_presets())
    with pytest.raises(AbawError, match=r"config not found \(presets in configs/: .*demo_va"):
        find_preset("demo_vaa")


def test_every_preset_resolves_as_recorded() -> None:
    from abaw.runs.info import config_hash
    from abaw.temporal.config import load_config
    from abaw.train.config import resolve

    assert set(list_presets()) == set(RESOLVED)  # a new preset: add its resolved config to tests/data
    for name, recorded in RESOLVED.items():
        if recorded["kind"] == "train":
            cfg = resolve(find_preset(name), check_root=False)
            assert cfg == recorded["config"], name
            assert config_hash(cfg) == recorded["config_hash"], name
        else:
            assert load_config(find_preset(name)) == recorded["config"], name


def test_extends_merges_parents_and_names_the_file(tmp_path: Path) -> None:
    from abaw.train.config import resolve

    def write(name: str, data: dict) -> Path:
        (tmp_path / name).write_text(json.dumps(data))
        return tmp_path / name

    write("base.json", {"data": {"duration": 8, "batch_size": 2}, "optim": {"lr": 0.01},
                        "model": {"kwargs": {"hidden_size": 8}}})
    write("middle.json", {"extends": "base", "data": {"duration": 4}, "model": {"kwargs": {"fc": [16]}}})
    child = write("child.json", {"extends": "middle.json", "name": "child", "optim": {"name": "SGD"}})
    cfg = resolve(child, check_root=False)
    assert (cfg["name"], cfg["data"]["duration"], cfg["data"]["batch_size"]) == ("child", 4, 2)
    assert (cfg["optim"]["name"], cfg["optim"]["lr"]) == ("SGD", 0.01)
    assert cfg["model"]["kwargs"] == {"hidden_size": 8, "fc": [16]}
    # a preset of one's own may extend a shipped preset by name
    mine = write("mine.json", {"extends": "demo_va", "name": "mine", "train": {"epochs": 2}})
    cfg = resolve(mine, check_root=False)
    assert cfg == {**RESOLVED["demo_va"]["config"], "name": "mine",
                   "train": {**RESOLVED["demo_va"]["config"]["train"], "epochs": 2}}

    def one_line_error(path: Path) -> str:
        with pytest.raises(AbawError) as info:
            resolve(path, check_root=False)
        assert len(str(info.value).splitlines()) == 1
        return str(info.value)

    err = one_line_error(write("orphan.json", {"extends": "nowhere"}))
    assert "orphan.json" in err and "parent preset 'nowhere' not found" in err
    write("a.json", {"extends": "b"})
    write("b.json", {"extends": "c"})
    err = one_line_error(write("c.json", {"extends": "a"}))
    assert "cycle: c -> a -> b -> c" in err and err.startswith(str(tmp_path / "b.json"))  # b closes it
    err = one_line_error(write("self.json", {"extends": "self"}))
    assert "cycle: self -> self" in err
    err = one_line_error(write("listed.json", {"extends": ["base"]}))
    assert "'extends' must name one parent preset" in err
    write("bad_base.json", {"optim": {"lr": -1}})
    err = one_line_error(write("good_child.json", {"extends": "bad_base"}))
    assert "bad_base.json" in err and "'optim.lr' must be greater than 0, got -1" in err  # the file with the key
    write("typo_base.json", {"optim": {"lrr": 0.1}})
    err = one_line_error(write("typo_child.json", {"extends": "typo_base"}))
    assert "typo_base.json" in err and "(did you mean 'optim.lr'?)" in err


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

    raw = read_preset(preset)
    cfg = resolve(preset, {"data.root": str(prepared_root), "data.duration": 4, "data.batch_size": 2,
                           "data.eval_batch_size": 16, "train.epochs": 1, "train.progress": False,
                           "train.threads": 1, "data.stride": None})  # a stride above 4 frames is an error
    small = {"backbone": "tiny_cnn", "pretrained": False, "image_size": 32, "body_size": 32, "context_size": 32,
             "hidden_size": 8, "audio_window_seconds": 0.5, "context_backbone": None}  # ntua: Places365 ResNet-50
    cfg["model"]["kwargs"].update(small)
    assert cfg["tasks"] == raw["tasks"] and cfg["model"]["name"] == raw["model"]["name"]
    run = train(cfg, out=tmp_path, max_steps=1)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "stopped" and info["steps"] == 1
    result = evaluate_run(run, prepared_root, "validation", which="last", plots=False)
    assert set(result["tracks"]) == set(raw["tasks"])
    for track, s in result["tracks"].items():
        assert -1 <= s["score"] <= 1, (track, s)
