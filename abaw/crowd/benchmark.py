"""The simulated-annotator benchmark behind ``abaw crowd simulate``: how well majority vote and Dawid-Skene recover
the true labels, how well each crowd layer recovers the annotators' confusion matrices, and the test accuracy of a
small MLP trained on MV, soft labels, DS posteriors, or through each crowd layer."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from abaw.crowd.aggregate import dawid_skene, majority_vote_codes
from abaw.crowd.layers import CLASSIFICATION_TYPES
from abaw.crowd.simulate import annotator_panel, empirical_confusion, gaussian_clusters, simulate_annotations
from abaw.crowd.train import fit_crowd, predict_classes


def _mlp(dim: int, n_classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, n_classes))


def simulated_benchmark(n_classes: int = 5, dim: int = 10, n_items: int = 1500, n_test: int = 1000,
                        reliable: int = 2, noisy: int = 3, adversarial: int = 3, missing: float = 0.2,
                        epochs: int = 30, separation: float = 3.0, seed: int = 0) -> dict[str, Any]:
    """Run the benchmark; returns the figures as a JSON-ready dict."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # MLPs this small run fastest on one thread (and do not fight other jobs for cores)
    try:
        return _benchmark(n_classes, dim, n_items, n_test, reliable, noisy, adversarial, missing, epochs,
                          separation, seed)
    finally:
        torch.set_num_threads(threads)


def _benchmark(n_classes: int, dim: int, n_items: int, n_test: int, reliable: int, noisy: int, adversarial: int,
               missing: float, epochs: int, separation: float, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    train, centers = gaussian_clusters(n_items, n_classes, dim, rng, separation=separation)
    test, _ = gaussian_clusters(n_test, n_classes, dim, rng, centers=centers)
    conf, kinds = annotator_panel(n_classes, rng, reliable=reliable, noisy=noisy, adversarial=adversarial)
    codes = simulate_annotations(train.y, conf, rng, missing=missing)
    realised = empirical_confusion(train.y, codes, n_classes)

    mv = majority_vote_codes(codes, n_classes)
    ds = dawid_skene(codes, n_classes)
    out: dict[str, Any] = {
        "setup": {"classes": n_classes, "items": n_items, "annotators": kinds, "missing": missing, "seed": seed},
        "label_recovery": {"majority_vote_accuracy": float((mv.labels == train.y).mean()),
                           "majority_vote_ties": mv.n_ties,
                           "dawid_skene_accuracy": float((ds.labels == train.y).mean()),
                           "dawid_skene_confusion_mae": float(np.abs(ds.confusion - conf).mean())},
        "test_accuracy": {}, "crowd_layer_confusion_mae": {},
    }
    x, xt = torch.from_numpy(train.x), torch.from_numpy(test.x)
    kw = {"epochs": epochs, "lr": 3e-3, "crowd_lr": 1e-2, "batch_size": 64, "seed": seed}
    runs = [("mv", None, "identity"), ("soft", None, "identity"), ("ds", None, "identity")]
    runs += [("crowd", c, "identity") for c in CLASSIFICATION_TYPES] + [("crowd", "MW", "ds")]
    for method, conn, init in runs:
        fit = fit_crowd(_mlp(dim, n_classes, seed), x, codes, n_classes, method=method, conn_type=conn or "MW",
                        crowd_init=init, **kw)
        key = method if conn is None else f"crowd_{conn}" + ("_ds_init" if init == "ds" else "")
        out["test_accuracy"][key] = float((predict_classes(fit.base, xt).argmax(1) == test.y).mean())
        if conn == "MW" and init == "identity":
            est = fit.crowd.confusion().numpy()
            per = np.abs(est - conf).mean(axis=(1, 2))
            out["crowd_layer_confusion_mae"] = {
                "mean_vs_true": float(per.mean()), "max_vs_true": float(per.max()),
                "mean_vs_realised": float(np.abs(est - realised).mean()),
                "per_annotator": {f"{i}:{kind}": float(e) for i, (kind, e) in enumerate(zip(kinds, per, strict=True))},
            }
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


# ---- valence/arousal-like values -----------------------------------------------------------------------------------

def _value_mlp(dim: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, 1), nn.Tanh())


def value_benchmark(dim: int = 10, n_items: int = 1500, n_test: int = 1000, reliable: int = 2, noisy: int = 3,
                    adversarial: int = 3, missing: float = 0.2, epochs: int = 30, seed: int = 0) -> dict[str, Any]:
    """Regression crowd layers (S, B, S+B, B+S) against training on the majority level, mean and median of the
    annotators' values: simulated value annotators (:func:`abaw.crowd.simulate.value_panel`, AffectNetC25's 9
    levels) label a small regression problem; test CCC and RMSE against the truth. A crowd layer's model is read as
    its base output (layer dropped) and as the average annotator."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _value_benchmark(dim, n_items, n_test, reliable, noisy, adversarial, missing, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _value_benchmark(dim: int, n_items: int, n_test: int, reliable: int, noisy: int, adversarial: int,
                     missing: float, epochs: int, seed: int) -> dict[str, Any]:
    from abaw.crowd.layers import REGRESSION_TYPES
    from abaw.crowd.regression import aggregate_values, fit_values, predict_values, value_scores
    from abaw.crowd.simulate import linear_targets, simulate_values, value_panel
    from abaw.tasks import AFFECTNETC25_VA_LEVELS

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    x, truth, w = linear_targets(n_items, dim, rng)
    xt, truth_t, _ = linear_targets(n_test, dim, rng, weights=w)
    panel = value_panel(rng, reliable, noisy, adversarial)
    values = simulate_values(truth, panel, rng, missing=missing, levels=AFFECTNETC25_VA_LEVELS)[:, :, None]
    out: dict[str, Any] = {
        "setup": {"items": n_items, "annotators": panel.kinds, "scale": panel.scale.round(3).tolist(),
                  "bias": panel.bias.round(3).tolist(), "missing": missing, "seed": seed},
        "label_recovery": {m: value_scores(aggregate_values(values, m, AFFECTNETC25_VA_LEVELS), truth[:, None],
                                           ("value",))["value"] for m in ("mv", "mean", "median")},
        "test": {},
    }
    xs, xts = torch.from_numpy(x), torch.from_numpy(xt)
    kw = {"epochs": epochs, "lr": 3e-3, "crowd_lr": 1e-2, "batch_size": 64, "seed": seed,
          "levels": AFFECTNETC25_VA_LEVELS}
    for method, conn in [("mv", None), ("mean", None), ("median", None)] + [("crowd", c) for c in REGRESSION_TYPES]:
        fit = fit_values(_value_mlp(dim, seed), xs, values, method=method, conn_type=conn or "S+B", **kw)
        key = method if conn is None else f"crowd_{conn}"
        out["test"][key] = value_scores(predict_values(fit.base, xts), truth_t[:, None], ("value",))["value"]
        if fit.crowd is not None:
            out["test"][f"{key}_average_annotator"] = value_scores(predict_values(fit.base, xts, fit.crowd),
                                                                   truth_t[:, None], ("value",))["value"]
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out
