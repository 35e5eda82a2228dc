"""``abaw train-crowd``: a face CNN trained on AffectNet-format images from crowd labels.

Crowd labels come from an AffectNetC25 expression CSV (its ``filename`` matched to ``subDirectory_filePath``, or to
the file's base name) or are simulated from the images' own labels with a panel of reliable / noisy / adversarial
annotators. Training works in AffectNet's class order (AffectNetC25 codes are permuted into it); the validation
split is scored against AffectNet's own ``expression`` column. The run folder gets ``config.json``,
``metrics.jsonl``, ``scores.json``, ``aggregated.csv`` (MV / DS labels of the training images), ``confusion.npy``
(the crowd layer's estimated confusion matrices) and ``backbone.pt`` (``save_backbone_checkpoint``, usable as
``--pretrained_affectnet``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from torch import nn

from abaw.crowd.aggregate import dawid_skene, majority_vote_codes
from abaw.crowd.simulate import annotator_panel, simulate_annotations
from abaw.crowd.train import fit_crowd, predict_classes
from abaw.crowd.votes import read_c25
from abaw.data.affectnet import AffectNetImages, map_expressions
from abaw.errors import AbawError
from abaw.fileio import append_jsonl, save_npy, write_json, write_text
from abaw.tasks import AFFECTNET_CLASSES, AFFECTNETC25_CLASSES

N_CLASSES = len(AFFECTNET_CLASSES)


def parse_simulate_spec(spec: str) -> dict[str, float]:
    """``"reliable=2,noisy=3,adversarial=3,missing=0.2"`` -> dict (unknown keys are an error)."""
    out: dict[str, float] = {"reliable": 0, "noisy": 0, "adversarial": 0, "missing": 0.0}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.partition("=")
        if key not in out or not value:
            raise AbawError(f"bad --simulate part {part!r}; use e.g. reliable=2,noisy=3,adversarial=3,missing=0.2")
        try:
            out[key] = float(value)
        except ValueError:
            raise AbawError(f"bad --simulate value {part!r}: not a number") from None
    if out["reliable"] + out["noisy"] + out["adversarial"] < 1:
        raise AbawError("--simulate needs at least one annotator")
    return out


def match_items(rel_paths: list[str], items: list[str]) -> np.ndarray:
    """For each image (``subDirectory_filePath``), the row of the votes file naming it (its ``filename`` equal to
    the path, else to the image's base name), -1 when none does."""
    by_name = {name: i for i, name in enumerate(items)}
    by_base = {Path(name).name: i for i, name in enumerate(items)}
    return np.array([by_name.get(rel, by_base.get(Path(rel).name, -1)) for rel in rel_paths], dtype=np.int64)


def c25_codes_for(dataset: AffectNetImages, votes: Path) -> tuple[np.ndarray, list[str]]:
    """Crowd codes (N, R) in AffectNet order for the images of ``dataset`` (-1 where an image has no vote)."""
    table = read_c25(votes, "expression")
    codes = map_expressions(table.codes(), "affectnet", source=AFFECTNETC25_CLASSES)
    rows = match_items(dataset.rel_paths, table.items)
    out = np.full((len(dataset), table.n_annotators), -1, dtype=np.int64)
    out[rows >= 0] = codes[rows[rows >= 0]]
    if (out >= 0).sum() == 0:
        raise AbawError("no image of the training split is named in this votes file", path=votes)
    return out, table.annotators


class ImageClassifier(nn.Module):
    """Backbone -> linear layer: class logits."""

    def __init__(self, backbone: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _scores(probs: np.ndarray, true: np.ndarray) -> dict[str, float]:
    keep = true >= 0
    pred = probs.argmax(1)
    return {"accuracy": float((pred[keep] == true[keep]).mean()),
            "f1": float(f1_score(true[keep], pred[keep], labels=list(range(N_CLASSES)), average="macro",
                                 zero_division=0))}


def train_crowd_images(data: Path, out: Path, votes: Path | None = None, simulate: str | None = None,
                       method: str = "crowd", conn_type: str = "MW", backbone: str = "tiny_cnn",
                       pretrained: Any = None, epochs: int = 10, batch_size: int = 32, lr: float = 1e-3,
                       image_size: int = 112, seed: int = 0, device: str = "cpu", limit: int | None = None,
                       crowd_lr: float | None = None, crowd_init: str = "identity") -> dict[str, Any]:
    """Train and write the run folder ``out``; returns the validation scores. ``limit`` uses only the first N
    images of each split (quick runs)."""
    from abaw.models.backbones import NORMALIZATIONS, create_backbone, save_backbone_checkpoint

    t0 = time.perf_counter()
    out = Path(out)
    torch.manual_seed(seed)
    net = ImageClassifier(create_backbone(backbone, pretrained=pretrained), N_CLASSES)
    mean, std = NORMALIZATIONS[getattr(net.backbone, "normalization", "imagenet")]
    train = AffectNetImages(data, "train", image_size=image_size, mean=mean, std=std, limit=limit)
    val = AffectNetImages(data, "validation", image_size=image_size, mean=mean, std=std, require_expr=True,
                          limit=limit)
    truth_conf = None
    if votes is not None:
        codes, annotators = c25_codes_for(train, votes)
    else:
        spec = parse_simulate_spec(simulate or "")
        rng = np.random.default_rng(seed)
        truth_conf, annotators = annotator_panel(N_CLASSES, rng, int(spec["reliable"]), int(spec["noisy"]),
                                                 int(spec["adversarial"]))
        known = train.expr >= 0
        codes = np.full((len(train), len(annotators)), -1, dtype=np.int64)
        codes[known] = simulate_annotations(train.expr[known], truth_conf, rng, missing=spec["missing"])
    labelled = np.flatnonzero((codes >= 0).any(axis=1))
    subset = torch.utils.data.Subset(train, labelled.tolist())
    codes_l = codes[labelled]

    config = {"data": str(data), "votes": str(votes) if votes else None, "simulate": simulate, "method": method,
              "crowd_layer": conn_type if method == "crowd" else None, "crowd_lr": crowd_lr,
              "crowd_init": crowd_init if method == "crowd" else None, "backbone": backbone,
              "pretrained": str(pretrained) if pretrained else None, "epochs": epochs, "batch_size": batch_size,
              "lr": lr, "image_size": image_size, "seed": seed, "limit": limit, "classes": list(AFFECTNET_CLASSES),
              "annotators": list(annotators), "train_images": len(labelled), "val_images": len(val)}
    write_json(out / "config.json", config)
    (out / "metrics.jsonl").unlink(missing_ok=True)

    def on_epoch(epoch: int, base: nn.Module) -> dict[str, float]:
        scores = {f"val_{k}": v for k, v in _scores(predict_classes(base, val, device=device), val.expr).items()}
        append_jsonl(out / "metrics.jsonl", {"epoch": epoch, **scores})
        return scores

    fit = fit_crowd(net, subset, codes_l, N_CLASSES, method=method, conn_type=conn_type, epochs=epochs, lr=lr,
                    batch_size=batch_size, seed=seed, device=device, on_epoch=on_epoch, crowd_lr=crowd_lr,
                    crowd_init=crowd_init)
    scores: dict[str, Any] = _scores(predict_classes(net, val, device=device), val.expr)
    mv = majority_vote_codes(codes_l, N_CLASSES)
    ds = fit.dawid_skene or dawid_skene(codes_l, N_CLASSES)
    true_l = train.expr[labelled]
    agg = pd.DataFrame({"item": [train.rel_paths[i] for i in labelled], "mv": mv.labels, "mv_tied": mv.tied,
                        "ds": ds.labels, "expression": true_l})
    write_text(out / "aggregated.csv", agg.to_csv(index=False))
    known = true_l >= 0
    scores["train_label_accuracy"] = {"majority_vote": float((mv.labels[known] == true_l[known]).mean()),
                                      "dawid_skene": float((ds.labels[known] == true_l[known]).mean())}
    if fit.crowd is not None:
        est = fit.crowd.confusion().cpu().numpy()
        save_npy(out / "confusion.npy", est.astype(np.float32))
        if truth_conf is not None:
            scores["crowd_layer_confusion_mae"] = float(np.abs(est - truth_conf).mean())
    save_backbone_checkpoint(net.backbone, backbone, out / "backbone.pt", source="abaw train-crowd", method=method,
                             classes=list(AFFECTNET_CLASSES), image_size=image_size,
                             head={k: v.detach().cpu() for k, v in net.head.state_dict().items()})
    scores["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(out / "scores.json", {"split": "validation", "method": method, "scores": scores,
                                     "history": fit.history})
    return scores
