"""Losses for the three tracks, masked by label validity and by padding.

Every loss takes per-frame predictions and targets of any leading shape (B, T) or (N,) and a boolean ``mask`` of
that shape (True = a real frame). Invalid labels (``abaw.tasks.INVALID``: VA -5, EXPR -1, AU -1) are left out too.
A batch without any valid label gives a zero loss that still depends on the predictions (so backward works and no
NaN appears). Losses are computed in float32 whatever the autocast dtype of the predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from abaw.tasks import AU_INVALID, EXPR_INVALID, VA_INVALID, check_track

EPS = 1e-8
VA_LOSSES: tuple[str, ...] = ("ccc", "mse", "ccc+mse")


def _zero(pred: torch.Tensor) -> torch.Tensor:
    return pred.float().sum() * 0.0 + 0.0  # "+ 0.0" turns a -0.0 into 0.0


def _frame_mask(target: torch.Tensor, mask: torch.Tensor | None, ndim: int) -> torch.Tensor:
    shape = target.shape[:ndim]
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=target.device)
    return mask.to(device=target.device, dtype=torch.bool).expand(shape)


def va_valid(target: torch.Tensor) -> torch.Tensor:
    """Element-wise validity of VA labels (the -5 marker, NaN, or anything outside [-1, 1] is invalid)."""
    return torch.isfinite(target) & (target >= -1.0) & (target <= 1.0) & (target != VA_INVALID)


def concordance(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Lin's CCC per last-dim column over the valid elements, population moments. (N, K) -> (K,); (N,) -> ()."""
    dtype = torch.promote_types(pred.dtype, torch.float32)  # float32 at least; float64 stays float64
    pred, target = pred.to(dtype), target.to(dtype)
    if valid is None:
        valid = torch.ones_like(target, dtype=torch.bool)
    w = valid.to(pred.dtype)
    n = w.sum(dim=0).clamp(min=1.0)
    x = torch.where(valid, pred, 0.0)
    y = torch.where(valid, target, 0.0)
    mx, my = x.sum(dim=0) / n, y.sum(dim=0) / n
    dx, dy = (x - mx) * w, (y - my) * w
    vx, vy = (dx * dx).sum(dim=0) / n, (dy * dy).sum(dim=0) / n
    cov = (dx * dy).sum(dim=0) / n
    return 2.0 * cov / (vx + vy + (mx - my) ** 2 + EPS)


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``1 - mean CCC`` over the columns (valence, arousal), each over all valid frames of the batch."""
    k = pred.shape[-1]
    valid = va_valid(target) & _frame_mask(target, mask, target.dim() - 1).unsqueeze(-1)
    pred2, target2, valid2 = pred.reshape(-1, k), target.reshape(-1, k), valid.reshape(-1, k)
    has = valid2.any(dim=0)
    if not bool(has.any()):
        return _zero(pred)
    ccc = concordance(pred2, target2, valid2)
    return 1.0 - ccc[has].mean()


def mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the valid VA values."""
    valid = va_valid(target) & _frame_mask(target, mask, target.dim() - 1).unsqueeze(-1)
    if not bool(valid.any()):
        return _zero(pred)
    return F.mse_loss(pred.float()[valid], target.float()[valid])


def cross_entropy_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                       weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over the frames with a valid class (``target`` (…,) ints, -1 invalid); class weights give the
    weighted mean (as ``F.cross_entropy``)."""
    n_classes = logits.shape[-1]
    target = target.long()
    valid = (target != EXPR_INVALID) & (target >= 0) & (target < n_classes) & _frame_mask(target, mask, target.dim())
    if not bool(valid.any()):
        return _zero(logits)
    weight = weight.to(logits.device, torch.float32) if weight is not None else None
    return F.cross_entropy(logits.float()[valid], target[valid], weight=weight, label_smoothing=label_smoothing)


def bce_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
             pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy with logits over the valid AU decisions (``target`` (…, n_au) 0/1, -1 invalid)."""
    target = target.float()
    valid = (target != AU_INVALID) & (target >= 0) & _frame_mask(target, mask, target.dim() - 1).unsqueeze(-1)
    if not bool(valid.any()):
        return _zero(logits)
    pw = None
    if pos_weight is not None:
        pw = pos_weight.to(logits.device, torch.float32).expand_as(target)[valid]
    return F.binary_cross_entropy_with_logits(logits.float()[valid], target[valid], pos_weight=pw)


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights normalised to mean 1, from labels (invalid -1 ignored; absent classes 0)."""
    labels = labels.flatten().long()
    counts = torch.bincount(labels[labels >= 0], minlength=n_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp(min=1)), 0.0)
    return weights / weights[counts > 0].mean() if bool((counts > 0).any()) else torch.ones(n_classes)


def pos_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-AU ``negatives / positives`` from labels (…, n_au) with -1 invalid (1 where an AU has no positive)."""
    labels = labels.reshape(-1, labels.shape[-1]).float()
    pos = (labels == 1).sum(dim=0).float()
    neg = (labels == 0).sum(dim=0).float()
    return torch.where(pos > 0, neg / pos.clamp(min=1), 1.0)


class MultiTaskLoss(nn.Module):
    """Weighted sum of the per-task losses: ``total = sum_t weights[t] * loss_t``.

    ``forward(outputs, targets, mask)``: ``outputs`` the model's dict; ``targets[t]`` per task in ``tasks``
    (``va`` (B, T, 2) float, ``expr`` (B, T) int, ``au`` (B, T, n_au) float/int, invalid markers kept); an optional
    ``targets[t + "_valid"]`` (B, T) bool removes more frames; ``mask`` (B, T) True for real frames. A task missing
    from ``targets`` or without a valid label contributes 0. Returns ``(total, {task: loss, ...})``.
    """

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, va_loss: str = "ccc",
                 expr_class_weights: Sequence[float] | torch.Tensor | None = None, label_smoothing: float = 0.0,
                 au_pos_weight: Sequence[float] | torch.Tensor | None = None):
        super().__init__()
        self.tasks = tuple(check_track(t) for t in tasks)
        weights = dict(weights or {})
        self.weights = {t: float(weights.get(t, 1.0)) for t in self.tasks}
        if va_loss not in VA_LOSSES:
            raise ValueError(f"va_loss must be one of {VA_LOSSES}, got {va_loss!r}")
        self.va_loss = va_loss
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("expr_class_weights", _tensor(expr_class_weights), persistent=False)
        self.register_buffer("au_pos_weight", _tensor(au_pos_weight), persistent=False)

    def task_loss(self, task: str, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if task == "va":
            if self.va_loss == "ccc":
                return ccc_loss(pred, target, mask)
            if self.va_loss == "mse":
                return mse_loss(pred, target, mask)
            return ccc_loss(pred, target, mask) + mse_loss(pred, target, mask)
        if task == "expr":
            return cross_entropy_loss(pred, target, mask, self.expr_class_weights, self.label_smoothing)
        return bce_loss(pred, target, mask, self.au_pos_weight)

    def forward(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total: torch.Tensor | None = None
        for task in self.tasks:
            pred = outputs[task]
            if task not in targets:
                loss = _zero(pred)
            else:
                frames = _frame_mask(pred, mask, pred.dim() - 1)
                extra = targets.get(f"{task}_valid")
                if extra is not None:
                    frames = frames & extra.to(device=frames.device, dtype=torch.bool)
                loss = self.task_loss(task, pred, targets[task].to(pred.device), frames)
            parts[task] = loss.detach()
            total = self.weights[task] * loss if total is None else total + self.weights[task] * loss
        if total is None:
            raise ValueError("MultiTaskLoss has no task")
        return total, parts


def _tensor(values: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    if values is None:
        return None
    return torch.as_tensor(values, dtype=torch.float32).clone()
