"""Training a classifier from crowd labels: on the majority vote (``mv``), the vote distribution (``soft``), the
Dawid-Skene posteriors (``ds``), or all annotators' labels through a crowd layer (``crowd``, Rodrigues & Pereira).

:func:`fit_crowd` is model-agnostic: ``base`` maps a batch of inputs to class logits (a face CNN plus a linear head
for images, an MLP for the simulated problems). The crowd layer exists only during training; the returned ``base``
is the predictor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from abaw.crowd.aggregate import DawidSkene, dawid_skene, majority_vote_codes, soft_labels
from abaw.crowd.layers import CLASSIFICATION_TYPES, CrowdClassification, CrowdModel
from abaw.crowd.votes import counts_from_codes
from abaw.train.fitting import epoch_line, loader_options, optimizer_step, pick_device, setup_device

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("mv", "soft", "ds", "crowd")


def make_targets(codes: np.ndarray, n_classes: int, method: str) -> tuple[torch.Tensor, DawidSkene | None]:
    """Training targets from per-annotator codes (N, R), -1 = missing.

    ``mv``: (N,) long (-1 for an item without votes); ``soft``: (N, K) vote distribution; ``ds``: (N, K) Dawid-Skene
    posteriors; ``crowd``: the codes themselves (N, R).
    """
    if method == "mv":
        return torch.from_numpy(majority_vote_codes(codes, n_classes).labels), None
    if method == "soft":
        return torch.from_numpy(soft_labels(counts_from_codes(codes, n_classes))).float(), None
    if method == "ds":
        ds = dawid_skene(codes, n_classes)
        return torch.from_numpy(ds.posterior).float(), ds
    if method == "crowd":
        return torch.from_numpy(np.asarray(codes, dtype=np.int64)), None
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


@dataclass
class FitResult:
    base: nn.Module
    crowd: CrowdClassification | None
    history: list[dict[str, float]] = field(default_factory=list)
    dawid_skene: DawidSkene | None = None


class _Indexed(Dataset):
    """Yields ``(input, index)`` from a dataset of tensors or of dicts with an ``image`` entry."""

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.data[i]
        if isinstance(item, dict):
            item = item["image"]
        elif isinstance(item, (tuple, list)):
            item = item[0]
        return item, i


def _loss(method: str, model: nn.Module, logits_or_out, targets: torch.Tensor) -> torch.Tensor:
    if method == "crowd":
        return model.loss(logits_or_out, targets)
    if method == "mv":
        return F.cross_entropy(logits_or_out, targets, ignore_index=-1)
    return -(targets * F.log_softmax(logits_or_out, dim=1)).sum(dim=1).mean()


def fit_crowd(base: nn.Module, inputs: Dataset | torch.Tensor, codes: np.ndarray, n_classes: int,
              method: str = "crowd", conn_type: str = "MW", epochs: int = 20, lr: float = 1e-3,
              batch_size: int = 64, weight_decay: float = 0.0, seed: int = 0, device: str | torch.device = "auto",
              crowd_lr: float | None = None, on_epoch: Callable[[int, nn.Module], dict[str, float]] | None = None,
              num_workers: int | None = 0, crowd_init: str = "identity") -> FitResult:
    """Train ``base`` (inputs -> K logits) from crowd codes (N, R) with ``method`` (see module docstring).

    ``crowd_lr`` sets the crowd layer's learning rate (default ``lr``); ``crowd_init="ds"`` starts an MW layer from
    the Dawid-Skene confusion matrices instead of the identity (a warm start beyond Rodrigues & Pereira);
    ``on_epoch(epoch, base)`` may return validation figures that go into the history. Adam optimiser. ``device``:
    "auto" (the GPU when there is one, else the CPU), "cpu", "cuda", "cuda:N"; ``num_workers`` None: the device's
    default (:func:`abaw.train.fitting.loader_options`).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "crowd" and conn_type.upper() not in CLASSIFICATION_TYPES:
        raise ValueError(f"unknown crowd layer {conn_type!r}; choose one of {', '.join(CLASSIFICATION_TYPES)}")
    torch.manual_seed(seed)
    targets, ds = make_targets(codes, n_classes, method)
    data = TensorDataset(inputs) if isinstance(inputs, torch.Tensor) else inputs
    gen = torch.Generator().manual_seed(seed)
    device = setup_device(pick_device(device))
    loader = DataLoader(_Indexed(data), batch_size=batch_size, shuffle=True, generator=gen,
                        **loader_options(num_workers, device))
    crowd = CrowdClassification(n_classes, codes.shape[1], conn_type) if method == "crowd" else None
    if crowd is not None and crowd_init == "ds":
        ds = dawid_skene(codes, n_classes)
        crowd.init_from_confusion(torch.from_numpy(ds.confusion))
    elif crowd_init not in ("identity", "ds"):
        raise ValueError(f"unknown crowd_init {crowd_init!r}; choose identity or ds")
    model: nn.Module = CrowdModel(base, crowd) if crowd is not None else base
    model.to(device)
    groups = [{"params": list(base.parameters()), "lr": lr}]
    if crowd is not None:
        groups.append({"params": list(crowd.parameters()), "lr": crowd_lr or lr})
    opt = torch.optim.Adam(groups, weight_decay=weight_decay)
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        model.train()
        total, n = 0.0, 0
        for x, idx in loader:
            x, y = x.to(device), targets[idx].to(device)
            out = model(x)
            loss = _loss(method, model, out, y)
            optimizer_step(loss, opt)
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        record = {"epoch": epoch, "loss": total / max(n, 1)}
        if on_epoch is not None:
            base.eval()
            record.update(on_epoch(epoch, base))
        history.append(record)
        log.debug(epoch_line(epoch, record, prefix="crowd epoch"))
    base.eval()
    return FitResult(base, crowd, history, ds)


@torch.no_grad()
def predict_classes(base: nn.Module, inputs: Dataset | torch.Tensor, batch_size: int = 256,
                    device: str | torch.device | None = None) -> np.ndarray:
    """Class probabilities (N, K) of ``base`` (crowd layer dropped), on ``device`` (None: where ``base`` is)."""
    param = next(base.parameters(), None)
    device = pick_device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    base.eval()
    data = TensorDataset(inputs) if isinstance(inputs, torch.Tensor) else inputs
    out = []
    for x, _ in DataLoader(_Indexed(data), batch_size=batch_size):
        out.append(torch.softmax(base(x.to(device)), dim=1).cpu())
    return torch.cat(out).numpy()
