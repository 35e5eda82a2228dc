"""Fit and evaluate a temporal statistical run on a trained per-frame run's outputs.

The source run's train-split outputs (and embeddings, when present and wanted) train the model; its validation
outputs evaluate it. The result is a run folder of kind ``temporal`` (docs/design.md section 5).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from abaw import tasks
from abaw.errors import AbawError
from abaw.fileio import append_jsonl, write_json
from abaw.inference import activate, score
from abaw.runs.folder import finish_run, removed_on_failure
from abaw.runs.info import config_hash, new_run_info, read_json, read_run_info, write_run_info
from abaw.runs.outputs import (
    Run,
    labels_for_rows,
    load_labels,
    load_run,
    split_frame_counts,
    track_columns,
    video_slices,
    write_predictions,
    write_results,
)
from abaw.temporal.config import DEFAULTS as DEFAULTS  # re-exported: the config lives in temporal/config.py
from abaw.temporal.config import load_config as load_config
from abaw.temporal.model import TemporalStatModel
from abaw.temporal.stats import block_stats, block_windows, carry_index, n_stat_features
from abaw.train.checkpoint import load_checkpoint, save_checkpoint
from abaw.train.fitting import cpu_copy, epoch_line, num_threads, optimizer_step, pick_device
from abaw.train.losses import ccc_loss

log = logging.getLogger(__name__)

# ---- data ----------------------------------------------------------------------------------------------------


@dataclass
class SplitData:
    """A split's model inputs, built video by video: never a whole-split float64 copy.

    A feature row is [block statistics, embedding, current outputs]; ``x`` holds the statistics and outputs as
    float32 (rows x (stats + outputs), small), ``emb`` the embeddings in the source's storage dtype (float16 for
    abaw's runs), and :meth:`features` assembles (and normalises) the rows of one batch only.
    """

    keys: pd.DataFrame
    x: np.ndarray  # (n, S + k) float32: S block-statistic columns, then the k current outputs
    emb: np.ndarray | None  # (n, F) embedding rows (float16 or float32), None without embeddings
    n_stats: int  # S
    seq: np.ndarray | None  # (n, block, k) for the BiLSTM
    lengths: np.ndarray | None
    targets: dict[str, np.ndarray]  # track -> labels of each row (invalid markers kept)
    n_frames: dict[str, dict[str, int]]  # track -> name -> label lines
    mean: np.ndarray | None = None  # (D,) float32 feature normalisation, set before training or inference
    std: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def dim(self) -> int:
        """D, the width of a feature row."""
        return self.x.shape[1] + (self.emb.shape[1] if self.emb is not None else 0)

    def features(self, rows: Any, normalise: bool = True) -> np.ndarray:
        """The float32 feature rows ``rows`` (a slice or an index array), normalised when ``mean``/``std`` are set."""
        x = self.x[rows]
        parts = [x[:, : self.n_stats]]
        if self.emb is not None:
            parts.append(self.emb[rows].astype(np.float32))
        parts.append(x[:, self.n_stats:])
        feat = np.concatenate(parts, axis=1)
        if normalise and self.mean is not None and self.std is not None:
            feat = (feat - self.mean) / self.std
        return feat.astype(np.float32, copy=False)

    def moments(self, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Per-column mean and population std (+1e-6) of the raw features, as float32, in float64 chunks."""
        total = np.zeros(self.dim)
        for s in range(0, len(self), chunk):
            total += self.features(slice(s, s + chunk), normalise=False).sum(axis=0, dtype=np.float64)
        mean = total / max(len(self), 1)
        sq = np.zeros(self.dim)
        for s in range(0, len(self), chunk):
            sq += ((self.features(slice(s, s + chunk), normalise=False) - mean) ** 2).sum(axis=0)
        std = np.sqrt(sq / max(len(self), 1)).astype(np.float32) + np.float32(1e-6)
        return mean.astype(np.float32), std


def _present_tracks(df: pd.DataFrame, protocol: str) -> list[str]:
    return [t for t in tasks.TRACKS if all(c in df.columns for c in track_columns(t, protocol))]


def build_split(source: Run, split: str, config: dict[str, Any], data_root: str | Path, protocol: str,
                inputs: list[str], task_list: list[str], use_embedding: bool) -> SplitData:
    """Features and targets of one split: [block statistics, embedding, current outputs] per predicted frame.

    Built one video at a time (statistics in float64 over a video, stored as float32), so the working memory
    beyond the split's float32 inputs is one video's."""
    columns = [c for t in inputs for c in track_columns(t, protocol)]
    df = source.predictions(split, columns)
    df = df[df[columns].notna().all(axis=1).to_numpy()].reset_index(drop=True)
    names = df["name"].to_numpy(dtype=str)
    frames = df["frame"].to_numpy(dtype=np.int64)
    face = _face_frames(data_root, protocol, df) if config["face_frames_only"] else np.ones(len(df), bool)
    carry = carry_index(names, face)
    n, k, block = len(df), len(columns), int(config["block"])
    n_stats = n_stat_features(k, config["stats"], config["quantiles"])
    col_arrays = [df[c].to_numpy() for c in columns]  # the table's own columns: no copy of the split
    x = np.empty((n, n_stats + k), dtype=np.float32)
    emb: np.ndarray | None = None
    seq = lengths = None
    if config["variant"] == "bilstm":
        seq, lengths = np.zeros((n, block, k), dtype=np.float32), np.zeros(n, dtype=np.int64)
    for name, s, e in video_slices(names):
        values = np.stack([c[s:e] for c in col_arrays], axis=1).astype(np.float64)
        here = carry[s:e] - s  # a row's block lies in its own video
        stats = block_stats(values, block, config["stats"], config["quantiles"], valid=face[s:e])
        x[s:e, :n_stats] = stats[here]
        x[s:e, n_stats:] = values
        if use_embedding:
            rows = _video_embedding(source, split, str(name), frames[s:e])
            if emb is None:
                emb = np.empty((n, rows.shape[1]), dtype=rows.dtype)
            emb[s:e] = rows
        if seq is not None and lengths is not None:
            vseq, vlen = block_windows(values, names[s:e], block, valid=face[s:e])
            seq[s:e], lengths[s:e] = vseq[here], vlen[here]
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(data_root, protocol=protocol) if split == "test" else None
    targets, n_frames = {}, {}
    for track in task_list:
        if ds is not None:  # the test set has no labels: only each listed name's frame count, for its result file
            if ds.has_test_set(track):
                n_frames[track] = split_frame_counts(data_root, split, track, protocol)
            continue
        labels = load_labels(data_root, split, track, protocol)
        targets[track] = labels_for_rows(df, labels, track, protocol)
        n_frames[track] = {n: len(lab) for n, lab in labels.items()}
    return SplitData(df[["name", "frame"]], x, emb, n_stats, seq, lengths, targets, n_frames)


def _face_frames(data_root: str | Path, protocol: str, df: pd.DataFrame) -> np.ndarray:
    """True for rows whose frame has a face crop; a video without a crop folder (or without any crop) counts as
    all faces, so a root without crops changes nothing."""
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(data_root, protocol=protocol)
    face = np.ones(len(df), dtype=bool)
    frames = df["frame"].to_numpy()
    for name, s, e in video_slices(df["name"]):
        if not ds.crop_path(name, 1).parent.is_dir():
            continue
        mask = ds.crop_mask(name, int(frames[s:e].max()))[frames[s:e] - 1]
        if mask.any():
            face[s:e] = mask
    return face


def _video_embedding(source: Run, split: str, name: str, frames: np.ndarray) -> np.ndarray:
    """The embedding rows of ``frames`` (1-based) of one video, kept float16 when the file is float16."""
    path = source.path / "embeddings" / split / f"{name}.npy"
    emb = source.embedding(split, name)
    if frames.max() > len(emb):
        raise AbawError(f"run {source.run_id}: embedding of video {name} has {len(emb)} frames but frame "
                        f"{frames.max()} is predicted", path=path)
    rows = emb[frames - 1]
    stored = np.load(path, mmap_mode="r").dtype  # the header only
    return rows.astype(np.float16) if stored == np.float16 else rows  # float16 -> float32 -> float16 is exact


# ---- training ------------------------------------------------------------------------------------------------


def _loss(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor], aux_weight: float) -> torch.Tensor:
    total = torch.zeros((), device=next(iter(out.values())).device)
    if "va" in tgt:
        ok = (tgt["va"] > tasks.VA_INVALID).all(dim=1)
        if ok.sum() >= 2:
            total = total + ccc_loss(out["va"][ok], tgt["va"][ok])
    if "expr" in tgt:
        y = tgt["expr"].reshape(-1).long()
        ok = y >= 0
        if ok.any():
            total = total + F.cross_entropy(out["expr"][ok], y[ok])
            if "aux" in out:
                total = total + aux_weight * F.cross_entropy(out["aux"][ok], y[ok])
    if "au" in tgt:
        ok = (tgt["au"] == 0) | (tgt["au"] == 1)
        if ok.any():
            total = total + F.binary_cross_entropy_with_logits(out["au"][ok], tgt["au"][ok])
    return total


def _outputs(model: TemporalStatModel, data: SplitData, device: torch.device, batch: int = 4096
             ) -> dict[str, np.ndarray]:
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for s in range(0, len(data), batch):
            out = model(*_inputs(data, slice(s, s + batch), device))
            for key, val in out.items():
                chunks.setdefault(key, []).append(activate(key, val).cpu().numpy())
    return {k: np.concatenate(v) for k, v in chunks.items() if k != "aux"}


def _inputs(data: SplitData, rows: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    x = torch.from_numpy(data.features(rows)).to(device)
    if data.seq is None:
        return (x,)
    return x, torch.from_numpy(data.seq[rows]).to(device), torch.from_numpy(data.lengths[rows])


def _scores(outputs: dict[str, np.ndarray], data: SplitData, protocol: str) -> dict[str, dict[str, Any]]:
    result = {}
    for track, true in data.targets.items():
        rows = data.keys["name"].isin(list(data.n_frames[track])).to_numpy()
        if not rows.any():
            continue
        result[track] = score(track, outputs[track][rows], true[rows], protocol)
    return result


def fit_temporal(source_dir: str | Path, config: dict[str, Any], data_root: str | Path | None = None,
                 out_dir: str | Path = "runs", force: bool = False) -> Path:
    """Train the temporal statistical model on ``source_dir``'s outputs; returns the new run folder.

    A finished run with the same source and config is reused unless ``force``.
    """
    source = load_run(source_dir)
    protocol = source.protocol
    data_root = data_root or source.data_root
    if data_root is None:
        raise AbawError(f"run {source.run_id} records no data root; pass --data-root", path=source.path)
    for split in ("train", "validation"):
        if not source.predictions_path(split).is_file():
            raise AbawError(f"run {source.run_id} has no {split}-split predictions; make them with "
                            f"`abaw evaluate {source.path} --split {split}`", path=source.predictions_path(split))
    train_df = source.predictions("train")
    present = _present_tracks(train_df, protocol)
    inputs = list(config["inputs"] or present)
    task_list = list(config["tasks"] or present)
    for key, chosen in (("inputs", inputs), ("tasks", task_list)):
        missing = [t for t in chosen if t not in present]
        if missing or not chosen:
            raise AbawError(f"run {source.run_id} predicts {present or 'no track'}; the config's {key} need "
                            f"{missing or 'at least one track'}", path=source.predictions_path("train"))
    use_embedding = bool(config["use_embedding"]) if config["use_embedding"] != "auto" else (
        source.has_embeddings("train") and source.has_embeddings("validation"))
    resolved = {**config, "inputs": inputs, "tasks": task_list, "use_embedding": use_embedding,
                "source": source.run_id, "source_dir": str(source.path.resolve()), "protocol": protocol,
                "data_root": str(Path(data_root).resolve())}
    # config_hash leaves out threads, device and where the source and the data lie; a fit on another data root is
    # not reused
    run_id = f"temporal-{config['variant']}-{source.run_id}-{config_hash(resolved)[:8]}"
    run_dir = Path(out_dir) / run_id
    done = read_run_info(run_dir) if (run_dir / "run.json").is_file() else None
    if not force and done and done.status == "finished" and done.data_root == resolved["data_root"]:
        log.info("temporal run %s is already finished; reusing it (--force retrains)", run_dir)
        return run_dir

    # a fit that fails leaves no new run folder behind (one made by an earlier fit is left in place)
    with num_threads(config["threads"]), removed_on_failure(run_dir, created=not run_dir.exists()):
        return _fit(source, config, resolved, run_id, run_dir, data_root, protocol, inputs, task_list, use_embedding)


def _make_model(config: dict[str, Any], x_dim: int, protocol: str, inputs: list[str], task_list: list[str]
                ) -> TemporalStatModel:
    proto = tasks.get_protocol(protocol)
    k_in = sum(len(track_columns(t, protocol)) for t in inputs)
    stats_dim = k_in * (len(config["stats"]) + len(config["quantiles"]))
    return TemporalStatModel(
        x_dim, stats_dim, n_expr=proto.n_expr if "expr" in task_list else 0,
        n_au=proto.n_au if "au" in task_list else 0, va="va" in task_list, hidden=config["hidden"],
        dropout=float(config["dropout"]), variant=config["variant"], seq_dim=k_in, lstm_hidden=config["lstm_hidden"])


def predict_temporal(run_dir: str | Path, split: str = "test") -> Path:
    """Run a fitted temporal model on its source run's ``split`` outputs (e.g. the test set, made with
    ``abaw evaluate SOURCE --split test``): ``predictions/<split>.parquet`` and ``results/<split>/``."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    if not config.get("source_dir"):
        raise AbawError("this temporal run does not record where its source run lies; fit it again",
                        path=run_dir / "config.json")
    source = load_run(config["source_dir"])
    protocol, inputs, task_list = config["protocol"], list(config["inputs"]), list(config["tasks"])
    if not source.predictions_path(split).is_file():
        raise AbawError(f"run {source.run_id} has no {split}-split predictions; make them with "
                        f"`abaw evaluate {source.path} --split {split}`", path=source.predictions_path(split))
    data = build_split(source, split, config, config["data_root"], protocol, inputs, task_list,
                       bool(config["use_embedding"]))
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    data.mean, data.std = ckpt["feature_mean"].numpy(), ckpt["feature_std"].numpy()
    model = _make_model(config, data.dim, protocol, inputs, task_list)
    model.load_state_dict(ckpt["model"])
    outputs = _outputs(model, data, torch.device("cpu"))
    cols = {col: outputs[t][:, j] for t in task_list for j, col in enumerate(track_columns(t, protocol))}
    write_predictions(run_dir, split, data.keys, cols)
    for track, counts in data.n_frames.items():
        rows = data.keys["name"].isin(list(counts)).to_numpy()
        if rows.any():
            write_results(run_dir, split, track, data.keys[rows], outputs[track][rows], counts, protocol)
    return run_dir / "results" / split


def _fit(source: Run, config: dict[str, Any], resolved: dict[str, Any], run_id: str, run_dir: Path,
         data_root: str | Path, protocol: str, inputs: list[str], task_list: list[str], use_embedding: bool) -> Path:
    torch.manual_seed(int(config["seed"]))
    rng = np.random.default_rng(int(config["seed"]))
    device = pick_device(config["device"])
    log.info("temporal: loading %s outputs of run %s", "/".join(inputs), source.run_id)
    train = build_split(source, "train", config, data_root, protocol, inputs, task_list, use_embedding)
    val = build_split(source, "validation", config, data_root, protocol, inputs, task_list, use_embedding)
    mean, std = train.moments()  # normalisation applied batch by batch (SplitData.features)
    train.mean, train.std, val.mean, val.std = mean, std, mean, std
    model = _make_model(config, train.dim, protocol, inputs, task_list).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=float(config["lr"]), weight_decay=float(config["weight_decay"]))

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    write_json(run_dir / "config.json", resolved)
    n_params = sum(p.numel() for p in model.parameters())
    info = new_run_info(run_id, "temporal", resolved, data_root=data_root, protocol=protocol, tracks=task_list,
                        model=f"cnu_adl_temporal_{config['variant']}", n_params=n_params, members=None,
                        streams=source.info.streams)
    info.source = source.run_id
    write_run_info(run_dir, info)

    labelled = np.zeros(len(train), dtype=bool)
    for track, true in train.targets.items():
        labelled |= (true > tasks.INVALID[track]).all(axis=1) if track != "au" else ((true == 0) | (true == 1)).any(1)
    fit_rows = np.flatnonzero(labelled)
    if len(fit_rows) == 0:
        raise AbawError(f"no train frame of run {source.run_id} has a valid label for {task_list}")
    tgt_all = {t: torch.from_numpy(v.astype(np.float32)) for t, v in train.targets.items()}
    best_sel, best_state, bad_epochs, t0 = -np.inf, None, 0, time.perf_counter()
    for epoch in range(1, int(config["epochs"]) + 1):
        model.train()
        order = rng.permutation(fit_rows)
        losses = []
        for s in range(0, len(order), int(config["batch_size"])):
            rows = order[s: s + int(config["batch_size"])]
            out = model(*_inputs(train, rows, device))
            loss = _loss(out, {t: v[rows].to(device) for t, v in tgt_all.items()}, float(config["aux_weight"]))
            if not loss.requires_grad:
                continue
            optimizer_step(loss, opt)
            losses.append(loss.item())
        val_scores = _scores(_outputs(model, val, device), val, protocol)
        sel = float(np.mean([s["score"] for s in val_scores.values()])) if val_scores else -float(np.mean(losses))
        record = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else None,
                  "validation": {t: s["score"] for t, s in val_scores.items()}, "selection": sel}
        append_jsonl(run_dir / "metrics.jsonl", record)
        improved = sel > best_sel + 1e-6  # selection: mean validation score of the tasks (else minus the loss)
        log.info(epoch_line(epoch, record, improved, prefix="temporal epoch"))
        if improved:
            best_sel, best_state, bad_epochs = sel, cpu_copy(model.state_dict()), 0
        else:
            bad_epochs += 1
            if bad_epochs >= int(config["patience"]):
                break
    train_seconds = time.perf_counter() - t0
    best_state = best_state if best_state is not None else cpu_copy(model.state_dict())
    model.load_state_dict(best_state)
    save_checkpoint(run_dir / "checkpoints" / "best.pt", {"model": best_state, "feature_mean": torch.from_numpy(mean),
                                                         "feature_std": torch.from_numpy(std), "config": resolved})

    val_scores = {}
    for split, data in (("train", train), ("validation", val)):
        outputs = _outputs(model, data, device)
        cols: dict[str, np.ndarray] = {}
        for track in task_list:
            for j, col in enumerate(track_columns(track, protocol)):
                cols[col] = outputs[track][:, j]
        write_predictions(run_dir, split, data.keys, cols)
        if split == "validation":
            val_scores = _scores(outputs, data, protocol)
            for track in val_scores:
                rows = data.keys["name"].isin(list(data.n_frames[track])).to_numpy()
                write_results(run_dir, split, track, data.keys[rows], outputs[track][rows], data.n_frames[track],
                              protocol)
    finish_run(run_dir, info, {"split": "validation", "protocol": protocol, "tracks": val_scores},
               train_seconds=train_seconds)
    log.info("temporal run %s: %s", run_id, ", ".join(f"{t} {s['score']:.4f}" for t, s in val_scores.items()))
    return run_dir
