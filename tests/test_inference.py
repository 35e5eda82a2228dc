"""One inference path: ``abaw predict`` and ``abaw evaluate`` give the same outputs for the same checkpoint and
frames; the activation and decision rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from abaw import tasks
from abaw.inference import activate, decide, score


def test_predict_and_evaluate_give_the_same_outputs(tiny_mtl_run: Path, tiny_root_ro: Path) -> None:
    from abaw.apps.predict import ModelPredictor
    from abaw.data.affwild2 import AffWild2
    from abaw.runs.outputs import track_columns
    from abaw.train.evaluate import evaluate_run

    evaluate_run(tiny_mtl_run, tiny_root_ro, "validation", plots=False)
    table = pd.read_parquet(tiny_mtl_run / "predictions" / "validation.parquet")
    predictor = ModelPredictor(tiny_mtl_run)
    ds = AffWild2(tiny_root_ro)
    # windows of data.duration = 8 frames: a 48-frame video is cut into several, and predict must cut the same way
    assert table.groupby("name").size().min() > 2 * 8
    compared = 0
    for name, rows in table.groupby("name", sort=True):
        n = len(rows)
        out = predictor.predict(tiny_root_ro, str(name), tasks.split_two_person(str(name))[0], n, 30.0)
        face = ds.crop_mask(str(name), n)
        for track in ("va", "expr", "au"):
            evaluated = rows[track_columns(track)].to_numpy(np.float32)
            predicted = out[track]
            assert np.isnan(predicted[~face]).all()  # no face crop: predict gives no output, as before
            # equal up to float rounding (evaluate batches windows of several videos together, predict of one)
            np.testing.assert_allclose(predicted[face], evaluated[face], rtol=0, atol=1e-5, err_msg=f"{name} {track}")
            if track != "va":
                np.testing.assert_array_equal(decide(track, predicted[face]), decide(track, evaluated[face]))
        compared += int(face.sum())
    assert compared > len(table) // 2


def test_activation() -> None:
    logits = torch.tensor([[[0.0, 2.0, -1.0]]])
    np.testing.assert_allclose(activate("expr", logits).sum(-1).numpy(), 1.0, rtol=1e-6)
    assert activate("au", torch.zeros(1, 2, 3)).eq(0.5).all()
    assert activate("va", torch.tensor([1.5, -2.0, 0.25])).tolist() == [1.0, -1.0, 0.25]
    emb = torch.randn(2, 4, dtype=torch.bfloat16)
    assert activate("embedding", emb).dtype == torch.float32


def test_decisions() -> None:
    np.testing.assert_array_equal(decide("va", np.array([[1.2, -0.3]])), [[1.0, -0.3]])
    np.testing.assert_array_equal(decide("expr", np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])), [1, 0])
    probs = np.array([[0.5, 0.49, 0.9]])
    np.testing.assert_array_equal(decide("au", probs), [[1, 0, 1]])  # at the threshold counts as present
    np.testing.assert_array_equal(decide("au", probs, np.array([0.6, 0.4, 0.95])), [[0, 1, 0]])  # per AU


def test_score_takes_outputs_and_thresholds() -> None:
    n_au = len(tasks.au_columns())
    true = np.random.default_rng(0).integers(0, 2, size=(40, n_au)).astype(np.float32)
    true[0], true[1] = 0, 1  # every AU has both classes
    prob = 0.2 + 0.6 * true  # 0.8 where present, 0.2 where absent
    assert score("au", prob, true)["f1"] == pytest.approx(1.0)
    assert score("au", prob, true, thresholds=np.full(n_au, 0.9))["f1"] == pytest.approx(0.0)
    n_expr = len(tasks.expr_columns())
    labels = np.arange(40) % n_expr
    assert score("expr", np.eye(n_expr)[labels], labels[:, None])["accuracy"] == pytest.approx(1.0)
