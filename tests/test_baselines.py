"""Label-only baselines: what they fit, what they score, and the run folders they write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.data_roots import NAMES, VIDEOS, make_root

from abaw import tasks
from abaw.data.affwild2 import AffWild2, dataset_fingerprint, valid_mask
from abaw.errors import AbawError
from abaw.posthoc import baselines
from abaw.results import score_result_folder, validate_submission


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = make_root(tmp_path_factory.mktemp("bl") / "data", seed=4)
    return root, baselines.run_baselines(root, root.parent / "runs")


def _train(root: Path, track: str) -> np.ndarray:
    ds = AffWild2(root)
    lab = np.concatenate([ds.labels(e) for e in ds.entries("train", track)]).astype(np.float64)
    return lab[valid_mask(track, lab)]


def test_fit_rules() -> None:
    va = np.array([[0.2, -0.4], [0.4, 0.0], [-5, -5]])
    np.testing.assert_allclose(baselines.fit("va", va), [0.3, -0.2])
    expr = np.array([[2], [2], [5], [-1], [-1], [-1]])
    out = baselines.fit("expr", expr)
    np.testing.assert_allclose(out, [0, 0, 2 / 3, 0, 0, 1 / 3, 0])
    assert baselines.decide("expr", out)[0] == 2
    au = np.zeros((4, 12))
    au[:3, 0] = 1
    au[:2, 1] = 1  # exactly half: not above 0.5
    au[3] = -1
    rates = baselines.fit("au", au)
    np.testing.assert_allclose(rates[:2], [1.0, 2 / 3])
    np.testing.assert_array_equal(baselines.decide("au", rates)[:3], [1, 1, 0])
    with pytest.raises(AbawError, match="no valid"):
        baselines.fit("va", np.full((3, 2), -5.0))


def test_baseline_scores(runs: tuple[Path, dict[str, Path]]) -> None:
    root, run_dirs = runs
    assert sorted(run_dirs) == sorted(tasks.TRACKS)
    scores = baselines.summary(run_dirs)
    assert scores["va"]["score"] == 0.0  # the training mean is a constant: CCC 0
    # EXPR: scored against the majority class of train
    ds = AffWild2(root)
    majority = int(np.bincount(_train(root, "expr")[:, 0].astype(int), minlength=7).argmax())
    val = np.concatenate([ds.labels(e) for e in ds.entries("validation", "expr")])[:, 0]
    val = val[val >= 0]
    acc = float(np.mean(val == majority))
    assert scores["expr"]["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert scores["expr"]["f1_per_class"][tasks.EXPR_CLASSES_7[majority]] > 0
    assert sum(v > 0 for v in scores["expr"]["f1_per_class"].values()) == 1
    # AU: every AU is rarer than 0.5 in the hand-made set, so all decisions are 0 and every F1 is 0
    assert (_train(root, "au").mean(axis=0) < 0.5).all()
    assert scores["au"]["f1"] == 0.0 and 0.5 < scores["au"]["accuracy"] < 1.0


def test_run_folders_follow_the_design(runs: tuple[Path, dict[str, Path]]) -> None:
    root, run_dirs = runs
    fingerprint = dataset_fingerprint(root)
    for track, run_dir in run_dirs.items():
        info = json.loads((run_dir / "run.json").read_text())
        assert info["kind"] == "baseline" and info["status"] == "finished" and info["tracks"] == [track]
        assert info["dataset_fingerprint"] == fingerprint and info["protocol"] == "abaw2021"
        assert info["run_id"] == run_dir.name and info["model"] == baselines.MODELS[track]
        assert json.loads((run_dir / "config.json").read_text())["track"] == track
        scores = json.loads((run_dir / "scores.json").read_text())
        assert scores["split"] == "validation" and list(scores["tracks"]) == [track]
        table = pd.read_parquet(run_dir / "predictions" / "validation.parquet")
        cols = {"va": list(tasks.VA_NAMES), "expr": tasks.expr_columns(), "au": tasks.au_columns()}[track]
        assert list(table.columns) == ["name", "frame", *cols]
        assert len(table) == sum(VIDEOS[tasks.split_two_person(n)[0]][2] for n in NAMES["validation"])
        if track == "expr":
            np.testing.assert_allclose(table[cols].sum(axis=1), 1.0, rtol=1e-6)
        # the result files are valid and score what scores.json says
        results = run_dir / "results" / "validation"
        assert validate_submission(results, root, "validation", track) == []
        rescored = score_result_folder(results, root, "validation", track)
        assert rescored["score"] == pytest.approx(scores["tracks"][track]["score"], abs=1e-12)
        assert validate_submission(run_dir / "results" / "test", root, "test", track) == []


def test_baselines_on_the_synthetic_set(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABAW_DB", str(tmp_path / "runs.sqlite"))
    run_dirs = baselines.run_baselines(tiny_root, tmp_path / "runs", record=True)
    assert set(run_dirs) == set(tasks.TRACKS)
    scores = baselines.summary(run_dirs)
    assert scores["va"]["score"] == 0.0
    assert 0.0 <= scores["expr"]["score"] < 1.0 and 0.0 <= scores["au"]["score"] < 1.0
    from abaw.runs import database

    assert database.count_runs(tmp_path / "runs.sqlite") == 3
