"""Label-only baselines, fitted on the train split: training mean (VA), majority class (EXPR), AU base rates (AU).

Each predicts the same output for every frame, so it is the floor any model must beat: the mean scores CCC 0 by
construction, the majority class gives the macro F1 of always saying one class, and the base-rate AU baseline outputs
each AU's training positive rate as its probability (decision: 1 iff the rate exceeds 0.5). One run folder per track
(docs/design.md section 5) holds the scores, the prediction table and the result files.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abaw import inference, tasks
from abaw.data.affwild2 import AffWild2, VideoEntry, dataset_fingerprint, valid_mask
from abaw.errors import AbawError
from abaw.fileio import write_json
from abaw.results import split_format, validate_submission, write_result_folder, write_results
from abaw.runs import outputs as runio
from abaw.runs.folder import record_run, removed_on_failure
from abaw.runs.info import new_run_info, read_json, write_run_info

log = logging.getLogger(__name__)

MODELS: dict[str, str] = {"va": "train_mean", "expr": "majority_class", "au": "au_base_rate"}
#: An AU's base rate decides 1 only above one half (a rate of exactly 0.5 is no majority): the smallest float above
#: 0.5, as the ``>=`` threshold of :func:`abaw.inference.decide`.
RATE_THRESHOLD = float(np.nextafter(0.5, 1.0))


def fit(track: str, labels: np.ndarray, protocol: str | tasks.Protocol | None = None) -> np.ndarray:
    """The baseline's output vector from training labels (all frames concatenated, invalid ones dropped here).

    VA: mean valence and arousal (2,). EXPR: class frequencies (n_expr,), the argmax is the majority class (ties: the
    lower index). AU: positive rate of each AU (n_au,).
    """
    track = tasks.check_track(track)
    proto = tasks.get_protocol(protocol)
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    labels = labels[valid_mask(track, labels)]
    if not len(labels):
        raise AbawError(f"no valid {track.upper()} training labels to fit a baseline on")
    if track == "va":
        return labels.mean(axis=0)
    if track == "expr":
        counts = np.bincount(labels[:, 0].astype(np.int64), minlength=proto.n_expr)
        return counts / counts.sum()
    return labels.mean(axis=0)


def decide(track: str, output: np.ndarray) -> np.ndarray:
    """The per-frame decision of an output vector (:func:`abaw.inference.decide`): VA values, the EXPR class index,
    AU 0/1 (1 only for a rate above 0.5)."""
    row = np.asarray(output, dtype=np.float64).reshape(1, -1)
    return np.atleast_1d(inference.decide(track, row, RATE_THRESHOLD)[0]).astype(np.float64)


def _columns(track: str, proto: tasks.Protocol) -> list[str]:
    return runio.track_columns(track, proto)


def _train_labels(ds: AffWild2, track: str) -> np.ndarray:
    return np.concatenate([ds.labels(e) for e in ds.entries("train", track)])


def _result_preds(entries: list[VideoEntry], decision: np.ndarray) -> dict[str, np.ndarray]:
    """One row per video frame (the whole video, as result files need), all the same decision."""
    return {e.name: np.tile(decision, (e.n_frames, 1)) for e in entries}


def run_track(ds: AffWild2, track: str, out_dir: str | Path, fingerprint: str | None = None,
              record: bool = False) -> Path:
    """Fit one track's baseline on train, apply it to validation (and test names), write its run folder."""
    track = tasks.check_track(track)
    proto = ds.protocol
    fingerprint = fingerprint or dataset_fingerprint(ds.root)
    model = MODELS[track]
    run_id = f"baseline-{track}-{proto.name}-{fingerprint[:8]}"
    run_dir = Path(out_dir) / run_id
    config = {"kind": "baseline", "model": model, "track": track, "protocol": proto.name,
              "data_root": str(ds.root.resolve()), "fit_split": "train", "eval_split": "validation"}
    start = time.perf_counter()
    output = fit(track, _train_labels(ds, track), proto)
    train_seconds = time.perf_counter() - start
    info = new_run_info(run_id, "baseline", config, data_root=ds.root, protocol=proto.name, tracks=[track],
                        model=model, n_params=len(output), train_seconds=train_seconds)
    # a baseline that fails leaves no new, unfinished run folder (one of an earlier fit is left in place)
    with removed_on_failure(run_dir, created=not run_dir.exists()):
        write_json(run_dir / "config.json", config)
        write_run_info(run_dir, info)

        entries = ds.entries("validation", track)
        labels = [ds.labels(e) for e in entries]
        decision = decide(track, output)
        true = np.concatenate(labels)
        scores = inference.score(track, np.tile(output, (len(true), 1)), true, proto, RATE_THRESHOLD)

        keys = pd.DataFrame({
            "name": np.concatenate([[e.name] * len(lab) for e, lab in zip(entries, labels, strict=True)]),
            "frame": np.concatenate([np.arange(1, len(lab) + 1) for lab in labels]),
        })
        columns = dict(zip(_columns(track, proto), np.tile(output, (len(keys), 1)).T, strict=True))
        runio.write_predictions(run_dir, "validation", keys, columns)
        folder = write_result_folder(run_dir / "results" / "validation", track, _result_preds(entries, decision), proto)
        problems = validate_submission(folder, ds.root, "validation", track, proto)
        if problems:
            raise AbawError(f"baseline result files failed validation: {problems[0]}", path=folder)
        test_file = ds.root / "test_set" / f"{track}.txt"
        if test_file.is_file():
            test_entries = [e for e in ds.test_entries(track) if e.video_path is not None]
            write_results(run_dir / "results" / "test", track, _result_preds(test_entries, decision), proto,
                          split_format("test", proto))

        write_json(run_dir / "scores.json", {"split": "validation", "protocol": proto.name, "tracks": {track: scores}})
        write_run_info(run_dir, info.updated(status="finished"))
    if record:
        record_run(run_dir)
    log.info("%s: %s baseline, validation %s score %.4f", run_id, model, track.upper(), scores["score"])
    return run_dir


def run_baselines(root: str | Path, out_dir: str | Path, protocol: str | tasks.Protocol | None = None,
                  record: bool = False) -> dict[str, Path]:
    """Run the baseline of every track that has train and validation annotations; ``{track: run_dir}``."""
    ds = AffWild2(root, protocol=protocol)
    fingerprint = dataset_fingerprint(root)
    runs: dict[str, Path] = {}
    for track in tasks.TRACKS:
        if not (ds.has("train", track) and ds.has("validation", track)):
            log.info("%s: no %s train/validation annotations, no baseline", root, track.upper())
            continue
        runs[track] = run_track(ds, track, out_dir, fingerprint, record=record)
    if not runs:
        raise AbawError("no track has both train and validation annotations", path=root)
    return runs


def summary(runs: dict[str, Path]) -> dict[str, Any]:
    """``{track: scores}`` read back from the run folders (for printing)."""
    return {track: read_json(run_dir / "scores.json")["tracks"][track] for track, run_dir in runs.items()}
