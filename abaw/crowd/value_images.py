"""``abaw train-crowd --kind va``: a face CNN regressing valence / arousal on AffectNet-format images from crowd
values.

Crowd values come from AffectNetC25 valence and/or arousal CSVs (``filename`` matched to ``subDirectory_filePath``,
or to the base name; 9 levels -1 … 1) or are simulated from the images' own values by a panel of reliable / noisy /
adversarial value annotators (:func:`abaw.crowd.simulate.value_panel`). The model is trained on an aggregate
(``mv``, ``mean``, ``median``) or through a regression crowd layer (``crowd``: S, B, S+B, B+S), and the validation
split is scored against AffectNet's own valence/arousal columns (CCC and RMSE per dimension). The run folder gets
``config.json``, ``metrics.jsonl``, ``scores.json``, ``aggregated.csv`` (the aggregates of the training images),
``crowd_layers.json`` (each annotator's learned scale and bias) and ``backbone.pt``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from abaw.crowd.images import match_items, parse_simulate_spec
from abaw.crowd.regression import aggregate_values, fit_values, predict_values, value_scores
from abaw.crowd.simulate import simulate_values, value_panel
from abaw.crowd.votes import c25_kind, read_c25
from abaw.data.affectnet import AffectNetImages
from abaw.errors import AbawError
from abaw.fileio import append_jsonl, write_json, write_text
from abaw.tasks import AFFECTNETC25_VA_LEVELS

#: The dimensions in AffectNet's column order (``AffectNetImages.va`` is (N, 2): valence, arousal).
DIMS: tuple[str, ...] = ("valence", "arousal")
#: ``--kind`` -> the dimensions it trains.
KIND_DIMS: dict[str, tuple[str, ...]] = {"va": DIMS, "valence": ("valence",), "arousal": ("arousal",)}


class ImageRegressor(nn.Module):
    """Backbone -> linear layer -> tanh: one value in [-1, 1] per dimension."""

    def __init__(self, backbone: nn.Module, n_dims: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, n_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.backbone(x)))


def vote_dims(votes: list[Path]) -> tuple[str, ...]:
    """The dimensions of AffectNetC25 valence/arousal files (by file name), in AffectNet's order; one file each."""
    kinds = [c25_kind(p) for p in votes]
    for path, kind in zip(votes, kinds, strict=True):
        if kind not in DIMS:
            raise AbawError("not a valence or arousal file (AffectNetC25 names: valence_set1_C25.csv, "
                            "arousal_set1_C25.csv)", path=path)
    if len(set(kinds)) < len(kinds):
        raise AbawError(f"two {kinds[0]} files: give at most one valence and one arousal file", path=votes[-1])
    return tuple(d for d in DIMS if d in kinds)


def c25_values_for(dataset: AffectNetImages, votes: list[Path]) -> tuple[np.ndarray, list[str], tuple[str, ...]]:
    """Crowd values ``(N, R, D)`` for the images of ``dataset`` (NaN where an image has no value), the annotators
    and the dimensions, from AffectNetC25 valence/arousal files."""
    dims = vote_dims(votes)
    tables = {c25_kind(p): read_c25(p) for p in votes}
    annotators = max((t.annotators for t in tables.values()), key=len)
    out = np.full((len(dataset), len(annotators), len(dims)), np.nan)
    for d, dim in enumerate(dims):
        table = tables[dim]
        rows = match_items(dataset.rel_paths, table.items)
        out[rows >= 0, : table.n_annotators, d] = table.values[rows[rows >= 0]]
    if np.isnan(out).all():
        raise AbawError("no image of the training split is named in these votes files", path=votes[0])
    return out, annotators, dims


def simulated_values(dataset: AffectNetImages, dims: tuple[str, ...], spec: str, seed: int
                     ) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Values ``(N, R, D)`` of a simulated panel on the images' own valence/arousal (none where not annotated),
    on AffectNetC25's 9 levels; returns the panel's true scale and bias per dimension too."""
    parts = parse_simulate_spec(spec)
    rng = np.random.default_rng(seed)
    out, truth_params = None, {"scale": [], "bias": [], "kinds": []}
    for d, dim in enumerate(dims):
        panel = value_panel(rng, int(parts["reliable"]), int(parts["noisy"]), int(parts["adversarial"]))
        truth = dataset.va[:, DIMS.index(dim)].astype(np.float64)
        known = np.isfinite(truth)
        if out is None:
            out = np.full((len(dataset), len(panel.kinds), len(dims)), np.nan)
        out[known, :, d] = simulate_values(truth[known], panel, rng, missing=parts["missing"],
                                           levels=AFFECTNETC25_VA_LEVELS)
        truth_params["scale"].append(panel.scale.round(4).tolist())
        truth_params["bias"].append(panel.bias.round(4).tolist())
        truth_params["kinds"] = panel.kinds
    annotators = [f"{i}:{kind}" for i, kind in enumerate(truth_params["kinds"])]
    return out, annotators, truth_params


def train_crowd_values(data: Path, out: Path, votes: list[Path] | None = None, simulate: str | None = None,
                       kind: str = "va", method: str = "crowd", conn_type: str = "S+B", backbone: str = "tiny_cnn",
                       pretrained: Any = None, epochs: int = 10, batch_size: int = 32, lr: float = 1e-3,
                       image_size: int = 112, seed: int = 0, device: str = "cpu", limit: int | None = None,
                       crowd_lr: float | None = None) -> dict[str, Any]:
    """Train and write the run folder ``out``; returns the scores (validation CCC / RMSE per dimension)."""
    from abaw.models.backbones import NORMALIZATIONS, create_backbone, save_backbone_checkpoint

    t0 = time.perf_counter()
    out = Path(out)
    dims = vote_dims(votes) if votes else KIND_DIMS[kind]
    torch.manual_seed(seed)
    net = ImageRegressor(create_backbone(backbone, pretrained=pretrained), len(dims))
    mean, std = NORMALIZATIONS[getattr(net.backbone, "normalization", "imagenet")]
    train = AffectNetImages(data, "train", image_size=image_size, mean=mean, std=std, limit=limit)
    val = AffectNetImages(data, "validation", image_size=image_size, mean=mean, std=std, limit=limit)
    panel_truth = None
    if votes:
        values, annotators, dims = c25_values_for(train, votes)
        kind = "va" if len(dims) == 2 else dims[0]
    else:
        values, annotators, panel_truth = simulated_values(train, dims, simulate or "", seed)
    labelled = np.flatnonzero(~np.isnan(values).all(axis=(1, 2)))
    if not len(labelled):
        raise AbawError("no training image has a crowd value", path=data)
    values_l = values[labelled]
    subset = torch.utils.data.Subset(train, labelled.tolist())
    columns = [DIMS.index(d) for d in dims]
    val_true = val.va[:, columns]

    config = {"data": str(data), "votes": [str(v) for v in votes] if votes else None, "simulate": simulate,
              "kind": kind, "dims": list(dims), "method": method,
              "crowd_layer": conn_type if method == "crowd" else None, "crowd_lr": crowd_lr, "backbone": backbone,
              "pretrained": str(pretrained) if pretrained else None, "epochs": epochs, "batch_size": batch_size,
              "lr": lr, "image_size": image_size, "seed": seed, "limit": limit, "annotators": list(annotators),
              "train_images": len(labelled), "val_images": len(val)}
    write_json(out / "config.json", config)
    (out / "metrics.jsonl").unlink(missing_ok=True)

    def on_epoch(epoch: int, base: nn.Module, crowd: Any) -> dict[str, float]:
        scores = value_scores(predict_values(base, val), val_true, dims)
        flat = {f"val_{d}_{k}": v for d, s in scores.items() for k, v in s.items() if k != "items"}
        append_jsonl(out / "metrics.jsonl", {"epoch": epoch, **flat})
        return flat

    fit = fit_values(net, subset, values_l, method=method, conn_type=conn_type, epochs=epochs, lr=lr,
                     batch_size=batch_size, seed=seed, device=device, crowd_lr=crowd_lr,
                     levels=AFFECTNETC25_VA_LEVELS, on_epoch=on_epoch)
    scores: dict[str, Any] = {"validation": value_scores(predict_values(net, val), val_true, dims)}
    if fit.crowd is not None:
        scores["validation_average_annotator"] = value_scores(predict_values(net, val, fit.crowd), val_true, dims)
    train_true = train.va[labelled][:, columns]
    agg = pd.DataFrame({"item": [train.rel_paths[i] for i in labelled]})
    recovery: dict[str, Any] = {}
    for how in ("mv", "mean", "median"):
        aggregated = aggregate_values(values_l, how, AFFECTNETC25_VA_LEVELS)
        recovery[how] = value_scores(aggregated, train_true, dims)
        for d, dim in enumerate(dims):
            agg[f"{dim}_{how}"] = aggregated[:, d]
    for d, dim in enumerate(dims):
        agg[f"{dim}_n_votes"] = (~np.isnan(values_l[:, :, d])).sum(axis=1)
        agg[dim] = train_true[:, d]
    scores["train_label_recovery"] = recovery  # each aggregate against the images' own values
    write_text(out / "aggregated.csv", agg.to_csv(index=False))
    if fit.crowd is not None:
        layers = {"type": fit.crowd.conn_type, "dims": list(dims), "annotators": list(annotators),
                  **fit.crowd.parameters_table()}
        if panel_truth is not None:
            layers["simulated"] = panel_truth
        write_json(out / "crowd_layers.json", layers)
    save_backbone_checkpoint(net.backbone, backbone, out / "backbone.pt", source="abaw train-crowd", method=method,
                             tasks=["va"], dims=list(dims), image_size=image_size,
                             head={k: v.detach().cpu() for k, v in net.head.state_dict().items()})
    scores["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(out / "scores.json", {"split": "validation", "kind": kind, "method": method, "scores": scores,
                                     "history": fit.history})
    return scores
