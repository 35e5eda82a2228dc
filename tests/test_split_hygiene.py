"""Split hygiene: a name in one track's training split and another track's validation split is reported by
``abaw index`` and left out of multi-task training (and of ensembles fitted on the validation split)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers.data_roots import add_to_training, make_root
from helpers.runs import make_label_root, make_run

from abaw.cli import main
from abaw.data.affwild2 import AffWild2, held_out_of_training, split_overlaps, valid_mask
from abaw.data.sequences import training_videos


@pytest.fixture(scope="module")
def overlap_root(tiny_root_ro: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The tiny synthetic set with one EXPR validation name also in the VA training split."""
    root = tmp_path_factory.mktemp("hygiene") / "data"
    shutil.copytree(tiny_root_ro, root)
    ds = AffWild2(root)
    va = {e.name for split in ("train", "validation") for e in ds.entries(split, "va")}
    names = [e.name for e in ds.entries("validation", "expr")]
    name = next((n for n in names if n not in va), names[0])
    (root / "annotations" / "VA_Set" / "Validation_Set" / f"{name}.txt").unlink(missing_ok=True)  # in VA train only
    add_to_training(root, name, "va", like="expr")
    return root, name


def test_clean_root_has_no_overlap(tmp_path: Path) -> None:
    ds = AffWild2(make_root(tmp_path / "r"))
    assert split_overlaps(ds.index_table()).empty
    assert held_out_of_training(ds, ["va", "expr", "au"]) == {}


def test_overlap_table_counts_frames(tmp_path: Path) -> None:
    root = make_root(tmp_path / "r")
    add_to_training(root, "vid3", "expr", like="va")  # vid3 is a validation name of every track
    table = split_overlaps(AffWild2(root).index_table())
    assert set(zip(table["train_track"], table["validation_track"], strict=True)) == {
        ("expr", "va"), ("expr", "expr"), ("expr", "au")}
    assert (table["name"] == "vid3").all() and (table["train_frames"] == 18).all()
    assert (table["train_labels"] <= 18).all() and (table["train_labels"] > 0).all()


def test_index_reports_the_overlap(overlap_root: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    root, name = overlap_root
    assert main(["index", str(root)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "VA train / EXPR validation" in ln)
    assert "1 name, 48 frames" in line and line.endswith(name)
    assert main(["index", str(root), "--json"]) == 0
    overlaps = json.loads(capsys.readouterr().out)["overlaps"]
    pair = next(o for o in overlaps if (o["train_track"], o["validation_track"]) == ("va", "expr"))
    n_frames = len((root / "annotations" / "VA_Set" / "Train_Set" / f"{name}.txt").read_text().splitlines()) - 1
    assert pair["names"] == 1 and pair["examples"] == [name] and pair["train_frames"] == n_frames


def test_training_videos_leave_the_name_out(overlap_root: tuple[Path, str]) -> None:
    root, name = overlap_root
    ds = AffWild2(root)
    kept, left = training_videos(ds, ["va"])  # VA alone does not validate on it: kept
    assert name in [v.name for v in kept] and not left.names
    kept, left = training_videos(ds, ["va", "expr"])
    assert name not in [v.name for v in kept] and left.names == [name]
    entry = next(e for e in ds.entries("train", "va") if e.name == name)
    assert left.validated_by[name] == ("expr",) and left.frames == int(valid_mask("va", ds.labels(entry)).sum()) > 0
    kept, left = training_videos(ds, ["va", "expr"], hygiene=False)
    assert name in [v.name for v in kept] and not left.names


def test_multi_task_training_leaves_it_out(overlap_root: tuple[Path, str], tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from abaw.train.config import resolve
    from abaw.train.loop import train

    root, name = overlap_root
    cfg = resolve({"name": "mtl", "tasks": ["va", "expr"],
                   "data": {"root": str(root), "streams": ["face"], "duration": 8, "batch_size": 4},
                   "model": {"name": "demo_face", "kwargs": {"hidden_size": 8, "image_size": 32}},
                   "train": {"epochs": 1, "seed": 0, "progress": False, "threads": 1}})
    with caplog.at_level(logging.INFO, logger="abaw"):
        run_dir = train(cfg, out=tmp_path / "runs", max_steps=2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("split hygiene")]
    assert len(lines) == 1 and name in lines[0] and "1 training name(s)" in lines[0]
    record = json.loads((run_dir / "run.json").read_text())["split_hygiene"]
    assert record["left_out"] == [name] and record["validated_by"] == {name: ["expr"]}
    assert record["labelled_frames"] > 0 and f"{record['labelled_frames']} labelled frames" in lines[0]
    # its training outputs (what a temporal model is fitted on) are those of the names it trained on
    from abaw.train.evaluate import evaluate_run

    evaluate_run(run_dir, root, "train", plots=False)
    predicted = set(pd.read_parquet(run_dir / "predictions" / "train.parquet")["name"])
    assert predicted and name not in predicted


def test_ensemble_leaves_out_names_a_member_trained_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """v0 is in the VA training split too: an old multi-task member (no ``split_hygiene`` in its run.json) trained on
    it, so an EXPR ensemble neither fits nor scores on it; with members that applied the rule, nothing is left out."""
    from abaw.posthoc.ensemble import ensemble_runs

    root = tmp_path / "data"
    labels = make_label_root(root)
    add_to_training(root, "v0", "va", like="expr")
    old = [make_run(tmp_path / "runs", f"old{i}", labels, root, 0.3, seed=i, tracks=("va", "expr")) for i in range(2)]
    with caplog.at_level(logging.INFO, logger="abaw"):
        report = ensemble_runs(old, "expr", "weighted", out_dir=tmp_path / "out")
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("split hygiene"))
    assert "1 EXPR validation name(s)" in line and "v0" in line
    details = json.loads((report.run_dir / "scores.json").read_text())["ensemble"]["split_hygiene"]
    assert details["left_out"] == ["v0"] and details["labelled_frames"] > 0
    assert sorted(p.stem for p in (report.run_dir / "results" / "validation").rglob("*.txt")) == [
        "v1", "v2_left", "v2_right"]
    for run in old:  # the same members, made by a run that applied split hygiene (v0 was never trained on)
        info = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**info, "split_hygiene": {"left_out": ["v0"]}}))
    report = ensemble_runs(old, "expr", "weighted", out_dir=tmp_path / "out2")
    assert json.loads((report.run_dir / "scores.json").read_text())["ensemble"]["split_hygiene"] is None
