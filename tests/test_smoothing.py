"""Temporal smoothing filters and per-AU thresholds, each against a naive reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import f1_score

from abaw import tasks
from abaw.posthoc.smoothing import smooth, smooth_by_video, tune_smoothing
from abaw.posthoc.thresholds import f1_per_threshold, tune_thresholds, tune_thresholds_cv


def _naive_window(x: np.ndarray, window: int, reduce) -> np.ndarray:
    """Centred window with edge replication, one frame at a time."""
    half = window // 2
    padded = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], window - 1 - half, 0)])
    return np.stack([reduce(padded[i: i + window], axis=0) for i in range(len(x))])


@pytest.mark.parametrize("window", [3, 5, 9])
def test_box_and_median_match_a_naive_window(window: int) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3))
    assert np.allclose(smooth(x, "box", window), _naive_window(x, window, np.mean))
    assert np.allclose(smooth(x, "median", window), _naive_window(x, window, np.median))


def test_gaussian_keeps_constants_and_reduces_noise() -> None:
    rng = np.random.default_rng(1)
    assert np.allclose(smooth(np.full((30, 2), 0.3), "gaussian", 9), 0.3)
    noise = rng.normal(size=(500, 1))
    assert smooth(noise, "gaussian", 25).std() < 0.5 * noise.std()
    assert np.array_equal(smooth(noise, "box", 1), noise)
    with pytest.raises(ValueError, match="unknown smoothing method"):
        smooth(noise, "mean", 3)


def test_videos_are_smoothed_separately() -> None:
    names = np.array(["a"] * 10 + ["b"] * 10)
    values = np.r_[np.zeros(10), np.ones(10)][:, None]
    for method in ("box", "gaussian", "median"):
        assert np.array_equal(smooth_by_video("va", values, names, method, 9), values)


def test_median_of_probabilities_is_renormalised() -> None:
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(7), size=50)
    out = smooth_by_video("expr", p, np.array(["a"] * 50), "median", 5)
    assert np.allclose(out.sum(axis=1), 1.0)


def test_tuned_smoothing_gains_on_noisy_va_and_reports_held_out() -> None:
    rng = np.random.default_rng(3)
    names = np.repeat([f"v{i}" for i in range(4)], 200)
    true = np.tanh(ndimage.gaussian_filter1d(rng.normal(size=(800, 2)) * 10, 10, axis=0)).astype(np.float32)
    pred = true + rng.normal(0, 0.3, true.shape)
    res = tune_smoothing("va", pred, true, names, windows=(1, 5, 15, 25), n_splits=4)
    assert res.window > 1 and res.gain > 0.05
    assert res.values.shape == pred.shape
    assert res.in_sample_score >= res.cv_score - 1e-9 or abs(res.in_sample_score - res.cv_score) < 0.05
    assert sorted(v for f in res.folds for v in f["held_out_videos"]) == ["v0", "v1", "v2", "v3"]
    assert {"cv_score", "in_sample_score", "gain", "note"} <= set(res.summary())


def test_f1_table_matches_sklearn() -> None:
    rng = np.random.default_rng(4)
    true = rng.integers(0, 2, size=(300, 3)).astype(float)
    true[:5, 1] = tasks.AU_INVALID
    prob = np.clip(true * 0.4 + rng.uniform(0, 0.6, true.shape), 0, 1)
    grid = np.array([0.2, 0.5, 0.8])
    table = f1_per_threshold(prob, true, grid)
    for j in range(3):
        ok = true[:, j] >= 0
        for g, t in enumerate(grid):
            assert table[j, g] == pytest.approx(f1_score(true[ok, j], prob[ok, j] >= t, zero_division=0))


def test_thresholds_find_the_shifted_boundary() -> None:
    rng = np.random.default_rng(5)
    n_au = tasks.get_protocol("abaw2021").n_au
    true = rng.integers(0, 2, size=(2000, n_au)).astype(float)
    # an under-confident detector: positives score around 0.27, negatives around 0.05, overlapping
    prob = 1 / (1 + np.exp(-(rng.normal(-3, 1, true.shape) + 2 * true)))
    thr = tune_thresholds(prob, true)
    assert np.all(thr <= 0.35)  # the default 0.5 would miss most positives
    names = np.repeat([f"v{i}" for i in range(5)], 400)
    res = tune_thresholds_cv(prob, true, names, "abaw2021")
    assert res.cv_score > res.default_score
    assert res.row_thresholds.shape == prob.shape
