"""Official scores of a split's per-frame outputs, and ``evaluate_run``: predictions table, embeddings, result
files, scores JSON and plots of a trained run (docs/design.md section 5). The outputs and decisions come from
:mod:`abaw.inference`, as for ``abaw predict``; the training loop imports this module, never the reverse."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abaw.data.sequences import SequenceVideo
from abaw.errors import AbawError
from abaw.fileio import atomic_path, save_npy, write_json
from abaw.inference import batch_size as eval_batch_size
from abaw.inference import decide, load_run_model, make_loader, predict_videos, score, window_length
from abaw.runs.outputs import track_columns
from abaw.tasks import INVALID, get_protocol

log = logging.getLogger(__name__)

#: Frames per group of videos predicted together by ``evaluate`` (bounds the embeddings held: 32,768 x 2048-d
#: float32 is 268 MB), so memory does not grow with the split.
GROUP_FRAMES = 32768


def true_labels(video: SequenceVideo, task: str) -> np.ndarray:
    """Labels with the official invalid markers back in place (metrics drop them)."""
    lab = video.labels[task].copy()
    lab[~video.valid[task]] = INVALID[task]
    return lab[:, 0].astype(np.int64) if task == "expr" else lab


def score_predictions(preds: dict[str, dict[str, np.ndarray]], videos: list[SequenceVideo], tasks: Sequence[str],
                      protocol: str) -> dict[str, Any]:
    """Official scores per task over all frames of all videos; ``score`` is their sum (the multi-task sum of the
    ABAW 2022 multi-task challenge for several tasks, the track's score for one)."""
    per_task: dict[str, dict[str, Any]] = {}
    for task in tasks:
        values = np.concatenate([preds[v.name][task] for v in videos])
        true = np.concatenate([true_labels(v, task) for v in videos])
        per_task[task] = score(task, values, true, protocol)
    return {"score": float(sum(float(s["score"]) for s in per_task.values())), "tracks": per_task}


def predictions_table(preds: dict[str, dict[str, np.ndarray]], videos: list[SequenceVideo], tasks: Sequence[str],
                      protocol: str) -> pd.DataFrame:
    """One row per annotated frame: name, frame, then valence/arousal, expression and AU probability columns."""
    parts = []
    for video in videos:
        p = preds[video.name]
        cols: dict[str, Any] = {"name": video.name, "frame": np.arange(1, video.n_frames + 1, dtype=np.int64)}
        for task in tasks:
            cols.update({c: p[task][:, i] for i, c in enumerate(track_columns(task, protocol))})
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
    """Everything ``abaw evaluate`` writes for one split of a run (embeddings only those still in ``preds``:
    :func:`predict_streaming` has written and dropped them)."""
    from abaw.results import split_format, write_results
    from abaw.train.config import tracks_of

    tasks, protocol = tracks_of(cfg), cfg["protocol"]
    write_parquet(run_dir / "predictions" / f"{split}.parquet", predictions_table(preds, videos, tasks, protocol))
    for video in videos:
        emb = preds[video.name].get("embedding")
        if emb is not None:
            save_npy(run_dir / "embeddings" / split / f"{video.name}.npy", emb.astype(np.float16))
    for task in tasks:
        arrays = result_arrays(preds, videos, task)
        write_results(run_dir / "results" / split, task, arrays, protocol, split_format(split, protocol))
        if submission is not None:
            write_results(Path(submission), task, arrays, protocol, split_format(split, protocol))
    if scores is not None:
        doc = {"split": split, "protocol": protocol, "score": scores["score"], "tracks": scores["tracks"]}
        write_json(run_dir / ("scores.json" if split == "validation" else f"scores_{split}.json"), doc)
    if plots:
        from abaw.train.plots import plot_split

        plot_split(run_dir / "plots", split, preds, videos, tasks, protocol, scores)


def video_groups(videos: list[SequenceVideo], max_frames: int = GROUP_FRAMES) -> list[list[SequenceVideo]]:
    """Consecutive videos in groups of at most ``max_frames`` frames (a longer video is a group of its own)."""
    groups: list[list[SequenceVideo]] = []
    size = 0
    for video in videos:
        if not groups or size + video.n_frames > max_frames:
            groups.append([])
            size = 0
        groups[-1].append(video)
        size += video.n_frames
    return groups


def predict_streaming(model: Any, videos: list[SequenceVideo], loader: Any, duration: int, batch_size: int,
                      tasks: Sequence[str], device: Any, amp: str | None, embedding_dir: Path,
                      progress: bool = False, max_frames: int = GROUP_FRAMES,
                      workers: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """:func:`~abaw.inference.predict_videos` over groups of videos of at most ``max_frames`` frames (one loader
    per group, so a loader's start-up is paid per group, not per video), each video's embedding written to
    ``embedding_dir/<name>.npy`` (float16) once its group is done and not kept: the outputs returned are small
    (frames x the tracks' columns), so the embeddings held at once are one group's, never the split's."""
    from tqdm import tqdm

    preds: dict[str, dict[str, np.ndarray]] = {}
    with tqdm(total=len(videos), desc="predict", unit="video", leave=False, disable=not progress) as bar:
        for group in video_groups(videos, max_frames):
            out = predict_videos(model, group, loader, duration, batch_size, tasks, device, amp, workers=workers)
            for name, store in out.items():
                emb = store.pop("embedding", None)
                if emb is not None:
                    save_npy(embedding_dir / f"{name}.npy", emb.astype(np.float16))
                preds[name] = store
            bar.update(len(group))
    return preds


def evaluate_run(run_dir: str | Path, root: str | Path | None = None, split: str = "validation",
                 submission: str | Path | None = None, which: str = "best", batch_size: int | None = None,
                 plots: bool = True, progress: bool = False) -> dict[str, Any]:
    """Evaluate a run's best checkpoint on ``split``: writes predictions, embeddings, result files, scores and plots
    into the run folder and returns ``{"split", "protocol", "score", "tracks": {track: score_track dict}}``.

    ``split="test"``: the names of ``test_set/<track>.txt`` over their whole video; no labels, so no scores or
    plots: predictions and result files (``results/test/``), checked like a submission (one line per frame)."""
    from abaw.data.affwild2 import AffWild2
    from abaw.data.sequences import load_videos
    from abaw.runs.folder import record_run
    from abaw.runs.info import now, update_run_info
    from abaw.train.config import tracks_of

    if split not in ("train", "validation", "test"):
        raise AbawError(f"unknown split {split!r}; choose train, validation or test")
    run_dir = Path(run_dir)
    model, cfg, device = load_run_model(run_dir, which)
    root = Path(root or cfg["data"]["root"] or "")
    if not root.is_dir():
        raise AbawError("data root does not exist (give --data-root ROOT)", path=root)
    cfg["data"]["root"] = str(root.resolve())
    tasks = tracks_of(cfg)
    ds = AffWild2(root, protocol=cfg["protocol"])
    if split == "test":
        from abaw.data.sequences import load_test_videos

        videos = load_test_videos(ds, tasks, cfg["protocol"])
        if not videos:
            raise AbawError(f"no test set list for tasks {', '.join(tasks)} (test_set/<track>.txt)", path=root)
    else:
        # the training names this run never trained on (split hygiene) are not its training outputs: a temporal
        # model fitted on them would learn from predictions of unseen people as if they were fitted ones
        left_out = _left_out(run_dir) if split == "train" else []
        if left_out:
            log.info("split hygiene: %d training name(s) this run left out are not predicted", len(left_out))
        videos = load_videos(ds, split, tasks, cfg["protocol"], cfg["data"]["max_videos"], exclude=left_out)
    if not videos:
        raise AbawError(f"no annotated videos in split {split!r} for tasks {', '.join(tasks)}", path=root)
    if cfg["data"]["mode"] == "cached":  # a data root without this run's feature cache yet: extract it first
        from abaw.train.extract import extract_features

        extract_features(cfg, model, batch_size=cfg["data"]["extract_batch_size"], progress=progress)
    loader = make_loader(cfg, model)
    preds = predict_streaming(model, videos, loader, window_length(cfg), eval_batch_size(cfg, batch_size), tasks,
                              device, cfg["train"]["amp"], run_dir / "embeddings" / split, progress=progress)
    if split == "test":
        return _write_test(run_dir, preds, videos, cfg, root, submission)
    scores = score_predictions(preds, videos, tasks, cfg["protocol"])
    write_outputs(run_dir, split, preds, videos, cfg, scores, submission, plots)
    update_run_info(run_dir, evaluated=now())
    record_run(run_dir)
    return {"split": split, "protocol": get_protocol(cfg["protocol"]).name, "score": scores["score"],
            "tracks": scores["tracks"]}


def _left_out(run_dir: Path) -> list[str]:
    """The training names a run left out for split hygiene (``run.json``), none for runs made before the rule."""
    from abaw.runs.info import read_run_info

    if not (run_dir / "run.json").is_file():
        return []
    record = read_run_info(run_dir).extra.get("split_hygiene") or {}
    return list(record.get("left_out") or [])


def _write_test(run_dir: Path, preds: dict[str, dict[str, np.ndarray]], videos: list[SequenceVideo],
                cfg: dict[str, Any], root: Path, submission: str | Path | None) -> dict[str, Any]:
    """Test predictions and result files of a run, each track's folder validated against the test set list."""
    from abaw.results import result_path, split_format, validate_submission
    from abaw.train.config import tracks_of

    write_outputs(run_dir, "test", preds, videos, cfg, None, submission, plots=False)
    protocol = get_protocol(cfg["protocol"])
    tracks: dict[str, Any] = {}
    for task in tracks_of(cfg):
        if not any(task in v.annotated for v in videos):
            continue
        folder = result_path(run_dir / "results" / "test", task, protocol, split_format("test", protocol))
        problems = validate_submission(folder, root, "test", task, cfg["protocol"])
        if problems:
            raise AbawError(f"the {task.upper()} test result files do not validate: " + "; ".join(problems[:3]),
                            path=folder)
        tracks[task] = {"folder": str(folder), "files": len(list(folder.glob("*.txt"))) if folder.is_dir() else 1}
    return {"split": "test", "protocol": protocol.name, "score": None, "tracks": tracks}
