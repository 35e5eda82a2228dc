"""``abaw index``, ``abaw score`` and ``abaw validate-submission`` as a user calls them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.cli import run_cli
from helpers.data_roots import make_root

from abaw import tasks
from abaw.cli import main
from abaw.data.affwild2 import AffWild2, video_info
from abaw.results import write_result_folder


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("cli") / "data")


def _perfect(root: Path, out: Path, split: str, track: str) -> Path:
    ds = AffWild2(root)
    preds = {}
    for e in ds.entries(split, track):
        lab = ds.labels(e).astype(np.float64)
        lab[~(lab.reshape(len(lab), -1) != tasks.INVALID[track]).all(axis=1)] = np.nan
        preds[e.name] = lab
    return write_result_folder(out, track, preds)


@pytest.mark.parametrize("command", ["index", "score", "validate-submission"])
def test_help(capsys: pytest.CaptureFixture, command: str) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: abaw {command}" in capsys.readouterr().out


def test_train_help_lists_the_seed_flags(capsys: pytest.CaptureFixture) -> None:
    """Every flag of the NTUA-CVSP seed's train_affwild2.py (README and argparse), plus --seeds."""
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("-c", "-r", "--resume", "-d", "--device", "-p", "--print-freq", "-ef", "--eval-freq", "--exp_name",
                 "--track", "--arch", "--dropout", "--pretrained_affectnet", "--cell_type", "--hidden_size",
                 "--num_layers", "--context", "--body", "--face", "--audio", "--optimizer", "--lr", "--learning_rate",
                 "--momentum", "--weight_decay", "--wd", "--duration", "--batch_size", "--seeds"):
        assert f"{flag} " in text or f"{flag}," in text or f"{flag}\n" in text, flag


def test_index_on_the_synthetic_set(capsys: pytest.CaptureFixture, tiny_root_ro: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "index", str(tiny_root_ro), "--json", "--strict",
                           "--out", str(tmp_path / "i.parquet"))
    assert code == 0
    report = json.loads(out)
    assert report["layout"] in tasks.LAYOUTS and len(report["fingerprint"]) == 16
    assert set(report["tracks"]) == set(tasks.TRACKS)
    table = pd.read_parquet(tmp_path / "i.parquet")
    labelled = table[table.split != "test"]
    # line counts equal the frame counts read from the video containers
    for row in labelled.itertuples():
        assert row.n_label_lines == row.n_frames == video_info(row.video_path)[0]
    for track, splits in report["tracks"].items():
        for split in tasks.SPLITS:
            counts = splits[split]
            assert counts["label_lines"] == counts["frames"] > 0 and counts["mismatched"] == 0
            rows = labelled[(labelled.track == track) & (labelled.split == split)]
            assert counts["videos"] == len(rows) and counts["valid_labels"] == rows.n_valid.sum() > 0
    code, out, _ = run_cli(capsys, "index", str(tiny_root_ro))
    assert code == 0 and "valid labels" in out and "validation" in out


def test_index_errors_are_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "index", str(tmp_path / "nope"))
    assert code == 2 and err.count("\n") == 1 and "data root not found" in err
    root = make_root(tmp_path / "d")
    path = root / "annotations" / "VA_Set" / "Train_Set" / "vid1.txt"
    path.write_text(path.read_text() + "0.1,0.1\n")
    code, _, err = run_cli(capsys, "index", str(root), "--strict")
    assert code == 2 and err.count("\n") == 1
    assert f"{path}: vid1: 25 label lines but video vid1.mp4 has 24 frames" in err
    code, out, _ = run_cli(capsys, "index", str(root), "--json")  # a warning without --strict
    assert code == 0 and json.loads(out)["tracks"]["va"]["train"]["mismatched"] == 1
    lines = path.read_text().splitlines()
    lines[3] = "0.1,oops"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, "index", str(root))
    assert code == 2 and err == f"abaw index: error: {path}:4: non-numeric value 'oops'\n"


def test_score_json(capsys: pytest.CaptureFixture, root: Path, tmp_path: Path) -> None:
    for track, keys in (("va", ("ccc_valence", "ccc_arousal")), ("expr", ("f1", "accuracy", "f1_per_class")),
                        ("au", ("f1", "accuracy", "f1_per_au"))):
        _perfect(root, tmp_path / track, "validation", track)
        code, out, _ = run_cli(capsys, "score", "--data-root", str(root), "--split", "validation", "--track", track,
                               "--pred", str(tmp_path / track), "--json")
        assert code == 0
        result = json.loads(out)
        assert result["score"] == 1.0 and all(k in result for k in keys)
        code, out, _ = run_cli(capsys, "score", "--data-root", str(root), "--split", "validation", "--track", track,
                               "--pred", str(tmp_path / track))
        assert code == 0 and "score 1.0000" in out


def test_score_bad_input(capsys: pytest.CaptureFixture, root: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "score", "--data-root", str(root), "--split", "train", "--track", "va",
                           "--pred", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1 and "result folder not found" in err
    folder = _perfect(root, tmp_path / "p", "train", "va")
    (folder / "vid1.txt").unlink()
    code, _, err = run_cli(capsys, "score", "--data-root", str(root), "--split", "train", "--track", "va",
                           "--pred", str(folder))
    assert code == 2 and "result file for 'vid1' is missing" in err


def test_validate_submission(capsys: pytest.CaptureFixture, root: Path, tmp_path: Path) -> None:
    folder = _perfect(root, tmp_path / "sub", "validation", "au")
    args = ["validate-submission", str(tmp_path / "sub"), "--data-root", str(root), "--split", "validation",
            "--track", "au"]
    code, out, _ = run_cli(capsys, *args, "--zip", str(tmp_path / "sub.zip"))
    assert code == 0 and "valid (2 result files" in out and (tmp_path / "sub.zip").is_file()
    path = folder / "vid4.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    (folder / "stray.txt").write_text("x")
    code, out, err = run_cli(capsys, *args)
    assert code == 1 and out == ""  # problems are errors: stderr, one line each, then a summary line
    assert err.splitlines() == [f"{folder / 'stray.txt'}: extra file (not a validation name of the AU track)",
                                f"{path}: 21 lines after the header, but the video of vid4 has 22 frames",
                                f"abaw validate-submission: error: {tmp_path / 'sub'}: not valid (2 problems)"]


def test_console_script_runs(root: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "abaw", "index", str(root), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tracks"]["va"]["train"]["videos"] == 3


def test_every_command_module_is_offered() -> None:
    """Each module of abaw/commands (but the shared argument helper) registers its sub-commands in ``abaw``."""
    import abaw.commands
    from abaw import cli

    modules = {p.stem for p in Path(abaw.commands.__file__).parent.glob("*.py")} - {"__init__", "detection_args"}
    assert {m.__name__.rsplit(".", 1)[1] for m in cli.COMMANDS} == modules
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert {"demo", "synth", "index", "score", "validate-submission", "weights", "prepare", "extract", "train",
            "evaluate", "ensemble", "temporal", "predict", "crowd", "train-crowd", "pretrain-affectnet",
            "leaderboard", "record", "synth-affectnet", "synth-check"} <= set(sub.choices)


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture) -> None:
    for argv in (["prepare"], ["score", "--split", "nope"], ["no-such-command"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        out, err = capsys.readouterr()
        assert info.value.code == 2 and out == "" and err.count("\n") == 1 and "error:" in err, argv
        assert "usage:" not in err


def test_library_warnings_stay_out_of_the_way(capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party warning is not shown to the user; with -v it goes to the log (debug)."""
    import logging
    import warnings

    from abaw.commands import index

    def noisy(args: object) -> int:
        warnings.warn("some library's deprecation", DeprecationWarning, stacklevel=1)
        logging.getLogger("somelib").warning("some library's chatter")
        print("result")
        return 0

    monkeypatch.setattr(index, "run", noisy)
    levels = {name: logging.getLogger(name).level for name in ("", "abaw")}  # main() sets them: restored below
    try:
        _check_quiet_and_verbose(capsys, caplog)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        logging.captureWarnings(False)


def _check_quiet_and_verbose(capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    code, out, err = run_cli(capsys, "index", "anything")
    assert code == 0 and out == "result\n" and err == ""
    assert not [r for r in caplog.records if r.levelno < logging.ERROR and not r.name.startswith("abaw")]
    caplog.clear()
    code, out, _ = run_cli(capsys, "-v", "index", "anything")
    assert code == 0 and out == "result\n"
    assert any("deprecation" in r.getMessage() for r in caplog.records)


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    """Output into a pipe whose reader has gone (``abaw ... | head``): no traceback, exit 141 or 0."""
    proc = subprocess.Popen([sys.executable, "-m", "abaw", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader leaves before the first byte is written
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 141) and err == b"", err
    shell = subprocess.run(f"{sys.executable} -m abaw --help | head -c 1", shell=True, capture_output=True,
                           timeout=60)
    assert shell.returncode == 0 and shell.stdout == b"u" and b"Traceback" not in shell.stderr


def test_score_refuses_an_extra_file_as_validate_submission_does(capsys: pytest.CaptureFixture, root: Path,
                                                                  tmp_path: Path) -> None:
    folder = _perfect(root, tmp_path / "extra", "validation", "va")
    (folder / "stray.txt").write_text("x")
    code, out, err = run_cli(capsys, "score", "--data-root", str(root), "--split", "validation", "--track", "va",
                             "--pred", str(folder))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{folder / 'stray.txt'}: extra file (not a validation name of the VA track" in err
    code, _, err = run_cli(capsys, "validate-submission", str(folder), "--data-root", str(root), "--split",
                           "validation", "--track", "va")
    assert code == 1 and f"{folder / 'stray.txt'}: extra file" in err
