"""Face detection on every k-th frame, with the frames between filled in.

Per-frame detection is the slowest step of the video pipeline on a CPU (YuNet at 640 px: about 110 frames/s here,
against 2,800 for decoding). Faces move little in a few frames, so the detector runs on key frames only and the
boxes and landmarks of the frames between are interpolated linearly between the two key frames around them. That
is only done when both key frames see the same faces (one-to-one match by IoU or centre distance): where a face
appears, disappears or jumps between two key frames, every frame between them is detected, so where a face is
found stays exact at the boundaries.

Written here because no library does it for our detections (OpenCV's trackers follow one box, not five landmarks):
it is a few lines of bookkeeping around the detector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from itertools import islice

import numpy as np

from abaw.video.assignment import linear_sum_assignment
from abaw.video.decode import Frame
from abaw.video.faces import FaceDetection
from abaw.video.tracking import centre_distance, iou

Detect = Callable[[np.ndarray], list[FaceDetection]]


def match_faces(a: list[FaceDetection], b: list[FaceDetection], min_iou: float = 0.3,
                max_distance: float = 0.5) -> list[tuple[int, int]] | None:
    """Pairs (i, j) when every face of ``a`` matches one face of ``b`` and the other way round, else None.

    Two faces match when their IoU is at least ``min_iou`` or their centres are closer than ``max_distance`` face
    sizes, and their sizes differ by less than a factor of 1.5.
    """
    if len(a) != len(b):
        return None
    if not a:
        return []
    cost = np.full((len(a), len(b)), 1e6)
    for i, fa in enumerate(a):
        for j, fb in enumerate(b):
            overlap, dist = iou(fa.box, fb.box), centre_distance(fa.box, fb.box)
            ratio = np.sqrt((fa.box[2] * fa.box[3]) / max(fb.box[2] * fb.box[3], 1e-6))
            if (overlap >= min_iou or dist <= max_distance) and 1 / 1.5 < ratio < 1.5:
                cost[i, j] = (1.0 - overlap) + dist
    rows, cols = linear_sum_assignment(cost)
    if any(cost[i, j] >= 1e6 for i, j in zip(rows, cols, strict=True)):
        return None
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True)]


def interpolate(a: FaceDetection, b: FaceDetection, t: float) -> FaceDetection:
    """The detection a fraction ``t`` of the way from ``a`` to ``b`` (box, landmarks and score)."""
    return FaceDetection(((1 - t) * a.box + t * b.box).astype(np.float32),
                         ((1 - t) * a.landmarks + t * b.landmarks).astype(np.float32),
                         float((1 - t) * a.score + t * b.score))


def detect_every(frames: Iterable[Frame], detect: Detect, every: int = 1, pool: Executor | None = None,
                 workers: int = 1) -> Iterator[tuple[Frame, list[FaceDetection], bool]]:
    """``(frame, faces, detected)`` for every frame, in order; ``detected`` is False for interpolated faces.

    The first and the last frame and every ``every``-th frame between are detected (``every=1``: every frame).
    With a thread ``pool`` of ``workers`` threads, the key frames of that many spans are detected at once, so
    ``detect`` must be safe to call from several threads (:func:`abaw.video.faces.per_thread`). At most
    ``workers * every`` frames are held in memory.
    """
    every = max(1, every)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        return
    key = (first, detect(first.image))
    yield first, key[1], True
    run = pool.map if pool else map
    while True:
        spans = [span for span in (list(islice(it, every)) for _ in range(max(1, workers) if pool else 1)) if span]
        if not spans:
            return
        ends = list(run(lambda span: detect(span[-1].image), spans))
        for span, end in zip(spans, ends, strict=True):
            yield from _span(key, span, end, detect, run)
            key = (span[-1], end)


def _span(key: tuple[Frame, list[FaceDetection]], frames: list[Frame], end: list[FaceDetection], detect: Detect,
          run: Callable) -> Iterator[tuple[Frame, list[FaceDetection], bool]]:
    """The frames after the key frame ``key`` (frame, faces) up to and including the next key frame (the last of
    ``frames``, whose faces are ``end``)."""
    (first, start), last = key, frames[-1]
    pairs = match_faces(start, end)
    if pairs is None:  # faces came, went or jumped: detect every frame between the key frames
        for frame, faces in zip(frames[:-1], run(lambda f: detect(f.image), frames[:-1]), strict=True):
            yield frame, faces, True
    else:
        gap = max(last.index - first.index, 1)
        for frame in frames[:-1]:
            t = (frame.index - first.index) / gap
            yield frame, [interpolate(start[i], end[j], t) for i, j in pairs], False
    yield last, end, True
