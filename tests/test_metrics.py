"""Official metrics against scikit-learn and a float64 reference CCC, on random inputs and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.reference import reference_ccc
from sklearn.metrics import accuracy_score, f1_score

from abaw import tasks
from abaw.metrics import au_score, ccc, expr_score, multitask_score, score_track, va_score

TOL = 1e-9




@pytest.mark.parametrize("seed", range(5))
def test_ccc_matches_reference_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, 1000)
    y = 0.5 * x + rng.normal(0, 0.3, 1000) + 0.1
    assert ccc(x, y) == pytest.approx(reference_ccc(x, y), abs=TOL)
    assert ccc(x, y) == pytest.approx(ccc(y, x), abs=TOL)
    assert ccc(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(
        reference_ccc(x.astype(np.float32), y.astype(np.float32)), abs=TOL)


def test_ccc_edge_cases() -> None:
    x = np.linspace(-1, 1, 50)
    assert ccc(x, x) == 1.0
    assert ccc(x, -x) == pytest.approx(-1.0, abs=TOL)
    assert ccc(np.full(50, 0.3), x) == 0.0  # constant prediction: 0, not NaN
    assert ccc(np.full(50, x.mean()), x) == 0.0
    assert ccc(np.full(5, 0.2), np.full(5, 0.7)) == 0.0
    assert ccc(np.full(5, 0.2), np.full(5, 0.2)) == 1.0
    assert ccc(np.array([]), np.array([])) == 0.0
    assert ccc(x, x + 0.5) < 1.0  # a bias is penalised, unlike Pearson
    # population moments (N), not sample moments (N - 1): they differ on short inputs
    a, b = np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0])
    assert ccc(a, b) == pytest.approx(2 * (1 / 9) / (2 / 9 + 2 / 9 + 1 / 9), abs=TOL)
    with pytest.raises(ValueError):
        ccc(x, x[:-1])


def test_va_score_drops_invalid_frames() -> None:
    rng = np.random.default_rng(0)
    true = rng.uniform(-1, 1, (300, 2))
    pred = true + rng.normal(0, 0.2, (300, 2))
    invalid = rng.random(300) < 0.2
    true_with_markers = true.copy()
    true_with_markers[invalid] = tasks.VA_INVALID
    pred_garbage = pred.copy()
    pred_garbage[invalid] = 1.0  # predictions on invalid frames must not matter
    result = va_score(pred_garbage, true_with_markers)
    keep = ~invalid
    assert result["ccc_valence"] == pytest.approx(reference_ccc(pred[keep, 0], true[keep, 0]), abs=TOL)
    assert result["ccc_arousal"] == pytest.approx(reference_ccc(pred[keep, 1], true[keep, 1]), abs=TOL)
    assert result["score"] == pytest.approx((result["ccc_valence"] + result["ccc_arousal"]) / 2, abs=TOL)
    assert result["n_frames"] == keep.sum()


def test_training_mean_scores_zero() -> None:
    rng = np.random.default_rng(3)
    train, val = rng.uniform(-1, 1, (500, 2)), rng.uniform(-1, 1, (200, 2))
    assert va_score(np.tile(train.mean(axis=0), (200, 1)), val)["score"] == 0.0


@pytest.mark.parametrize("protocol", list(tasks.PROTOCOLS))
@pytest.mark.parametrize("seed", range(3))
def test_expr_score_matches_sklearn(protocol: str, seed: int) -> None:
    proto = tasks.get_protocol(protocol)
    rng = np.random.default_rng(seed)
    true = rng.integers(0, proto.n_expr, 400)
    pred = np.where(rng.random(400) < 0.5, true, rng.integers(0, proto.n_expr, 400))
    true_m = true.copy()
    invalid = rng.random(400) < 0.15
    true_m[invalid] = tasks.EXPR_INVALID
    result = expr_score(pred, true_m, protocol)
    keep = ~invalid
    labels = list(range(proto.n_expr))
    f1 = f1_score(true[keep], pred[keep], average="macro", labels=labels, zero_division=0)
    acc = accuracy_score(true[keep], pred[keep])
    assert result["f1"] == pytest.approx(f1, abs=TOL)
    assert result["accuracy"] == pytest.approx(acc, abs=TOL)
    expected = 0.67 * f1 + 0.33 * acc if protocol in ("abaw2020", "abaw2021") else f1
    assert result["score"] == pytest.approx(expected, abs=TOL)
    per_class = f1_score(true[keep], pred[keep], average=None, labels=labels, zero_division=0)
    assert list(result["f1_per_class"]) == list(proto.expr_classes)
    np.testing.assert_allclose(list(result["f1_per_class"].values()), per_class, atol=TOL)
    # class scores (N, n_classes) are reduced by argmax
    scores = np.eye(proto.n_expr)[pred] + 0.01
    assert expr_score(scores, true_m, protocol)["score"] == pytest.approx(result["score"], abs=TOL)


def test_expr_one_class_only_and_never_predicted_classes_count_zero() -> None:
    true = np.full(100, 4)
    pred = np.full(100, 4)
    result = expr_score(pred, true, "abaw2021")
    # macro F1 over all 7 classes: Happiness is perfect, the six absent classes score 0
    assert result["f1"] == pytest.approx(1 / 7, abs=TOL)
    assert result["f1"] == pytest.approx(f1_score(true, pred, average="macro", labels=list(range(7)),
                                                  zero_division=0), abs=TOL)
    assert result["accuracy"] == 1.0
    assert result["score"] == pytest.approx(0.67 / 7 + 0.33, abs=TOL)
    assert expr_score(np.zeros(100, int), true, "abaw2022")["score"] == 0.0


@pytest.mark.parametrize("protocol", list(tasks.PROTOCOLS))
@pytest.mark.parametrize("seed", range(3))
def test_au_score_matches_sklearn(protocol: str, seed: int) -> None:
    proto = tasks.get_protocol(protocol)
    rng = np.random.default_rng(seed)
    true = (rng.random((300, proto.n_au)) < 0.3).astype(int)
    pred = np.where(rng.random((300, proto.n_au)) < 0.7, true, 1 - true)
    true[:, 0] = 0  # an AU that never occurs: its F1 is 0 (zero_division=0)
    invalid = rng.random(300) < 0.1
    true_m = true.copy()
    true_m[invalid] = tasks.AU_INVALID
    result = au_score(pred, true_m, protocol)
    keep = ~invalid
    per_au = [f1_score(true[keep, j], pred[keep, j], zero_division=0) for j in range(proto.n_au)]
    acc = accuracy_score(true[keep].ravel(), pred[keep].ravel())
    assert result["f1"] == pytest.approx(np.mean(per_au), abs=TOL)
    assert result["f1_per_au"]["AU1"] == 0.0
    assert result["accuracy"] == pytest.approx(acc, abs=TOL)
    expected = 0.5 * np.mean(per_au) + 0.5 * acc if protocol in ("abaw2020", "abaw2021") else np.mean(per_au)
    assert result["score"] == pytest.approx(expected, abs=TOL)
    assert list(result["f1_per_au"]) == list(proto.au_names)
    # probabilities are thresholded at 0.5
    assert au_score(pred * 0.8 + 0.1, true_m, protocol)["score"] == pytest.approx(result["score"], abs=TOL)


def test_all_labels_invalid_in_one_video_changes_nothing() -> None:
    rng = np.random.default_rng(5)
    for track, make in (("va", lambda n: rng.uniform(-1, 1, (n, 2))),
                        ("expr", lambda n: rng.integers(0, 7, n)),
                        ("au", lambda n: (rng.random((n, 12)) < 0.4).astype(int))):
        true_a, pred_a = make(200), make(200)
        pred_b = make(60)
        true_b = np.full_like(pred_b, tasks.INVALID[track], dtype=np.float64)
        alone = score_track(track, pred_a, true_a)
        both = score_track(track, np.concatenate([pred_a, pred_b]), np.concatenate([true_a, true_b]))
        for key, value in alone.items():
            assert both[key] == (pytest.approx(value, abs=TOL) if isinstance(value, float) else value), key
        empty = score_track(track, pred_b, true_b)
        assert empty["score"] == 0.0 and empty["n_frames"] == 0


@pytest.mark.parametrize("protocol", list(tasks.PROTOCOLS))
def test_perfect_predictions_score_one(protocol: str) -> None:
    proto = tasks.get_protocol(protocol)
    rng = np.random.default_rng(0)
    va = rng.uniform(-1, 1, (100, 2)).astype(np.float32)
    expr = rng.integers(0, proto.n_expr, 100)
    au = (rng.random((100, proto.n_au)) < 0.5).astype(int)
    assert score_track("va", va, va, protocol)["score"] == 1.0
    assert score_track("expr", expr, expr, protocol)["score"] == 1.0
    assert score_track("au", au, au, protocol)["score"] == 1.0
    keys = {"va": {"ccc_valence", "ccc_arousal"}, "expr": {"f1", "accuracy", "f1_per_class"},
            "au": {"f1", "accuracy", "f1_per_au"}}
    for track, arr in (("va", va), ("expr", expr), ("au", au)):
        assert keys[track] | {"score", "n_frames", "track", "protocol"} <= set(score_track(track, arr, arr, protocol))


def test_multitask_score() -> None:
    rng = np.random.default_rng(2)
    n = 250
    true = {"va": rng.uniform(-1, 1, (n, 2)), "expr": rng.integers(0, 8, n),
            "au": (rng.random((n, 12)) < 0.3).astype(int)}
    pred = {"va": true["va"] * 0.5, "expr": np.where(rng.random(n) < 0.6, true["expr"], 7),
            "au": np.where(rng.random((n, 12)) < 0.8, true["au"], 1 - true["au"])}
    true["va"][:10] = tasks.VA_INVALID
    true["expr"][10:20] = tasks.EXPR_INVALID
    result = multitask_score(pred, true)
    k_va, k_ex = np.arange(n) >= 10, (np.arange(n) < 10) | (np.arange(n) >= 20)
    va = (reference_ccc(pred["va"][k_va, 0], true["va"][k_va, 0])
          + reference_ccc(pred["va"][k_va, 1], true["va"][k_va, 1])) / 2
    ex = f1_score(true["expr"][k_ex], pred["expr"][k_ex], average=None, labels=list(range(8)),
                  zero_division=0).sum() / 8
    au = sum(f1_score(true["au"][:, j], pred["au"][:, j], zero_division=0) for j in range(12)) / 12
    assert result["score"] == pytest.approx(va + ex + au, abs=TOL)
    assert multitask_score(true, true)["score"] == pytest.approx(3.0, abs=TOL)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="expected shape"):
        va_score(np.zeros((5, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="differ in length"):
        expr_score(np.zeros(4), np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        va_score(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        expr_score(np.array([0.0, np.nan]), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        au_score(np.full((2, 12), np.nan), np.zeros((2, 12)))
    # a NaN prediction on a frame whose label is invalid does not matter
    assert expr_score(np.array([1.0, np.nan]), np.array([1, -1]), "abaw2022")["f1"] == pytest.approx(1 / 8)
