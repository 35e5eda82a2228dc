"""Official ABAW metrics: CCC, the VA, EXPR and AU scores of every protocol, and the multi-task score.

Every function takes predictions and labels concatenated over all videos of a split and drops the frames whose label
is invalid (-5 VA, -1 EXPR/AU) itself. F1 and accuracy come from scikit-learn (macro F1 over *all* classes of the
protocol, so a class that is never predicted counts as 0 — the public code of several entries used support-weighted
F1 instead, which inflates EXPR scores).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from abaw import tasks
from abaw.tasks import valid_mask


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's concordance correlation coefficient with population moments, in float64.

    0 for an empty input and for a constant prediction (never NaN); 1 when both inputs are the same constant.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"ccc: shapes differ ({x.shape} vs {y.shape})")
    if x.size == 0:
        return 0.0
    x_const, y_const = x.min() == x.max(), y.min() == y.max()
    if x_const or y_const:
        # Tested exactly: the mean of a constant array can differ from it by rounding, leaving a ~1e-34 covariance.
        # Both constant and equal is perfect agreement, where the formula is 0/0.
        return 1.0 if x_const and y_const and x[0] == y[0] else 0.0
    dx, dy = x - x.mean(), y - y.mean()
    var_x, var_y, cov = np.mean(dx * dx), np.mean(dy * dy), np.mean(dx * dy)
    return float(2.0 * cov / (var_x + var_y + (x.mean() - y.mean()) ** 2))


def _as_2d(a: np.ndarray, k: int, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 1 and k == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != k:
        raise ValueError(f"{what}: expected shape (N, {k}), got {a.shape}")
    return a


def _check_pair(pred: np.ndarray, true: np.ndarray) -> None:
    if len(pred) != len(true):
        raise ValueError(f"predictions and labels differ in length ({len(pred)} vs {len(true)})")


def va_score(pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """VA score = mean of the valence and arousal CCC over frames with a valid label. ``pred``/``true`` (N, 2)."""
    pred = _as_2d(pred, 2, "VA predictions").astype(np.float64)
    true = _as_2d(true, 2, "VA labels").astype(np.float64)
    _check_pair(pred, true)
    keep = valid_mask("va", true)
    if not np.isfinite(pred[keep]).all():
        raise ValueError("VA predictions contain NaN or inf")
    c_v = ccc(pred[keep, 0], true[keep, 0])
    c_a = ccc(pred[keep, 1], true[keep, 1])
    return {"score": (c_v + c_a) / 2.0, "ccc_valence": c_v, "ccc_arousal": c_a, "n_frames": int(keep.sum())}


def expr_combined(f1: Any, accuracy: Any, protocol: str | tasks.Protocol | None = None) -> Any:
    """The EXPR score of a protocol from its macro F1 and accuracy (numbers or arrays of them)."""
    proto = tasks.get_protocol(protocol)
    return tasks.EXPR_F1_WEIGHT * f1 + tasks.EXPR_ACC_WEIGHT * accuracy if proto.expr_metric == "f1_acc" else f1


def au_combined(f1: Any, accuracy: Any, protocol: str | tasks.Protocol | None = None) -> Any:
    """The AU score of a protocol from its mean per-AU F1 and accuracy (numbers or arrays of them)."""
    proto = tasks.get_protocol(protocol)
    return tasks.AU_F1_WEIGHT * f1 + tasks.AU_ACC_WEIGHT * accuracy if proto.au_metric == "f1_acc" else f1


def expr_indices(pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices from indices (N,) / (N, 1) or per-class scores (N, n_classes)."""
    pred = np.asarray(pred)
    if pred.ndim == 2 and pred.shape[1] == n_classes and n_classes > 1:
        return pred.argmax(axis=1)
    return _as_2d(pred, 1, "EXPR predictions")[:, 0]


def expr_score(pred: np.ndarray, true: np.ndarray, protocol: str | tasks.Protocol | None = None) -> dict[str, Any]:
    """EXPR score: 0.67 macro F1 + 0.33 accuracy (2020, 2021) or macro F1 (2022 on), over valid frames."""
    proto = tasks.get_protocol(protocol)
    pred = expr_indices(pred, proto.n_expr)
    true = _as_2d(true, 1, "EXPR labels")[:, 0]
    _check_pair(pred, true)
    keep = valid_mask("expr", true)
    if not np.isfinite(np.asarray(pred[keep], dtype=np.float64)).all():
        raise ValueError("EXPR predictions contain NaN or inf")
    y_true, y_pred = true[keep].astype(np.int64), pred[keep].astype(np.int64)
    classes = list(range(proto.n_expr))
    if len(y_true):
        per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
        accuracy = float(accuracy_score(y_true, y_pred))
    else:
        per_class, accuracy = np.zeros(len(classes)), 0.0
    f1 = float(np.mean(per_class))  # equals f1_score(average="macro", labels=classes)
    score = expr_combined(f1, accuracy, proto)
    return {"score": float(score), "f1": f1, "accuracy": accuracy,
            "f1_per_class": {c: float(v) for c, v in zip(proto.expr_classes, per_class, strict=True)},
            "n_frames": int(keep.sum())}


def au_score(pred: np.ndarray, true: np.ndarray, protocol: str | tasks.Protocol | None = None) -> dict[str, Any]:
    """AU score: 0.5 mean per-AU F1 + 0.5 accuracy over all decisions (2020, 2021) or mean per-AU F1 (2022 on).

    ``pred`` is 0/1 (N, n_au); probabilities are thresholded at 0.5.
    """
    proto = tasks.get_protocol(protocol)
    pred = _as_2d(pred, proto.n_au, "AU predictions")
    true = _as_2d(true, proto.n_au, "AU labels")
    _check_pair(pred, true)
    keep = valid_mask("au", true)
    if not np.isfinite(np.asarray(pred[keep], dtype=np.float64)).all():
        raise ValueError("AU predictions contain NaN or inf")
    y_true = true[keep].astype(np.int64)
    y_pred = (np.asarray(pred[keep], dtype=np.float64) >= 0.5).astype(np.int64)
    if len(y_true):
        # multilabel indicator input: one call gives each AU's binary F1 (positive class 1)
        per_au = np.asarray(f1_score(y_true, y_pred, average=None, zero_division=0), dtype=np.float64)
        accuracy = float(accuracy_score(y_true.ravel(), y_pred.ravel()))
    else:
        per_au, accuracy = np.zeros(proto.n_au), 0.0
    f1 = float(np.mean(per_au))
    score = au_combined(f1, accuracy, proto)
    return {"score": float(score), "f1": f1, "accuracy": accuracy,
            "f1_per_au": {a: float(v) for a, v in zip(proto.au_names, per_au, strict=True)},
            "n_frames": int(keep.sum())}


def score_track(track: str, pred: np.ndarray, true: np.ndarray,
                protocol: str | tasks.Protocol | None = None) -> dict[str, Any]:
    """The official score of one track (key ``score``) and its components; see the per-track functions."""
    track = tasks.check_track(track)
    proto = tasks.get_protocol(protocol)
    if track == "va":
        result = va_score(pred, true)
    elif track == "expr":
        result = expr_score(pred, true, proto)
    else:
        result = au_score(pred, true, proto)
    return {"track": track, "protocol": proto.name, **result}


def multitask_score(pred: dict[str, np.ndarray], true: dict[str, np.ndarray],
                    protocol: str | tasks.Protocol | None = "abaw2022") -> dict[str, Any]:
    """ABAW 2022 multi-task score: ``(CCC_v + CCC_a)/2 + mean F1 over expressions + mean F1 over AUs``.

    ``pred`` and ``true`` map ``va``/``expr``/``au`` to arrays over the same frames; each task drops its own invalid
    labels.
    """
    proto = tasks.get_protocol(protocol)
    va = va_score(pred["va"], true["va"])
    expr = expr_score(pred["expr"], true["expr"], proto)
    au = au_score(pred["au"], true["au"], proto)
    return {"score": va["score"] + expr["f1"] + au["f1"], "va": va["score"], "ccc_valence": va["ccc_valence"],
            "ccc_arousal": va["ccc_arousal"], "expr_f1": expr["f1"], "au_f1": au["f1"],
            "f1_per_class": expr["f1_per_class"], "f1_per_au": au["f1_per_au"], "protocol": proto.name}
