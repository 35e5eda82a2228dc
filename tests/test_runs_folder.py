"""Run folders are complete or absent: a failed command leaves no orphan folder; ``abaw record`` and the leaderboard
skip unfinished folders with a note and go on; a failed ``prepare`` leaves no empty ``prepared/``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.cli import run_cli

from abaw.errors import AbawError
from abaw.runs import database
from abaw.runs.folder import removed_on_failure, unfinished_reason

TINY_MODEL = {"name": "demo_face", "kwargs": {"hidden_size": 8, "image_size": 32}}


def _config(tmp_path: Path, **train: object) -> Path:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"name": "orphan", "model": TINY_MODEL, "data": {"duration": 8, "batch_size": 4},
                                "train": {"progress": False, "threads": 1, **train}}))
    return path


def _train_args(cfg: Path, root: Path, runs: Path, *extra: str) -> list[str]:
    return ["train", "-c", str(cfg), "--data-root", str(root), "--track", "2", "--face", "--epochs", "1",
            "--out", str(runs), *extra]


def _folders(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir()) if runs.is_dir() else []


def make_run(root: Path, run_id: str, status: str | None = "finished", score: float = 0.5,
             files: tuple[str, ...] = ("config", "run", "scores")) -> Path:
    """A run folder holding ``files`` (config.json, run.json, scores.json)."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    if "config" in files:
        (run_dir / "config.json").write_text(json.dumps({"seed": 0}))
    if "run" in files:
        (run_dir / "run.json").write_text(json.dumps({
            "run_id": run_id, "kind": "train", "dataset_fingerprint": "fp", "protocol": "abaw2021",
            "tracks": ["va"], "status": status}))
    if "scores" in files:
        (run_dir / "scores.json").write_text(json.dumps({"split": "validation", "protocol": "abaw2021",
                                                         "tracks": {"va": {"score": score}}}))
    return run_dir


# ---- training runs ---------------------------------------------------------------------------------------------------

def test_train_with_a_bad_label_file_leaves_no_run_folder(capsys: pytest.CaptureFixture, tiny_root: Path,
                                                          tmp_path: Path) -> None:
    label = sorted((tiny_root / "annotations" / "EXPR_Set" / "Train_Set").glob("*.txt"))[0]
    label.write_text("not,the,header\n1\n")
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, *_train_args(_config(tmp_path), tiny_root, runs))
    assert code == 2 and err.count("\n") == 1 and str(label) in err
    assert _folders(runs) == []


def test_train_with_a_refused_pretrained_file_leaves_no_run_folder(capsys: pytest.CaptureFixture,
                                                                   tiny_root_ro: Path, tmp_path: Path) -> None:
    junk = tmp_path / "affectnet.pt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, *_train_args(_config(tmp_path), tiny_root_ro, runs, "--pretrained_affectnet",
                                                str(junk)))
    assert code == 2 and err.count("\n") == 1
    assert _folders(runs) == []


def test_train_with_a_bad_config_value_leaves_no_run_folder(tiny_root_ro: Path, tmp_path: Path) -> None:
    from abaw.train.config import resolve
    from abaw.train.loop import train

    runs = tmp_path / "runs"
    with pytest.raises((AbawError, ValueError)):  # refused by the schema, or by torch before the first step
        cfg = resolve({"name": "lr", "tasks": ["expr"], "optim": {"lr": -1.0}, "model": TINY_MODEL,
                       "data": {"root": str(tiny_root_ro), "streams": ["face"], "duration": 8, "batch_size": 4},
                       "train": {"epochs": 1, "progress": False, "threads": 1}})
        train(cfg, out=runs)
    assert _folders(runs) == []


def test_a_failure_after_the_first_checkpoint_keeps_the_resumable_folder(tiny_root_ro: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from abaw.train import loop
    from abaw.train.config import resolve

    def broken_finish(self: loop.Trainer) -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(loop.Trainer, "finish", broken_finish)
    cfg = resolve({"name": "keep", "tasks": ["expr"], "model": TINY_MODEL,
                   "data": {"root": str(tiny_root_ro), "streams": ["face"], "duration": 8, "batch_size": 4,
                            "max_videos": 2},
                   "train": {"epochs": 1, "progress": False, "threads": 1}})
    runs = tmp_path / "runs"
    with pytest.raises(RuntimeError, match="disk gone"):
        loop.train(cfg, out=runs)
    (run,) = _folders(runs)
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "config.json").is_file()


def test_removed_on_failure_keeps_what_it_did_not_create(tmp_path: Path) -> None:
    old = make_run(tmp_path, "old")
    with pytest.raises(AbawError), removed_on_failure(old, created=False):
        raise AbawError("boom")
    assert (old / "run.json").is_file()
    new = tmp_path / "new"
    new.mkdir()
    with pytest.raises(KeyboardInterrupt), removed_on_failure(new):
        raise KeyboardInterrupt
    assert not new.exists()
    with removed_on_failure(new):  # success: nothing removed (and nothing made)
        new.mkdir()
    assert new.is_dir()


def test_a_failed_baseline_leaves_no_run_folder(tiny_root: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from abaw.posthoc import baselines

    monkeypatch.setattr(baselines, "validate_submission", lambda *a, **k: ["a made-up problem"])
    runs = tmp_path / "runs"
    with pytest.raises(AbawError, match="failed validation"):
        baselines.run_baselines(tiny_root, runs)
    assert _folders(runs) == []


# ---- record and the leaderboard ------------------------------------------------------------------------------------

def test_unfinished_reason(tmp_path: Path) -> None:
    assert unfinished_reason(make_run(tmp_path, "done")) is None
    assert unfinished_reason(make_run(tmp_path, "stopped", status="stopped", files=("config", "run"))) is None
    assert "no run.json" in unfinished_reason(make_run(tmp_path, "orphan", files=("config",)))
    assert "running" in unfinished_reason(make_run(tmp_path, "running", status="running"))


def test_record_skips_unfinished_folders_and_goes_on(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    runs, db = tmp_path / "runs", tmp_path / "db.sqlite"
    orphan = make_run(runs, "orphan", files=("config",))
    running = make_run(runs, "running", status="running", files=("config", "run"))
    done = make_run(runs, "done")
    code, out, err = run_cli(capsys, "record", str(orphan), str(running), str(done), "--db", str(db))
    assert code == 0 and out == "recorded done\n"
    assert err.splitlines() == [f"abaw record: skipped {orphan}: unfinished run folder (no run.json)",
                                f"abaw record: skipped {running}: unfinished run (status running in run.json)"]
    assert database.count_runs(db) == 1
    # a broken folder is a failure (exit 1, one line, a summary), and the others are still recorded
    broken = runs / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{oops")
    other = make_run(runs, "other")
    code, out, err = run_cli(capsys, "record", str(broken), str(other), "--db", str(db))
    assert code == 1 and out == "recorded other\n"
    assert err.splitlines()[0].startswith(f"abaw record: failed: {broken / 'run.json'}:1: not valid JSON")
    assert err.splitlines()[-1] == "abaw record: error: 1 of 2 run folders failed"
    assert database.count_runs(db) == 2


# ---- prepare and data roots ----------------------------------------------------------------------------------------

def test_a_failed_prepare_leaves_no_empty_prepared_folder(tmp_path: Path, tiny_root: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from abaw.tasks import PREPARED_DIR
    from abaw.video import prepare

    def no_boxes(*args: object, **kwargs: object) -> None:
        raise AbawError("cannot decode", path=args[0])

    monkeypatch.setattr(prepare, "detect_boxes", no_boxes)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 100)
    out = tmp_path / "out"
    results = prepare.prepare_all([junk], out, prepare.PrepareOptions(progress=False))
    assert [r.status for r in results] == ["failed"] and not out.exists()
    shutil.rmtree(tiny_root / "boxes")  # a data root: it stays, with no prepared/ in it
    video = sorted((tiny_root / "videos").rglob("*.mp4"))[0]
    results = prepare.prepare_all([video], tiny_root, prepare.PrepareOptions(progress=False))
    assert [r.status for r in results] == ["failed"] and not (tiny_root / PREPARED_DIR).exists()


def _drop_validation(root: Path) -> None:
    for folder in (root / "annotations").glob("*/Validation_Set"):
        shutil.rmtree(folder)


def test_a_data_root_without_validation_set_is_named(capsys: pytest.CaptureFixture, tiny_root: Path,
                                                     tmp_path: Path) -> None:
    _drop_validation(tiny_root)
    code, out, err = run_cli(capsys, "index", str(tiny_root))
    (line,) = err.splitlines()
    assert code == 0 and out and line.startswith("abaw index: warning: ") and "Validation_Set" in line
    assert str(tiny_root / "annotations") in line
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, *_train_args(_config(tmp_path), tiny_root, runs))
    assert code == 2 and err.count("\n") == 1 and "Validation_Set" in err and "EXPR" in err
    assert _folders(runs) == []


def test_some_tracks_without_validation_is_a_warning(capsys: pytest.CaptureFixture, tiny_root: Path) -> None:
    from abaw.commands.train import check_validation

    va = tiny_root / "annotations" / "VA_Set" / "Validation_Set"
    shutil.rmtree(va)
    cfg = {"tasks": ["va", "expr"], "protocol": "abaw2021", "data": {"root": str(tiny_root)}}
    check_validation(cfg)  # EXPR still has validation annotations: training goes on, and says what is missing
    assert capsys.readouterr().err == (f"abaw train: warning: {va}: no Validation_Set: no validation annotations "
                                       "for VA (training needs them)\n")
    with pytest.raises(AbawError, match="no Validation_Set"):
        check_validation({**cfg, "tasks": ["va"]})
