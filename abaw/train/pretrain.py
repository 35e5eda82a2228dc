"""AffectNet pretraining of a face backbone (``abaw pretrain-affectnet``).

The backbone (``abaw.models.backbones.create_backbone``) gets an expression head (cross-entropy over the chosen
class order; see :mod:`abaw.data.affectnet` for Contempt / None) and, with ``tasks=("expr", "va")``, a valence/arousal
head (tanh, MSE on annotated rows). The best epoch by validation macro F1 is saved with
``save_backbone_checkpoint``; the face stream of any Aff-Wild2 preset loads it with ``--pretrained_affectnet CKPT``.
The heads are kept in the checkpoint's meta data (``heads``) but are not needed downstream.

Resumable: after every epoch the full training state (:func:`abaw.train.fitting.training_state`) goes to
``<out>.state.pt``; a rerun with the same configuration continues from it, and a finished checkpoint is skipped
unless ``force``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader

from abaw.data.affectnet import AffectNetImages, target_classes
from abaw.errors import AbawError
from abaw.metrics import ccc
from abaw.train.checkpoint import load_checkpoint, save_checkpoint
from abaw.train.fitting import (
    cpu_copy,
    epoch_line,
    loader_options,
    optimizer_step,
    pick_device,
    progress,
    restore_training_state,
    setup_device,
    show_progress,
    training_state,
)

log = logging.getLogger(__name__)

STATE_FORMAT = "abaw-pretrain-state"


@dataclass
class PretrainConfig:
    data: Path
    backbone: str
    out: Path
    tasks: tuple[str, ...] = ("expr",)
    target: str = "affectnet"
    pretrained: Any = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    image_size: int = 112
    limit: int | None = None
    seed: int = 0
    device: str = "auto"  # the GPU when there is one, else the CPU; "cpu", "cuda", "cuda:N"
    augment: bool = True

    def key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one."""
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) or k == "pretrained" else (list(v) if isinstance(v, tuple) else v)
                for k, v in d.items() if k not in ("device", "epochs")}


class PretrainNet(nn.Module):
    """Backbone -> dropout -> expression logits (and tanh valence/arousal)."""

    def __init__(self, backbone: nn.Module, n_classes: int, with_va: bool, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)
        self.expr = nn.Linear(backbone.num_features, n_classes)
        self.va = nn.Linear(backbone.num_features, 2) if with_va else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.drop(self.backbone(x))
        out = {"expr": self.expr(f)}
        if self.va is not None:
            out["va"] = torch.tanh(self.va(f))
        return out


def _loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    expr = batch["expr"]
    loss = F.cross_entropy(out["expr"], expr, ignore_index=-1) if (expr >= 0).any() else out["expr"].sum() * 0
    if "va" in out:
        va = batch["va"]
        seen = ~torch.isnan(va)
        if seen.any():
            loss = loss + F.mse_loss(out["va"][seen], va[seen])
    return loss


@torch.no_grad()
def evaluate(net: PretrainNet, loader: DataLoader, device: str | torch.device) -> dict[str, float]:
    """Validation accuracy and macro F1 (expression), CCC (valence, arousal) when the VA head exists."""
    net.eval()
    preds, trues, va_p, va_t = [], [], [], []
    for batch in loader:
        out = net(batch["image"].to(device))
        preds.append(out["expr"].argmax(1).cpu())
        trues.append(batch["expr"])
        if "va" in out:
            va_p.append(out["va"].cpu())
            va_t.append(batch["va"])
    pred, true = torch.cat(preds).numpy(), torch.cat(trues).numpy()
    keep = true >= 0
    n_classes = net.expr.out_features
    scores = {"accuracy": float((pred[keep] == true[keep]).mean()) if keep.any() else float("nan"),
              "f1": float(f1_score(true[keep], pred[keep], labels=list(range(n_classes)), average="macro",
                                   zero_division=0)) if keep.any() else float("nan")}
    if va_p:
        p, t = torch.cat(va_p).numpy(), torch.cat(va_t).numpy()
        for j, name in enumerate(("valence", "arousal")):
            ok = ~np.isnan(t[:, j])
            scores[f"ccc_{name}"] = float(ccc(p[ok, j], t[ok, j])) if ok.sum() > 1 else float("nan")
    return scores


def _is_finished(out: Path, cfg: PretrainConfig) -> bool:
    if not out.is_file():
        return False
    try:
        obj = torch.load(out, map_location="cpu", weights_only=True)
    except Exception:  # an unreadable file is simply redone
        return False
    return isinstance(obj, dict) and obj.get("pretrain_config") == cfg.key() and obj.get("epochs") == cfg.epochs


def _read_state(path: Path) -> dict[str, Any]:
    """The training state of an interrupted run; an unreadable one is logged and ignored (training starts over)."""
    try:
        state = load_checkpoint(path)
    except AbawError as exc:
        log.warning("%s; starting over", exc)
        return {}
    return state if isinstance(state, dict) else {}


def pretrain_affectnet(cfg: PretrainConfig, force: bool = False, stop_after: int | None = None,
                       show: bool = True) -> dict[str, Any]:
    """Pretrain ``cfg.backbone`` on the AffectNet-format root ``cfg.data``; returns a summary dict. ``show`` draws
    a progress bar over each epoch's batches (on a terminal).

    ``stop_after`` (a test hook) ends the run after that epoch, as an interruption would: the state file stays and
    no checkpoint is written."""
    from abaw.models.backbones import NORMALIZATIONS, create_backbone, save_backbone_checkpoint

    bad = [t for t in cfg.tasks if t not in ("expr", "va")]
    if bad or "expr" not in cfg.tasks:
        raise AbawError(f"tasks must be expr or expr+va, not {'+'.join(cfg.tasks)}")
    out, state_path = Path(cfg.out), Path(str(cfg.out) + ".state.pt")
    if not force and _is_finished(out, cfg):
        log.info("%s is finished; skipping (use --force to retrain)", out)
        return {"out": str(out), "skipped": True}

    torch.manual_seed(cfg.seed)
    backbone = create_backbone(cfg.backbone, pretrained=cfg.pretrained)
    mean, std = NORMALIZATIONS[getattr(backbone, "normalization", "imagenet")]
    classes = target_classes(cfg.target)
    common = {"target": cfg.target, "image_size": cfg.image_size, "mean": mean, "std": std, "limit": cfg.limit,
              "require_expr": "va" not in cfg.tasks}
    train = AffectNetImages(cfg.data, "train", augment=cfg.augment, **common)
    val = AffectNetImages(cfg.data, "validation", **common)
    if len(train) == 0:
        raise AbawError("no usable training images", path=cfg.data)
    device = setup_device(pick_device(cfg.device))
    options = loader_options(None, device)  # the CPU: no workers, as before; a GPU: workers and pinned memory
    net = PretrainNet(backbone, len(classes), "va" in cfg.tasks).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=len(train) >
                              cfg.batch_size, **options)
    val_loader = DataLoader(val, batch_size=max(cfg.batch_size, 64), **options)

    start_epoch, history, best = 1, [], {"f1": -1.0, "epoch": 0, "state": None}
    if state_path.is_file() and not force:
        state = _read_state(state_path)
        if state.get("format") == STATE_FORMAT and state.get("pretrain_config") == cfg.key():
            restore_training_state(state, net, opt)
            gen.set_state(state["generator"])
            start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
            log.info("resuming %s from epoch %d", state_path, start_epoch)
    bar = show_progress(show)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs + 1):
        net.train()
        total, n, epoch_start = 0.0, 0, time.perf_counter()
        for batch in progress(train_loader, bar, desc=f"pretrain epoch {epoch}"):
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = _loss(net(batch["image"]), batch)
            optimizer_step(loss, opt)
            total += float(loss.detach()) * len(batch["index"])
            n += len(batch["index"])
        scores = evaluate(net, val_loader, device) if len(val) else {}
        record = {"epoch": epoch, "loss": total / max(n, 1), **{f"val_{k}": v for k, v in scores.items()},
                  "seconds": round(time.perf_counter() - epoch_start, 1)}
        history.append(record)
        f1 = scores.get("f1", -record["loss"])  # selection: validation macro F1 (the loss without a validation set)
        improved = best["state"] is None or f1 > best["f1"]
        if improved:
            best = {"f1": f1, "epoch": epoch, "state": cpu_copy(net.state_dict())}
        log.info(epoch_line(epoch, record, improved, prefix="pretrain epoch"))
        save_checkpoint(state_path, training_state(net, opt, format=STATE_FORMAT, pretrain_config=cfg.key(),
                                                   epoch=epoch, generator=gen.get_state(), history=history,
                                                   best=best))
        if stop_after is not None and epoch >= stop_after and epoch < cfg.epochs:
            return {"out": str(out), "stopped_after": epoch, "history": history}

    net.load_state_dict(best["state"])
    heads = {k: v for k, v in best["state"].items() if not k.startswith("backbone.")}
    save_backbone_checkpoint(net.backbone, cfg.backbone, out, source="abaw pretrain-affectnet",
                             tasks=list(cfg.tasks), classes=list(classes), target=cfg.target,
                             image_size=cfg.image_size, normalization=getattr(backbone, "normalization", "imagenet"),
                             best_epoch=best["epoch"], epochs=cfg.epochs, history=history, heads=heads,
                             pretrain_config=cfg.key())
    state_path.unlink(missing_ok=True)
    return {"out": str(out), "best_epoch": best["epoch"], "best_val_f1": best["f1"], "train_images": len(train),
            "val_images": len(val), "seconds": round(time.perf_counter() - t0, 1), "history": history}
