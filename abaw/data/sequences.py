"""Sequence datasets and samplers: windows of ``duration`` frames over the annotated videos of a split.

Training windows are laid every ``stride`` frames (stride = duration by default); evaluation windows tile each video
without overlap, so every frame is predicted exactly once. A sample holds the stream inputs (see
:mod:`abaw.data.stream_inputs`), per-task targets and validity masks, and a padding mask. Epoch orders are a pure
function of (seed, epoch), so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from abaw.errors import AbawError
from abaw.tasks import MTL_LAYOUT, get_protocol

log = logging.getLogger(__name__)


@dataclass
class SequenceVideo:
    """One annotation name of a split with the labels of every requested task (invalid where a task has none)."""

    name: str
    video: str
    n_frames: int  # frames covered: the longest annotation file of the name
    fps: float
    video_frames: int
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # task -> (n_frames, k) float32
    valid: dict[str, np.ndarray] = field(default_factory=dict)  # task -> (n_frames,) bool
    annotated: tuple[str, ...] = ()  # tasks that have an annotation file of this name


def _fit(array: np.ndarray, n: int, fill: float) -> np.ndarray:
    if len(array) >= n:
        return array[:n]
    pad = np.full((n - len(array),) + array.shape[1:], fill, dtype=array.dtype)
    return np.concatenate([array, pad])


def load_videos(ds: Any, split: str, tasks: Sequence[str], protocol: str | None = None,
                max_videos: int | None = None, exclude: Collection[str] = (),
                only: Collection[str] | None = None, frames_only: bool = False) -> list[SequenceVideo]:
    """The annotation names of ``split`` for ``tasks``; for several tasks a name's labels come from each track's
    annotation file of that name where it exists, and are invalid elsewhere. ``exclude`` drops names (before
    ``max_videos`` is applied), ``only`` keeps just those. ``frames_only``: names and frame counts without parsing the
    labels (feature extraction and its completeness check; the label-line counts of the index suffice, except in the
    multi-task CSV layout, whose label length depends on the rows)."""
    from abaw.data.affwild2 import valid_mask  # the reader (another module); imported late to keep this light

    proto = get_protocol(protocol)
    per_task = {task: {e.name: e for e in ds.entries(split, task)} for task in tasks}
    names = sorted({n for task in tasks for n in per_task[task]} - set(exclude))
    if only is not None:
        names = [n for n in names if n in set(only)]
    if max_videos is not None:
        names = names[:max_videos]
    videos = []
    for name in names:
        entries = {t: per_task[t][name] for t in tasks if name in per_task[t]}
        first = next(iter(entries.values()))
        if frames_only and getattr(ds, "layout", None) != MTL_LAYOUT:
            n = max(e.n_label_lines for e in entries.values())
            videos.append(SequenceVideo(name=name, video=first.video, n_frames=n, fps=float(first.fps or 30.0),
                                        video_frames=int(first.n_frames or n), annotated=tuple(entries)))
            continue
        labels = {t: np.asarray(ds.labels(e), dtype=np.float32) for t, e in entries.items()}
        n = max(len(a) for a in labels.values())
        video = SequenceVideo(name=name, video=first.video, n_frames=n, fps=float(first.fps or 30.0),
                              video_frames=int(first.n_frames or n), annotated=tuple(entries))
        for task in tasks:
            k = proto.n_outputs(task) if task != "expr" else 1
            if task in labels:
                lab = _fit(labels[task], n, np.nan)
                ok = _fit(np.asarray(valid_mask(task, labels[task]), dtype=bool), n, False)
            else:
                lab, ok = np.full((n, k), np.nan, np.float32), np.zeros(n, bool)
            video.labels[task] = np.where(ok[:, None], lab, 0.0).astype(np.float32)
            video.valid[task] = ok
        videos.append(video)
    return videos


@dataclass
class LeftOut:
    """Training names left out because a requested track validates on them (split hygiene)."""

    validated_by: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> tracks validating it
    labelled: dict[str, int] = field(default_factory=dict)  # name -> training frames with a label of any task

    @property
    def names(self) -> list[str]:
        return sorted(self.validated_by)

    @property
    def frames(self) -> int:
        return int(sum(self.labelled.values()))

    def line(self) -> str:
        """One log line: how many names and labelled frames, and which names (with the tracks validating them)."""
        shown = ", ".join(f"{n} ({'+'.join(t.upper() for t in self.validated_by[n])} validation, "
                          f"{self.labelled.get(n, 0)} frames)" for n in self.names[:10])
        more = f" and {len(self.names) - 10} more" if len(self.names) > 10 else ""
        return (f"split hygiene: {len(self.names)} training name(s) left out because a requested track validates "
                f"on them, {self.frames} labelled frames: {shown}{more}")

    def record(self) -> dict[str, Any]:
        """What a run folder keeps of it (``run.json``: ``split_hygiene``)."""
        return {"left_out": self.names, "labelled_frames": self.frames,
                "validated_by": {n: list(t) for n, t in sorted(self.validated_by.items())}}


def training_videos(ds: Any, tasks: Sequence[str], protocol: str | None = None, max_videos: int | None = None,
                    hygiene: bool = True) -> tuple[list[SequenceVideo], LeftOut]:
    """The training videos of ``tasks`` without any name that one of ``tasks`` validates on (a video in one track's
    training split and another's validation split would be trained on while it is scored), and what was left out.
    ``hygiene=False`` keeps every name (resuming a run made before the rule)."""
    from abaw.data.affwild2 import held_out_of_training

    held = held_out_of_training(ds, list(tasks)) if hygiene else {}
    videos = load_videos(ds, "train", tasks, protocol, max_videos, exclude=held)
    left = LeftOut(dict(held))
    if held:
        for video in load_videos(ds, "train", tasks, protocol, only=held):
            left.labelled[video.name] = int(np.any(np.stack(list(video.valid.values())), axis=0).sum())
    return videos, left


def load_test_videos(ds: Any, tasks: Sequence[str], protocol: str | None = None,
                     max_videos: int | None = None) -> list[SequenceVideo]:
    """The names of ``test_set/<track>.txt`` for ``tasks`` (those with a list), covering their whole video, with no
    labels (every frame invalid). ``annotated`` says which tracks list the name: those get result files."""
    proto = get_protocol(protocol)
    listed: dict[str, dict[str, Any]] = {}  # name -> task -> entry
    for task in tasks:
        if ds.has_test_set(task):
            for entry in ds.test_entries(task):
                listed.setdefault(entry.name, {})[task] = entry
    names = sorted(listed)[:max_videos] if max_videos is not None else sorted(listed)
    videos = []
    for name in names:
        entry = next(iter(listed[name].values()))
        n = int(entry.n_frames or 0)
        if n <= 0:
            raise AbawError(f"test name {name!r}: no video file in the data root to count its frames",
                            path=entry.annotation_path)
        video = SequenceVideo(name=name, video=entry.video, n_frames=n, fps=float(entry.fps or 30.0), video_frames=n,
                              annotated=tuple(t for t in tasks if t in listed[name]))
        for task in tasks:
            k = proto.n_outputs(task) if task != "expr" else 1
            video.labels[task] = np.zeros((n, k), np.float32)
            video.valid[task] = np.zeros(n, bool)
        videos.append(video)
    return videos


def make_windows(videos: Sequence[SequenceVideo], duration: int, stride: int | None = None,
                 drop_unlabelled: bool = False) -> np.ndarray:
    """``(n_windows, 2)`` int64 rows ``(video index, start frame index)``; the last window of a video may be short."""
    stride = stride or duration
    rows = []
    for vi, video in enumerate(videos):
        any_valid = np.any(np.stack(list(video.valid.values())), axis=0) if video.valid else None
        for start in range(0, video.n_frames, stride):
            if drop_unlabelled and any_valid is not None and not any_valid[start:start + duration].any():
                continue
            rows.append((vi, start))
            if start + duration >= video.n_frames:
                break
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


class SequenceDataset(Dataset):
    """Windows of a list of videos; each item is a dict of tensors padded to ``duration`` frames."""

    def __init__(self, videos: list[SequenceVideo], windows: np.ndarray, duration: int, tasks: Sequence[str],
                 loader: Any) -> None:
        self.videos = videos
        self.windows = windows
        self.duration = duration
        self.tasks = list(tasks)
        self.loader = loader

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        vi, start = (int(x) for x in self.windows[index])
        video = self.videos[vi]
        stop = min(start + self.duration, video.n_frames)
        idx = np.arange(start, stop)
        t = self.duration
        mask = np.zeros(t, bool)
        mask[: len(idx)] = True
        targets, valid = {}, {}
        for task in self.tasks:
            lab = np.zeros((t,) + video.labels[task].shape[1:], np.float32)
            lab[: len(idx)] = video.labels[task][idx]
            ok = np.zeros(t, bool)
            ok[: len(idx)] = video.valid[task][idx]
            targets[task] = torch.from_numpy(lab[:, 0].astype(np.int64) if task == "expr" else lab)
            valid[task] = torch.from_numpy(ok)
        inputs = {k: torch.from_numpy(v) for k, v in self.loader.load(video, idx, t).items()}
        return {"inputs": inputs, "targets": targets, "valid": valid, "mask": torch.from_numpy(mask),
                "window": torch.tensor([vi, start], dtype=torch.int64)}


# ---- samplers ---------------------------------------------------------------------------------------------------

def va_quadrants(videos: Sequence[SequenceVideo], windows: np.ndarray, duration: int) -> np.ndarray:
    """Majority valence/arousal quadrant of each window's valid frames (0: v>=0,a>=0; 1: v<0,a>=0; 2: v<0,a<0;
    3: v>=0,a<0), -1 for a window without a valid VA label."""
    out = np.full(len(windows), -1, dtype=np.int64)
    for i, (vi, start) in enumerate(windows):
        video = videos[vi]
        if "va" not in video.valid:
            continue
        ok = video.valid["va"][start:start + duration]
        if not ok.any():
            continue
        v, a = video.labels["va"][start:start + duration][ok].T
        quad = np.where(a >= 0, np.where(v >= 0, 0, 1), np.where(v < 0, 2, 3))
        out[i] = np.bincount(quad, minlength=4).argmax()
    return out


def quadrant_weights(quadrants: np.ndarray, targets: Sequence[float] = (0.43, 0.24, 0.19, 0.14)) -> np.ndarray:
    """Sampling weights per window so that quadrants are drawn in the AffWildNet proportions: the most frequent
    quadrant gets the first target share, the next the second, and so on (rare quadrants are oversampled)."""
    counts = np.bincount(quadrants[quadrants >= 0], minlength=4).astype(np.float64)
    present = [q for q in np.argsort(-counts, kind="stable") if counts[q] > 0]
    share = np.asarray(targets[: len(present)], dtype=np.float64)
    share /= share.sum()
    per_window = np.zeros(4)
    for q, s in zip(present, share, strict=True):
        per_window[q] = s / counts[q]
    weights = np.where(quadrants >= 0, per_window[np.clip(quadrants, 0, 3)], 0.0)
    if weights.sum() == 0:
        return np.ones(len(quadrants))
    return weights


def epoch_order(n: int, seed: int, epoch: int, weights: np.ndarray | None = None) -> np.ndarray:
    """The sample order of one epoch: a permutation (or, with weights, ``n`` draws with replacement), a pure function
    of (seed, epoch)."""
    rng = np.random.default_rng([int(seed), int(epoch)])
    if weights is None:
        return rng.permutation(n)
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(n, size=n, replace=True, p=p / p.sum())


SHUFFLES = ("video", "global")


def video_epoch_order(windows: np.ndarray, seed: int, epoch: int, weights: np.ndarray | None = None,
                      block: int = 1) -> np.ndarray:
    """An epoch order that visits windows grouped by video, a pure function of (seed, epoch).

    The videos come in a fresh random order every epoch, cut into blocks of ``block`` consecutive videos; the
    windows of a block are shuffled together and a block is finished before the next starts, so a reader with an
    LRU of at least ``block`` videos loads each video once per epoch. Without weights the order is a permutation of
    all windows; with weights it holds ``n`` draws with replacement (as :func:`epoch_order`), grouped the same way.
    """
    windows = np.asarray(windows).reshape(-1, 2)
    n = len(windows)
    rng = np.random.default_rng([int(seed), int(epoch)])
    if weights is None:
        picks = np.arange(n)
    else:
        p = np.asarray(weights, dtype=np.float64)
        picks = rng.choice(n, size=n, replace=True, p=p / p.sum())
    if n == 0:
        return picks
    n_videos = int(windows[:, 0].max()) + 1
    position = np.empty(n_videos, dtype=np.int64)
    position[rng.permutation(n_videos)] = np.arange(n_videos)  # video -> its place in this epoch's video order
    block_of = position[windows[picks, 0]] // max(1, int(block))
    within = rng.random(len(picks))
    return picks[np.lexsort((within, block_of))]


def epoch_batches(order: np.ndarray, batch_size: int, rank: int = 0, world: int = 1,
                  contiguous: bool = False) -> list[list[int]]:
    """Split an epoch order into this rank's batches; every rank gets the same number of batches (the order is
    padded by wrapping, which is harmless for training; evaluation never uses this). ``contiguous`` gives each rank
    one consecutive slice of the order (keeps a video-grouped order grouped per rank) instead of every world-th item.
    """
    order = np.asarray(order)
    if world > 1:
        per = int(np.ceil(len(order) / world))
        order = np.resize(order, per * world)
        order = order[rank * per:(rank + 1) * per] if contiguous else order[rank::world]
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def eval_batches(n: int, batch_size: int) -> list[list[int]]:
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
