"""Crowd layers (Rodrigues & Pereira, "Deep learning from crowds", AAAI 2018) and their masked per-annotator losses.

Classification, on the model's class probabilities ``p`` (B, K) -> per-annotator outputs (B, K, R):
``MW`` ``p @ W_r`` (W_r K x K, identity init); ``VW`` ``p * w_r`` (ones); ``VB`` ``p + b_r`` (zeros);
``VW+B`` ``p * w_r + b_r``. As in the authors' code (``MaskedMultiCrossEntropy`` uses
``softmax_cross_entropy_with_logits`` on the layer's output), these outputs are **scores**: the loss applies a
softmax over the K classes of each annotator. So ``softmax(W_r[k])`` is annotator r's estimated label distribution
for an item of true class k, i.e. row k of their confusion matrix (:meth:`CrowdClassification.confusion`).

Regression, on the output ``x`` (B, 1) -> (B, R): ``S`` ``x * s_r`` (ones); ``B`` ``x + b_r`` (zeros);
``S+B`` ``x * s_r + b_r``; ``B+S`` ``(x + b_r) * s_r``. Loss: per-annotator squared error.

Missing labels (code -1, or NaN for values) are masked out of the loss. At inference the crowd layer is dropped:
``p`` (or ``x``) is the prediction (:class:`CrowdModel` returns it as ``"pred"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CLASSIFICATION_TYPES: tuple[str, ...] = ("MW", "VW", "VB", "VW+B")
REGRESSION_TYPES: tuple[str, ...] = ("S", "B", "S+B", "B+S")


class CrowdClassification(nn.Module):
    """Per-annotator transformation of class probabilities (B, K) -> scores (B, K, R)."""

    def __init__(self, n_classes: int, n_annotators: int, conn_type: str = "MW") -> None:
        super().__init__()
        conn_type = conn_type.upper()
        if conn_type not in CLASSIFICATION_TYPES:
            raise ValueError(f"unknown crowd layer {conn_type!r}; choose one of {', '.join(CLASSIFICATION_TYPES)}")
        self.conn_type, self.n_classes, self.n_annotators = conn_type, n_classes, n_annotators
        k, r = n_classes, n_annotators
        if conn_type == "MW":
            self.weight = nn.Parameter(torch.eye(k).repeat(r, 1, 1))  # (R, K, K), W_r = identity
        if conn_type in ("VW", "VW+B"):
            self.scale = nn.Parameter(torch.ones(r, k))
        if conn_type in ("VB", "VW+B"):
            self.bias = nn.Parameter(torch.zeros(r, k))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        if self.conn_type == "MW":
            return torch.einsum("bk,rkj->bjr", p, self.weight)
        out = p[:, :, None]
        if self.conn_type in ("VW", "VW+B"):
            out = out * self.scale.t()[None]
        if self.conn_type in ("VB", "VW+B"):
            out = out + self.bias.t()[None]
        return out.expand(-1, -1, self.n_annotators) if out.shape[2] == 1 else out

    @torch.no_grad()
    def init_from_confusion(self, confusion: torch.Tensor, floor: float = 1e-3) -> None:
        """MW only: start from known confusion matrices (R, K, K), e.g. Dawid-Skene's, by setting
        ``W_r = log(confusion_r)`` so that :meth:`confusion` returns them (rows floored at ``floor``)."""
        if self.conn_type != "MW":
            raise ValueError("only the MW crowd layer can start from confusion matrices")
        conf = torch.as_tensor(confusion, dtype=self.weight.dtype).clamp(min=floor)
        self.weight.copy_(torch.log(conf / conf.sum(dim=2, keepdim=True)))

    @torch.no_grad()
    def confusion(self) -> torch.Tensor:
        """Estimated confusion matrices (R, K, K): row k is softmax over the layer's scores for a one-hot class k."""
        eye = torch.eye(self.n_classes, device=next(self.parameters()).device)
        return torch.softmax(self.forward(eye), dim=1).permute(2, 0, 1)


class CrowdRegression(nn.Module):
    """Per-annotator scale and/or bias of a scalar output (B, 1) or (B,) -> (B, R)."""

    def __init__(self, n_annotators: int, conn_type: str = "S+B") -> None:
        super().__init__()
        conn_type = conn_type.upper()
        if conn_type not in REGRESSION_TYPES:
            raise ValueError(f"unknown crowd layer {conn_type!r}; choose one of {', '.join(REGRESSION_TYPES)}")
        self.conn_type, self.n_annotators = conn_type, n_annotators
        if "S" in conn_type:
            self.scale = nn.Parameter(torch.ones(n_annotators))
        if "B" in conn_type:
            self.bias = nn.Parameter(torch.zeros(n_annotators))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1)
        if self.conn_type == "S":
            return x * self.scale
        if self.conn_type == "B":
            return x + self.bias
        if self.conn_type == "S+B":
            return x * self.scale + self.bias
        return (x + self.bias) * self.scale  # B+S


def crowd_cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of per-annotator scores (B, K, R) against codes (B, R) over the observed labels
    (code -1 = missing). Zero (with a gradient path) when nothing is observed."""
    return F.cross_entropy(scores, labels.long(), ignore_index=-1, reduction="sum") / (labels >= 0).sum().clamp(min=1)


def crowd_mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error of per-annotator outputs (B, R) against values (B, R) over the observed (non-NaN) ones."""
    seen = ~torch.isnan(targets)
    diff = torch.where(seen, outputs - torch.nan_to_num(targets), torch.zeros_like(outputs))
    return (diff ** 2).sum() / seen.sum().clamp(min=1)


class CrowdModel(nn.Module):
    """A base model giving class logits (or a scalar) plus a crowd layer used only in training.

    ``forward`` returns ``{"pred": p or x, "crowd": per-annotator outputs}``; ``predict`` (and ``eval`` use of
    ``base``) drops the crowd layer.
    """

    def __init__(self, base: nn.Module, crowd: CrowdClassification | CrowdRegression) -> None:
        super().__init__()
        self.base, self.crowd = base, crowd

    @property
    def classification(self) -> bool:
        return isinstance(self.crowd, CrowdClassification)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.base(x)
        pred = torch.softmax(out, dim=1) if self.classification else out
        return {"pred": pred, "logits": out, "crowd": self.crowd(pred)}

    def loss(self, out: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        if self.classification:
            return crowd_cross_entropy(out["crowd"], targets)
        return crowd_mse(out["crowd"], targets)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        return torch.softmax(out, dim=1) if self.classification else out
