"""Fusion of two or more runs of one track: unweighted mean, weights tuned for the official score, and stacking.

Tuned fusions (weighted, stack) are scored out of fold: the validation videos are split into groups
(``GroupKFold`` by video file), each group's fused outputs come from weights / a stacker fitted on the other
groups, and the score of those held-out outputs is the fused score. A fit on all frames is kept for use on new
data and its score is reported as in-sample.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from abaw import tasks
from abaw.errors import AbawError
from abaw.fileio import write_json
from abaw.inference import score
from abaw.posthoc.choices import ENSEMBLE_METHODS as METHODS
from abaw.posthoc.smoothing import SmoothingResult, smooth_by_video, tune_smoothing
from abaw.posthoc.thresholds import ThresholdResult, tune_thresholds_cv
from abaw.runs.folder import finish_run, removed_on_failure
from abaw.runs.info import config_hash, new_run_info, read_json, write_run_info
from abaw.runs.outputs import (
    Run,
    grouped_folds,
    labels_for_rows,
    load_labels,
    load_run,
    split_frame_counts,
    stack_runs,
    track_columns,
    video_groups,
    write_predictions,
    write_results,
)

log = logging.getLogger(__name__)


def fuse_mean(values: np.ndarray) -> np.ndarray:
    """Unweighted mean over members: ``(n_runs, n_rows, k) -> (n_rows, k)``."""
    return np.asarray(values).mean(axis=0)


def fuse_weighted(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over members (weights sum to 1)."""
    w = np.asarray(weights, dtype=np.float64)
    return np.tensordot(w / w.sum(), np.asarray(values), axes=1)


def simplex_grid(n: int, max_points: int = 100) -> np.ndarray:
    """Weight vectors on the simplex with the finest step (of 1/20, 1/10, 1/5, …) giving at most ``max_points``."""
    for steps in (20, 10, 5, 4, 3, 2, 1):
        n_points = _n_compositions(steps, n)
        if n_points <= max_points or steps == 1:
            break
    # compositions of ``steps`` into ``n`` parts (stars and bars)
    points = []
    for bars in itertools.combinations(range(steps + n - 1), n - 1):
        edges = (-1, *bars, steps + n - 1)
        points.append([edges[i + 1] - edges[i] - 1 for i in range(n)])
    return np.asarray(points, dtype=np.float64) / steps


def _n_compositions(steps: int, n: int) -> int:
    from math import comb

    return comb(steps + n - 1, n - 1)


def tune_weights(track: str, values: np.ndarray, true: np.ndarray, protocol: str | None = None,
                 max_points: int = 100) -> tuple[np.ndarray, float]:
    """The simplex-grid weights with the best official score on these rows, and that score."""
    best_w, best_s = None, -np.inf
    for w in simplex_grid(values.shape[0], max_points):
        s = float(score(track, fuse_weighted(values, w), true, protocol)["score"])
        if s > best_s + 1e-12:
            best_w, best_s = w, s
    return best_w, best_s


# ---- stacking ------------------------------------------------------------------------------------------------


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Stacker:
    """A scikit-learn model over the members' outputs: LogisticRegression (EXPR), Ridge (VA), one logistic
    regression per AU over that AU's member probabilities (AU)."""

    def __init__(self, track: str, n_outputs: int) -> None:
        self.track = tasks.check_track(track)
        self.k = n_outputs
        self.models: list[Any] = []

    def _features(self, values: np.ndarray) -> np.ndarray:
        # (n_runs, n, k) -> (n, n_runs * k)
        if self.track == "expr":
            values = np.log(np.clip(values, 1e-6, 1.0))
        return np.transpose(values, (1, 0, 2)).reshape(values.shape[1], -1)

    def fit(self, values: np.ndarray, true: np.ndarray) -> Stacker:
        from sklearn.linear_model import LogisticRegression, Ridge

        if self.track == "va":
            ok = np.all(true > tasks.VA_INVALID, axis=1)
            self.models = [Ridge(alpha=1.0).fit(self._features(values[:, ok]), true[ok])]
        elif self.track == "expr":
            y = true.reshape(-1)
            ok = y >= 0
            self.models = [LogisticRegression(C=1.0, max_iter=500).fit(self._features(values[:, ok]), y[ok])]
        else:
            self.models = []
            for j in range(self.k):
                ok = (true[:, j] == 0) | (true[:, j] == 1)
                y = true[ok, j].astype(int)
                if len(np.unique(y)) < 2:  # one class only in the fit rows: fall back to the members' mean
                    self.models.append(None)
                    continue
                x = _logit(values[:, ok, j].T)
                self.models.append(LogisticRegression(C=1.0, max_iter=500).fit(x, y))
        return self

    def predict(self, values: np.ndarray) -> np.ndarray:
        if self.track == "va":
            return np.clip(self.models[0].predict(self._features(values)), -1.0, 1.0)
        if self.track == "expr":
            model = self.models[0]
            out = np.zeros((values.shape[1], self.k))
            out[:, model.classes_.astype(int)] = model.predict_proba(self._features(values))
            return out
        out = np.empty((values.shape[1], self.k))
        for j, model in enumerate(self.models):
            out[:, j] = values[:, :, j].mean(axis=0) if model is None else model.predict_proba(
                _logit(values[:, :, j].T))[:, 1]
        return out

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for m in self.models:
            if m is None:
                out.append({"model": "mean"})
            else:
                out.append({"model": type(m).__name__, "coef": np.asarray(m.coef_).round(4).tolist(),
                             "intercept": np.asarray(m.intercept_).round(4).tolist()})
        return out


# ---- the ensemble --------------------------------------------------------------------------------------------


@dataclass
class EnsembleResult:
    method: str
    #: fused outputs of every row; out of fold for the tuned methods
    values: np.ndarray
    score: dict[str, Any]
    #: True when ``score`` comes from held-out videos (or needs no fitting, as the mean)
    held_out: bool
    in_sample_score: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    folds: list[dict[str, Any]] = field(default_factory=list)


def fuse(track: str, method: str, values: np.ndarray, true: np.ndarray, names: np.ndarray,
         protocol: str | None = None, n_splits: int = 5) -> EnsembleResult:
    """Fuse member outputs ``values`` (n_runs, n_rows, k) by ``method`` and score the result honestly."""
    track = tasks.check_track(track)
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "mean":
        fused = fuse_mean(values)
        return EnsembleResult("mean", fused, score(track, fused, true, protocol), held_out=True,
                              params={"weights": [1.0 / len(values)] * len(values)})
    names = np.asarray(names, dtype=str)
    oof = np.empty(values.shape[1:], dtype=np.float64)
    folds: list[dict[str, Any]] = []
    for fit, held in grouped_folds(video_groups(names), n_splits):
        info: dict[str, Any] = {"held_out_videos": sorted(set(video_groups(names[held])))}
        if method == "weighted":
            w, _ = tune_weights(track, values[:, fit], true[fit], protocol)
            oof[held] = fuse_weighted(values[:, held], w)
            info["weights"] = w.round(4).tolist()
        else:
            oof[held] = Stacker(track, values.shape[2]).fit(values[:, fit], true[fit]).predict(values[:, held])
        folds.append(info)
    if method == "weighted":
        w, in_sample = tune_weights(track, values, true, protocol)
        params: dict[str, Any] = {"weights": w.round(4).tolist()}
    else:
        stacker = Stacker(track, values.shape[2]).fit(values, true)
        in_sample = float(score(track, stacker.predict(values), true, protocol)["score"])
        params = {"stacker": stacker.describe()}
    return EnsembleResult(method, oof, score(track, oof, true, protocol), held_out=True,
                          in_sample_score=float(in_sample), params=params, folds=folds)


def _applied(summary: dict[str, Any], gain: float) -> dict[str, Any]:
    """Mark a tuned add-on as applied to the fused run's outputs only when its held-out gain is positive."""
    note = ("applied: it raised the held-out score" if gain > 0 else
            "not applied: it did not raise the held-out score, so the fused outputs are left as they were")
    return {**summary, "applied": gain > 0, "applied_note": note + " (this keep/drop choice is itself made on the "
            "validation videos)"}


# ---- ensemble runs -------------------------------------------------------------------------------------------


def trained_names(run: Run, ds: Any, _depth: int = 0) -> set[str]:
    """The names whose labels trained ``run``: a training run's training names (without the ones its split hygiene
    left out, when its ``run.json`` says it applied it), a temporal run's source's, an ensemble's members'."""
    from abaw.data.affwild2 import held_out_of_training

    sources = run.config.get("members") or ([run.config["source_dir"]] if run.config.get("source_dir") else [])
    if run.info.kind in ("temporal", "ensemble"):
        found: set[str] = set()
        for source in sources:
            if _depth < 8 and Path(source).is_dir() and (Path(source) / "run.json").is_file():
                found |= trained_names(load_run(source), ds, _depth + 1)
        return found
    tracks = [t for t in run.info.tracks if t in tasks.TRACKS]
    names = {e.name for t in tracks for e in ds.entries("train", t)}
    if "split_hygiene" in run.info.extra:
        names -= set(held_out_of_training(ds, tracks))
    return names


def _leave_out_trained(runs: list[Run], labels: dict[str, np.ndarray], track: str, data_root: str | Path,
                       protocol: str) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """Drop the validation names a member trained on (a name in one track's training split and this track's
    validation split, trained on by a multi-task member made before split hygiene): the fusion is neither fitted nor
    scored on them. Returns the kept labels and what was left out (None when nothing was)."""
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(data_root, protocol=protocol)
    by_run = {r.run_id: sorted(trained_names(r, ds) & set(labels)) for r in runs}
    left = sorted({n for names in by_run.values() for n in names})
    if not left:
        return labels, None
    frames = int(sum(tasks.valid_mask(track, labels[n]).sum() for n in left))
    if len(left) == len(labels):
        raise AbawError(f"every {track.upper()} validation name was trained on by a member "
                        f"({', '.join(r for r, n in by_run.items() if n)}): nothing left to fuse on",
                        path=runs[0].path)
    log.info("split hygiene: the ensemble leaves out %d %s validation name(s) that a member trained on, %d labelled "
             "frames: %s", len(left), track.upper(), frames, ", ".join(left[:10]) + (" ..." if len(left) > 10 else ""))
    return ({n: v for n, v in labels.items() if n not in set(left)},
            {"left_out": left, "labelled_frames": frames, "trained_by": {r: n for r, n in by_run.items() if n}})


@dataclass
class EnsembleReport:
    run_dir: Path
    track: str
    method: str
    member_scores: dict[str, float]
    fused: EnsembleResult
    final_score: float
    smoothing: SmoothingResult | None = None
    thresholds: ThresholdResult | None = None
    seconds: float = 0.0


def ensemble_runs(run_dirs: list[str | Path], track: str, method: str = "mean", *, smooth: bool = False,
                  tune_au_thresholds: bool = False, data_root: str | Path | None = None,
                  out_dir: str | Path = "runs", split: str = "validation", n_splits: int = 5) -> EnsembleReport:
    """Fuse the ``track`` outputs of ``run_dirs`` on ``split`` and write the fused run folder (kind ``ensemble``).

    The members must predict exactly the same frames of the track's videos; names the track does not annotate (a
    multi-task run's other videos) are left out.
    """
    t0 = time.perf_counter()
    track = tasks.check_track(track)
    if len(run_dirs) < 2:
        raise AbawError("an ensemble needs at least two runs")
    if n_splits < 2:
        raise AbawError(f"grouped cross-validation needs at least 2 folds, got {n_splits}")
    if tune_au_thresholds and track != "au":
        raise AbawError("--thresholds tunes per-AU thresholds: it needs --track au")
    runs = [load_run(p) for p in run_dirs]
    ids = [r.run_id for r in runs]
    if len(set(ids)) < len(ids):
        raise AbawError(f"the same run is given twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    protocols = {r.run_id: r.protocol for r in runs}
    if len(set(protocols.values())) > 1:
        raise AbawError(f"members use different protocols: {protocols}")
    protocol = runs[0].protocol
    data_root = data_root or runs[0].data_root
    if data_root is None:
        raise AbawError(f"run {runs[0].run_id} records no data root; pass --data-root", path=runs[0].path)
    columns = track_columns(track, protocol)
    labels = load_labels(data_root, split, track, protocol)
    hygiene = None
    if split == "validation":
        labels, hygiene = _leave_out_trained(runs, labels, track, data_root, protocol)
    keys, values = stack_runs(runs, split, columns, names=set(labels))
    if not len(keys):
        raise AbawError(f"no predicted frame of run {runs[0].run_id} belongs to a {track.upper()} {split} video",
                        path=runs[0].predictions_path(split))
    for run, vals in zip(runs, values, strict=True):
        if np.isnan(vals).any():
            bad = keys["name"].to_numpy()[np.isnan(vals).any(axis=1)][0]
            raise AbawError(f"run {run.run_id} has no {track.upper()} output (NaN) for video {bad}",
                            path=run.predictions_path(split))
    true = labels_for_rows(keys, labels, track, protocol)
    names = keys["name"].to_numpy(dtype=str)
    member_scores = {r.run_id: float(score(track, v, true, protocol)["score"]) for r, v in zip(runs, values,
                                                                                            strict=True)}
    fused = fuse(track, method, values, true, names, protocol, n_splits)
    final, thr = fused.values, 0.5
    smoothing = thresholds = None
    skipped = None
    n_videos = len(set(video_groups(names)))
    if (smooth or tune_au_thresholds) and n_videos < 2:
        # a tuned add-on cannot be scored on held-out videos with one video: leave it out and say so
        skipped = f"smoothing/thresholds not tuned: the {split} split has {n_videos} {track.upper()} video"
        log.warning("%s", skipped)
        smooth = tune_au_thresholds = False
    if smooth:
        smoothing = tune_smoothing(track, final, true, names, protocol, n_splits=n_splits)
        if smoothing.gain > 0:  # kept only when it helps held-out videos (one binary choice, said in the note)
            final = smoothing.values
    if tune_au_thresholds:
        thresholds = tune_thresholds_cv(final, true, names, protocol, n_splits=n_splits)
        if thresholds.cv_score > thresholds.default_score:
            thr = thresholds.row_thresholds
    final_scores = score(track, final, true, protocol, thr)

    config = {"kind": "ensemble", "track": track, "method": method, "members": [str(r.path.resolve()) for r in runs],
              "smooth": smoothing is not None, "thresholds": thresholds is not None, "split": split, "folds": n_splits,
              "protocol": protocol, "data_root": str(Path(data_root).resolve())}
    suffix = "-smooth" if smoothing is not None else ""
    run_id = f"ensemble-{track}-{method}{suffix}-{config_hash(config)[:8]}"
    run_dir = Path(out_dir) / run_id
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    with removed_on_failure(run_dir, created):  # a failed write leaves no new, unfinished run folder
        write_json(run_dir / "config.json", config)
        info = new_run_info(run_id, "ensemble", config, data_root=data_root, protocol=protocol, tracks=[track],
                            model=f"ensemble_{method}", members=ids)
        # validation videos fitted something: tuned weights, a stacker, smoothing, thresholds, or a member's own fit
        info.extra["fit_uses_validation"] = bool(
            method != "mean" or smoothing is not None or thresholds is not None
            or any(r.info.extra.get("fit_uses_validation") for r in runs))
        write_run_info(run_dir, info)
        write_predictions(run_dir, split, keys, dict(zip(columns, final.T, strict=True)))
        write_results(run_dir, split, track, keys, final, {n: len(v) for n, v in labels.items()}, protocol, thr)
        honest = ("mean of the members: nothing fitted" if method == "mean" else
                  "out of fold: each video's fused outputs come from a fit on the other folds' videos (GroupKFold)")
        details: dict[str, Any] = {
            "method": method, "members": member_scores, "fused_score": float(fused.score["score"]),
            "fused_score_note": honest, "in_sample_score": fused.in_sample_score,
            "in_sample_note": None if fused.in_sample_score is None else "fitted and scored on the same frames",
            "params": fused.params, "folds": fused.folds,
            "smoothing": _applied(smoothing.summary(), smoothing.gain) if smoothing else None,
            "thresholds": _applied(thresholds.summary(track_columns("au", protocol)),
                                   thresholds.cv_score - thresholds.default_score) if thresholds else None,
            "skipped": skipped, "split_hygiene": hygiene,
        }
        seconds = time.perf_counter() - t0
        finish_run(run_dir, info, {"split": split, "protocol": protocol, "tracks": {track: final_scores},
                                   "ensemble": details}, train_seconds=seconds)
    return EnsembleReport(run_dir, track, method, member_scores, fused, float(final_scores["score"]), smoothing,
                          thresholds, seconds)


def apply_ensemble(run_dir: str | Path, split: str = "test") -> Path:
    """Apply a fused run's recorded fusion to its members' ``split`` predictions (e.g. the test set, which has no
    labels to tune on): the member weights, and the smoothing and AU thresholds where they were applied, all as
    chosen on the validation videos. Writes ``predictions/<split>.parquet`` and ``results/<split>/``."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    if config.get("kind") != "ensemble":
        raise AbawError("not an ensemble run folder", path=run_dir)
    details = read_json(run_dir / "scores.json").get("ensemble") or {}
    track, protocol, method = config["track"], config["protocol"], config["method"]
    if split == config.get("split", "validation"):
        raise AbawError(f"the ensemble was tuned on the {split} split: its outputs there are already in the run",
                        path=run_dir)
    weights = (details.get("params") or {}).get("weights")
    if weights is None:
        raise AbawError(f"a {method!r} ensemble keeps no weights to apply to new videos (mean and weighted do)",
                        path=run_dir / "scores.json")
    runs = [load_run(p) for p in config["members"]]
    n_frames = split_frame_counts(config["data_root"], split, track, protocol)
    keys, values = stack_runs(runs, split, track_columns(track, protocol), names=set(n_frames))
    if not len(keys) or np.isnan(values).any():
        raise AbawError(f"the members of {run_dir.name} do not all predict every {track.upper()} {split} frame "
                        f"(make them with `abaw evaluate RUN --split {split}`)", path=runs[0].predictions_path(split))
    final = fuse_weighted(values, np.asarray(weights, dtype=np.float64))
    smoothing, thresholds, thr = details.get("smoothing"), details.get("thresholds"), 0.5
    if smoothing and smoothing.get("applied") and int(smoothing["window"]) > 1:
        final = smooth_by_video(track, final, keys["name"].to_numpy(dtype=str), smoothing["method"],
                                int(smoothing["window"]))
    if thresholds and thresholds.get("applied"):
        thr = np.asarray([thresholds["thresholds"][c] for c in track_columns("au", protocol)], dtype=np.float64)
    write_predictions(run_dir, split, keys, dict(zip(track_columns(track, protocol), final.T, strict=True)))
    return write_results(run_dir, split, track, keys, final, n_frames, protocol, thr)
