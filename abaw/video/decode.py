"""Streaming decode of a video (PyAV) or a still image (OpenCV) into BGR frames, one at a time.

Memory stays bounded whatever the video's length: frames are yielded as they are decoded. A rotated phone video
(display matrix) is turned upright. A file that cannot be decoded gives one :class:`AbawError` line.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import TypeVar

import av
import cv2
import numpy as np

from abaw.errors import AbawError

T = TypeVar("T")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class VideoMeta:
    """What the container says about a video, by the rules of :func:`probe` (``n_frames`` is 0 when unknown)."""

    n_frames: int
    fps: float
    width: int  # coded size: a rotated phone video's upright frames have width and height swapped
    height: int
    has_audio: bool
    is_image: bool = False


@dataclass(frozen=True)
class Frame:
    index: int  # 1-based frame number, in decode (presentation) order, as Aff-Wild2's label lines
    timestamp: float  # seconds: the frame's presentation time from the first frame's (exact on variable frame rate)
    image: np.ndarray  # (H, W, 3) uint8 BGR, upright


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise AbawError("is a folder, not a video or image file", path=path)
    if not path.is_file():
        raise AbawError("no such file", path=path)
    if path.stat().st_size == 0:
        raise AbawError("file is empty (0 bytes)", path=path)


def _read_image(path: Path) -> np.ndarray:
    _check_file(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AbawError("not a readable image", path=path)
    return image


#: The frame rate assumed when the container states none (FFmpeg's own default for a stream without one).
DEFAULT_FPS = 25.0


def probe(path: str | Path) -> VideoMeta:
    """Frame count, frame rate, size and whether there is sound, from the container, without decoding the picture;
    cached per file (path, modification time, size). An image is one frame at 1 fps.

    The one rule for what a container may leave out:

    - frame rate: the stream's average rate, else its guessed rate, else its base rate; when none is stated (or it
      is 0), :data:`DEFAULT_FPS`.
    - frame count: the stream's ``frames`` field; when the container does not store it (0, e.g. Matroska), the
      video packets are counted (demuxed, not decoded); when there are none, duration x frame rate; else 0.
    """
    path = Path(path)
    _check_file(path)
    stat = path.stat()
    return _probe(path, path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _probe(path: Path, resolved: Path, mtime_ns: int, size: int) -> VideoMeta:
    """:func:`probe` of one version of a file (``path`` as the user gave it, for messages)."""
    if is_image(path):
        image = _read_image(path)
        return VideoMeta(1, 1.0, image.shape[1], image.shape[0], False, True)
    try:
        with av.open(str(resolved)) as container:
            if not container.streams.video:
                raise AbawError("no video track", path=path)
            stream = container.streams.video[0]
            fps = frame_rate(stream)
            n_frames = int(stream.frames or 0) or _count_frames(container, stream, fps)
            width, height = stream.codec_context.width, stream.codec_context.height
            has_audio = bool(container.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AbawError(f"not a readable video ({_reason(exc)})", path=path) from None
    return VideoMeta(n_frames, fps, width, height, has_audio)


def frame_rate(stream: av.video.stream.VideoStream) -> float:
    """The stream's frame rate by :func:`probe`'s rule: average, guessed or base rate, else :data:`DEFAULT_FPS`."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else DEFAULT_FPS


def _count_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream, fps: float) -> int:
    count = sum(1 for packet in container.demux(stream) if packet.size > 0)
    if count == 0 and stream.duration and stream.time_base:
        count = round(float(stream.duration * stream.time_base) * fps)
    return count


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0]


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Undo the display matrix: ``rotation`` is the counter-clockwise angle the player applies."""
    quarter = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k=quarter)) if quarter else image


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as a BGR image. The usual 4:2:0 frame goes through OpenCV's converter, 1.6x faster than
    FFmpeg's swscale (which PyAV's ``to_ndarray(format="bgr24")`` uses) for the same BT.601 conversion."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        planes = frame.to_ndarray()  # (H * 3 / 2, W): the Y plane, then U and V
        if planes.shape == (frame.height * 3 // 2, frame.width):
            return cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


#: A video that decodes to fewer than this share of the frames its container declares is called truncated.
MIN_DECODED_SHARE = 0.9


def iter_frames(path: str | Path, max_frames: int | None = None, step: int = 1,
                threads: bool = True, strict: bool = True) -> Iterator[Frame]:
    """Yield the frames of ``path`` in order (every ``step``-th, at most ``max_frames`` of them).

    Frame numbers count every decoded frame, skipped or not. A timestamp is the frame's presentation time
    (``pts x time_base``) less the first frame's, so a variable-frame-rate video gets its real times; a frame without
    a pts gets the previous frame's time plus one average frame interval. An image is one frame at time 0.
    With ``strict``, a video that ends well before the frame count its container declares raises
    :class:`AbawError` after the last frame (callers write their outputs atomically, so nothing partial survives).
    """
    path = Path(path)
    if is_image(path):
        yield Frame(1, 0.0, _read_image(path))
        return
    meta = probe(path)
    emitted = 0
    index = 0
    start: float | None = None
    last = -1.0 / meta.fps
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if threads:
                stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                index += 1
                timestamp = _presentation_time(frame, start, last, meta.fps)
                if start is None and frame.pts is not None:
                    start = float(frame.pts * frame.time_base)
                last = timestamp
                if (index - 1) % step:
                    continue
                image = _upright(to_bgr(frame), frame.rotation)
                yield Frame(index, timestamp, image)
                emitted += 1
                if max_frames is not None and emitted >= max_frames:
                    return
    except av.error.FFmpegError as exc:
        raise AbawError(f"decoding failed after {index} frames ({_reason(exc)})", path=path) from None
    if index == 0:
        raise AbawError("no decodable video frame", path=path)
    if strict and meta.n_frames and index < MIN_DECODED_SHARE * meta.n_frames:
        raise AbawError(f"truncated: decoded {index} of the {meta.n_frames} frames the container declares", path=path)


def _presentation_time(frame: av.VideoFrame, start: float | None, last: float, fps: float) -> float:
    """Seconds since the first frame: from the frame's pts, else one frame interval after ``last``."""
    if frame.pts is None or frame.time_base is None:
        return last + 1.0 / fps
    time = float(frame.pts * frame.time_base)
    return 0.0 if start is None else round(time - start, 6)


def read_frames(path: str | Path, max_frames: int | None = None, step: int = 1) -> list[Frame]:
    """All (or ``max_frames``) frames in memory: for short clips and tests only."""
    return list(iter_frames(path, max_frames=max_frames, step=step))


def prefetch(iterable: Iterable[T], size: int = 8) -> Iterator[T]:
    """Run ``iterable`` in a background thread, ``size`` items ahead, so decoding overlaps the consumer's work
    (PyAV and OpenCV release the GIL while they decode). Exceptions are re-raised in the consumer."""
    queue: Queue = Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterable:
                if stop.is_set():
                    return
                queue.put((item, None))
            queue.put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed over to the consumer
            queue.put((done, exc))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item, exc = queue.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                queue.get_nowait()
            except Empty:
                thread.join(timeout=0.05)
