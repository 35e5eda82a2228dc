"""Aff-Wild2 reader: annotations in any of the three layouts, videos, crops, boxes and the index table.

The layout is detected from the folder names under ``ROOT/annotations``: ``abaw2021`` (``VA_Set`` ...), ``abaw2022``
(``VA_Estimation_Challenge`` ...) or ``mtl`` (``MTL/training_set_annotations.txt``, one CSV per split). Label files
are parsed with pandas in one call per file; a file that fails the fast path is re-read line by line only to name the
first bad line.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from abaw import tasks
from abaw.errors import AbawError
from abaw.fileio import atomic_path
from abaw.tasks import (  # noqa: F401 (re-exported: the reader's users import them from here)
    ANNOTATIONS_DIR,
    BOXES_DIR,
    CROPS_DIR,
    MTL_DIR,
    MTL_LAYOUT,
    TEST_SET_DIR,
    VIDEOS_DIR,
    valid_mask,
)
from abaw.video.decode import probe

log = logging.getLogger(__name__)

#: Required columns of ``boxes/<video>.csv``.
BOX_COLUMNS: tuple[str, ...] = (
    ("frame", "timestamp", "face_id", "name", "face_x", "face_y", "face_w", "face_h", "face_score")
    + tuple(f"lm{i}_{c}" for i in range(5) for c in "xy")
    + ("person_x", "person_y", "person_w", "person_h", "person_score")
)

_CROP_RE = re.compile(r"^(\d+)\.jpg$", re.IGNORECASE)
_MTL_IMAGE_RE = r"^(?P<name>.+)/(?P<frame>\d+)\.jpg$"


@dataclass(frozen=True)
class VideoEntry:
    """One annotation name of one split and track.

    ``n_frames`` is the frame count of the video container, or the number of label lines when the video file is
    missing (``video_path`` is then ``None`` and ``fps`` is ``None``).
    """

    name: str
    video: str
    split: str
    track: str
    annotation_path: Path
    video_path: Path | None
    n_frames: int
    fps: float | None
    n_label_lines: int


# ---- label files ------------------------------------------------------------------------------------------------

def _n_columns(track: str, proto: tasks.Protocol) -> int:
    return 1 if track == "expr" else proto.n_outputs(track)


def _range_ok(track: str, values: np.ndarray, proto: tasks.Protocol, allow_invalid: bool) -> np.ndarray:
    """Boolean array, True where a value is legal for ``track`` (NaN and inf are never legal)."""
    if track == "va":
        ok = (values >= -1.0) & (values <= 1.0)
        return ok | (values == tasks.VA_INVALID) if allow_invalid else ok
    if track == "expr":
        ok = (values >= 0) & (values <= proto.n_expr - 1) & (values == np.round(values))
        return ok | (values == tasks.EXPR_INVALID) if allow_invalid else ok
    ok = (values == 0) | (values == 1)
    return ok | (values == tasks.AU_INVALID) if allow_invalid else ok


def _range_rule(track: str, proto: tasks.Protocol, allow_invalid: bool) -> str:
    if track == "va":
        return "must be in [-1, 1]" + (f" or {tasks.VA_INVALID:g}" if allow_invalid else "")
    if track == "expr":
        return f"must be an integer in 0..{proto.n_expr - 1}" + (f" or {tasks.EXPR_INVALID}" if allow_invalid else "")
    return "must be 0 or 1" + (f" or {tasks.AU_INVALID}" if allow_invalid else "")


def _check_ranges(track: str, values: np.ndarray, proto: tasks.Protocol, allow_invalid: bool, path: Path,
                  line_of_row: np.ndarray | int, names: tuple[str, ...]) -> None:
    """Raise on the first illegal value; ``line_of_row`` maps a row to its 1-based line (array, or an offset)."""
    values = values.reshape(len(values), -1)
    bad = ~_range_ok(track, values, proto, allow_invalid)
    if not bad.any():
        return
    row, col = np.argwhere(bad)[0]
    line = int(line_of_row[row]) if isinstance(line_of_row, np.ndarray) else int(row) + line_of_row
    rule = _range_rule(track, proto, allow_invalid)
    raise AbawError(f"{names[col]} value {values[row, col]:g} out of range ({rule})", path=path, line=line)


def _diagnose(lines: list[str], n_values: int, first_line: int, path: Path, skip_first: bool = False) -> AbawError:
    """Find the first malformed line (wrong number of values, non-numeric value); called only after a failure."""
    for i, raw in enumerate(lines):
        fields = [f.strip() for f in raw.strip().split(",")]
        line = first_line + i
        if fields == [""]:
            return AbawError("empty line", path=path, line=line)
        if len(fields) != n_values:
            return AbawError(f"{len(fields)} values on the line, expected {n_values}", path=path, line=line)
        for field in fields[1:] if skip_first else fields:
            try:
                value = float(field)
            except ValueError:
                return AbawError(f"non-numeric value {field!r}", path=path, line=line)
            if np.isnan(value):
                return AbawError(f"non-numeric value {field!r}", path=path, line=line)
    return AbawError("cannot parse the file", path=path)


def read_text(path: Path) -> str:
    """A text file's contents as UTF-8 (a BOM dropped); unreadable, non-UTF-8 and binary files are one-line errors."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise AbawError("not a UTF-8 text file", path=path) from None
    except OSError as exc:
        raise AbawError(f"cannot read file ({exc.strerror or exc})", path=path) from None
    if "\x00" in text:
        raise AbawError("not a UTF-8 text file (binary data: NUL bytes)", path=path)
    return text


def _numeric_block(body: str, n_values: int, path: Path, first_line: int) -> np.ndarray:
    """Parse ``body`` (comma-separated numbers, ``n_values`` per line) into float64 (n, n_values)."""
    if not body:
        return np.zeros((0, n_values), dtype=np.float64)
    try:
        frame = pd.read_csv(io.StringIO(body), header=None, dtype=np.float64, skip_blank_lines=False,
                            skipinitialspace=True, engine="c")
        values = frame.to_numpy(dtype=np.float64)
    except (ValueError, pd.errors.ParserError):
        raise _diagnose(body.split("\n"), n_values, first_line, path) from None
    if values.shape[1] != n_values or np.isnan(values).any():
        nan_rows = np.flatnonzero(np.isnan(values).any(axis=1))
        start = 0 if values.shape[1] != n_values or not len(nan_rows) else int(nan_rows[0])
        raise _diagnose(body.split("\n")[start:], n_values, first_line + start, path)
    return values


def _check_header(head: str, expected: str, path: Path) -> None:
    got = ",".join(f.strip() for f in head.strip().split(","))
    if got != expected:
        raise AbawError(f"wrong header {head.strip()!r}, expected {expected!r}", path=path, line=1)


def parse_label_text(text: str, path: str | Path, track: str, protocol: str | tasks.Protocol | None = None, *,
                     allow_invalid: bool = True) -> np.ndarray:
    """Parse the text of an annotation or 2020-2022 result file: header line, then one line per frame.

    Returns float32 ``(n_lines, k)`` (``k`` = 2 for VA, 1 for EXPR, n_au for AU). ``allow_invalid=False`` is for
    result files, which may not contain the invalid markers.
    """
    proto = tasks.get_protocol(protocol)
    track = tasks.check_track(track)
    path = Path(path)
    text = text.rstrip()
    if not text:
        raise AbawError("empty file (no header line)", path=path)
    head, _, body = text.partition("\n")
    _check_header(head, proto.header(track), path)
    k = _n_columns(track, proto)
    values = _numeric_block(body, k, path, first_line=2)
    names = tasks.VA_NAMES if track == "va" else ("expression",) if track == "expr" else proto.au_names
    _check_ranges(track, values, proto, allow_invalid, path, 2, names)
    return values.astype(np.float32)


def parse_label_file(path: str | Path, track: str, protocol: str | tasks.Protocol | None = None, *,
                     allow_invalid: bool = True) -> np.ndarray:
    """Read and check one annotation (or result) file; see :func:`parse_label_text`."""
    path = Path(path)
    return parse_label_text(read_text(path), path, track, protocol, allow_invalid=allow_invalid)


def _first_line_and_count(path: Path) -> tuple[str, int]:
    """The header line and the number of lines after it (trailing blank lines ignored), without parsing values."""
    try:
        data = path.read_bytes().rstrip()
    except OSError as exc:
        raise AbawError(f"cannot read file ({exc.strerror or exc})", path=path) from None
    if not data.strip():
        raise AbawError("empty file (no header line)", path=path)
    if b"\x00" in data:
        raise AbawError("not a UTF-8 text file (binary data: NUL bytes)", path=path)
    try:
        first = data.split(b"\n", 1)[0].decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AbawError("not a UTF-8 text file", path=path) from None
    return first, data.count(b"\n")


# ---- the multi-task CSV layout -----------------------------------------------------------------------------------

@dataclass
class _MtlTable:
    path: Path
    frames: np.ndarray  # (m,) int
    values: np.ndarray  # (m, 3 + n_au) float32: valence, arousal, expression, AUs
    rows: dict[str, np.ndarray]  # name -> its row indices


def _parse_mtl(path: Path, proto: tasks.Protocol) -> _MtlTable:
    text = read_text(path).rstrip()
    if not text:
        raise AbawError("empty file (no header line)", path=path)
    head, _, body = text.partition("\n")
    fields = [f.strip() for f in head.split(",")]
    prefix = list(tasks.MTL_HEADER_PREFIX)
    if fields[: len(prefix)] != prefix or fields[len(prefix):] not in (["aus"], list(proto.au_names)):
        raise AbawError(f"wrong header {head.strip()!r}, expected {','.join(prefix)},aus (or the AU names)",
                        path=path, line=1)
    n_values = len(prefix) + proto.n_au
    lines = body.split("\n") if body else []
    try:
        frame = pd.read_csv(io.StringIO(body), header=None, dtype={0: str}, skip_blank_lines=False,
                            skipinitialspace=True, engine="c")
        numeric = frame.iloc[:, 1:].to_numpy(dtype=np.float64)
    except (ValueError, pd.errors.ParserError):
        raise _diagnose(lines, n_values, 2, path, skip_first=True) from None
    if frame.shape[1] != n_values or np.isnan(numeric).any():
        raise _diagnose(lines, n_values, 2, path, skip_first=True)
    parts = frame[0].str.extract(_MTL_IMAGE_RE)
    if parts["name"].isna().any():
        row = int(np.flatnonzero(parts["name"].isna().to_numpy())[0])
        raise AbawError(f"image {frame.iloc[row, 0]!r} is not <video>/<frame>.jpg", path=path, line=row + 2)
    line_of_row = np.arange(2, len(frame) + 2)
    _check_ranges("va", numeric[:, :2], proto, True, path, line_of_row, tasks.VA_NAMES)
    _check_ranges("expr", numeric[:, 2:3], proto, True, path, line_of_row, ("expression",))
    _check_ranges("au", numeric[:, 3:], proto, True, path, line_of_row, proto.au_names)
    parts["frame"] = parts["frame"].astype(np.int64)
    duplicated = parts.duplicated(["name", "frame"]).to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise AbawError(f"image {frame.iloc[row, 0]!r} appears twice", path=path, line=row + 2)
    frames = parts["frame"].to_numpy()
    if (frames < 1).any():
        row = int(np.flatnonzero(frames < 1)[0])
        raise AbawError(f"image {frame.iloc[row, 0]!r}: frames are numbered from 1", path=path, line=row + 2)
    rows = {str(k): np.asarray(v) for k, v in parts.groupby("name", sort=True).indices.items()}
    return _MtlTable(path, frames, numeric.astype(np.float32), rows)


_MTL_COLUMNS = {"va": slice(0, 2), "expr": slice(2, 3), "au": slice(3, None)}


# ---- videos, crops, boxes ----------------------------------------------------------------------------------------

def video_info(path: str | Path) -> tuple[int, float]:
    """``(n_frames, fps)`` of a video by :func:`abaw.video.decode.probe`'s rule (cached per file); a video whose
    frames cannot be counted is an error here."""
    try:
        meta = probe(path)
    except AbawError as exc:
        raise AbawError(f"unreadable video: {str(exc).removeprefix(f'{exc.path}: ')}", path=path) from None
    if meta.n_frames <= 0:
        raise AbawError("unreadable video: no frames", path=path)
    return meta.n_frames, meta.fps


def read_boxes(root: str | Path, video: str) -> pd.DataFrame:
    """The boxes table ``ROOT/boxes/<video>.csv`` (docs/design.md), sorted by ``face_id, frame``."""
    path = Path(root) / BOXES_DIR / f"{video}.csv"
    if not path.is_file():
        raise AbawError("boxes table not found", path=path)
    try:
        table = pd.read_csv(path, dtype={"name": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise AbawError(f"cannot parse boxes table ({exc})", path=path) from None
    missing = [c for c in BOX_COLUMNS if c not in table.columns]
    if missing:
        raise AbawError(f"boxes table lacks columns {', '.join(missing)}", path=path)
    return table.sort_values(["face_id", "frame"], kind="stable").reset_index(drop=True)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table atomically as CSV or Parquet, chosen by the suffix (never a pickle)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise AbawError("table files must end in .csv or .parquet", path=path)
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return path


# ---- the data root -----------------------------------------------------------------------------------------------

def detect_layout(root: str | Path) -> str:
    """``abaw2021``, ``abaw2022`` or ``mtl``, from the folder names under ``ROOT/annotations``."""
    ann = Path(root) / ANNOTATIONS_DIR
    if not ann.is_dir():
        raise AbawError(f"no {ANNOTATIONS_DIR}/ folder: not an Aff-Wild2 data root", path=root)
    for layout, dirs in tasks.ANNOTATION_DIRS.items():
        if any((ann / n).is_dir() for d in dirs.values() for n in (d, *tasks.ANNOTATION_DIR_ALIASES.get(d, ()))):
            return layout
    if (ann / MTL_DIR).is_dir():
        return MTL_LAYOUT
    known = sorted({d for dirs in tasks.ANNOTATION_DIRS.values() for d in dirs.values()} | {MTL_DIR})
    raise AbawError(f"no known annotation folder (one of {', '.join(known)})", path=ann)


def default_protocol(layout: str) -> str:
    """The protocol a layout implies when none is given: 2022 folders and the multi-task CSV use abaw2022."""
    return tasks.DEFAULT_PROTOCOL if layout == "abaw2021" else "abaw2022"


class AffWild2:
    """An Aff-Wild2 data root (real, or written by ``abaw synth``).

    ``protocol`` fixes class lists and headers (default: abaw2021 for the 2021 layout, abaw2022 otherwise);
    ``strict`` turns a label/frame count mismatch (and a missing video) from a warning into an error.
    """

    def __init__(self, root: str | Path, protocol: str | tasks.Protocol | None = None, strict: bool = False,
                 layout: str | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise AbawError("data root is not a folder" if self.root.exists() else "data root not found",
                            path=self.root)
        if layout is not None and layout not in (*tasks.LAYOUTS, MTL_LAYOUT):
            raise AbawError(f"unknown layout {layout!r}; choose one of {', '.join((*tasks.LAYOUTS, MTL_LAYOUT))}")
        self.layout = layout or detect_layout(self.root)
        try:
            self.protocol = tasks.get_protocol(protocol if protocol is not None else default_protocol(self.layout))
        except ValueError as exc:
            raise AbawError(str(exc)) from None
        self.strict = strict
        self._crops: dict[str, np.ndarray] = {}
        self._entries: dict[tuple[str, str], list[VideoEntry]] = {}
        self._mtl: dict[str, _MtlTable] = {}

    def __repr__(self) -> str:
        return f"AffWild2({str(self.root)!r}, protocol={self.protocol.name!r}, layout={self.layout!r})"

    # -- annotations --
    def annotation_dir(self, split: str, track: str) -> Path:
        """Folder of the per-name label files (or, for the multi-task layout, the split's CSV file)."""
        split = _check_split(split)
        track = tasks.check_track(track)
        if self.layout == MTL_LAYOUT:
            return self.root / ANNOTATIONS_DIR / MTL_DIR / tasks.MTL_FILES[split]
        folder = tasks.ANNOTATION_DIRS[self.layout][track]
        if not (self.root / ANNOTATIONS_DIR / folder).is_dir():  # the 6th ABAW's EXPR folder name, when it is that
            folder = next((a for a in tasks.ANNOTATION_DIR_ALIASES.get(folder, ())
                           if (self.root / ANNOTATIONS_DIR / a).is_dir()), folder)
        return self.root / ANNOTATIONS_DIR / folder / tasks.SPLIT_DIRS[split]

    def has(self, split: str, track: str) -> bool:
        return self.annotation_dir(split, track).exists()

    def available(self) -> list[tuple[str, str]]:
        """The (split, track) pairs that have annotations."""
        return [(s, t) for t in tasks.TRACKS for s in tasks.SPLITS if self.has(s, t)]

    def entries(self, split: str, track: str) -> list[VideoEntry]:
        """The annotated names of ``split`` and ``track``, sorted by name (cached); empty when the data root has no
        annotations for them (see :meth:`has`)."""
        split, track = _check_split(split), tasks.check_track(track)
        key = (split, track)
        if key not in self._entries:
            where = self.annotation_dir(split, track)
            if not where.exists():
                return []
            self._entries[key] = (self._mtl_entries(split, track) if self.layout == MTL_LAYOUT
                                  else self._folder_entries(split, track, where))
        return self._entries[key]

    def _folder_entries(self, split: str, track: str, folder: Path) -> list[VideoEntry]:
        header = self.protocol.header(track)
        out, no_video = [], []
        for path in sorted(folder.glob("*.txt")):
            first, n_lines = _first_line_and_count(path)
            _check_header(first, header, path)
            entry = self._make_entry(path.stem, split, track, path, n_lines, n_lines, no_video)
            out.append(entry)
        self._report_missing_videos(no_video, split, track)
        return out

    def _mtl_table(self, split: str) -> _MtlTable:
        if split not in self._mtl:
            self._mtl[split] = _parse_mtl(self.annotation_dir(split, "va"), self.protocol)
        return self._mtl[split]

    def _mtl_entries(self, split: str, track: str) -> list[VideoEntry]:
        table = self._mtl_table(split)
        valid = valid_mask(track, table.values[:, _MTL_COLUMNS[track]])
        out, no_video = [], []
        for name, rows in table.rows.items():
            if not valid[rows].any():
                continue
            out.append(self._make_entry(name, split, track, table.path, len(rows), int(table.frames[rows].max()),
                                        no_video))
        self._report_missing_videos(no_video, split, track)
        return out

    def _make_entry(self, name: str, split: str, track: str, path: Path, n_lines: int, last_frame: int,
                    no_video: list[str]) -> VideoEntry:
        video_path = self.video_path(name)
        if video_path is None:
            no_video.append(name)
            return VideoEntry(name, tasks.split_two_person(name)[0], split, track, path, None, last_frame, None,
                              n_lines)
        n_frames, fps = video_info(video_path)
        mismatch = last_frame > n_frames if self.layout == MTL_LAYOUT else last_frame != n_frames
        if mismatch:
            what = f"{n_lines} label lines" if self.layout != MTL_LAYOUT else f"labels up to frame {last_frame}"
            message = f"{name}: {what} but video {video_path.name} has {n_frames} frames"
            if self.strict:
                raise AbawError(message, path=path)
            log.warning("%s: %s", path, message)
        return VideoEntry(name, video_path.stem, split, track, path, video_path, n_frames, fps, n_lines)

    def _report_missing_videos(self, names: list[str], split: str, track: str) -> None:
        if not names:
            return
        message = (f"{len(names)} {track.upper()} {split} name(s) have no video file under {VIDEOS_DIR}/ "
                   f"(e.g. {names[0]})")
        if self.strict:
            raise AbawError(message, path=self.root / VIDEOS_DIR)
        log.warning("%s: %s", self.root, message)

    def labels(self, entry: VideoEntry) -> np.ndarray:
        """Labels of an entry: float32 ``(n_lines, k)``, invalid markers kept (-5 VA, -1 EXPR/AU).

        In the multi-task layout the array has one row per frame up to ``max(n_frames, last labelled frame)``,
        invalid where the CSV has no row.
        """
        if self.layout != MTL_LAYOUT:
            return parse_label_file(entry.annotation_path, entry.track, self.protocol)
        table = self._mtl_table(entry.split)
        rows = table.rows.get(entry.name, np.zeros(0, dtype=np.int64))
        frames = table.frames[rows]
        k = _n_columns(entry.track, self.protocol)
        out = np.full((max(entry.n_frames, int(frames.max(initial=0))), k), tasks.INVALID[entry.track],
                      dtype=np.float32)
        out[frames - 1] = table.values[rows][:, _MTL_COLUMNS[entry.track]]
        return out

    # -- videos --
    @functools.cached_property
    def _videos(self) -> dict[str, Path]:
        """Video name -> file, from one walk of ``videos/``."""
        found: dict[str, Path] = {}
        folder = self.root / VIDEOS_DIR
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() not in tasks.VIDEO_EXTENSIONS or not path.is_file():
                    continue
                if path.stem in found:
                    log.warning("%s: duplicate video name, using %s", path, found[path.stem])
                    continue
                found[path.stem] = path
        return found

    def video_names(self) -> list[str]:
        return sorted(self._videos)

    def video_path(self, name: str) -> Path | None:
        """The video file behind an annotation name (``_left``/``_right`` stripped), or None."""
        videos = self._videos
        return videos.get(name) or videos.get(tasks.split_two_person(name)[0])

    def video_info(self, name: str) -> tuple[int, float]:
        path = self.video_path(name)
        if path is None:
            raise AbawError(f"no video file for {name!r} under {VIDEOS_DIR}/", path=self.root)
        return video_info(path)

    # -- crops --
    def crop_path(self, name: str, frame: int) -> Path:
        """Aligned face crop of a 1-based ``frame`` of ``name`` (the file may not exist)."""
        return self.root / CROPS_DIR / name / tasks.CROP_PATTERN.format(frame)

    def crop_frames(self, name: str) -> np.ndarray:
        """Sorted 1-based frame numbers that have a crop (one directory listing per name, cached)."""
        if name not in self._crops:
            folder = self.root / CROPS_DIR / name
            frames: list[int] = []
            if folder.is_dir():
                with os.scandir(folder) as it:
                    frames = [int(m.group(1)) for e in it if (m := _CROP_RE.match(e.name))]
            self._crops[name] = np.array(sorted(frames), dtype=np.int64)
        return self._crops[name]

    def crop_mask(self, name: str, n_frames: int) -> np.ndarray:
        """bool ``(n_frames,)``: True where the crop file exists."""
        frames = self.crop_frames(name)
        mask = np.zeros(n_frames, dtype=bool)
        mask[frames[(frames >= 1) & (frames <= n_frames)] - 1] = True
        return mask

    # -- test set --
    def has_test_set(self, track: str) -> bool:
        """Whether ``test_set/<track>.txt`` lists the test names of the track."""
        return (self.root / TEST_SET_DIR / f"{tasks.check_track(track)}.txt").is_file()

    def test_names(self, track: str) -> list[str]:
        """Names listed in ``test_set/<track>.txt``, one per line."""
        path = self.root / TEST_SET_DIR / f"{tasks.check_track(track)}.txt"
        if not path.is_file():
            raise AbawError("test set list not found", path=path)
        return [line.strip() for line in read_text(path).splitlines() if line.strip()]

    def test_entries(self, track: str) -> list[VideoEntry]:
        """Entries for the test names (no labels: ``annotation_path`` is the list file, ``n_label_lines`` 0; a name
        without a video file gets ``n_frames`` 0)."""
        track = tasks.check_track(track)
        path = self.root / TEST_SET_DIR / f"{track}.txt"
        out, no_video = [], []
        for name in self.test_names(track):
            video_path = self.video_path(name)
            if video_path is None:
                no_video.append(name)
                out.append(VideoEntry(name, tasks.split_two_person(name)[0], "test", track, path, None, 0, None, 0))
                continue
            n_frames, fps = video_info(video_path)
            out.append(VideoEntry(name, video_path.stem, "test", track, path, video_path, n_frames, fps, 0))
        self._report_missing_videos(no_video, "test", track)
        return out

    # -- the index --
    def index_table(self, include_test: bool = True, progress: bool = False) -> pd.DataFrame:
        """One row per (split, track, name): frames, label lines, valid labels, crops, fps, paths."""
        rows = []
        pairs = self.available()
        for split, track in tqdm(pairs, desc="index", unit="set", disable=not progress or None):
            for entry in self.entries(split, track):
                labels = self.labels(entry)
                # labels has one row per label line (per frame up to the last labelled one in the CSV layout)
                mismatch = entry.video_path is not None and len(labels) != entry.n_frames
                rows.append(self._row(entry, int(valid_mask(track, labels).sum()), mismatch))
        if include_test:
            for track in tasks.TRACKS:
                if self.has_test_set(track):
                    rows.extend(self._row(entry, 0, False) for entry in self.test_entries(track))
        columns = ["split", "track", "name", "video", "n_frames", "n_label_lines", "n_valid", "n_crops", "fps",
                   "label_mismatch", "video_path", "annotation_path"]
        return pd.DataFrame(rows, columns=columns)

    def _row(self, entry: VideoEntry, n_valid: int, mismatch: bool) -> dict:
        return {
            "split": entry.split, "track": entry.track, "name": entry.name, "video": entry.video,
            "n_frames": entry.n_frames, "n_label_lines": entry.n_label_lines, "n_valid": n_valid,
            "label_mismatch": bool(mismatch),
            "n_crops": int(self.crop_mask(entry.name, entry.n_frames).sum()),
            "fps": float(entry.fps) if entry.fps is not None else float("nan"),
            "video_path": str(entry.video_path) if entry.video_path else "",
            "annotation_path": str(entry.annotation_path),
        }


# ---- split hygiene: one name in one track's training split and another's validation split -------------------------

def validation_names(ds: AffWild2, tracks: tuple[str, ...] | list[str] = tasks.TRACKS) -> dict[str, tuple[str, ...]]:
    """``{name: tracks}``: every name the validation split of one of ``tracks`` holds, with the tracks holding it."""
    out: dict[str, list[str]] = {}
    for track in tracks:
        for entry in ds.entries("validation", track):
            out.setdefault(entry.name, []).append(track)
    return {name: tuple(held) for name, held in out.items()}


def held_out_of_training(ds: AffWild2, tracks: tuple[str, ...] | list[str]) -> dict[str, tuple[str, ...]]:
    """``{name: validating tracks}`` for the training names of ``tracks`` that one of ``tracks`` validates on: a
    training run on ``tracks`` leaves them out, or it would train on names it is scored on."""
    held = validation_names(ds, tracks)
    train = {e.name for track in tracks for e in ds.entries("train", track)}
    return {name: held[name] for name in sorted(train & held.keys())}


#: Columns of :func:`split_overlaps`.
OVERLAP_COLUMNS: tuple[str, ...] = ("train_track", "validation_track", "name", "train_frames", "train_labels",
                                    "validation_labels")


def split_overlaps(table: pd.DataFrame) -> pd.DataFrame:
    """Names in the training split of one track and the validation split of another (or of the same one), from an
    :meth:`AffWild2.index_table`: one row per (training track, validation track, name) with the name's frames and
    valid labels in the training file (``train_frames``, ``train_labels``) and its valid validation labels."""
    train = table[table["split"] == "train"][["track", "name", "n_frames", "n_valid"]]
    val = table[table["split"] == "validation"][["track", "name", "n_valid"]]
    both = train.merge(val, on="name", suffixes=("_train", "_val"))
    both = both.rename(columns={"track_train": "train_track", "track_val": "validation_track",
                                "n_frames": "train_frames", "n_valid_train": "train_labels",
                                "n_valid_val": "validation_labels"})
    order = {t: i for i, t in enumerate(tasks.TRACKS)}
    both = both.sort_values(["train_track", "validation_track", "name"],
                            key=lambda c: c.map(order) if c.name != "name" else c, kind="stable")
    return both[list(OVERLAP_COLUMNS)].reset_index(drop=True).astype(
        {"train_frames": np.int64, "train_labels": np.int64, "validation_labels": np.int64})


def _check_split(split: str) -> str:
    if split not in tasks.SPLITS:
        raise AbawError(f"unknown split {split!r}; choose one of {', '.join(tasks.SPLITS)}")
    return split


def dataset_fingerprint(root: str | Path) -> str:
    """16 hex digits: SHA-256 over the annotation and test-list files (names and bytes), the video frame counts and,
    for a synthetic root, its cue strengths (which change what the streams show without changing a label)."""
    root = Path(root)
    digest = hashlib.sha256()
    summary = root / tasks.SYNTH_SUMMARY_FILE
    if summary.is_file():
        try:
            cues = json.loads(summary.read_text(encoding="utf-8")).get("cues", {})
        except (OSError, ValueError, AttributeError) as exc:
            raise AbawError(f"{summary}: not a synthetic dataset summary ({exc})") from None
        digest.update(json.dumps(cues, sort_keys=True).encode() + b"\0")
    for sub in (ANNOTATIONS_DIR, TEST_SET_DIR):
        folder = root / sub
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    folder = root / VIDEOS_DIR
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in tasks.VIDEO_EXTENSIONS and path.is_file():
                digest.update(f"{path.stem}:{video_info(path)[0]}\0".encode())
    return digest.hexdigest()[:16]
