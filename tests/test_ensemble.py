"""Ensemble fusion: run folders built from noisy predictions of known labels; also the builders the temporal and
smoothing tests import (``from test_ensemble import ...``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.runs import N_FRAMES, PROTOCOL, SPLIT_NAMES, labels_of_root, make_label_root, make_run

from abaw import tasks
from abaw.errors import AbawError


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("ens")
    root = base / "data"
    labels = make_label_root(root)
    runs = [make_run(base / "runs", f"m{i}", labels, root, noise, seed=i)
            for i, noise in enumerate((0.15, 0.3, 0.45))]
    return {"base": base, "root": root, "labels": labels, "runs": runs}


@pytest.fixture(autouse=True)
def _private_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABAW_DB", str(tmp_path / "abaw.sqlite"))


# ---- tests ---------------------------------------------------------------------------------------------------


def test_simplex_grid_sums_to_one() -> None:
    from abaw.posthoc.ensemble import simplex_grid

    grid = simplex_grid(3)
    assert grid.shape == (66, 3)  # step 1/10: C(12, 2) points (step 1/20 would give 231 > 100)
    assert simplex_grid(2).shape == (21, 2)  # step 1/20
    assert np.allclose(grid.sum(axis=1), 1.0) and (grid >= 0).all()
    assert len(np.unique(grid.round(6), axis=0)) == len(grid)
    assert simplex_grid(6, max_points=300).shape[0] <= 300


@pytest.mark.parametrize("track", tasks.TRACKS)
def test_mean_ensemble_writes_a_run(world: dict, tmp_path: Path, track: str) -> None:
    from abaw.inference import score
    from abaw.posthoc.ensemble import ensemble_runs
    from abaw.runs.outputs import labels_for_rows, load_labels, read_predictions, track_columns

    report = ensemble_runs(world["runs"], track, "mean", out_dir=tmp_path / "out")
    run_dir = report.run_dir
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "ensemble" and info["status"] == "finished"
    assert info["members"] == ["m0", "m1", "m2"]
    scores = json.loads((run_dir / "scores.json").read_text())
    assert scores["tracks"][track]["score"] == pytest.approx(report.final_score)
    assert set(scores["ensemble"]["members"]) == {"m0", "m1", "m2"}
    # the fused table is the mean of the members, and its score recomputes from the written file
    cols = track_columns(track, PROTOCOL)
    fused = read_predictions(run_dir / "predictions" / "validation.parquet", cols)
    members = [read_predictions(r / "predictions" / "validation.parquet", cols) for r in world["runs"]]
    assert np.allclose(fused[cols].to_numpy(), np.mean([m[cols].to_numpy() for m in members], axis=0), atol=1e-6)
    true = labels_for_rows(fused, load_labels(world["root"], "validation", track, PROTOCOL), track, PROTOCOL)
    assert score(track, fused[cols].to_numpy(), true, PROTOCOL)["score"] == pytest.approx(report.final_score, abs=1e-5)
    # averaging independent noise beats the worst member
    assert report.final_score > min(report.member_scores.values())
    folder = run_dir / "results" / "validation" / tasks.get_protocol(PROTOCOL).annotation_dir(track)
    files = sorted(p.stem for p in folder.glob("*.txt"))
    assert files == sorted(SPLIT_NAMES["validation"])
    assert len((folder / "v0.txt").read_text().splitlines()) == N_FRAMES + 1  # header + every frame, gaps filled


@pytest.mark.parametrize(("track", "method"), [("va", "weighted"), ("expr", "weighted"), ("au", "stack"),
                                               ("va", "stack"), ("expr", "stack")])
def test_tuned_methods_report_held_out_scores(world: dict, tmp_path: Path, track: str, method: str) -> None:
    from abaw.posthoc.ensemble import ensemble_runs

    report = ensemble_runs(world["runs"], track, method, out_dir=tmp_path / "out", n_splits=3)
    details = json.loads((report.run_dir / "scores.json").read_text())["ensemble"]
    assert details["in_sample_score"] is not None and "same frames" in details["in_sample_note"]
    assert "out of fold" in details["fused_score_note"]
    # every validation video is held out exactly once, and never on both sides
    held = [v for fold in details["folds"] for v in fold["held_out_videos"]]
    assert sorted(held) == ["v0", "v1", "v2"]
    assert np.isfinite(report.fused.score["score"])
    if method == "weighted":
        w = details["params"]["weights"]
        assert sum(w) == pytest.approx(1.0) and w[0] >= w[2]  # the least noisy member weighs most
    if track == "expr":
        assert np.allclose(report.fused.values.sum(axis=1), 1.0, atol=1e-6)


def test_smoothing_and_thresholds_in_an_ensemble(world: dict, tmp_path: Path) -> None:
    from abaw.posthoc.ensemble import ensemble_runs

    report = ensemble_runs(world["runs"], "au", "mean", smooth=True, tune_au_thresholds=True,
                           out_dir=tmp_path / "out", n_splits=3)
    details = json.loads((report.run_dir / "scores.json").read_text())["ensemble"]
    sm = details["smoothing"]
    assert sm["cv_score"] == pytest.approx(report.smoothing.cv_score)
    assert sm["gain"] == pytest.approx(sm["cv_score"] - sm["unsmoothed_score"])
    assert set(details["thresholds"]["thresholds"]) == set(tasks.au_columns(PROTOCOL))
    th = details["thresholds"]
    # an add-on is kept only when it raised the held-out score, and the final score says which
    assert th["applied"] == (th["cv_score"] > th["default_score"])
    assert sm["applied"] == (sm["gain"] > 0)
    assert report.final_score == pytest.approx(th["cv_score"] if th["applied"] else th["default_score"])


def test_missing_video_is_a_clear_error(world: dict, tmp_path: Path) -> None:
    from abaw.posthoc.ensemble import ensemble_runs

    short = make_run(tmp_path / "runs", "short", world["labels"], world["root"], 0.2, seed=7, drop=("v1",))
    with pytest.raises(AbawError, match=r"video v1 is in run m0 but missing in run short"):
        ensemble_runs([world["runs"][0], short], "va", "mean", out_dir=tmp_path / "out")
    other = make_run(tmp_path / "runs", "other", world["labels"], world["root"], 0.2, seed=8, skip=11)
    with pytest.raises(AbawError, match=r"video v0 has \d+ predicted frames in run other but \d+ in run m0"):
        ensemble_runs([world["runs"][0], other], "expr", "mean", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_videos_a_track_does_not_annotate_are_left_out(world: dict, tmp_path: Path) -> None:
    from abaw.posthoc.ensemble import ensemble_runs

    root = tmp_path / "data"
    shutil.copytree(world["root"], root)
    ann = root / "annotations" / tasks.get_protocol(PROTOCOL).annotation_dir("expr") / "Validation_Set"
    (ann / "v1.txt").unlink()  # v1 has VA and AU labels but no expression labels
    expr_only = make_run(tmp_path / "runs", "expr_only", world["labels"], root, 0.2, seed=5, drop=("v1",))
    report = ensemble_runs([world["runs"][0], expr_only], "expr", "mean", data_root=root, out_dir=tmp_path / "out")
    fused = pd.read_parquet(report.run_dir / "predictions" / "validation.parquet")
    assert "v1" not in set(fused["name"]) and len(fused) > 0
    with pytest.raises(AbawError, match="video v1 is in run m0 but missing in run expr_only"):
        ensemble_runs([world["runs"][0], expr_only], "va", "mean", data_root=root, out_dir=tmp_path / "out")


def test_tiny_synthetic_set_end_to_end(tiny_root_ro: Path, tmp_path: Path) -> None:
    """Noisy runs of the tiny synthetic set's labels: temporal model (both variants), then every fusion."""
    from abaw.posthoc.ensemble import ensemble_runs
    from abaw.runs.outputs import video_groups
    from abaw.temporal.train import fit_temporal, load_config, predict_temporal

    labels = labels_of_root(tiny_root_ro)
    assert set(labels) == {"train", "validation"}
    runs = [make_run(tmp_path / "runs", f"s{i}", labels, tiny_root_ro, noise, seed=i, skip=7)
            for i, noise in enumerate((0.2, 0.4))]
    fast = {"epochs": 2, "batch_size": 64, "hidden": 16, "lstm_hidden": 4}
    for variant in ("mlp", "bilstm"):
        run_dir = fit_temporal(runs[0], load_config(None, {**fast, "variant": variant}), tiny_root_ro,
                               tmp_path / "runs")
        scores = json.loads((run_dir / "scores.json").read_text())["tracks"]
        assert set(scores) == set(tasks.TRACKS) and all(np.isfinite(s["score"]) for s in scores.values())
        # the saved model, re-built from its checkpoint, predicts a split again exactly (the test set in the demo)
        before = pd.read_parquet(run_dir / "predictions" / "validation.parquet")
        predict_temporal(run_dir, "validation")
        after = pd.read_parquet(run_dir / "predictions" / "validation.parquet")
        pd.testing.assert_frame_equal(before, after, atol=1e-6)
        runs.append(run_dir)
    for track, method in (("va", "mean"), ("expr", "weighted"), ("expr", "stack"), ("au", "mean")):
        named = np.array([name for name, lab in labels["validation"].items() if track in lab])
        if method != "mean" and len(set(video_groups(named))) < 2:  # weights and stacking are fit out of fold
            with pytest.raises(AbawError, match="at least 2 videos"):
                ensemble_runs(runs, track, method, out_dir=tmp_path / "out", n_splits=3)
            track = "va"
        report = ensemble_runs(runs, track, method, smooth=True, out_dir=tmp_path / "out", n_splits=3)
        assert len(report.member_scores) == 4 and np.isfinite(report.final_score)
        details = json.loads((report.run_dir / "scores.json").read_text())["ensemble"]
        n_videos = len(set(video_groups(pd.read_parquet(report.run_dir / "predictions" / "validation.parquet")
                                        ["name"].to_numpy())))
        if n_videos >= 2:
            assert report.smoothing is not None and np.isfinite(report.smoothing.gain)
        else:  # one validation video: smoothing cannot be scored on held-out videos, so it is left out, saying so
            assert report.smoothing is None and "1 " + track.upper() + " video" in details["skipped"]


def test_bad_inputs_are_one_line_errors(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from abaw.cli import main

    va_only = make_run(tmp_path / "runs", "vaonly", world["labels"], world["root"], 0.2, seed=9, tracks=("va",))
    assert main(["ensemble", str(world["runs"][0]), str(va_only), "--track", "au", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "lacks columns AU01" in err and len(err.strip().splitlines()) == 1
    assert main(["ensemble", str(world["runs"][0]), "--track", "va", "--out", str(tmp_path)]) == 2
    assert "at least two runs" in capsys.readouterr().err


def test_grouped_folds_keep_videos_whole() -> None:
    from abaw.runs.outputs import grouped_folds, video_groups

    names = np.repeat(["a", "b_left", "b_right", "c", "d"], 7)
    groups = video_groups(names)
    assert set(groups) == {"a", "b", "c", "d"}
    folds = grouped_folds(groups, n_splits=3)
    assert len(folds) == 3
    seen = []
    for fit, held in folds:
        assert not set(groups[fit]) & set(groups[held])
        assert len(fit) + len(held) == len(names)
        seen.extend(held)
    assert sorted(seen) == list(range(len(names)))
    with pytest.raises(AbawError, match="at least 2 videos"):
        grouped_folds(video_groups(np.array(["x_left", "x_right"])))


def test_cli_prints_members_beside_fusion(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from abaw.cli import main

    code = main(["ensemble", *map(str, world["runs"]), "--track", "va", "--method", "weighted", "--smooth",
                 "--folds", "3", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("m0", "m1", "m2", "fused (weighted)", "in-sample", "smoothing", "final"):
        assert text in out


def test_a_recorded_fusion_applies_to_new_videos(world: dict, tmp_path: Path) -> None:
    """apply_ensemble on a split the fusion was not tuned on (here train; test in the demo) uses the weights,
    smoothing and thresholds recorded on validation, and writes predictions and valid result files."""
    from abaw.posthoc.ensemble import apply_ensemble, ensemble_runs, fuse_weighted
    from abaw.posthoc.smoothing import smooth_by_video
    from abaw.results import validate_submission
    from abaw.runs.outputs import load_run, stack_runs, track_columns

    runs = [load_run(r) for r in world["runs"]]
    for track, method in (("va", "mean"), ("expr", "weighted"), ("au", "mean")):
        report = ensemble_runs(world["runs"], track, method, smooth=True, tune_au_thresholds=track == "au",
                               out_dir=tmp_path / "out", n_splits=3)
        details = json.loads((report.run_dir / "scores.json").read_text())["ensemble"]
        apply_ensemble(report.run_dir, "train")
        columns = track_columns(track, PROTOCOL)
        keys, values = stack_runs(runs, "train", columns, names=set(SPLIT_NAMES["train"]))
        want = fuse_weighted(values, np.asarray(details["params"]["weights"]))
        sm = details["smoothing"]
        if sm["applied"] and sm["window"] > 1:
            want = smooth_by_video(track, want, keys["name"].to_numpy(dtype=str), sm["method"], sm["window"])
        got = pd.read_parquet(report.run_dir / "predictions" / "train.parquet")
        np.testing.assert_allclose(got[columns].to_numpy(), want, atol=1e-6)
        assert validate_submission(report.run_dir / "results" / "train", world["root"], "train", track) == []
        with pytest.raises(AbawError, match="tuned on the validation split"):
            apply_ensemble(report.run_dir, "validation")
    stacked = ensemble_runs(world["runs"], "expr", "stack", out_dir=tmp_path / "out", n_splits=3)
    with pytest.raises(AbawError, match="keeps no weights"):
        apply_ensemble(stacked.run_dir, "train")
