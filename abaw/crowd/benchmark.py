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
    runs = [("mv", None), ("soft", None), ("ds", None)] + [("crowd", c) for c in CLASSIFICATION_TYPES]
    for method, conn in runs:
        fit = fit_crowd(_mlp(dim, n_classes, seed), x, codes, n_classes, method=method, conn_type=conn or "MW", **kw)
        key = method if conn is None else f"crowd_{conn}"
        out["test_accuracy"][key] = float((predict_classes(fit.base, xt).argmax(1) == test.y).mean())
        if conn == "MW":
            est = fit.crowd.confusion().numpy()
            per = np.abs(est - conf).mean(axis=(1, 2))
            out["crowd_layer_confusion_mae"] = {
                "mean_vs_true": float(per.mean()), "max_vs_true": float(per.max()),
                "mean_vs_realised": float(np.abs(est - realised).mean()),
                "per_annotator": {f"{i}:{kind}": float(e) for i, (kind, e) in enumerate(zip(kinds, per, strict=True))},
            }
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out
