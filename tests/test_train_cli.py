"""The seed's command line (NTUA-CVSP ``train_affwild2.py``): its README's example command lines, every flag of its
argparse with the seed's meaning, its own ``config.json`` read or refused key by key, ``--pretrained_affectnet``
setting the face backbone from the checkpoint, the seed's bidirectional LSTM, and ``abaw train --seeds``."""

from __future__ import annotations

import json
import shlex
import statistics
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.cli import run_cli

from abaw.cli import build_parser, main
from abaw.errors import AbawError

#: The seed README's two training commands, verbatim.
SEED_README_COMMANDS = (
    "python train_affwild2.py -c config.json --track 1 --pretrained_affectnet single --optimizer SGD --lr 0.001 "
    "--context --body --face",
    "python train_affwild2.py -c config.json --track 2 --pretrained_affectnet single --optimizer SGD --lr 0.001 "
    "--context --body --face",
)


def seed_config(data_pkl: str, **changes: Any) -> dict[str, Any]:
    """A config in the seed's layout (pytorch-template), with the values the seed's repository ships."""
    cfg: dict[str, Any] = {
        "name": "AffWild experiment", "run_id": "test", "n_gpu": 1, "track": 2,
        "data_loader": {"data_pkl": data_pkl, "batch_size": 16, "num_workers": 4, "duration": 16},
        "arch": {"type": "resnet50_rnn", "args": {"dropout": 0.1, "pretrained_affectnet": "no"}},
        "rnn": {"hidden_size": 512, "num_layers": 1, "type": "lstm"},
        "loss_categorical": "cross_entropy_loss", "loss_continuous": "ccc",
        "metrics_categorical": ["accuracy", "f1_score"], "metrics_continuous": ["ccc"],
        "optimizer": {"type": "SGD", "args": {"momentum": 0.9, "weight_decay": 5e-4, "lr": 1e-3}},
        "lr_scheduler": {"type": "ReduceLROnPlateau", "args": {"verbose": True, "patience": 5, "mode": "max"}},
        "trainer": {"epochs": 300, "save_dir": "logs/affwild2", "save_period": 1, "verbosity": 2,
                    "monitor": "max val_total", "early_stop": 10, "tensorboard": True},
    }
    cfg.update(changes)
    return cfg


def parse(argv: list[str]) -> Any:
    return build_parser().parse_args(["train", *argv])


def resolve_argv(argv: list[str]) -> dict[str, Any]:
    from abaw.commands.train import resolve_from_args

    return resolve_from_args(parse(argv))


def tiny_checkpoint(path: Path, backbone: str = "tiny_cnn") -> Path:
    from abaw.models.backbones import create_backbone, save_backbone_checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(7)
    return save_backbone_checkpoint(create_backbone(backbone), backbone, path, source="test")


def test_the_seed_readme_command_lines(tiny_root_ro: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the seed's paths are relative: config.json, checkpoints_affectnet/
    monkeypatch.delenv("ABAW_AFFECTNET_DIR", raising=False)
    Path("config.json").write_text(json.dumps(seed_config(str(tiny_root_ro))))
    va = tiny_checkpoint(tmp_path / "checkpoints_affectnet" / "va.pt")
    expr = tiny_checkpoint(tmp_path / "checkpoints_affectnet" / "expr.pt")
    for line, task, ckpt in zip(SEED_README_COMMANDS, ("va", "expr"), (va, expr), strict=True):
        argv = shlex.split(line)
        assert argv[:2] == ["python", "train_affwild2.py"]
        cfg = resolve_argv(argv[2:])
        assert cfg["tasks"] == [task] and cfg["name"] == "AffWild experiment"
        assert cfg["data"]["streams"] == ["face", "body", "context"]
        assert cfg["data"]["root"] == str(tiny_root_ro.resolve())  # data_pkl names the data folder
        assert (cfg["data"]["batch_size"], cfg["data"]["duration"], cfg["data"]["workers"]) == (16, 16, 4)
        assert cfg["optim"] == {"name": "SGD", "lr": 0.001, "momentum": 0.9, "weight_decay": 5e-4}
        assert (cfg["sched"]["name"], cfg["sched"]["patience"]) == ("plateau", 5)
        assert (cfg["train"]["epochs"], cfg["train"]["patience"], cfg["loss"]["va_loss"]) == (300, 10, "ccc")
        kwargs = cfg["model"]["kwargs"]
        assert cfg["model"]["name"] == "ntua_cvsp"
        assert (kwargs["cell_type"], kwargs["hidden_size"], kwargs["num_layers"], kwargs["dropout"]) == \
            ("lstm", 512, 1, 0.1)
        assert kwargs["bidirectional"] is True
        # the README's `single` is the track's AffectNet checkpoint; the face backbone comes from the checkpoint
        assert kwargs["pretrained_face"] == str(ckpt.resolve()) and kwargs["face_backbone"] == "tiny_cnn"
    # the seed's trainer.save_dir is the folder of run folders
    from abaw.commands.train import _resolve

    assert _resolve(parse(shlex.split(SEED_README_COMMANDS[0])[2:]))[1] == "logs/affwild2"


def test_every_flag_of_the_seed_argparse(tiny_root_ro: Path, tmp_path: Path) -> None:
    root = ["--data-root", str(tiny_root_ro)]
    cfg = resolve_argv(["-c", "ntua_cvsp_track1", *root, "-d", "0", "-p", "5", "-ef", "2", "--exp_name", "mine",
                        "--track", "2", "--arch", "resnet50_rnn", "--dropout", "0.2", "--pretrained_affectnet", "no",
                        "--cell_type", "gru", "--hidden_size", "64", "--num_layers", "2", "--context", "--body",
                        "--face", "--audio", "--optimizer", "Adam", "--learning_rate", "0.01", "--momentum", "0.8",
                        "--weight_decay", "0.001", "--duration", "8", "--batch_size", "4"])
    assert (cfg["name"], cfg["tasks"], cfg["model"]["name"]) == ("mine", ["expr"], "ntua_cvsp")
    assert (cfg["train"]["device"], cfg["train"]["log_interval"], cfg["train"]["eval_every"]) == ("cuda:0", 5, 2)
    assert cfg["optim"] == {"name": "Adam", "lr": 0.01, "momentum": 0.8, "weight_decay": 0.001}
    assert cfg["data"]["streams"] == ["face", "body", "context", "audio"]
    assert (cfg["data"]["duration"], cfg["data"]["batch_size"]) == (8, 4)
    kwargs = cfg["model"]["kwargs"]
    assert (kwargs["cell_type"], kwargs["hidden_size"], kwargs["num_layers"], kwargs["dropout"]) == \
        ("gru", 64, 2, 0.2)
    assert "pretrained_face" not in kwargs
    # the long and short spellings of the seed are the same flags
    same = resolve_argv(["-c", "ntua_cvsp_track1", *root, "--device", "cpu", "--print-freq", "7", "--eval-freq", "3",
                         "--lr", "0.02", "--wd", "0.002"])
    assert (same["train"]["device"], same["train"]["log_interval"], same["train"]["eval_every"]) == ("cpu", 7, 3)
    assert (same["optim"]["lr"], same["optim"]["weight_decay"]) == (0.02, 0.002)
    assert parse(["-r", "runs/x"]).resume == parse(["--resume", "runs/x"]).resume == "runs/x"
    assert parse(["-d", "0,1"]).device == "0,1"
    with pytest.raises(AbawError, match="eval_every"):
        resolve_argv(["-c", "ntua_cvsp_track1", *root, "-ef", "0"])


def test_resume_takes_the_run_folder_or_its_last_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from abaw.commands.train import resume_dir

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("last.pt", "best.pt"):
        (run / "checkpoints" / name).write_bytes(b"x")
    assert resume_dir(str(run)) == run == resume_dir(str(run / "checkpoints" / "last.pt"))
    with pytest.raises(AbawError, match="resumes from its checkpoints/last.pt"):
        resume_dir(str(run / "checkpoints" / "best.pt"))
    code, _, err = run_cli(capsys, "train", "-r", str(run), "-c", "demo_va")
    assert code == 2 and err.count("\n") == 1 and "-c with --resume" in err
    # several GPUs as in the seed need one process each
    code, _, err = run_cli(capsys, "train", "-c", "demo_va", "-d", "0,1")
    assert code == 2 and err.count("\n") == 1 and "torchrun --nproc_per_node=2" in err


def test_the_seed_config_refuses_what_does_not_map(tiny_root_ro: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    from abaw.train.seed_config import SeedConfigError, is_seed_config, read_seed_config

    bad = seed_config(str(tiny_root_ro), foo=1, optim={"lr": 0.1}, n_gpu=2)
    bad["optimizer"] = {"type": "RMSprop", "args": {"lr": 1e-3, "nesterov": True}}
    bad["lr_scheduler"] = {"type": "StepLR", "args": {"step_size": 50}}
    bad["trainer"]["monitor"] = "min val_loss"
    bad["data_loader"]["batch_sise"] = 4
    bad["data_loader"]["duration"] = 0
    with pytest.raises(SeedConfigError) as info:
        read_seed_config(bad, "config.json")
    problems = info.value.problems
    expected = {"'foo'": "not a key of the seed's config", "'optim'": "abaw config key",
                "'n_gpu'": "torchrun --nproc_per_node=2", "'optimizer.type'": "SGD, Adam and AdamW",
                "'optimizer.args.nesterov'": "not a key", "'lr_scheduler.type'": "ReduceLROnPlateau",
                "'lr_scheduler.args.step_size'": "not a key", "'trainer.monitor'": "max val_total",
                "'data_loader.batch_sise'": "did you mean 'data_loader.batch_size'",
                "'data_loader.duration'": "at least 1"}
    assert len(problems) == len(expected)
    for key, text in expected.items():
        assert any(p.startswith(key) and text in p for p in problems), (key, problems)
    # on the command line: one stderr line per key, then the error line; exit 2, no traceback
    path = tmp_path / "config.json"
    path.write_text(json.dumps(bad))
    code, _, err = run_cli(capsys, "train", "-c", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == len(expected) + 1 and "Traceback" not in err
    assert lines[-1] == f"abaw train: error: {path}: {len(expected)} keys of the seed's config cannot be used (above)"
    # the shipped presets are abaw configs, the seed's layout is recognised
    from abaw.presets import find_preset, list_presets, read_json_object

    assert not any(is_seed_config(read_json_object(find_preset(n))) for n in list_presets())
    assert is_seed_config(seed_config("x"))


def test_the_seed_config_flags_win_and_data_pkl_is_never_read(tiny_root_ro: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(seed_config("affwild2/data.pkl", n_gpu=0)))
    with pytest.raises(AbawError, match="never opens the seed's pickle; give --data-root ROOT"):
        resolve_argv(["-c", str(path)])
    cfg = resolve_argv(["-c", str(path), "--data-root", str(tiny_root_ro), "--lr", "0.5", "--track", "1",
                        "--exp_name", "x", "--face"])
    assert (cfg["optim"]["lr"], cfg["tasks"], cfg["name"], cfg["data"]["streams"]) == (0.5, ["va"], "x", ["face"])
    assert cfg["train"]["device"] == "cpu"  # n_gpu 0
    assert cfg["optim"]["momentum"] == 0.9  # the rest from the seed's config


def test_pretrained_affectnet_sets_the_face_backbone(tiny_root_ro: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from abaw.train.checkpoint import model_from_config

    ckpt = tiny_checkpoint(tmp_path / "face.pt")
    small = ["-c", "ntua_cvsp_track1", "--data-root", str(tiny_root_ro), "--face", "--set",
             "model.kwargs.backbone=tiny_cnn", "--set", "model.kwargs.image_size=32"]
    cfg = resolve_argv([*small, "--pretrained_affectnet", str(ckpt)])
    assert cfg["model"]["kwargs"]["face_backbone"] == "tiny_cnn"
    face = model_from_config(cfg).stream_encoders()["face"]
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(face.state_dict()[k], v) for k, v in saved.items())
    # the preset's ResNet-50 would not fit this checkpoint: without the flag the face CNN is the preset's
    assert "face_backbone" not in resolve_argv(["-c", "ntua_cvsp_track1", "--data-root", str(tiny_root_ro)])[
        "model"]["kwargs"]
    assert resolve_argv([*small, "--set", "model.kwargs.face_backbone=tiny_cnn", "--pretrained_affectnet",
                         str(ckpt)])["model"]["kwargs"]["face_backbone"] == "tiny_cnn"
    with pytest.raises(AbawError, match="holds backbone 'tiny_cnn' but model.kwargs.face_backbone is 'tv_resnet18'"):
        resolve_argv([*small, "--set", "model.kwargs.face_backbone=tv_resnet18", "--pretrained_affectnet", str(ckpt)])
    other = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(AbawError, match="takes an abaw backbone checkpoint"):
        resolve_argv([*small, "--pretrained_affectnet", str(other)])
    monkeypatch.setenv("ABAW_AFFECTNET_DIR", str(tmp_path / "none_here"))
    with pytest.raises(AbawError, match="abaw pretrain-affectnet .*none_here/va.pt"):
        resolve_argv([*small, "--pretrained_affectnet", "single"])
    with pytest.raises(AbawError, match="give the checkpoint's path"):
        resolve_argv([*small, "--track", "all", "--pretrained_affectnet", "single"])


def test_ntua_presets_build_the_seeds_bidirectional_lstm(tiny_root_ro: Path) -> None:
    from abaw.train.checkpoint import model_from_config
    from abaw.train.config import resolve

    small = {"model.kwargs.backbone": "tiny_cnn", "model.kwargs.image_size": 32, "data.streams": ["face"]}
    for preset, task in (("ntua_cvsp_track1", "va"), ("ntua_cvsp_track2", "expr")):
        from abaw.presets import find_preset

        cfg = resolve(find_preset(preset), small, check_root=False)
        cfg["model"]["kwargs"].update(backbone="tiny_cnn", image_size=32)
        model = model_from_config(cfg)
        rnn = model.fusion.rnn.rnn
        assert isinstance(rnn, torch.nn.LSTM) and rnn.bidirectional and rnn.hidden_size == 512
        assert model.embedding_dim == 1024  # the head reads both directions, as the seed's fc(2 x hidden)
        out = model({"face": torch.rand(1, 3, 3, 32, 32)})
        assert out[task].shape[:2] == (1, 3)
        # a run saved before the presets said so has no key: it stays one-way, so its checkpoint still loads
        old = dict(cfg, model={"name": "ntua_cvsp", "kwargs": {"cell_type": "lstm", "hidden_size": 512,
                                                                "backbone": "tiny_cnn", "image_size": 32}})
        old_model = model_from_config(old)
        assert not old_model.fusion.rnn.rnn.bidirectional
        model_from_config(old).load_state_dict(old_model.state_dict())


def test_seeds_train_one_config_per_seed(tiny_root_ro: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from abaw.commands.train import _report_seeds
    from abaw.runs.seeds import group_hash

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"name": "seeds", "model": {"name": "demo_face", "kwargs": {"image_size": 32,
                                                                                          "hidden_size": 8}},
                               "data": {"duration": 8, "batch_size": 4, "streams": ["face"]},
                               "train": {"progress": False, "threads": 1}}))
    code, out, _ = run_cli(capsys, "train", "-c", str(cfg), "--data-root", str(tiny_root_ro), "--seeds", "0,1",
                           "--epochs", "3", "-ef", "2", "--out", str(tmp_path / "runs"), "--json")
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    runs = [Path(r["run_dir"]) for r in summary["runs"]]
    assert summary["seeds"] == [0, 1] and len(set(runs)) == 2
    configs = [json.loads((r / "config.json").read_text()) for r in runs]
    assert [c["train"]["seed"] for c in configs] == [0, 1]
    configs[1]["train"]["seed"] = 0
    assert configs[0] == configs[1]  # the runs differ only in their seed
    assert {group_hash(json.loads((r / "config.json").read_text())) for r in runs} == {summary["group_hash"]}
    scores = [json.loads((r / "scores.json").read_text())["score"] for r in runs]
    assert summary["mean"] == pytest.approx(statistics.fmean(scores))
    assert summary["std"] == pytest.approx(statistics.stdev(scores))
    # -ef 2 with 3 epochs: validation after epochs 2 and 3 only
    records = [json.loads(x) for x in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3] and ["val_score" in r for r in records] == [False, True, True]
    # the terminal lines: one per seed (printed as each run ends), then the mean and std
    results = [{"seed": s, **r} for s, r in zip((0, 1), summary["runs"], strict=True)]
    for r, score in zip(results, scores, strict=True):
        r.update(score=score, tracks={"va": score})
    _report_seeds(configs[0], results, as_json=False)
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"seeds (group {summary['group_hash']}): validation score {statistics.fmean(scores):.4f}"
                           f" ± {statistics.stdev(scores):.4f} (std over 2 seeds)")
    with pytest.raises(SystemExit):  # a usage error: one line, exit 2
        main(["train", "-c", str(cfg), "--seeds", "0,0"])
    assert "names a seed twice" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "train", "-c", str(cfg), "--seeds", "0,1", "--seed", "2")
    assert code == 2 and "--seed and --seeds" in err
