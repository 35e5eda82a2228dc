"""``abaw prepare``: from videos to the model inputs of docs/design.md section 1, per video:

``boxes/<video>.csv`` (detected and tracked, or kept when it exists, e.g. ground truth from ``abaw synth``),
``cropped_aligned/<name>/%05d.jpg`` (kept when present), ``prepared/body/<name>/``, ``prepared/context/<name>/`` and
``prepared/audio/<video>.npz``.

Two streaming passes over each video keep memory bounded whatever its length: the first detects and tracks faces
(names like Aff-Wild2's ``_left`` / ``_right`` need the whole video), the second writes the crops. Everything of a
video is written into ``prepared/.tmp/<video>/`` and moved into place at the end; a completion marker
``prepared/done/<video>.json`` is written last, so a crash never leaves partial outputs and a re-run resumes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from abaw import tasks
from abaw.data.affwild2 import BOXES_DIR, CROPS_DIR, VIDEOS_DIR, read_boxes, write_table
from abaw.errors import AbawError
from abaw.fileio import write_json
from abaw.tasks import ENCODED_STREAMS, PREPARED_DIR
from abaw.video.align import align_face
from abaw.video.choices import DETECT_EVERY
from abaw.video.decode import IMAGE_EXTENSIONS, iter_frames, prefetch, probe
from abaw.video.faces import create_detector, landmarks_from_box, per_thread
from abaw.video.inputs import body_input, context_input
from abaw.video.keyframes import detect_every
from abaw.video.persons import create_person_detector
from abaw.video.tracking import (
    FACE_COLUMNS,
    LANDMARK_COLUMNS,
    PERSON_COLUMNS,
    FaceTracker,
    boxes_table,
    merge_tracks,
    select_tracks,
)

log = logging.getLogger(__name__)

#: Persons are detected at most every this many frames (on a face key frame), about once a second: their boxes only
#: place the body and context images, and where the face has left the last person box, a box derived from the face
#: is used (abaw.video.tracking.boxes_table).
PERSON_EVERY = 25
JPEG_QUALITY = 95


@dataclass
class PrepareOptions:
    detector: str = "yunet"
    person: str = "yolo-fastest"
    streams: tuple[str, ...] = ENCODED_STREAMS
    face_size: int = 112
    body_size: int = 112
    context_size: int = 112
    max_faces: int | None = 2
    detect_every: int = DETECT_EVERY
    workers: int = 1  # threads detecting faces on key frames
    force: bool = False
    progress: bool | None = None  # None: a bar only on a terminal
    trust_weights: bool = False  # --trust-weights: open an unverified weights file a library unpickles
    person_weights: str | None = None  # --person-weights: the ultralytics model file (checked as trust_weights says)
    audio: dict = field(default_factory=dict)  # keyword arguments of abaw.video.audio.save_audio_features


@dataclass
class VideoResult:
    video: str
    status: str  # done | skipped | failed
    seconds: float = 0.0
    n_frames: int = 0
    names: list[str] = field(default_factory=list)
    face_frames: int = 0
    reason: str = ""


# ---- locating inputs -----------------------------------------------------------------------------------------------

def video_name(path: str | Path) -> str:
    return Path(path).stem


def find_videos(root: str | Path) -> list[Path]:
    """The videos of a data root (``videos/`` and its batch sub-folders), sorted by name."""
    folder = Path(root) / VIDEOS_DIR
    if not folder.is_dir():
        raise AbawError(f"not a data root: no {VIDEOS_DIR}/ folder (give video files, or a folder holding "
                        f"{VIDEOS_DIR}/)", path=root)
    videos = sorted((p for p in folder.rglob("*") if p.suffix.lower() in tasks.VIDEO_EXTENSIONS and p.is_file()),
                    key=lambda p: p.stem)
    if not videos:
        raise AbawError(f"no {'/'.join(tasks.VIDEO_EXTENSIONS)} files under {VIDEOS_DIR}/", path=root)
    return videos


T = TypeVar("T")


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4): the second of four shards (1-based). Without ``text``, a process started by ``torchrun``
    takes its shard from its rank (``RANK``/``WORLD_SIZE``), so one job of N ranks covers every video once."""
    if not text:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        return (rank + 1, world) if 0 <= rank < world else (1, 1)
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise AbawError(f"--shard must look like i/N (e.g. 1/4), got {text!r}") from None
    if not 1 <= i <= n:
        raise AbawError(f"--shard {text}: i must be between 1 and N")
    return i, n


def shard(items: list[T], i: int, n: int) -> list[T]:
    """The i-th of n interleaved shares of ``items`` (1-based): every item is in exactly one share."""
    return items[i - 1::n]


# ---- pass 1: detection and tracking --------------------------------------------------------------------------------

class Detectors:
    """The face and person detectors, created once and shared by every video."""

    def __init__(self, detector: str = "yunet", person: str = "yolo-fastest", workers: int = 1,
                 trust_weights: bool = False, person_weights: str | Path | None = None) -> None:
        self.face = create_detector(detector)
        self.person = create_person_detector(person, trust_weights=trust_weights, weights=person_weights)
        self.workers = max(1, workers)
        # OpenCV's detectors must not be shared between threads: each worker thread makes its own.
        self.detect_face = per_thread(lambda: create_detector(detector)) if self.workers > 1 else self.face.detect
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="detect") if self.workers > 1 else None


def detect_boxes(path: str | Path, video: str, detectors: Detectors, max_faces: int | None = 2,
                 progress: bool | None = None, every: int = DETECT_EVERY) -> pd.DataFrame:
    """Detect and track the faces of a video (or image) and return its boxes table; faces are detected on every
    ``every``-th frame and interpolated between (:func:`abaw.video.keyframes.detect_every`); persons are detected
    on one of those frames every :data:`PERSON_EVERY` frames and kept until the next detection."""
    meta = probe(path)
    tracker = FaceTracker()
    persons: dict[int, list] = {}
    found: list = []
    last_person = -PERSON_EVERY
    n_frames = 0
    height, width = meta.height, meta.width
    frames = tqdm(iter_frames(path), total=meta.n_frames or None, desc=f"detect {video}", unit="frame", leave=False,
                  disable=_no_bar(progress))
    detected_frames = detect_every(frames, detectors.detect_face, every, detectors.pool, detectors.workers)
    times: list[float] = []  # each frame's presentation time (variable frame rate), index frame - 1
    for frame, faces, detected in prefetch(detected_frames):
        n_frames = frame.index
        times.append(frame.timestamp)
        height, width = frame.image.shape[:2]  # upright size (a rotated phone video swaps the container's)
        if faces:
            tracker.update(frame.index, faces)
        # A video (or image) where no face is found still gets its person's box.
        if detected and frame.index - last_person >= PERSON_EVERY:
            found, last_person = detectors.person.detect(frame.image), frame.index
        persons[frame.index] = found
    tracks = select_tracks(merge_tracks(tracker.tracks), n_frames, max_faces=max_faces)
    return boxes_table(video, n_frames, meta.fps, width, height, tracks, persons, timestamps=np.asarray(times))


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


# ---- pass 2: crops, body and context ---------------------------------------------------------------------------------

def _track_arrays(boxes: pd.DataFrame, n_frames: int) -> dict[str, dict[str, np.ndarray]]:
    """Per name: face boxes, landmarks, scores and person boxes as arrays indexed by ``frame - 1``."""
    out = {}
    for name, part in boxes.groupby("name", sort=False):
        part = part[(part["frame"] >= 1) & (part["frame"] <= n_frames)]
        idx = part["frame"].to_numpy(dtype=np.int64) - 1
        arrays = {"face": np.full((n_frames, 4), np.nan), "lms": np.full((n_frames, 10), np.nan),
                  "score": np.zeros(n_frames), "person": np.full((n_frames, 4), np.nan)}
        arrays["face"][idx] = part[FACE_COLUMNS].to_numpy(dtype=np.float64)
        arrays["lms"][idx] = part[LANDMARK_COLUMNS].to_numpy(dtype=np.float64)
        arrays["score"][idx] = part["face_score"].fillna(0).to_numpy(dtype=np.float64)
        arrays["person"][idx] = part[PERSON_COLUMNS].to_numpy(dtype=np.float64)
        out[str(name)] = arrays
    return out


def face_landmarks(box: np.ndarray, lms: np.ndarray) -> np.ndarray | None:
    """The 5 landmarks of a face row, estimated from its box when the table has none; None without a face."""
    if np.isfinite(lms).all():
        return lms.reshape(5, 2).astype(np.float32)
    if np.isfinite(box).all() and box[2] > 0 and box[3] > 0:
        return landmarks_from_box(box)
    return None


def write_inputs(path: str | Path, boxes: pd.DataFrame, out: dict[str, Path], opts: PrepareOptions,
                 face_names: Iterable[str], progress: bool | None = None) -> tuple[int, int]:
    """Second pass: aligned face crops of ``face_names`` and body/context inputs into the folders of ``out``
    (keys ``face``, ``body``, ``context``; each gets ``<name>/%05d.jpg``). Returns (frames, face crops written)."""
    face_names = set(face_names)
    n_frames = int(boxes["frame"].max()) if len(boxes) else 0
    tracks = _track_arrays(boxes, n_frames)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    decoded = crops = 0
    frames = prefetch(iter_frames(path, max_frames=n_frames or None))
    for frame in tqdm(frames, total=n_frames or None, desc=f"crops {video_name(path)}", unit="frame", leave=False,
                      disable=_no_bar(progress)):
        decoded = frame.index
        i = frame.index - 1
        filename = tasks.CROP_PATTERN.format(frame.index)
        for name, arr in tracks.items():
            if "face" in out and name in face_names and arr["score"][i] > 0:
                lms = face_landmarks(arr["face"][i], arr["lms"][i])
                if lms is not None:
                    try:
                        crop = align_face(frame.image, lms, opts.face_size)
                    except ValueError:  # degenerate landmarks: no crop for this frame
                        crop = None
                    if crop is not None:
                        _write_jpeg(out["face"] / name / filename, crop, params)
                        crops += 1
            person = arr["person"][i]
            if not np.isfinite(person).all():
                continue
            if "body" in out:
                _write_jpeg(out["body"] / name / filename, body_input(frame.image, person, opts.body_size), params)
            if "context" in out:
                _write_jpeg(out["context"] / name / filename, context_input(frame.image, person, opts.context_size),
                            params)
    return decoded, crops


def _write_jpeg(path: Path, image: np.ndarray, params: list[int]) -> None:
    """``cv2.imwrite`` that raises: it returns False on failure (a folder removed under it, a full disk), and a
    video whose crops silently went missing would be committed as prepared."""
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"could not write {path}")


# ---- one video -------------------------------------------------------------------------------------------------------

def marker_path(out_root: Path, video: str) -> Path:
    return out_root / PREPARED_DIR / "done" / f"{video}.json"


def _nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _replace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst`` (a file or a folder), replacing what was there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def _remove_empty(*folders: Path) -> None:
    """Remove each folder in turn if it is empty (a folder another process is filling is left alone)."""
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty, gone, or not ours to remove
            folder.rmdir()


def _remove_empty_prepared(prepared: Path) -> None:
    """A ``prepared/`` holding nothing but an empty ``.tmp/`` and the locks (a failed first video) is removed: no
    empty output."""
    with contextlib.suppress(OSError):
        if all(p.name in (".tmp", ".locks") for p in prepared.iterdir()):
            _remove_empty(prepared / ".tmp")
            if (prepared / ".tmp").exists():
                return  # another process is staging a video: its lock stays
            for lock in (prepared / ".locks").glob("*.lock"):
                lock.unlink(missing_ok=True)
            _remove_empty(prepared / ".locks", prepared)


def source_id(path: Path) -> dict:
    """What identifies an input file in a completion marker (a different file of the same name is redone)."""
    stat = path.stat()
    return {"source": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_prepared(path: Path, out_root: Path, video: str) -> bool:
    marker = marker_path(out_root, video)
    if not marker.is_file():
        return False
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all(done.get(k) == v for k, v in source_id(path).items())


def prepare_video(path: str | Path, out_root: str | Path, opts: PrepareOptions, detectors: Detectors | None = None,
                  get_detectors: Callable[[], Detectors] | None = None, name: str | None = None) -> VideoResult:
    """Prepare one video into ``out_root`` under ``name`` (default: the file's stem); skipped when its completion
    marker names this same file (unless ``opts.force``). A marker of another file of that name means redo all."""
    path, out_root = Path(path), Path(out_root)
    video = name or video_name(path)
    if not opts.force and is_prepared(path, out_root, video):
        return VideoResult(video, "skipped")
    with _video_lock(out_root, video):
        # another process (a second training on the same data root) may have prepared it while we waited
        if not opts.force and is_prepared(path, out_root, video):
            return VideoResult(video, "skipped")
        return _prepare_locked(path, out_root, video, opts, detectors, get_detectors)


@contextlib.contextmanager
def _video_lock(out_root: Path, video: str) -> Iterator[None]:
    """Hold ``prepared/.locks/<video>.lock`` (blocking): two processes preparing one video (two trainings started on
    one data root) would share its staging folder. The lock file stays: removing it would let a third process lock a
    new file while a second still waits on the old one."""
    folder = out_root / PREPARED_DIR / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{video}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _prepare_locked(path: Path, out_root: Path, video: str, opts: PrepareOptions, detectors: Detectors | None,
                    get_detectors: Callable[[], Detectors] | None) -> VideoResult:
    marker = marker_path(out_root, video)
    if marker.is_file():  # another source file under this name: its outputs must not be reused
        opts = replace(opts, force=True)
    start = time.perf_counter()
    tmp = out_root / PREPARED_DIR / ".tmp" / video
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a crashed run
    tmp.mkdir(parents=True)
    try:
        boxes_path = out_root / BOXES_DIR / f"{video}.csv"
        have_boxes = boxes_path.is_file() and not opts.force
        if have_boxes:
            boxes = read_boxes(out_root, video)
        else:
            if detectors is None:
                detectors = get_detectors() if get_detectors else Detectors(opts.detector, opts.person, opts.workers,
                                                                            opts.trust_weights, opts.person_weights)
            boxes = detect_boxes(path, video, detectors, opts.max_faces, opts.progress, opts.detect_every)
            write_table(boxes, tmp / "boxes.csv")
        names = list(dict.fromkeys(boxes["name"].astype(str)))
        face_names = [n for n in names if opts.force or not _nonempty_dir(out_root / CROPS_DIR / n)]
        folders: dict[str, Path] = {}
        if "face" in opts.streams and face_names:
            folders["face"] = tmp / "face"
        for stream in ("body", "context"):
            if stream in opts.streams:
                folders[stream] = tmp / stream
        for stream, folder in folders.items():
            for name in face_names if stream == "face" else names:
                (folder / name).mkdir(parents=True, exist_ok=True)
        n_frames, n_crops = int(boxes["frame"].max()) if len(boxes) else 0, 0
        if folders:
            n_frames, n_crops = write_inputs(path, boxes, folders, opts, face_names, opts.progress)
        if "audio" in opts.streams:
            if probe(path).is_image:
                pass  # a still image has no sound
            else:
                from abaw.video.audio import save_audio_features  # torch: loaded only when audio is prepared

                save_audio_features(path, tmp / "audio.npz", **opts.audio)
        # Commit: move everything into place, the completion marker last.
        if not have_boxes:
            _replace(tmp / "boxes.csv", boxes_path)
        for stream, folder in folders.items():
            for name in face_names if stream == "face" else names:
                dst = (out_root / CROPS_DIR / name if stream == "face"
                       else out_root / PREPARED_DIR / stream / name)
                _replace(folder / name, dst)
        if (tmp / "audio.npz").is_file():
            _replace(tmp / "audio.npz", out_root / PREPARED_DIR / "audio" / f"{video}.npz")
        face_frames = int((boxes["face_score"] > 0).sum())
        result = VideoResult(video, "done", time.perf_counter() - start, n_frames, names, face_frames)
        write_json(marker, {**asdict(result), **source_id(path), "boxes": "given" if have_boxes else "detected",
                            "options": {k: v for k, v in asdict(opts).items() if k != "progress"}})
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty_prepared(out_root / PREPARED_DIR)


# ---- many videos -----------------------------------------------------------------------------------------------------

def resolve_inputs(inputs: list[str | Path], out: str | Path | None) -> tuple[list[Path], Path]:
    """(videos, output root): a single folder is a data root (outputs inside it unless ``out``); else video files."""
    paths = [Path(p) for p in inputs]
    if not paths:
        raise AbawError("give a data root or video files")
    if len(paths) == 1 and paths[0].is_dir():
        return find_videos(paths[0]), Path(out) if out else paths[0]
    for p in paths:
        if p.is_dir():
            raise AbawError("give either one data root or video files, not a mix", path=p)
        if not p.is_file():
            raise AbawError("no such file", path=p)
        if p.suffix.lower() not in (*tasks.VIDEO_EXTENSIONS, ".mov", ".mkv", ".webm", ".m4v", *IMAGE_EXTENSIONS):
            raise AbawError(f"not a video or image file name ({p.suffix or 'no extension'})", path=p)
    if not out:
        raise AbawError("give --out DIR when preparing video files")
    stems = [p.stem for p in paths]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise AbawError(f"two inputs share the name {dupes[0]!r}; outputs are named by file stem")
    return paths, Path(out)


def prepare_all(videos: list[Path], out_root: Path, opts: PrepareOptions,
                report: Callable[[VideoResult], None] | None = None) -> list[VideoResult]:
    """Prepare every video; a failing video is recorded with its reason and the others go on."""
    detectors: list[Detectors] = []

    def get_detectors() -> Detectors:  # created on first need: a resumed run of finished videos loads nothing
        if not detectors:
            detectors.append(Detectors(opts.detector, opts.person, opts.workers, opts.trust_weights,
                                       opts.person_weights))
        return detectors[0]

    results = []
    new_root = not out_root.exists()
    bar_off = True if len(videos) < 2 else _no_bar(opts.progress)
    for path in tqdm(videos, desc="prepare", unit="video", disable=bar_off):
        try:
            result = prepare_video(path, out_root, opts, get_detectors=get_detectors)
        except AbawError as exc:
            result = VideoResult(video_name(path), "failed", reason=str(exc))
        except (OSError, ValueError, RuntimeError, cv2.error) as exc:
            result = VideoResult(video_name(path), "failed", reason=f"{path}: {type(exc).__name__}: {exc}")
        results.append(result)
        if report:
            report(result)
    if new_root:  # an --out folder this call made and nothing was written to
        _remove_empty(out_root)
    return results


def summary(results: list[VideoResult]) -> dict:
    return {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}


def results_json(results: list[VideoResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)
