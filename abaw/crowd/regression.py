"""Training a regressor (valence / arousal) from crowd values: on an aggregate of the annotators' values (``mv``, the
majority level; ``mean``; ``median``), or on every annotator's value through a regression crowd layer (``crowd``:
S, B, S+B or B+S, Rodrigues & Pereira; :mod:`abaw.crowd.layers`), one layer per dimension.

The crowd layer exists only during training. Its per-annotator outputs are affine in the base output ``x``, so the
prediction can be read two ways: ``x`` itself (the layer dropped, as in the paper), or the **average annotator**,
the mean of the per-annotator outputs (what the mean aggregate estimates; it fixes the scale/offset that the base
output and the layer can trade between them). Both are reported. Scores: CCC and RMSE per dimension.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from abaw.crowd.aggregate import majority_values, mean_values, median_values
from abaw.crowd.layers import REGRESSION_TYPES, CrowdRegression, crowd_mse
from abaw.crowd.train import _Indexed
from abaw.metrics import ccc
from abaw.train.fitting import epoch_line, loader_options, optimizer_step, pick_device, setup_device

log = logging.getLogger(__name__)

VALUE_METHODS: tuple[str, ...] = ("mv", "mean", "median", "crowd")


def aggregate_values(values: np.ndarray, method: str, levels: tuple[float, ...] | None = None) -> np.ndarray:
    """Per-item aggregate of crowd values ``(N, R, D)`` (NaN = no value) -> ``(N, D)``, NaN where nobody answered.
    ``mv`` needs the grid of ``levels`` the values lie on."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full((values.shape[0], values.shape[2]), np.nan)
    for d in range(values.shape[2]):
        if method == "mean":
            out[:, d] = mean_values(values[:, :, d])
        elif method == "median":
            out[:, d] = median_values(values[:, :, d])
        elif method == "mv":
            if levels is None:
                raise ValueError("the majority vote of values needs their levels")
            labels = majority_values(values[:, :, d], levels).labels
            out[:, d] = np.where(labels >= 0, np.asarray(levels)[np.clip(labels, 0, None)], np.nan)
        else:
            raise ValueError(f"unknown aggregate {method!r}; choose mv, mean or median")
    return out


class CrowdValues(nn.Module):
    """One regression crowd layer per output dimension: ``(B, D) -> (B, R, D)``."""

    def __init__(self, n_dims: int, n_annotators: int, conn_type: str = "S+B") -> None:
        super().__init__()
        self.layers = nn.ModuleList(CrowdRegression(n_annotators, conn_type) for _ in range(n_dims))
        self.conn_type = self.layers[0].conn_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([layer(x[:, d]) for d, layer in enumerate(self.layers)], dim=2)

    def average_annotator(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of the per-annotator outputs ``(B, D)``: the prediction in the average annotator's scale."""
        return self.forward(x).mean(dim=1)

    def parameters_table(self) -> dict[str, list[list[float]]]:
        """Per dimension, each annotator's ``scale`` and ``bias`` (1 and 0 where the layer type has none)."""
        out: dict[str, list[list[float]]] = {"scale": [], "bias": []}
        for layer in self.layers:
            r = layer.n_annotators
            out["scale"].append(layer.scale.detach().cpu().tolist() if hasattr(layer, "scale") else [1.0] * r)
            out["bias"].append(layer.bias.detach().cpu().tolist() if hasattr(layer, "bias") else [0.0] * r)
        return out


@dataclass
class ValueFit:
    base: nn.Module
    crowd: CrowdValues | None
    history: list[dict[str, float]] = field(default_factory=list)


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the non-NaN targets (any shape; zero when none)."""
    return crowd_mse(pred, target)


def fit_values(base: nn.Module, inputs: Dataset | torch.Tensor, values: np.ndarray, method: str = "crowd",
               conn_type: str = "S+B", epochs: int = 20, lr: float = 1e-3, batch_size: int = 64,
               weight_decay: float = 0.0, seed: int = 0, device: str | torch.device = "auto",
               crowd_lr: float | None = None, levels: tuple[float, ...] | None = None,
               on_epoch: Callable[[int, nn.Module, CrowdValues | None], dict[str, float]] | None = None,
               num_workers: int | None = 0) -> ValueFit:
    """Train ``base`` (inputs -> ``(B, D)`` values) from crowd values ``(N, R, D)`` (NaN = missing) with ``method``
    (see the module docstring). Adam; ``crowd_lr`` is the crowd layer's learning rate (default ``lr``);
    ``on_epoch(epoch, base, crowd)`` may return validation figures for the history."""
    if method not in VALUE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(VALUE_METHODS)}")
    if method == "crowd" and conn_type.upper() not in REGRESSION_TYPES:
        raise ValueError(f"unknown regression crowd layer {conn_type!r}; choose one of {', '.join(REGRESSION_TYPES)}")
    values = np.asarray(values, dtype=np.float64)
    torch.manual_seed(seed)
    if method == "crowd":
        targets = torch.from_numpy(values).float()  # (N, R, D)
    else:
        targets = torch.from_numpy(aggregate_values(values, method, levels)).float()  # (N, D)
    data = TensorDataset(inputs) if isinstance(inputs, torch.Tensor) else inputs
    device = setup_device(pick_device(device))
    loader = DataLoader(_Indexed(data), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), **loader_options(num_workers, device))
    crowd = CrowdValues(values.shape[2], values.shape[1], conn_type) if method == "crowd" else None
    base.to(device)
    groups = [{"params": list(base.parameters()), "lr": lr}]
    if crowd is not None:
        crowd.to(device)
        groups.append({"params": list(crowd.parameters()), "lr": crowd_lr or lr})
    opt = torch.optim.Adam(groups, weight_decay=weight_decay)
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        base.train()
        total, n = 0.0, 0
        for x, idx in loader:
            x, y = x.to(device), targets[idx].to(device)
            out = base(x)
            loss = masked_mse(crowd(out) if crowd is not None else out, y)
            optimizer_step(loss, opt)
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        record: dict[str, float] = {"epoch": epoch, "loss": total / max(n, 1)}
        if on_epoch is not None:
            base.eval()
            record.update(on_epoch(epoch, base, crowd))
        history.append(record)
        log.debug(epoch_line(epoch, record, prefix="crowd epoch"))
    base.eval()
    return ValueFit(base, crowd, history)


@torch.no_grad()
def predict_values(base: nn.Module, inputs: Dataset | torch.Tensor, crowd: CrowdValues | None = None,
                   batch_size: int = 256) -> np.ndarray:
    """Predicted values ``(N, D)`` of ``base``; with ``crowd``, the average annotator's (see the module docstring)."""
    param = next(base.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    base.eval()
    data = TensorDataset(inputs) if isinstance(inputs, torch.Tensor) else inputs
    out = []
    for x, _ in DataLoader(_Indexed(data), batch_size=batch_size):
        pred = base(x.to(device))
        out.append((crowd.average_annotator(pred) if crowd is not None else pred).float().cpu())
    return torch.cat(out).numpy().astype(np.float64)


def value_scores(pred: np.ndarray, true: np.ndarray, dims: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """CCC and RMSE per dimension over the items whose true value is known (NaN in ``true`` = unknown)."""
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    out = {}
    for d, dim in enumerate(dims):
        ok = np.isfinite(true[:, d]) & np.isfinite(pred[:, d])
        p, t = pred[ok, d], true[ok, d]
        out[dim] = {"ccc": float(ccc(p, t)) if ok.sum() > 1 else float("nan"),
                    "rmse": float(np.sqrt(np.mean((p - t) ** 2))) if ok.any() else float("nan"), "items": int(ok.sum())}
    return out
