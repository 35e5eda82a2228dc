"""Fit and evaluate a temporal statistical run on a trained per-frame run's outputs.

``fit_on: validation`` (default): grouped cross-validation over the source's validation videos, outputs the source
model did not train on. The videos are split into ``folds`` groups (``GroupKFold`` by video file, as the ensembles
do); for each fold a model is fitted on the other folds but one, which selects its epoch, and predicts the held-out
fold, so the reported validation score is out of fold. New videos (the test set, the training split) get the mean
of the fold models' outputs. ``fit_on: train``: the source's training-split outputs fit one model and its
validation outputs select the epoch and are scored (the former rule; those inputs are nearly memorised by the
source model). The inputs are read a chunk of videos at a time (:mod:`abaw.temporal.data`). The result is a run
folder of kind ``temporal`` (docs/design.md section 5); ``run.json`` says ``fit_uses_validation``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
    grouped_folds,
    load_run,
    track_columns,
    video_groups,
    write_predictions,
    write_results,
)
from abaw.temporal.config import DEFAULTS as DEFAULTS  # re-exported: the config lives in temporal/config.py
from abaw.temporal.config import load_config as load_config
from abaw.temporal.data import Chunk, SplitTable, VideoSet, epoch_batches, moments, read_split
from abaw.temporal.model import TemporalStatModel
from abaw.train.checkpoint import load_checkpoint, save_checkpoint
from abaw.train.fitting import cpu_copy, epoch_line, num_threads, optimizer_step, pick_device
from abaw.train.losses import ccc_loss

log = logging.getLogger(__name__)

#: Rows per forward pass when predicting.
PREDICT_BATCH = 4096


@dataclass
class Fitted:
    """One fitted model with its feature normalisation (and, out of fold, the videos it predicts)."""

    model: TemporalStatModel
    mean: np.ndarray
    std: np.ndarray
    held_out: list[str] | None = None


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


def _inputs(chunk: Chunk, idx: Any, mean: np.ndarray, std: np.ndarray, device: torch.device
            ) -> tuple[torch.Tensor, ...]:
    x = torch.from_numpy(chunk.features(idx, mean, std)).to(device)
    if chunk.win is None:
        return (x,)
    seq, lengths = chunk.sequences(idx)
    return x, torch.from_numpy(seq).to(device), torch.from_numpy(lengths)


def predict(models: list[Fitted], data: VideoSet, device: torch.device) -> dict[str, np.ndarray]:
    """Activated outputs of every row of ``data`` (in ``data.rows`` order): the mean over ``models``."""
    for fitted in models:
        fitted.model.eval()
    outputs: dict[str, np.ndarray] = {}
    at = 0
    with torch.no_grad():
        for chunk in data.chunks():
            for s in range(0, len(chunk), PREDICT_BATCH):
                idx = slice(s, s + PREDICT_BATCH)
                summed: dict[str, np.ndarray] = {}
                for fitted in models:
                    out = fitted.model(*_inputs(chunk, idx, fitted.mean, fitted.std, device))
                    for key, val in out.items():
                        if key != "aux":
                            act = activate(key, val).cpu().numpy()
                            summed[key] = act if key not in summed else summed[key] + act
                for key, val in summed.items():
                    if key not in outputs:  # filled in place: no list of pieces and no second copy
                        outputs[key] = np.empty((len(data), val.shape[1]), dtype=np.float32)
                    outputs[key][at: at + len(val)] = val / len(models) if len(models) > 1 else val
                at += min(PREDICT_BATCH, len(chunk) - s)
    return outputs


def _scores(outputs: dict[str, np.ndarray], table: SplitTable, rows: np.ndarray, protocol: str
            ) -> dict[str, dict[str, Any]]:
    """Official scores of ``outputs`` (aligned with the table ``rows``) per target track."""
    result = {}
    names = table.df["name"].to_numpy()[rows]
    for track, true in table.targets.items():
        keep = np.isin(names, list(table.n_frames[track]))
        if not keep.any():
            continue
        result[track] = score(track, outputs[track][keep], true[rows][keep], protocol)
    return result


def _prediction_columns(split: str, source: Run, protocol: str) -> list[str]:
    """The column names of a source's prediction table, from the Parquet schema only."""
    import pyarrow.parquet as pq

    path = source.predictions_path(split)
    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise AbawError(f"cannot read the prediction table: {exc}", path=path) from None


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
    fit_on = config["fit_on"]
    needed = ["train", "validation"] if fit_on == "train" else ["validation"]
    for split in needed:
        if not source.predictions_path(split).is_file():
            raise AbawError(f"run {source.run_id} has no {split}-split predictions; make them with "
                            f"`abaw evaluate {source.path} --split {split}`", path=source.predictions_path(split))
    # out of fold, the training split is only predicted (with the folds' mean), when the source has its outputs
    splits = needed if fit_on == "train" or not source.predictions_path("train").is_file() else [*needed, "train"]
    columns = _prediction_columns(needed[0], source, protocol)
    present = [t for t in tasks.TRACKS if all(c in columns for c in track_columns(t, protocol))]
    inputs = list(config["inputs"] or present)
    task_list = list(config["tasks"] or present)
    for key, chosen in (("inputs", inputs), ("tasks", task_list)):
        missing = [t for t in chosen if t not in present]
        if missing or not chosen:
            raise AbawError(f"run {source.run_id} predicts {present or 'no track'}; the config's {key} need "
                            f"{missing or 'at least one track'}", path=source.predictions_path(needed[0]))
    use_embedding = bool(config["use_embedding"]) if config["use_embedding"] != "auto" else all(
        source.has_embeddings(s) for s in splits)
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
        return _fit(source, resolved, run_id, run_dir, splits)


def _make_model(config: dict[str, Any], x_dim: int, protocol: str, inputs: list[str], task_list: list[str]
                ) -> TemporalStatModel:
    proto = tasks.get_protocol(protocol)
    k_in = sum(len(track_columns(t, protocol)) for t in inputs)
    stats_dim = k_in * (len(config["stats"]) + len(config["quantiles"]))
    return TemporalStatModel(
        x_dim, stats_dim, n_expr=proto.n_expr if "expr" in task_list else 0,
        n_au=proto.n_au if "au" in task_list else 0, va="va" in task_list, hidden=config["hidden"],
        dropout=float(config["dropout"]), variant=config["variant"], seq_dim=k_in, lstm_hidden=config["lstm_hidden"])


def _read(source: Run, split: str, config: dict[str, Any], labels: bool = True) -> SplitTable:
    return read_split(source, split, config, config["data_root"], config["protocol"], list(config["inputs"]),
                      list(config["tasks"]), bool(config["use_embedding"]), labels=labels)


def _load_fitted(run_dir: Path, config: dict[str, Any], dim: int) -> list[Fitted]:
    """The run's models: one (``fit_on: train``) or one per fold, each with its normalisation."""
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    out = []
    for entry in ckpt.get("folds", [ckpt]):
        model = _make_model(config, dim, config["protocol"], list(config["inputs"]), list(config["tasks"]))
        model.load_state_dict(entry["model"])
        held = entry.get("held_out")
        out.append(Fitted(model, entry["feature_mean"].numpy(), entry["feature_std"].numpy(),
                          None if held is None else list(held)))
    return out


def predict_temporal(run_dir: str | Path, split: str = "test") -> Path:
    """Run a fitted temporal model on its source run's ``split`` outputs (e.g. the test set, made with
    ``abaw evaluate SOURCE --split test``): ``predictions/<split>.parquet`` and ``results/<split>/``. Out of fold,
    the validation split is predicted again fold by fold (each video by the model that did not fit on it); any other
    split by the mean of the fold models."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    if not config.get("source_dir"):
        raise AbawError("this temporal run does not record where its source run lies; fit it again",
                        path=run_dir / "config.json")
    config = {**DEFAULTS, **config}  # a run fitted before a key existed
    source = load_run(config["source_dir"])
    protocol, task_list = config["protocol"], list(config["tasks"])
    if not source.predictions_path(split).is_file():
        raise AbawError(f"run {source.run_id} has no {split}-split predictions; make them with "
                        f"`abaw evaluate {source.path} --split {split}`", path=source.predictions_path(split))
    table = _read(source, split, config, labels=False)
    fitted = _load_fitted(run_dir, config, table.dim)
    device = torch.device("cpu")
    if split == "validation" and all(f.held_out is not None for f in fitted):
        outputs = _out_of_fold(fitted, table, int(config["chunk_rows"]), device)
    else:
        outputs = predict(fitted, VideoSet(table, range(len(table.videos)), int(config["chunk_rows"])), device)
    _write_split(run_dir, split, table, outputs, task_list, protocol, results=True)
    return run_dir / "results" / split


def _out_of_fold(fitted: list[Fitted], table: SplitTable, chunk_rows: int, device: torch.device
                 ) -> dict[str, np.ndarray]:
    """Each video's outputs from the fold model that holds it out."""
    index = {name: i for i, (name, _, _) in enumerate(table.videos)}
    outputs: dict[str, np.ndarray] = {}
    for fold in fitted:
        held = VideoSet(table, [index[n] for n in fold.held_out or [] if n in index], chunk_rows)
        out = predict([fold], held, device)
        for key, val in out.items():
            if key not in outputs:
                outputs[key] = np.full((len(table), val.shape[1]), np.nan, dtype=np.float32)
            outputs[key][held.rows] = val
    return outputs


def _write_split(run_dir: Path, split: str, table: SplitTable, outputs: dict[str, np.ndarray], task_list: list[str],
                 protocol: str, results: bool) -> None:
    cols = {col: outputs[t][:, j] for t in task_list for j, col in enumerate(track_columns(t, protocol))}
    write_predictions(run_dir, split, table.keys, cols)
    if not results:
        return
    names = table.df["name"]
    for track, counts in table.n_frames.items():
        rows = names.isin(list(counts)).to_numpy()
        if rows.any():
            write_results(run_dir, split, track, table.keys[rows], outputs[track][rows], counts, protocol)


# ---- fitting -------------------------------------------------------------------------------------------------


def _train_model(config: dict[str, Any], fit: VideoSet, select: VideoSet | None, device: torch.device,
                 run_dir: Path, rng: np.random.Generator, fold: int | None = None) -> tuple[Fitted, dict[str, Any]]:
    """Fit one model on ``fit``, choosing the epoch by the mean official score of the tasks on ``select`` (minus
    the loss when nothing there is scored; without ``select``, the last epoch); returns that epoch's model and a
    summary."""
    protocol, inputs, task_list = config["protocol"], list(config["inputs"]), list(config["tasks"])
    table = fit.table
    mean, std = moments(fit)  # normalisation applied batch by batch (Chunk.features)
    model = _make_model(config, table.dim, protocol, inputs, task_list).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=float(config["lr"]), weight_decay=float(config["weight_decay"]))
    tgt_all = {t: torch.from_numpy(v.astype(np.float32, copy=False)) for t, v in table.targets.items()}
    fitted = Fitted(model, mean, std)
    select_rows = select.rows if select is not None else None
    best_sel, best_state, best_epoch, bad_epochs, seen = -np.inf, None, 0, 0, 0
    prefix = "temporal epoch" if fold is None else f"temporal fold {fold} epoch"
    for epoch in range(1, int(config["epochs"]) + 1):
        model.train()
        losses = []
        for chunk, idx in epoch_batches(fit, rng, int(config["batch_size"])):
            rows = chunk.rows[idx]
            seen += len(rows)
            out = model(*_inputs(chunk, idx, mean, std, device))
            loss = _loss(out, {t: v[rows].to(device) for t, v in tgt_all.items()}, float(config["aux_weight"]))
            if not loss.requires_grad:
                continue
            optimizer_step(loss, opt)
            losses.append(loss.item())
        if seen == 0:
            where = f"the fit videos of fold {fold}" if fold is not None else f"the {table.split} split"
            raise AbawError(f"no frame of {where} of run {table.source.run_id} has a valid label for {task_list}")
        if select is None or select_rows is None:
            val_scores, sel = {}, float(epoch)  # nothing held out to choose on: the last epoch
        else:
            val_scores = _scores(predict([fitted], select, device), select.table, select_rows, protocol)
            sel = float(np.mean([s["score"] for s in val_scores.values()])) if val_scores else -float(np.mean(losses))
        record = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else None,
                  "validation": {t: s["score"] for t, s in val_scores.items()},
                  "selection": sel if select is not None else None}
        if fold is not None:
            record = {"fold": fold, **record}
        append_jsonl(run_dir / "metrics.jsonl", record)
        improved = sel > best_sel + 1e-6
        log.info(epoch_line(epoch, record, improved, prefix=prefix))
        if improved:
            best_sel, best_state, best_epoch, bad_epochs = sel, cpu_copy(model.state_dict()), epoch, 0
        else:
            bad_epochs += 1
            if bad_epochs >= int(config["patience"]):
                break
    model.load_state_dict(best_state if best_state is not None else cpu_copy(model.state_dict()))
    if select is not None:
        select.release()
    chosen = float(best_sel) if select is not None and np.isfinite(best_sel) else None
    return fitted, {"best_epoch": best_epoch, "selection_score": chosen}


def _state(fitted: Fitted) -> dict[str, Any]:
    state = {"model": cpu_copy(fitted.model.state_dict()), "feature_mean": torch.from_numpy(fitted.mean),
             "feature_std": torch.from_numpy(fitted.std)}
    if fitted.held_out is not None:
        state["held_out"] = list(fitted.held_out)
    return state


def _fit(source: Run, resolved: dict[str, Any], run_id: str, run_dir: Path, splits: list[str]) -> Path:
    config, protocol, task_list = resolved, resolved["protocol"], list(resolved["tasks"])
    seed, chunk_rows, fit_on = int(config["seed"]), int(config["chunk_rows"]), config["fit_on"]
    torch.manual_seed(seed)
    device = pick_device(config["device"])
    log.info("temporal: reading the %s outputs of run %s (fit on %s)", "/".join(config["inputs"]), source.run_id,
             fit_on)
    val = _read(source, "validation", config)
    # out of fold, the training split is only predicted at the end: read it then, not while the folds are fitted
    train = _read(source, "train", config) if fit_on == "train" else None

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    write_json(run_dir / "config.json", resolved)
    n_params = sum(p.numel() for p in _make_model(config, val.dim, protocol, list(config["inputs"]),
                                                  task_list).parameters())
    info = new_run_info(run_id, "temporal", resolved, data_root=config["data_root"], protocol=protocol,
                        tracks=task_list, model=f"cnu_adl_temporal_{config['variant']}", n_params=n_params,
                        members=None, streams=source.info.streams)
    info.source = source.run_id
    info.extra["fit_uses_validation"] = fit_on == "validation"
    write_run_info(run_dir, info)

    t0 = time.perf_counter()
    all_val = VideoSet(val, range(len(val.videos)), chunk_rows)
    if fit_on == "train":
        assert train is not None
        torch.manual_seed(seed)  # today's order of random draws: the model is the first
        rng = np.random.default_rng(seed)
        fitted, summary = _train_model(config, VideoSet(train, range(len(train.videos)), chunk_rows), all_val,
                                       device, run_dir, rng)
        models, folds_info = [fitted], [summary]
        val_out = predict(models, all_val, device)
        note = ("held out: the validation videos only chose the epoch; the model was fitted on the source's "
                "training-split outputs")
    else:
        models, folds_info = _fit_folds(config, val, device, run_dir)
        val_out = _out_of_fold(models, val, chunk_rows, device)
        note = ("out of fold: each validation video is predicted by a model fitted on other validation videos "
                "(GroupKFold by video file), whose epoch was chosen on yet others (with 3 folds or more; with 2, "
                "the last epoch)")
    train_seconds = time.perf_counter() - t0
    ckpt: dict[str, Any] = {"config": resolved}
    if fit_on == "train":
        ckpt.update(_state(models[0]))
    else:
        ckpt["folds"] = [_state(m) for m in models]
    save_checkpoint(run_dir / "checkpoints" / "best.pt", ckpt)

    all_val.release()
    val_scores = _scores(val_out, val, np.arange(len(val)), protocol)
    _write_split(run_dir, "validation", val, val_out, task_list, protocol, results=True)
    del val, val_out, all_val  # the training split is predicted alone
    if train is None and "train" in splits:
        train = _read(source, "train", config, labels=False)
    if train is not None:
        train.targets = {}  # fitted: only the outputs are written now
        _write_split(run_dir, "train", train, predict(models, VideoSet(train, range(len(train.videos)), chunk_rows),
                                                      device), task_list, protocol, results=False)
        del train
    details = {"fit_on": fit_on, "score_note": note, "folds": folds_info}
    finish_run(run_dir, info, {"split": "validation", "protocol": protocol, "tracks": val_scores,
                               "temporal": details}, train_seconds=train_seconds)
    log.info("temporal run %s: %s", run_id, ", ".join(f"{t} {s['score']:.4f}" for t, s in val_scores.items()))
    return run_dir


def _fit_folds(config: dict[str, Any], val: SplitTable, device: torch.device, run_dir: Path
               ) -> tuple[list[Fitted], list[dict[str, Any]]]:
    """One model per grouped fold of the validation videos: fitted on the other folds but the next one, which
    chooses its epoch; it predicts its own fold."""
    names = val.df["name"].to_numpy(dtype=str)
    groups = video_groups(names)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise AbawError(f"out-of-fold fitting needs at least 2 validation videos (files), run "
                        f"{val.source.run_id} has {n_groups}; set fit_on=train to fit on its training split",
                        path=val.source.predictions_path("validation"))
    video_of_row = np.repeat(np.arange(len(val.videos)), [e - s for _, s, e in val.videos])
    folds = [np.unique(video_of_row[held]) for _, held in grouped_folds(groups, int(config["folds"]))]
    chunk_rows, seed, n = int(config["chunk_rows"]), int(config["seed"]), len(folds)
    if n < 3:
        log.warning("temporal: %d validation video files make %d folds: no fold is left to choose the epoch, so "
                    "each fold model trains all %d epochs", n_groups, n, int(config["epochs"]))
    models, info = [], []
    for k, held in enumerate(folds):
        select = folds[(k + 1) % n] if n >= 3 else None
        fit = np.concatenate([f for j, f in enumerate(folds) if j != k and (select is None or j != (k + 1) % n)])
        torch.manual_seed(seed + k)
        rng = np.random.default_rng([seed, k])
        held_names = [val.videos[v][0] for v in held]
        log.info("temporal fold %d of %d: fit on %d videos, choose the epoch on %d, predict %d", k + 1, n, len(fit),
                 0 if select is None else len(select), len(held))
        fitted, summary = _train_model(config, VideoSet(val, fit, chunk_rows),
                                       None if select is None else VideoSet(val, select, chunk_rows),
                                       device, run_dir, rng, fold=k)
        fitted.held_out = held_names
        models.append(fitted)
        info.append({"fold": k, **summary, "held_out_videos": held_names,
                     "selection_videos": [] if select is None else [val.videos[v][0] for v in select],
                     "fit_videos": len(fit)})
    return models, info
