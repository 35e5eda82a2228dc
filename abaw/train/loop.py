"""The training loop (plain PyTorch, in the style of torchvision's ``references/``).

``train(cfg)`` builds the data, model, loss, optimizer and scheduler from a resolved config, trains with validation
on the official score after every epoch (ReduceLROnPlateau / early stopping on it), checkpoints atomically (every
``train.checkpoint_every`` steps and at epoch ends) and writes the run folder. ``train(resume=RUN_DIR)`` continues
exactly where a run stopped: epoch orders are a pure function of (seed, epoch), the steps already done are
skipped, and the model, optimizer, scheduler and RNG states are restored.
Under ``torchrun`` it trains with DistributedDataParallel; validation runs once, on rank 0, over the full set.
The steps it shares with the other training loops (device, mixed precision, optimizer step with clipping, training
state, progress, the epoch line) come from :mod:`abaw.train.fitting`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from abaw.data.sequences import (
    SequenceDataset,
    epoch_batches,
    epoch_order,
    load_videos,
    make_windows,
    quadrant_weights,
    training_videos,
    va_quadrants,
    video_epoch_order,
)
from abaw.errors import AbawError
from abaw.fileio import append_jsonl, write_json, write_text
from abaw.inference import batch_size, make_loader, predict_videos, to_device, window_length
from abaw.models.multistream import stream_outputs
from abaw.runs.folder import check_run_dir, create_run_dir, record_run, removed_on_failure
from abaw.runs.info import config_hash, git_commit, now, read_json, update_run_info
from abaw.train import distributed as dd
from abaw.train.checkpoint import load_checkpoint, model_from_config, save_checkpoint, unwrap
from abaw.train.config import tracks_of
from abaw.train.evaluate import predict_streaming, score_predictions, write_outputs
from abaw.train.fitting import (
    autocast,
    epoch_line,
    grad_scaler,
    loader_options,
    num_threads,
    optimizer_step,
    pick_device,
    progress,
    restore_training_state,
    seed_everything,
    setup_device,
    show_progress,
    training_state,
)

log = logging.getLogger(__name__)


# ---- building blocks --------------------------------------------------------------------------------------------

def make_optimizer(cfg: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    o = cfg["optim"]
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise AbawError("the model has no trainable parameters (check model.kwargs freeze options)")
    if o["name"] == "SGD":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
    if o["name"] == "Adam":
        return torch.optim.Adam(params, lr=o["lr"], weight_decay=o["weight_decay"])
    return torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])


def make_scheduler(cfg: dict[str, Any], optimizer: torch.optim.Optimizer) -> Any:
    s = cfg["sched"]
    if s["name"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=s["patience"],
                                                          factor=s["factor"], min_lr=s["min_lr"])
    if s["name"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg["train"]["epochs"]),
                                                          eta_min=s["min_lr"])
    return None


def make_loss(cfg: dict[str, Any]) -> nn.Module:
    from abaw.train.losses import MultiTaskLoss

    lc = cfg["loss"]
    return MultiTaskLoss(tuple(tracks_of(cfg)), weights=dict(lc["weights"]), va_loss=lc["va_loss"],
                         expr_class_weights=lc["expr_class_weights"], au_pos_weight=lc["au_pos_weight"],
                         label_smoothing=lc["label_smoothing"])


def compute_loss(loss_fn: nn.Module, outputs: dict[str, torch.Tensor], batch: dict[str, Any],
                 stream_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss masked by label validity and by padding (in training too). The parts stay detached tensors: reading them
    as floats waits for the device, so the loop does it only when it logs. With ``stream_weight`` (the model's
    ``stream_heads``), the mean loss of the per-stream predictions is added with that weight (part ``streams``)."""
    targets = dict(batch["targets"])
    targets.update({f"{t}_valid": v for t, v in batch["valid"].items()})
    total, parts = loss_fn(outputs, targets, batch["mask"])
    if stream_weight:
        per_stream = [loss_fn(out, targets, batch["mask"])[0] for out in stream_outputs(outputs).values()]
        if per_stream:
            aux = torch.stack(per_stream).mean()
            total = total + stream_weight * aux
            parts["streams"] = aux
    return total, {k: v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v)) for k, v in parts.items()}


def _train_windows(cfg: dict[str, Any], videos: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    data = cfg["data"]
    windows = make_windows(videos, data["duration"], data["stride"], drop_unlabelled=True)
    weights = None
    if data["oversample_va"] and "va" in cfg["tasks"]:
        weights = quadrant_weights(va_quadrants(videos, windows, data["duration"]), data["quadrant_targets"])
    return windows, weights


# ---- the trainer --------------------------------------------------------------------------------------------------

class Trainer:
    """One training run; ``fit()`` trains (or continues) it and returns the run folder."""

    def __init__(self, cfg: dict[str, Any], run_dir: Path, resume: bool = False, max_steps: int | None = None,
                 progress: bool | None = None) -> None:
        self.cfg, self.run_dir, self.resume, self.max_steps = cfg, run_dir, resume, max_steps
        tr = cfg["train"]
        self.device = setup_device(pick_device(tr["device"]))
        dd.init(self.device)
        self.rank, self.world = dd.rank(), dd.world_size()
        self.main = self.rank == 0
        show = tr["progress"] if progress is None else progress
        self.progress = show_progress(show, self.main)
        self.tasks = tracks_of(cfg)
        self.amp = tr["amp"]
        self.scaler = grad_scaler(self.device, self.amp)
        self.state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_score": -math.inf, "best_epoch": -1,
                      "bad_epochs": 0, "loss_sum": 0.0, "loss_count": 0, "train_seconds": 0.0}

    def setup(self) -> None:
        from abaw.data.affwild2 import AffWild2

        cfg, data = self.cfg, self.cfg["data"]
        seed_everything(int(cfg["train"]["seed"]))
        self.ds = AffWild2(data["root"], protocol=cfg["protocol"])
        # Never train on a name a requested track validates on; a run resumed from before this rule keeps its names.
        info = self.run_dir / "run.json"
        self.hygiene = not (self.resume and info.is_file() and "split_hygiene" not in read_json(info))
        self.train_videos, self.left_out = training_videos(self.ds, self.tasks, cfg["protocol"], data["max_videos"],
                                                           hygiene=self.hygiene)
        if self.left_out.names and self.main:
            log.info("%s", self.left_out.line())
        self.val_videos = load_videos(self.ds, "validation", self.tasks, cfg["protocol"], data["max_videos"])
        if not self.train_videos:
            raise AbawError(f"no training videos for tasks {', '.join(self.tasks)}", path=data["root"])
        if not self.val_videos:
            raise AbawError(f"no validation videos for tasks {', '.join(self.tasks)}", path=data["root"])
        self.model = model_from_config(cfg).to(self.device)
        if data["mode"] == "cached":
            self._prepare_cache()
        self.loader = make_loader(cfg, self.model)
        windows, self.weights = _train_windows(cfg, self.train_videos)
        self.train_set = SequenceDataset(self.train_videos, windows, data["duration"], self.tasks, self.loader)
        self.optimizer = make_optimizer(cfg, self.model)
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.loss_fn = make_loss(cfg).to(self.device)
        self.stream_weight = float(getattr(getattr(self.model, "config", None), "stream_heads", 0.0))
        self.ema = self._make_ema()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=dd.find_unused_parameters(self.model, self.tasks))

    def _make_ema(self) -> nn.Module | None:
        """The moving average of the weights (``train.ema_decay`` > 0): an eval-mode copy that follows the model."""
        decay = float(self.cfg["train"].get("ema_decay", 0.0))  # a run folder from before the key: off
        if not decay:
            return None
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(self.model, decay=decay, use_warmup=True)
        ema.requires_grad_(False)
        return ema

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated, kept as best and predicted with: the average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def _prepare_cache(self) -> None:
        """Cached mode: the stream CNNs are fixed feature extractors; extract what is missing, every rank its own
        share of the videos on its own device (as ``abaw extract`` under torchrun), then wait for all shares."""
        from abaw.train.extract import extract_features

        for encoder in unwrap(self.model).stream_encoders().values():
            encoder.requires_grad_(False)
        extract_features(self.cfg, self.model, batch_size=self.cfg["data"]["extract_batch_size"],
                         bf16=self.amp == "bf16", progress=self.progress and self.main,
                         shard_of=(self.rank + 1, self.world))
        dd.barrier()

    # ---- state ------------------------------------------------------------------------------------------------
    def _flush_loss(self) -> None:
        """Fold the on-device loss sum into the training state (one device sync, at checkpoints and epoch ends)."""
        acc = getattr(self, "_loss_acc", None)
        if acc is not None:
            self.state["loss_sum"] += float(acc.item())
            self._loss_acc = None

    def checkpoint(self, name: str) -> None:
        self._flush_loss()
        if not self.main:
            return
        state = training_state(self.model, self.optimizer, self.scheduler, self.scaler, format="abaw-train",
                               state=dict(self.state), config_hash=config_hash(self.cfg))
        if self.ema is not None:  # "model" is what is evaluated (load_model reads it); training resumes from the rest
            state["train_model"], state["model"] = state["model"], self.ema.module.state_dict()
        save_checkpoint(self.run_dir / "checkpoints" / f"{name}.pt", state)

    def restore(self) -> None:
        ckpt = load_checkpoint(self.run_dir / "checkpoints" / "last.pt")
        if ckpt.get("config_hash") != config_hash(self.cfg):
            raise AbawError("config.json changed since the checkpoint was written; cannot resume",
                            path=self.run_dir / "config.json")
        restore_training_state(ckpt, self.model, self.optimizer, self.scheduler, self.scaler)
        if self.ema is not None:
            self.ema.module.load_state_dict(ckpt["model"])
            self.model.load_state_dict(ckpt["train_model"])
        self.state.update(ckpt["state"])
        # drop metric lines of epochs the checkpoint does not include (written after it, before a crash)
        path = self.run_dir / "metrics.jsonl"
        if path.is_file():
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= self.state["epoch"]]  # 1-based lines
            write_text(path, "".join(ln + "\n" for ln in keep))
        log.info("resuming %s at epoch %d, step %d of the epoch", self.run_dir, self.state["epoch"] + 1,
                 self.state["step_in_epoch"])

    # ---- epochs -----------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, writer: Any) -> bool:
        """Train (the rest of) one epoch; return False when stopped early by ``max_steps``."""
        cfg, tr = self.cfg, self.cfg["train"]
        # a run folder written before data.shuffle existed trained in the global order: resume it so
        by_video = cfg["data"].get("shuffle", "global") == "video"
        if by_video:  # grouped by video: each video's cached features are read once per epoch, not per window
            order = video_epoch_order(self.train_set.windows, int(tr["seed"]), epoch, self.weights,
                                      cfg["data"].get("shuffle_block", 4))
        else:
            order = epoch_order(len(self.train_set), int(tr["seed"]), epoch, self.weights)
        batches = epoch_batches(order, cfg["data"]["batch_size"], self.rank, self.world, contiguous=by_video)
        skip = self.state["step_in_epoch"]
        dl = DataLoader(self.train_set, batch_sampler=batches[skip:], generator=torch.Generator(),
                        **loader_options(cfg["data"]["workers"], self.device))
        self.net.train()
        bar = progress(dl, self.progress, total=len(batches) - skip, desc=f"epoch {epoch + 1}")
        t0 = time.perf_counter()
        for batch in bar:
            batch = to_device(batch, self.device)
            with autocast(self.device, self.amp):
                outputs = self.net(batch["inputs"], batch["mask"])
            outputs = {k: v.float() for k, v in outputs.items()}
            loss, parts = compute_loss(self.loss_fn, outputs, batch, self.stream_weight)
            optimizer_step(loss, self.optimizer, tr["grad_clip"], self.scaler, self.model.parameters())
            st = self.state
            if self.ema is not None:
                self.ema.update(self.model, step=st["global_step"] + 1)
            st["step_in_epoch"] += 1
            st["global_step"] += 1
            # summed on the device in float64: a .item() per step would wait for the GPU at every step
            step_loss = loss.detach().double()
            self._loss_acc = step_loss if getattr(self, "_loss_acc", None) is None else self._loss_acc + step_loss
            st["loss_count"] += 1
            if st["global_step"] % tr["log_interval"] == 0:
                value = float(loss.item())
                if self.main and writer is not None:
                    writer.add_scalar("train/loss", value, st["global_step"])
                    for k, v in parts.items():
                        writer.add_scalar(f"train/{k}", float(v), st["global_step"])
                    writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], st["global_step"])
                log.debug("epoch %d, step %d: loss %.4f", epoch + 1, st["global_step"], value)
                bar.set_postfix(loss=f"{value:.4f}")
            stop = self.max_steps is not None and st["global_step"] >= self.max_steps
            every = tr["checkpoint_every"]
            if stop or (every and st["global_step"] % every == 0 and st["step_in_epoch"] < len(batches)):
                st["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.checkpoint("last")
            if stop:
                return False
        self.state["train_seconds"] += time.perf_counter() - t0
        return True

    def validate(self, embedding_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Outputs and scores on the validation videos; with ``embedding_dir``, each video's embedding is written
        there as its group of videos is done (``abaw evaluate``'s path), so the split's embeddings are never held."""
        args = (self.eval_model, self.val_videos, self.loader, window_length(self.cfg), batch_size(self.cfg),
                self.tasks, self.device, self.amp)
        workers = self.cfg["data"]["workers"]
        if embedding_dir is None:
            preds = predict_videos(*args, embeddings=False, progress=self.progress, workers=workers)
        else:
            preds = predict_streaming(*args, embedding_dir, progress=self.progress, workers=workers)
        return preds, score_predictions(preds, self.val_videos, self.tasks, self.cfg["protocol"])

    def end_epoch(self, epoch: int, writer: Any) -> bool:
        """Validate, step the scheduler, keep the best, log; return whether to stop early."""
        self._flush_loss()
        st, tr = self.state, self.cfg["train"]
        if (epoch + 1) % tr.get("eval_every", 1) and epoch + 1 < tr["epochs"]:
            return self._skip_validation(epoch)
        t0 = time.perf_counter()
        scores = self.validate()[1] if self.main else None
        scores = dd.broadcast(scores)
        score = float(scores["score"])
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(score)
            else:
                self.scheduler.step()
        improved = score > st["best_score"]
        if improved:
            st.update(best_score=score, best_epoch=epoch, bad_epochs=0)
        else:
            st["bad_epochs"] += 1
        record = {"epoch": epoch + 1, "step": st["global_step"],
                  "train_loss": st["loss_sum"] / max(1, st["loss_count"]), "val_score": score,
                  "val": {t: float(s["score"]) for t, s in scores["tracks"].items()},
                  "lr": self.optimizer.param_groups[0]["lr"], "best": improved,
                  "val_seconds": round(time.perf_counter() - t0, 3)}
        st.update(epoch=epoch + 1, step_in_epoch=0, loss_sum=0.0, loss_count=0)
        if self.main:
            append_jsonl(self.run_dir / "metrics.jsonl", record)
            if writer is not None:
                writer.add_scalar("val/score", score, epoch + 1)
                for t, s in record["val"].items():
                    writer.add_scalar(f"val/{t}", s, epoch + 1)
            log.info(epoch_line(epoch + 1, {k: record[k] for k in ("train_loss", "val_score", "val")}, improved))
            if improved:
                self.checkpoint("best")
            self.checkpoint("last")
        return st["bad_epochs"] >= tr["patience"]

    def _skip_validation(self, epoch: int) -> bool:
        """An epoch without validation (``train.eval_every``, the seed's ``--eval-freq``): the training loss is
        recorded and a per-epoch scheduler steps; the plateau scheduler and early stopping count validations."""
        st = self.state
        if self.scheduler is not None and not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        record = {"epoch": epoch + 1, "step": st["global_step"],
                  "train_loss": st["loss_sum"] / max(1, st["loss_count"]), "lr": self.optimizer.param_groups[0]["lr"],
                  "best": False}
        st.update(epoch=epoch + 1, step_in_epoch=0, loss_sum=0.0, loss_count=0)
        if self.main:
            append_jsonl(self.run_dir / "metrics.jsonl", record)
            log.info(epoch_line(epoch + 1, {"train_loss": record["train_loss"]}))
            self.checkpoint("last")
        return False

    def fit(self) -> Path:
        self.setup()
        if self.resume:
            self.restore()
        elif self.main:
            self._write_run_json("running")
        writer = None
        if self.main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.state["global_step"] or None)
        try:
            stopped = False
            for epoch in range(self.state["epoch"], self.cfg["train"]["epochs"]):
                if self.state["bad_epochs"] >= self.cfg["train"]["patience"]:  # resumed after an early stop
                    break
                if not self.train_epoch(epoch, writer):
                    stopped = True
                    break
                if self.end_epoch(epoch, writer):
                    break
        finally:
            if writer is not None:
                writer.close()
        if stopped:
            if self.main:
                self._write_run_json("stopped")
            dd.barrier()
            return self.run_dir
        if self.main:
            self.finish()
        dd.barrier()
        return self.run_dir

    def finish(self) -> None:
        """Best checkpoint -> validation predictions, embeddings, result files, scores and plots; run.json."""
        best = self.run_dir / "checkpoints" / "best.pt"
        if best.is_file():
            self.model.load_state_dict(load_checkpoint(best)["model"])
        self.ema = None  # the best weights (the average's, when there is one) are now the model's
        preds, scores = self.validate(self.run_dir / "embeddings" / "validation")
        write_outputs(self.run_dir, "validation", preds, self.val_videos, self.cfg, scores)
        from abaw.train.plots import plot_curves

        records = [json.loads(ln) for ln in
                   (self.run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if ln.strip()]
        plot_curves(self.run_dir / "plots" / "training_curves.png", records)
        self._write_run_json("finished", score=scores["score"])
        record_run(self.run_dir)

    def _write_run_json(self, status: str, score: float | None = None) -> None:
        from abaw.data.affwild2 import dataset_fingerprint

        cfg = self.cfg
        fields: dict[str, Any] = {
            "run_id": self.run_dir.name, "kind": "train", "config_hash": config_hash(cfg),
            "data_root": cfg["data"]["root"], "protocol": cfg["protocol"], "tracks": self.tasks,
            "streams": cfg["data"]["streams"], "mode": cfg["data"]["mode"], "model": cfg["model"]["name"],
            "n_params": int(self.n_params), "train_seconds": round(self.state["train_seconds"], 2),
            "status": status, "world_size": self.world, "device": str(self.device),
            "epochs": self.state["epoch"], "steps": self.state["global_step"],
        }
        if getattr(self, "hygiene", False):  # present: this run never trained on a name it validates on
            fields["split_hygiene"] = self.left_out.record()
        if not (self.run_dir / "run.json").is_file():
            fields.update(created=now(), git_commit=git_commit(),
                          dataset_fingerprint=dataset_fingerprint(cfg["data"]["root"]))
        if score is not None:
            fields.update(best_epoch=self.state["best_epoch"] + 1, score=score, finished=now())
        update_run_info(self.run_dir, **fields)


def train(cfg: dict[str, Any] | None = None, out: str | Path = "runs", resume: str | Path | None = None,
          max_steps: int | None = None, progress: bool | None = None, data_root: str | Path | None = None) -> Path:
    """Train a resolved config into a new run folder under ``out`` (or continue ``resume``); return the folder.

    ``max_steps`` stops after that many optimizer steps in total, leaving a resumable run (status ``stopped``).
    """
    created: Path | None = None  # the new run folder this process made (rank 0)
    if resume is not None:
        run_dir: Path | None = check_run_dir(resume)
        cfg = read_json(run_dir / "config.json")
        if data_root is not None:
            cfg["data"]["root"] = str(Path(data_root).resolve())
        if not Path(cfg["data"]["root"]).is_dir():
            raise AbawError("data root of the run does not exist (give --data-root ROOT)", path=cfg["data"]["root"])
    else:
        if cfg is None:
            raise AbawError("no config given")
        run_dir = created = create_run_dir(out, cfg["name"]) if dd.world_info()[0] == 0 else None
    # A new run that fails before its first checkpoint (bad labels, a refused weights file, ...) leaves no folder.
    guard = (removed_on_failure(created, keep=lambda d: (d / "checkpoints" / "last.pt").is_file()) if created
             else contextlib.nullcontext())
    with guard:
        if resume is None:
            if created is not None:
                write_json(created / "config.json", cfg)
            device = pick_device(cfg["train"]["device"])
            if dd.init(device):
                run_dir = dd.broadcast(str(run_dir) if run_dir else None)
        with num_threads(cfg["train"]["threads"]):
            trainer = Trainer(cfg, Path(run_dir), resume=resume is not None, max_steps=max_steps, progress=progress)
            # After a failure no collective teardown: another rank may be inside a collective and would never join.
            result = trainer.fit()
    dd.cleanup()
    return result
