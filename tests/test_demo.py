"""``abaw demo``: end to end on a tiny synthetic set, resumption after a kill, same seed -> same numbers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from abaw.apps import demo as demo_mod
from abaw.apps.session import exclusive
from abaw.cli import main
from abaw.errors import AbawError
from abaw.results import validate_submission
from abaw.runs import database

#: The test's stand-in for --quick: the conftest's tiny synthetic size and one epoch of everything.
TINY = demo_mod.DemoSize(videos=6, frames=48, epochs=1, temporal_epochs=1, pretrain_images=200, pretrain_epochs=1)


def _numbers(db: Path) -> list[tuple]:
    """The leaderboard numbers without run ids, times or hashes of configs naming member runs (those differ)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT s.track, r.kind, r.model, s.score, s.components FROM scores s "
                            "JOIN runs r ON r.run_id = s.run_id").fetchall()
    return sorted(rows)


def _states(report: dict) -> dict[str, str]:
    return {name: info["state"] for name, info in report.items() if isinstance(info, dict)}


def test_demo_end_to_end_resume_and_determinism(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo_mod, "QUICK", TINY)
    out, subs = tmp_path / "abaw-demo", tmp_path / "submissions" / "demo"
    argv = ["demo", "--quick", "--out", str(out), "--submissions", str(subs), "--seed", "0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Where everything is" in printed and str(out / "leaderboard.html") in printed

    # test-set result files for the three tracks, each passing the validator
    data = out / "data"
    submitted = json.loads((out / "stages" / "submissions.json").read_text())["summary"]["tracks"]
    assert set(submitted) == {"va", "expr", "au"}
    # the temporal model and every ensemble predicted the test set too (their fits applied to new videos)
    assert json.loads((out / "stages" / "temporal.json").read_text())["summary"]["test"] is True
    fused = json.loads((out / "stages" / "ensemble.json").read_text())["summary"]
    assert fused["scores"] and all(info["test"] for info in fused["scores"].values())
    for run_dir in (*fused["runs"].values(), json.loads((out / "stages" / "temporal.json").read_text())["summary"]
                    ["runs"]["temporal"]):  # the same from the command line
        assert main(["evaluate", run_dir, "--split", "test"]) == 0
        assert main(["evaluate", run_dir]) == 2  # scored when made: only the test set can be applied
    capsys.readouterr()
    for track, info in submitted.items():
        assert info["split"] == "test"
        folder = Path(info["folder"])
        assert folder.parent == subs and any(folder.glob("*.txt")) and Path(info["zip"]).is_file()
        assert validate_submission(folder, data, info["split"], track) == []
    # selection on validation, scores on the hidden test labels: every run with test result files has them, and the
    # run selected per track reports both
    tested = json.loads((out / "stages" / "test.json").read_text())["summary"]
    assert set(tested["selected"]) == {"va", "expr", "au"}
    for track, pick in tested["selected"].items():
        scores = json.loads((Path(pick["run"]) / "scores_test.json").read_text())
        assert scores["split"] == "test" and scores["tracks"][track]["score"] == pytest.approx(pick["test"])
        validation = json.loads((Path(pick["run"]) / "scores.json").read_text())["tracks"][track]["score"]
        assert validation == pytest.approx(pick["validation"])
        assert all(t.get(track, -1e9) <= 1.0 for t in tested["test_scores"].values())
    assert not list((data / "annotations").rglob("Test_Set"))  # the test labels stay in their own root
    # leaderboard rows per track, in the database and the HTML page
    db = out / "abaw.sqlite"
    for track in ("va", "expr", "au"):
        assert database.query_entries(db, track=track)
    page = (out / "leaderboard.html").read_text()
    for track in ("va", "expr", "au"):
        assert f'id="board-{track}-abaw2021-validation-' in page
    # every training run's face stream started from the face CNN pretrained on synthetic AffectNet
    pretrained = json.loads((out / "stages" / "pretrain.json").read_text())["summary"]
    checkpoint = Path(pretrained["checkpoint"])
    assert checkpoint.is_file() and pretrained["backbone"] == demo_mod.PRETRAIN_BACKBONE
    assert (out / "pretrain" / "affectnet" / "training.csv").is_file()
    for key in demo_mod.DEMO_PRESETS:
        run_dir = Path(json.loads((out / "stages" / f"train_{key}.json").read_text())["summary"]["runs"][key])
        kwargs = json.loads((run_dir / "config.json").read_text())["model"]["kwargs"]
        assert Path(kwargs["pretrained_face"]) == checkpoint and kwargs["face_backbone"] == pretrained["backbone"]
    face_caches = {p.name for p in (data / "features" / "face").iterdir()}
    assert face_caches and all(name.startswith(f"{pretrained['backbone']}-") for name in face_caches)
    numbers = _numbers(db)
    markers = {p.name: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")}

    # a kill in the middle of the last stages: their markers are missing, a half-copied folder is left behind
    for name in ("submissions.json", "leaderboard.json"):
        (out / "stages" / name).unlink()
    (subs / ".VA_Set.partial").mkdir()
    (subs / ".VA_Set.partial" / "half.txt").write_text("valence,arousal\n0.1,")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(demo_mod.leaderboard, "write_html", killed)
        assert main(argv) == 130  # interrupted inside the leaderboard stage
    assert not (out / "stages" / "leaderboard.json").exists()
    assert database.check_integrity(db) == "ok"

    report = demo_mod.run_demo(out, quick=True, seed=0, submissions=subs, console=Console(quiet=True))
    states = _states(report)
    assert states["leaderboard"] == "ran"
    complete = {n for n in markers if not json.loads((out / "stages" / n).read_text())["summary"].get("incomplete")}
    finished_before = complete - {"submissions.json", "leaderboard.json"}
    for name in finished_before:  # finished stages were not redone
        assert states[name[:-5]] == "done before"
        assert (out / "stages" / name).stat().st_mtime_ns == markers[name]
    assert not list(subs.glob(".*.partial"))  # the re-run submissions stage replaced the half-copied folder
    assert database.check_integrity(db) == "ok"
    assert _numbers(db) == numbers

    # same seed -> same numbers: re-run the scoring stages from scratch and compare
    rerun = "train_va" if (out / "stages" / "train_va.json").exists() else "baselines"
    (out / "stages" / f"{rerun}.json").unlink()
    report = demo_mod.run_demo(out, quick=True, seed=0, submissions=subs, console=Console(quiet=True))
    assert _states(report)[rerun] == "ran" and _states(report)["leaderboard"] == "ran"
    assert _numbers(db) == numbers

    # a kill after the face CNN's checkpoint was written but before its marker: the finished checkpoint is kept,
    # every stage reading it runs again, and the numbers are the same
    checkpoint_time = checkpoint.stat().st_mtime_ns
    (out / "stages" / "pretrain.json").unlink()
    report = demo_mod.run_demo(out, quick=True, seed=0, submissions=subs, console=Console(quiet=True))
    states = _states(report)
    assert states["pretrain"] == "ran" and states["extract"] == "ran" and states["train_multitask"] == "ran"
    assert checkpoint.stat().st_mtime_ns == checkpoint_time
    assert _numbers(db) == numbers


def test_stage_dependencies() -> None:
    assert demo_mod._dependents("baselines") == ["test", "submissions", "leaderboard"]
    assert demo_mod._dependents("train_va") == ["evaluate", "temporal", "ensemble", "test", "submissions",
                                                "leaderboard"]
    assert set(demo_mod._dependents("synth")) == {s.name for s in demo_mod.STAGES} - {"synth", "pretrain"}
    assert demo_mod._dependents("pretrain")[:2] == ["extract", "train_va"]
    names = [s.name for s in demo_mod.STAGES]
    for stage in demo_mod.STAGES:  # every input stage comes earlier
        assert all(names.index(dep) < names.index(stage.name) for dep in stage.after)


def test_a_failed_stage_is_reported_and_retried_and_settings_are_checked(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    broken = [True]

    def works(demo: demo_mod.Demo) -> dict:
        calls.append(f"first {demo.seed}")
        return {"ok": True}

    def fails_once(demo: demo_mod.Demo) -> dict:
        calls.append("second")
        if broken[0]:
            raise AbawError("the second stage broke", path=demo.out)
        return {"ok": True}

    def reads_second(demo: demo_mod.Demo) -> dict:
        calls.append("third")
        return {"second": demo.need("second")}

    def independent(demo: demo_mod.Demo) -> dict:
        calls.append("fourth")
        return {}

    stages = (demo_mod.Stage("first", "a stage that works", works),
              demo_mod.Stage("second", "a stage that fails once", fails_once, after=("first",)),
              demo_mod.Stage("third", "a stage reading the second's outputs", reads_second, after=("second",)),
              demo_mod.Stage("fourth", "a stage needing neither", independent))
    monkeypatch.setattr(demo_mod, "STAGES", stages)
    quiet = Console(quiet=True)
    out = tmp_path / "out"
    report = demo_mod.run_demo(out, seed=3, submissions=tmp_path / "subs", console=quiet)
    # the failure is reported with its message, its reader is skipped, and the stages not needing it still run
    assert _states(report) == {"first": "ran", "second": "failed", "third": "skipped", "fourth": "ran"}
    assert "the second stage broke" in report["second"]["reason"]
    assert "needs stage 'second'" in report["third"]["reason"]
    assert not (out / "stages" / "second.json").exists() and not (out / "stages" / "third.json").exists()
    assert calls == ["first 3", "second", "third", "fourth"]
    # the next start retries the failed stage (and what reads it) and skips the finished ones
    broken[0] = False
    calls.clear()
    report = demo_mod.run_demo(out, seed=3, submissions=tmp_path / "subs", console=quiet)
    assert _states(report) == {"first": "done before", "second": "ran", "third": "ran", "fourth": "done before"}
    assert calls == ["second", "third"]
    assert json.loads((out / "stages" / "third.json").read_text())["summary"]["second"] == {"ok": True}
    calls.clear()
    (out / "stages" / "first.json").write_text("{half")  # a damaged marker: the stage runs again, and its readers
    report = demo_mod.run_demo(out, seed=3, submissions=tmp_path / "subs", console=quiet)
    assert calls == ["first 3", "second", "third"] and _states(report)["fourth"] == "done before"
    with pytest.raises(AbawError, match="other settings"):
        demo_mod.run_demo(out, seed=4, submissions=tmp_path / "subs", console=quiet)


def test_a_second_demo_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    with exclusive(out, "abaw demo"), pytest.raises(AbawError, match="another abaw demo is running"):
        demo_mod.run_demo(out, quick=True, submissions=tmp_path / "sub", console=Console(quiet=True))
    assert not (out / "stages").exists()  # nothing was started


def test_image_streams_without_imagenet_weights_get_a_random_tiny_cnn(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A random MobileNetV2's features vanish (zeros in the float16 cache): without a local copy of the ImageNet
    weights the demo gives body and context a frozen random tiny CNN instead, and says so."""
    import torch

    from abaw.models import backbones
    from abaw.models.backbones import create_backbone

    def missing(name: str) -> None:
        raise AbawError(f"no local copy of {name}")

    monkeypatch.setattr(backbones, "imagenet_weights", missing)
    demo = demo_mod.Demo(out=tmp_path, submissions=tmp_path / "subs", console=Console(quiet=True))
    (demo.data_root / "annotations").mkdir(parents=True)
    cfg = demo_mod._train_config(demo, "demo_multitask")
    kwargs = cfg["model"]["kwargs"]
    assert kwargs["backbone"] == demo_mod.RANDOM_BACKBONE and kwargs["pretrained"] is False
    assert "demo_multitask" in demo.notes
    torch.manual_seed(0)
    image = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        vanished = create_backbone("tv_mobilenet_v2").eval()(image).half()
        kept = create_backbone(demo_mod.RANDOM_BACKBONE).eval()(image).half()
    assert float(vanished.abs().max()) < 1e-4 and float(kept.abs().mean()) > 1e-3


def test_the_training_seed_leaves_the_data_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--seed`` seeds the trainings; the synthetic data follow ``--data-seed`` only (the same instrument)."""
    import abaw.synth.dataset as dataset

    made: list[int] = []

    def fake_generate(out: Path, **kwargs: object) -> dict:
        made.append(int(kwargs["seed"]))  # type: ignore[arg-type]
        Path(out).mkdir(parents=True)
        return {}

    monkeypatch.setattr(dataset, "generate", fake_generate)
    for seed, data_seed in ((0, 0), (1, 0), (2, 7)):
        demo = demo_mod.Demo(out=tmp_path / f"d{seed}", submissions=tmp_path / "s", seed=seed, data_seed=data_seed)
        demo.out.mkdir()
        demo_mod.stage_synth(demo)
    assert made == [0, 0, 7]
