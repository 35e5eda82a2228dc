"""Config schema: defaults, presets, overrides, one-line errors naming the key, hashing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abaw.cli import main
from abaw.commands.train import find_config
from abaw.errors import AbawError
from abaw.runs.info import config_hash
from abaw.train.config import DEFAULTS, parse_override, resolve, validate


def test_defaults_resolve_without_root_check() -> None:
    cfg = resolve(None, check_root=False)
    assert cfg["data"]["batch_size"] == DEFAULTS["data"]["batch_size"]
    assert cfg["optim"]["name"] == "AdamW"


def test_misspelled_key_suggests_the_close_match(tmp_path: Path) -> None:
    with pytest.raises(AbawError, match=r"unknown config key 'data.batch_sise' \(did you mean 'data.batch_size'\?\)"):
        validate({"data": {"batch_sise": 4}})
    with pytest.raises(AbawError, match=r"'optim.lrr'.*'optim.lr'"):
        resolve({"optim": {"lrr": 0.1}}, check_root=False)
    with pytest.raises(AbawError, match=r"unknown config key 'trian'.*'train'"):
        validate({"trian": {}})


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(AbawError, match=r"'data.batch_size' must be an integer, got '4'"):
        validate({"data": {"batch_size": "4"}})
    with pytest.raises(AbawError, match=r"'train.epochs' must be an integer, got True"):
        validate({"train": {"epochs": True}})
    with pytest.raises(AbawError, match=r"'optim.name' must be one of SGD, Adam, AdamW"):
        validate({"optim": {"name": "sgd"}})
    with pytest.raises(AbawError, match=r"unknown stream 'fase' \(did you mean 'face'\?\)"):
        validate({"data": {"streams": ["fase"]}})
    with pytest.raises(AbawError, match=r"'tasks' has unknown task 'valence'"):
        validate({"tasks": ["valence"]})
    validate({"optim": {"lr": 1}})  # an integer is a number


def test_missing_data_root(tmp_path: Path) -> None:
    with pytest.raises(AbawError, match=r"'data.root' is not set"):
        resolve(None)
    with pytest.raises(AbawError, match=r"'data.root': data root .*nowhere does not exist"):
        resolve({"data": {"root": str(tmp_path / "nowhere")}})
    cfg = resolve({"data": {"root": str(tmp_path)}})
    assert cfg["data"]["root"] == str(tmp_path.resolve())


def test_preset_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": {"duraton": 8}}')
    with pytest.raises(AbawError) as info:
        resolve(bad, check_root=False)
    assert str(bad) in str(info.value) and "'data.duraton'" in str(info.value) and "data.duration" in str(info.value)
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": {\n"duration": }')
    with pytest.raises(AbawError, match=r"broken.json:2: not valid JSON"):
        resolve(broken, check_root=False)


def test_overrides_and_merge(tmp_path: Path) -> None:
    preset = {"model": {"name": "demo_face", "kwargs": {"hidden_size": 8}}, "data": {"duration": 4}}
    cfg = resolve(preset, {"data.batch_size": 3, "model.kwargs": {"cell_type": "lstm"}}, check_root=False)
    assert cfg["data"]["duration"] == 4 and cfg["data"]["batch_size"] == 3
    assert cfg["model"]["kwargs"] == {"hidden_size": 8, "cell_type": "lstm"}
    assert parse_override("data.batch_size=4") == ("data.batch_size", 4)
    assert parse_override("optim.name=SGD") == ("optim.name", "SGD")
    assert parse_override('tasks=["va","au"]') == ("tasks", ["va", "au"])
    with pytest.raises(AbawError, match="key=value"):
        parse_override("data.batch_size")
    with pytest.raises(AbawError, match=r"'data.batch_szie'"):
        resolve(None, {"data.batch_szie": 3}, check_root=False)


def test_hash_ignores_where_and_how_fast(tmp_path: Path) -> None:
    a = resolve({"data": {"root": str(tmp_path)}})
    b = resolve({"data": {"root": str(tmp_path.parent), "workers": 1}, "train": {"progress": False}})
    assert config_hash(a) == config_hash(b)
    c = resolve({"data": {"root": str(tmp_path)}, "optim": {"lr": 0.5}})
    assert config_hash(a) != config_hash(c)


def test_cli_config_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": {"name": "demo_face"}, "optim": {"momentun": 0.9}}))
    assert main(["train", "-c", str(cfg), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'optim.momentun'" in err and "'optim.momentum'" in err
    assert main(["train", "-c", str(cfg), "--data-root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "optim.momentun" in err  # the file is checked first
    good = tmp_path / "g.json"
    good.write_text(json.dumps({"model": {"name": "demo_face"}}))
    assert main(["train", "-c", str(good), "--data-root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'data.root'" in err and "does not exist" in err


def test_cli_flags_map_onto_the_config(tmp_path: Path) -> None:
    import argparse

    from abaw.commands.train import add_train_arguments, resolve_from_args

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    args = p.parse_args(["-c", "demo_va", "--data-root", str(tmp_path), "--track", "3", "--face", "--context",
                         "--cell_type", "lstm", "--hidden_size", "32", "--optimizer", "SGD", "--lr", "0.01",
                         "--batch_size", "2", "--duration", "12", "--pretrained_affectnet", "none"])
    cfg = resolve_from_args(args)
    assert cfg["tasks"] == ["au"]
    assert cfg["data"]["streams"] == ["face", "context"]
    assert cfg["model"]["kwargs"]["cell_type"] == "lstm" and cfg["model"]["kwargs"]["hidden_size"] == 32
    assert "pretrained_face" not in cfg["model"]["kwargs"]
    assert (cfg["optim"]["name"], cfg["optim"]["lr"], cfg["data"]["batch_size"], cfg["data"]["duration"]) == \
        ("SGD", 0.01, 2, 12)
    assert p.parse_args(["--track", "all"]).track == ["va", "expr", "au"]
    with pytest.raises(SystemExit):
        p.parse_args(["--face", "yes"])  # a real switch takes no value (the seed's type=bool defect)
    args = p.parse_args(["-c", "demo_va", "--data-root", str(tmp_path), "--pretrained_affectnet",
                         str(tmp_path / "nothing.pt")])
    with pytest.raises(AbawError, match="backbone checkpoint not found"):
        resolve_from_args(args)


def test_values_out_of_range_name_the_key_and_the_file(tmp_path: Path) -> None:
    cases = [
        ("optim", "lr", -1, r"'optim.lr' must be greater than 0, got -1"),
        ("optim", "lr", 0, r"'optim.lr' must be greater than 0, got 0"),
        ("loss", "label_smoothing", 1.0, r"'loss.label_smoothing' must be in \[0, 1\), got 1.0"),
        ("optim", "momentum", -0.1, r"'optim.momentum' must be in \[0, 1\), got -0.1"),
        ("data", "batch_size", 0, r"'data.batch_size' must be at least 1, got 0"),
        ("data", "duration", 0, r"'data.duration' must be at least 1, got 0"),
        ("data", "stride", 0, r"'data.stride' must be at least 1, got 0"),
        ("train", "epochs", 0, r"'train.epochs' must be at least 1, got 0"),
        ("sched", "factor", 1, r"'sched.factor' must be in \(0, 1\), got 1"),
        ("data", "quadrant_targets", [0.5, -1], r"'data.quadrant_targets' must be a list of values at least 0"),
    ]
    for group, key, value, message in cases:
        preset = tmp_path / f"{key}.json"
        preset.write_text(json.dumps({group: {key: value}}))
        with pytest.raises(AbawError, match=message) as info:
            resolve(preset, check_root=False)
        assert str(info.value).startswith(str(preset)) and len(str(info.value).splitlines()) == 1
        with pytest.raises(AbawError, match=message):
            resolve(None, {f"{group}.{key}": value}, check_root=False)
    with pytest.raises(AbawError, match=r"'data.quadrant_targets' must be a list of numbers, got \['a'\]"):
        validate({"data": {"quadrant_targets": ["a"]}})
    with pytest.raises(AbawError, match=r"'data.stride' must be an integer or null, got 'x'"):
        validate({"data": {"stride": "x"}})
    with pytest.raises(AbawError, match=r"'loss.weights.va' must be at least 0, got -1"):
        validate({"loss": {"weights": {"va": -1}}})
    validate({"optim": {"lr": 1e-9}, "train": {"grad_clip": None, "patience": 0}, "data": {"workers": 0}})


def test_related_keys_must_agree(tmp_path: Path) -> None:
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"data": {"duration": 8, "stride": 16}}))
    with pytest.raises(AbawError, match=r"'data.stride' \(16\) must not exceed 'data.duration' \(8\)") as info:
        resolve(preset, check_root=False)
    assert str(info.value).startswith(str(preset))
    assert resolve(preset, {"data.stride": 8}, check_root=False)["data"]["stride"] == 8
    with pytest.raises(AbawError, match=r"'data.stride' \(8\) must not exceed 'data.duration' \(4\)"):
        resolve(find_config("demo_va"), {"data.duration": 4}, check_root=False)
    with pytest.raises(AbawError, match=r"'sched.min_lr' \(0.1\) must not exceed 'optim.lr' \(0.01\)"):
        resolve({"optim": {"lr": 0.01}, "sched": {"min_lr": 0.1}}, check_root=False)
    resolve({"optim": {"lr": 0.01}, "sched": {"name": "none", "min_lr": 0.1}}, check_root=False)


def test_cli_out_of_range_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": {"name": "demo_face"}, "optim": {"lr": -1}}))
    assert main(["train", "-c", str(cfg), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(cfg) in err and "'optim.lr' must be greater than 0, got -1" in err
    assert main(["train", "-c", "demo_va", "--data-root", str(tmp_path), "--lr", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'optim.lr' must be greater than 0, got 0.0" in err


def test_temporal_config_ranges_and_extends(tmp_path: Path) -> None:
    from abaw.temporal.config import DEFAULTS as TEMPORAL_DEFAULTS
    from abaw.temporal.config import load_config

    for key, value, message in [("lr", -1, r"'lr' must be greater than 0, got -1"),
                                ("dropout", 1, r"'dropout' must be in \[0, 1\), got 1"),
                                ("block", 0, r"'block' must be at least 1, got 0"),
                                ("batch_size", 0, r"'batch_size' must be at least 1, got 0"),
                                ("variant", "gru", r"'variant' must be one of mlp, bilstm, got 'gru'"),
                                ("use_embedding", "yes", r"'use_embedding' must be one of True, False, auto"),
                                ("threads", 0, r"'threads' must be at least 1, got 0")]:
        with pytest.raises(AbawError, match="temporal config key " + message):
            load_config(None, {key: value})
        preset = tmp_path / f"{key}.json"
        preset.write_text(json.dumps({key: value}))
        with pytest.raises(AbawError, match=message) as info:
            load_config(preset)
        assert str(info.value).startswith(str(preset))
    with pytest.raises(AbawError, match=r"unknown temporal config key 'blok' \(did you mean 'block'\?\)"):
        load_config(None, {"blok": 8})
    child = tmp_path / "child.json"
    child.write_text(json.dumps({"extends": "cnu_adl_temporal_bilstm", "block": 8}))
    config = load_config(child)
    assert (config["variant"], config["block"], config["name"]) == ("bilstm", 8, "cnu_adl_temporal_bilstm")
    assert load_config(None) == TEMPORAL_DEFAULTS


def test_cli_device_and_amp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from abaw.commands.train import add_train_arguments, resolve_from_args

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    base = ["-c", "demo_va", "--data-root", str(tmp_path)]
    cfg = resolve_from_args(p.parse_args(base))
    assert (cfg["train"]["device"], cfg["train"]["amp"], cfg["data"]["workers"]) == (None, None, None)
    cfg = resolve_from_args(p.parse_args(base + ["--device", "CUDA:1", "--amp", "fp16"]))
    assert (cfg["train"]["device"], cfg["train"]["amp"]) == ("cuda:1", "fp16")
    assert resolve_from_args(p.parse_args(base + ["--amp", "none"]))["train"]["amp"] is None
    assert resolve_from_args(p.parse_args(base + ["--bf16"]))["train"]["amp"] == "bf16"  # the old flag, kept
    assert resolve_from_args(p.parse_args(base + ["--bf16", "--amp", "bf16"]))["train"]["amp"] == "bf16"
    with pytest.raises(AbawError, match="disagree"):
        resolve_from_args(p.parse_args(base + ["--bf16", "--amp", "fp16"]))
    for bad in (["--device", "gpu"], ["--device", "cuda:x"], ["--amp", "fp8"]):
        with pytest.raises(SystemExit):
            p.parse_args(base + bad)
    capsys.readouterr()
    for amp in ("none", "bf16", "fp16"):
        assert resolve({"train": {"amp": amp}}, check_root=False)["train"]["amp"] == amp
    with pytest.raises(AbawError, match="train.amp"):
        resolve({"train": {"amp": "fp8"}}, check_root=False)
    # fp16 on the CPU, or a GPU this machine does not have: one line, before any run folder
    good = tmp_path / "g.json"
    good.write_text(json.dumps({"model": {"name": "demo_face"}}))
    out = tmp_path / "runs"
    assert main(["train", "-c", str(good), "--data-root", str(tmp_path), "--device", "cpu", "--amp", "fp16",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a CUDA device" in err
    import torch

    if not torch.cuda.is_available():
        assert main(["train", "-c", str(good), "--data-root", str(tmp_path), "--device", "cuda",
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no CUDA device" in err
    assert not out.exists()
