"""Prediction over a split, official scores, and ``evaluate_run``: predictions table, embeddings, result files,
scores JSON and plots of a trained run (docs/design.md section 5)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from abaw.data.sequences import SequenceDataset, SequenceVideo, eval_batches, make_windows
from abaw.errors import AbawError
from abaw.fileio import atomic_path, save_npy, write_json
from abaw.tasks import INVALID, VA_NAMES, au_columns, expr_columns, get_protocol

log = logging.getLogger(__name__)

OUTPUT_TASKS = ("va", "expr", "au")


def to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def activate(task: str, out: torch.Tensor) -> torch.Tensor:
    """Model output -> prediction: VA as is (tanh already), EXPR softmax probabilities, AU sigmoid probabilities."""
    if task == "expr":
        return torch.softmax(out.float(), dim=-1)
    if task == "au":
        return torch.sigmoid(out.float())
    return out.float()


@torch.inference_mode()
def predict_videos(model: nn.Module, videos: list[SequenceVideo], loader: Any, duration: int, batch_size: int,
                   tasks: Sequence[str], device: torch.device, amp: str | None = None,
                   embeddings: bool = True, progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Per-frame outputs of every video: ``{name: {"va": (n, 2), "expr": (n, C) probs, "au": (n, A) probs,
    "embedding": (n, F)}}``; windows tile each video, so every frame is predicted exactly once."""
    from tqdm import tqdm

    windows = make_windows(videos, duration)
    dataset = SequenceDataset(videos, windows, duration, tasks, loader)
    dl = DataLoader(dataset, batch_sampler=eval_batches(len(dataset), batch_size), num_workers=0,
                    generator=torch.Generator())
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        for batch in tqdm(dl, desc="predict", leave=False, disable=not progress):
            inputs = to_device(batch["inputs"], device)
            mask = batch["mask"].to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
                result = model(inputs, mask)
            keys = [t for t in tasks if t in result] + (["embedding"] if embeddings and "embedding" in result else [])
            arrays = {k: (activate(k, result[k]) if k in OUTPUT_TASKS else result[k].float()).cpu().numpy()
                      for k in keys}
            for row, (vi, start) in enumerate(batch["window"].tolist()):
                video = videos[vi]
                n = int(batch["mask"][row].sum())
                store = out.setdefault(video.name, {})
                for k, a in arrays.items():
                    if k not in store:
                        store[k] = np.full((video.n_frames,) + a.shape[2:], np.nan, np.float32)
                    store[k][start:start + n] = a[row, :n]
    finally:
        model.train(was_training)
    return out


def true_labels(video: SequenceVideo, task: str) -> np.ndarray:
    """Labels with the official invalid markers back in place (metrics drop them)."""
    lab = video.labels[task].copy()
    lab[~video.valid[task]] = INVALID[task]
    return lab[:, 0].astype(np.int64) if task == "expr" else lab


def decide(task: str, pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-frame probabilities -> the decisions the official metrics take."""
    if task == "expr":
        return pred.argmax(axis=1)
    if task == "au":
        return (pred >= threshold).astype(np.int64)
    return pred


def score_predictions(preds: dict[str, dict[str, np.ndarray]], videos: list[SequenceVideo], tasks: Sequence[str],
                      protocol: str) -> dict[str, Any]:
    """Official scores per task over all frames of all videos; ``score`` is their sum (the multi-task sum of the
    ABAW 2022 multi-task challenge for several tasks, the track's score for one)."""
    from abaw.metrics import score_track

    per_task: dict[str, dict[str, Any]] = {}
    for task in tasks:
        pred = np.concatenate([decide(task, preds[v.name][task]) for v in videos])
        true = np.concatenate([true_labels(v, task) for v in videos])
        per_task[task] = score_track(task, pred, true, protocol)
    return {"score": float(sum(float(s["score"]) for s in per_task.values())), "tracks": per_task}


def predictions_table(preds: dict[str, dict[str, np.ndarray]], videos: list[SequenceVideo], tasks: Sequence[str],
                      protocol: str) -> pd.DataFrame:
    """One row per annotated frame: name, frame, then valence/arousal, expression and AU probability columns."""
    parts = []
    for video in videos:
        p = preds[video.name]
        cols: dict[str, Any] = {"name": video.name, "frame": np.arange(1, video.n_frames + 1, dtype=np.int64)}
        if "va" in tasks:
            cols.update({c: p["va"][:, i] for i, c in enumerate(VA_NAMES)})
        if "expr" in tasks:
            cols.update({c: p["expr"][:, i] for i, c in enumerate(expr_columns(protocol))})
        if "au" in tasks:
            cols.update({c: p["au"][:, i] for i, c in enumerate(au_columns(protocol))})
        parts.append(pd.DataFrame(cols))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["name", "frame"])


def write_parquet(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def result_arrays(preds: dict[str, dict[str, np.ndarray]], videos: list[SequenceVideo],
                  task: str) -> dict[str, np.ndarray]:
    """Per-name decisions over the whole video (NaN after the annotated frames: the result writer fills them)."""
    out = {}
    for video in videos:
        if task not in video.annotated:
            continue
        dec = decide(task, preds[video.name][task]).astype(np.float32)
        dec = dec.reshape(len(dec), -1)
        n = max(video.video_frames, video.n_frames)
        full = np.full((n, dec.shape[1]), np.nan, np.float32)
        full[: len(dec)] = dec
        out[video.name] = full
    return out


def write_outputs(run_dir: Path, split: str, preds: dict[str, dict[str, np.ndarray]], videos: list[SequenceVideo],
                  cfg: dict[str, Any], scores: dict[str, Any] | None, submission: str | Path | None = None,
                  plots: bool = True) -> None:
    """Everything ``abaw evaluate`` writes for one split of a run."""
    from abaw.results import write_result_folder
    from abaw.train.config import tracks_of

    tasks, protocol = tracks_of(cfg), cfg["protocol"]
    write_parquet(run_dir / "predictions" / f"{split}.parquet", predictions_table(preds, videos, tasks, protocol))
    for video in videos:
        emb = preds[video.name].get("embedding")
        if emb is not None:
            save_npy(run_dir / "embeddings" / split / f"{video.name}.npy", emb.astype(np.float16))
    for task in tasks:
        arrays = result_arrays(preds, videos, task)
        write_result_folder(run_dir / "results" / split, task, arrays, protocol)
        if submission is not None:
            write_result_folder(Path(submission), task, arrays, protocol)
    if scores is not None:
        doc = {"split": split, "protocol": protocol, "score": scores["score"], "tracks": scores["tracks"]}
        write_json(run_dir / ("scores.json" if split == "validation" else f"scores_{split}.json"), doc)
    if plots:
        from abaw.train.plots import plot_split

        plot_split(run_dir / "plots", split, preds, videos, tasks, protocol, scores)


def evaluate_run(run_dir: str | Path, root: str | Path | None = None, split: str = "validation",
                 submission: str | Path | None = None, which: str = "best", batch_size: int | None = None,
                 plots: bool = True, progress: bool = False) -> dict[str, Any]:
    """Evaluate a run's best checkpoint on ``split``: writes predictions, embeddings, result files, scores and plots
    into the run folder and returns ``{"split", "protocol", "score", "tracks": {track: score_track dict}}``.

    ``split="test"``: the names of ``test_set/<track>.txt`` over their whole video; no labels, so no scores or
    plots: predictions and result files (``results/test/``), checked like a submission (one line per frame)."""
    from abaw.data.affwild2 import AffWild2
    from abaw.data.sequences import load_videos
    from abaw.runs.folder import now, record_run, update_run_json
    from abaw.train.checkpoint import load_model
    from abaw.train.config import tracks_of
    from abaw.train.distributed import pick_device
    from abaw.train.loop import make_loader

    if split not in ("train", "validation", "test"):
        raise AbawError(f"unknown split {split!r}; choose train, validation or test")
    run_dir = Path(run_dir)
    model, cfg = load_model(run_dir, which)
    root = Path(root or cfg["data"]["root"] or "")
    if not root.is_dir():
        raise AbawError("data root does not exist (give --data-root ROOT)", path=root)
    cfg["data"]["root"] = str(root.resolve())
    device = pick_device(cfg["train"].get("device"))
    model.to(device)
    tasks = tracks_of(cfg)
    ds = AffWild2(root, protocol=cfg["protocol"])
    if split == "test":
        from abaw.data.sequences import load_test_videos

        videos = load_test_videos(ds, tasks, cfg["protocol"])
        if not videos:
            raise AbawError(f"no test set list for tasks {', '.join(tasks)} (test_set/<track>.txt)", path=root)
    else:
        videos = load_videos(ds, split, tasks, cfg["protocol"], cfg["data"]["max_videos"])
    if not videos:
        raise AbawError(f"no annotated videos in split {split!r} for tasks {', '.join(tasks)}", path=root)
    if cfg["data"]["mode"] == "cached":  # a data root without this run's feature cache yet: extract it first
        from abaw.train.extract import extract_features

        extract_features(cfg, model, batch_size=cfg["data"]["extract_batch_size"], progress=progress)
    loader = make_loader(cfg, model)
    bs = batch_size or cfg["data"]["eval_batch_size"] or cfg["data"]["batch_size"]
    preds = predict_videos(model, videos, loader, cfg["data"]["duration"], bs, tasks, device, cfg["train"]["amp"],
                           progress=progress)
    if split == "test":
        return _write_test(run_dir, preds, videos, cfg, root, submission)
    scores = score_predictions(preds, videos, tasks, cfg["protocol"])
    write_outputs(run_dir, split, preds, videos, cfg, scores, submission, plots)
    update_run_json(run_dir, evaluated=now())
    record_run(run_dir)
    return {"split": split, "protocol": get_protocol(cfg["protocol"]).name, "score": scores["score"],
            "tracks": scores["tracks"]}


def _write_test(run_dir: Path, preds: dict[str, dict[str, np.ndarray]], videos: list[SequenceVideo],
                cfg: dict[str, Any], root: Path, submission: str | Path | None) -> dict[str, Any]:
    """Test predictions and result files of a run, each track's folder validated against the test set list."""
    from abaw.results import validate_submission
    from abaw.train.config import tracks_of

    write_outputs(run_dir, "test", preds, videos, cfg, None, submission, plots=False)
    protocol = get_protocol(cfg["protocol"])
    tracks: dict[str, Any] = {}
    for task in tracks_of(cfg):
        if not any(task in v.annotated for v in videos):
            continue
        folder = run_dir / "results" / "test" / protocol.annotation_dir(task)
        problems = validate_submission(folder, root, "test", task, cfg["protocol"])
        if problems:
            raise AbawError(f"the {task.upper()} test result files do not validate: " + "; ".join(problems[:3]),
                            path=folder)
        tracks[task] = {"folder": str(folder), "files": len(list(folder.glob("*.txt")))}
    return {"split": "test", "protocol": protocol.name, "score": None, "tracks": tracks}
