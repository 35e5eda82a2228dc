"""Challenge result files: the 2020-2022 folder format, the 2023+ single-file format, a validator, scoring, a zip.

"folder" (2020-2022): a folder named like the track's annotation folder (``VA_Set`` ...), one ``<name>.txt`` per name
with the annotation header and one line per frame of the whole video. "single" (2023 on): one file per track,
``<track dir>.txt`` (``Protocol.result_file``), header ``image_location,<annotation header>``, then
``<name>/00001.jpg,<the folder format's line>`` for every frame of every name (``abaw.tasks`` cites the sources).
Frames without a prediction are filled alike in both: linear interpolation for VA (clipped to [-1, 1]), the nearest
predicted frame for EXPR and AU. Readers, the validator and the scorer take either format: detected from the path
(:func:`result_format`) or forced.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from abaw import tasks
from abaw.data.affwild2 import (
    AffWild2,
    default_protocol,
    detect_layout,
    parse_label_file,
    parse_label_text,
    read_text,
)
from abaw.errors import AbawError
from abaw.fileio import atomic_open, atomic_path

log = logging.getLogger(__name__)

SINGLE_FILE_KEY = tasks.IMAGE_LOCATION


def _prepare(track: str, arr: np.ndarray, proto: tasks.Protocol) -> np.ndarray:
    """(n, k) float64; EXPR per-class scores become class indices (NaN rows stay NaN)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if track == "expr" and arr.ndim == 2 and arr.shape[1] == proto.n_expr and proto.n_expr > 1:
        have = ~np.isnan(arr).any(axis=1)
        idx = np.full((len(arr), 1), np.nan)
        idx[have, 0] = arr[have].argmax(axis=1)
        arr = idx
    expected = 1 if track == "expr" else proto.n_outputs(track)
    if arr.ndim != 2 or arr.shape[1] != expected:
        raise ValueError(f"{track} predictions: expected (n, {expected}), got {arr.shape}")
    return arr


def fill_missing(track: str, arr: np.ndarray, protocol: str | tasks.Protocol | None = None) -> np.ndarray:
    """Fill frames without a prediction (a NaN anywhere in the row) and bring values into the file's range.

    VA: linear interpolation per column (the first/last prediction held at the ends), clipped to [-1, 1].
    EXPR: the nearest predicted frame's class (ties go to the earlier frame); per-class scores are reduced to indices.
    AU: the nearest predicted frame's decisions, thresholded at 0.5. A video with no prediction at all gets
    0 (neutral VA, class 0, no AU). Returns float64 ``(n, k)`` (``k`` = 1 for EXPR).
    """
    track = tasks.check_track(track)
    proto = tasks.get_protocol(protocol)
    arr = _prepare(track, arr, proto)
    n = len(arr)
    have = ~np.isnan(arr).any(axis=1)
    known = np.flatnonzero(have)
    if not len(known):
        return np.zeros_like(arr)
    if track == "va":
        frames = np.arange(n)
        out = np.stack([np.interp(frames, known, arr[known, j]) for j in range(arr.shape[1])], axis=1)
        return np.clip(out, -1.0, 1.0)
    # Nearest known frame: compare the next known frame at or after each frame with the previous one.
    after = np.clip(np.searchsorted(known, np.arange(n)), 0, len(known) - 1)
    before = np.clip(after - 1, 0, len(known) - 1)
    use_before = np.abs(np.arange(n) - known[before]) <= np.abs(known[after] - np.arange(n))
    out = arr[np.where(use_before, known[before], known[after])]
    if track == "expr":
        return np.clip(np.rint(out), 0, proto.n_expr - 1)
    return (out >= 0.5).astype(np.float64)


def format_lines(track: str, values: np.ndarray) -> list[str]:
    """Text lines of filled values: ``v,a`` (shortest float32 repr, so float32 labels survive exactly), a class
    index, or 0/1 AU decisions."""
    if track == "va":
        text = values.astype(np.float32).astype(str)
    else:
        text = values.astype(np.int64).astype(str)
    return [",".join(row) for row in text]


def track_folder(out_dir: str | Path, track: str, protocol: str | tasks.Protocol | None = None) -> Path:
    return Path(out_dir) / tasks.get_protocol(protocol).annotation_dir(track)


def write_result_file(path: str | Path, track: str, values: np.ndarray,
                      protocol: str | tasks.Protocol | None = None) -> Path:
    """Write one 2020-2022 result file (header + one line per frame) atomically, filling gaps."""
    proto = tasks.get_protocol(protocol)
    track = tasks.check_track(track)
    filled = fill_missing(track, values, proto)
    with atomic_open(path) as fh:
        fh.write(proto.header(track) + "\n")
        fh.writelines(line + "\n" for line in format_lines(track, filled))
    return Path(path)


def write_result_folder(out_dir: str | Path, track: str, preds: dict[str, np.ndarray],
                        protocol: str | tasks.Protocol | None = None) -> Path:
    """Write ``out_dir/<annotation dir>/<name>.txt`` for every name of ``preds`` (arrays ``(n_frames, k)``, NaN where
    no prediction); returns the track folder."""
    folder = track_folder(out_dir, track, protocol)
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in preds.items():
        write_result_file(folder / f"{name}.txt", track, values, protocol)
    return folder


def write_single_file(path: str | Path, track: str, preds: dict[str, np.ndarray],
                      protocol: str | tasks.Protocol | None = None) -> Path:
    """The 2023+ format: one file, header ``image_location,<track header>``, lines ``<name>/00001.jpg,<values>``
    for every frame of every name (names sorted), gaps filled as in :func:`fill_missing`."""
    proto = tasks.get_protocol(protocol)
    track = tasks.check_track(track)
    with atomic_open(path) as fh:
        fh.write(proto.single_header(track) + "\n")
        for name in sorted(preds):
            lines = format_lines(track, fill_missing(track, preds[name], proto))
            fh.writelines(f"{name}/{tasks.CROP_PATTERN.format(i)},{line}\n" for i, line in enumerate(lines, 1))
    return Path(path)


def _check_format(fmt: str | None) -> str | None:
    if fmt is not None and fmt not in tasks.RESULT_FORMATS:
        raise AbawError(f"unknown result format {fmt!r}; choose one of {', '.join(tasks.RESULT_FORMATS)}")
    return fmt


def split_format(split: str, protocol: str | tasks.Protocol | None = None) -> str:
    """The format result files of ``split`` are written in: the protocol's for the test split (what is submitted),
    the folder format for train and validation (what ensembles, the temporal model and the demo read back)."""
    return tasks.get_protocol(protocol).result_format if split == tasks.TEST_SPLIT else "folder"


def result_path(out_dir: str | Path, track: str, protocol: str | tasks.Protocol | None = None,
                fmt: str | None = None) -> Path:
    """Where :func:`write_results` puts a track's results under ``out_dir``: ``<track dir>/`` or ``<track dir>.txt``."""
    proto = tasks.get_protocol(protocol)
    if (_check_format(fmt) or proto.result_format) == "single":
        return Path(out_dir) / proto.result_file(track)
    return Path(out_dir) / proto.annotation_dir(track)


def write_results(out_dir: str | Path, track: str, preds: dict[str, np.ndarray],
                  protocol: str | tasks.Protocol | None = None, fmt: str | None = None) -> Path:
    """Write one track's result files under ``out_dir`` in ``fmt`` (default: the protocol's format): the track
    folder ``out_dir/<track dir>/`` or the file ``out_dir/<track dir>.txt``; returns that folder or file."""
    proto = tasks.get_protocol(protocol)
    if (_check_format(fmt) or proto.result_format) == "single":
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return write_single_file(Path(out_dir) / proto.result_file(track), track, preds, proto)
    return write_result_folder(out_dir, track, preds, proto)


def _track_dir_names(track: str, protocol: str | tasks.Protocol | None) -> list[str]:
    """The track's annotation folder names: the protocol's layout first, then the other layout's."""
    track = tasks.check_track(track)
    names = [tasks.get_protocol(protocol).annotation_dir(track)]
    return names + [dirs[track] for dirs in tasks.ANNOTATION_DIRS.values() if dirs[track] not in names]


def resolve_track_folder(folder: str | Path, track: str, protocol: str | tasks.Protocol | None = None) -> Path:
    """Accept either the track folder itself or a folder holding it (under either layout's name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AbawError("result folder not found", path=folder)
    for name in _track_dir_names(track, protocol):
        if (folder / name).is_dir():
            return folder / name
    return folder


def resolve_single_file(path: str | Path, track: str, protocol: str | tasks.Protocol | None = None) -> Path:
    """Accept either the single result file itself or a folder holding ``<track dir>.txt`` (either layout's)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise AbawError("result file not found", path=path)
    for name in _track_dir_names(track, protocol):
        if (path / f"{name}.txt").is_file():
            return path / f"{name}.txt"
    expected = tasks.get_protocol(protocol).result_file(track)
    raise AbawError(f"no single result file of the {tasks.check_track(track).upper()} track here (expected "
                    f"{expected})", path=path)


def result_format(path: str | Path, track: str, protocol: str | tasks.Protocol | None = None,
                  fmt: str | None = None) -> str:
    """``folder`` or ``single`` for a result path: ``fmt`` when given; a file is a single file; a folder holding the
    track's folder is the folder format, one holding ``<track dir>.txt`` the single-file format; any other folder is
    taken as the track folder itself."""
    if _check_format(fmt) is not None:
        return fmt
    path = Path(path)
    if path.is_file():
        return "single"
    if not path.is_dir():
        raise AbawError(f"result {'file' if path.suffix == '.txt' else 'folder'} not found", path=path)
    names = _track_dir_names(track, protocol)
    has_folder = any((path / name).is_dir() for name in names)
    has_file = any((path / f"{name}.txt").is_file() for name in names)
    if has_folder and has_file:
        raise AbawError(f"holds both a {track.upper()} result folder and a single result file; choose one with "
                        "--format folder|single", path=path)
    return "single" if has_file else "folder"


def read_result_folder(folder: str | Path, track: str, protocol: str | tasks.Protocol | None = None,
                       names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read result files into ``{name: float32 (n_lines, k)}``; ``names`` (default: every ``*.txt``) must exist.

    Values are checked like annotations but without invalid markers; a bad file raises :class:`AbawError`.
    """
    folder = resolve_track_folder(folder, track, protocol)
    if names is None:
        names = sorted(p.stem for p in folder.glob("*.txt"))
    out = {}
    for name in names:
        path = folder / f"{name}.txt"
        if not path.is_file():
            raise AbawError(f"result file for {name!r} is missing", path=path)
        out[name] = parse_label_file(path, track, protocol, allow_invalid=False)
    return out


def _read_text(path: Path) -> str:
    """A result file's text: the reader's rules (UTF-8, BOM dropped, no binary), CRLF read as LF; empty is refused."""
    text = read_text(path)
    if not text.strip():
        raise AbawError("empty file (no header line)", path=path)
    return text.rstrip()


@dataclass
class SingleFile:
    """A parsed single-file result: per name its values in frame order, and the frame-numbering problems found."""

    path: Path
    values: dict[str, np.ndarray]  # name -> float32 (n_lines, k)
    problems: dict[str, str]  # name -> the one-line problem with its frames (such a name has no values)


def parse_single_file(path: str | Path, track: str, protocol: str | tasks.Protocol | None = None) -> SingleFile:
    """Parse a single-file result: header, ``<name>/<frame>.jpg`` and the values of every line (a problem there
    raises :class:`AbawError` naming the file and line); a frame given twice, or a gap in a name's frames
    1..N, is listed in ``problems`` (the name's values are then unusable)."""
    proto = tasks.get_protocol(protocol)
    track = tasks.check_track(track)
    path = Path(path)
    head, _, body = _read_text(path).partition("\n")
    expected = proto.single_header(track)
    if ",".join(f.strip() for f in head.strip().split(",")) != expected:
        raise AbawError(f"wrong header {head.strip()!r}, expected {expected!r}", path=path, line=1)
    names, frame_text, values_text = [], [], []
    for number, line in enumerate(body.split("\n") if body else [], 2):  # plain str methods: ~1 s per million lines
        location, comma, rest = line.partition(",")
        if not comma:
            raise AbawError("no values after the image location" if line.strip() else "empty line", path=path,
                            line=number)
        name, _, file = location.strip().rpartition("/")
        digits = file[:-4]
        if not (name and file.endswith(".jpg") and digits.isascii() and digits.isdigit()):
            raise AbawError(f"image location {location.strip()!r} is not <name>/<frame>.jpg", path=path, line=number)
        names.append(name)
        frame_text.append(digits)
        values_text.append(rest)
    # What follows the location is a 2020-2022 file's line: parsed and range-checked the same way, with the same line
    # numbers (the header is line 1 in both).
    values = parse_label_text("\n".join([proto.header(track), *values_text]), path, track, proto,
                              allow_invalid=False)
    frames = np.array(frame_text, dtype=np.str_).astype(np.int64) if frame_text else np.zeros(0, np.int64)
    out: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    for name, rows in pd.DataFrame({"name": names}, dtype=object).groupby("name", sort=True).indices.items():
        name = str(name)
        order = rows[np.argsort(frames[rows], kind="stable")]
        got = frames[order]
        twice = np.flatnonzero(np.diff(got) == 0)
        gap = np.flatnonzero(got != np.arange(1, len(got) + 1))
        if len(twice):
            line = int(order[twice[0] + 1]) + 2
            problems[name] = f"{path}:{line}: {name}/{tasks.CROP_PATTERN.format(got[twice[0]])} appears twice"
        elif got[0] < 1:
            problems[name] = f"{path}:{int(order[0]) + 2}: {name}: frames are numbered from 1"
        elif len(gap):
            problems[name] = (f"{path}: no line for {name}/{tasks.CROP_PATTERN.format(int(gap[0]) + 1)} (one line "
                              "per frame 1..N of each video)")
        else:
            out[name] = values[order]
    return SingleFile(path, out, problems)


def read_single_file(path: str | Path, track: str, protocol: str | tasks.Protocol | None = None,
                     names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read a single-file result into ``{name: float32 (n_lines, k)}`` in frame order; the first problem raises,
    and every name of ``names`` must have lines."""
    parsed = parse_single_file(resolve_single_file(path, track, protocol), track, protocol)
    if parsed.problems:
        raise AbawError(next(iter(parsed.problems.values())))
    for name in names or ():
        if name not in parsed.values:
            raise AbawError(f"no lines for {name}", path=parsed.path)
    return parsed.values


def read_results(path: str | Path, track: str, protocol: str | tasks.Protocol | None = None,
                 names: list[str] | None = None, fmt: str | None = None) -> dict[str, np.ndarray]:
    """Read result files of either format (detected, or ``fmt``) into ``{name: float32 (n_lines, k)}``."""
    if result_format(path, track, protocol, fmt) == "single":
        return read_single_file(path, track, protocol, names)
    return read_result_folder(path, track, protocol, names)


def convert_results(src: str | Path, out_dir: str | Path, track: str, protocol: str | tasks.Protocol | None = None,
                    fmt: str | None = None, src_fmt: str | None = None) -> Path:
    """Rewrite result files of either format (detected, or ``src_fmt``) in ``fmt`` (default: the protocol's) under
    ``out_dir``, values unchanged; returns the folder or file written."""
    proto = tasks.get_protocol(protocol)
    return write_results(out_dir, track, read_results(src, track, proto, fmt=src_fmt), proto, fmt)


def _expected_frames(root: str | Path, split: str, track: str,
                     protocol: str | tasks.Protocol | None) -> tuple[dict[str, int | None], list[str]]:
    """Names a submission must contain, with the frame count each file must have (None: unknown)."""
    ds = AffWild2(root, protocol=protocol)
    problems: list[str] = []
    if split == tasks.TEST_SPLIT:
        expected: dict[str, int | None] = {}
        for name in ds.test_names(track):
            path = ds.video_path(name)
            if path is None:
                problems.append(f"{name}: no video file in the data root to count its frames")
                expected[name] = None
            else:
                expected[name] = ds.video_info(name)[0]
        return expected, problems
    if not ds.has(split, track):
        raise AbawError(f"no {track.upper()} {split} annotations", path=ds.annotation_dir(split, track))
    return {e.name: e.n_frames for e in ds.entries(split, track)}, problems


def _check_split(split: str) -> None:
    if split not in tasks.RESULT_SPLITS:
        raise AbawError(f"unknown split {split!r}; choose one of {', '.join(tasks.RESULT_SPLITS)}")


def validate_submission(folder: str | Path, root: str | Path, split: str, track: str,
                        protocol: str | tasks.Protocol | None = None, fmt: str | None = None) -> list[str]:
    """Check result files of either format (detected, or ``fmt``) against a data root; one line per problem (empty
    when valid).

    Checks: every name of the split (``test``: ``test_set/<track>.txt``) and no other name, the header, the number
    of lines against the video's frame count, every value and its range; in a single file also every location
    (``<name>/<frame>.jpg``, each frame 1..N once).
    """
    track = tasks.check_track(track)
    _check_split(split)
    if protocol is None:
        protocol = AffWild2(root).protocol
    if result_format(folder, track, protocol, fmt) == "single":
        return _validate_single(resolve_single_file(folder, track, protocol), root, split, track, protocol)
    folder = resolve_track_folder(folder, track, protocol)
    expected, problems = _expected_frames(root, split, track, protocol)
    present = {p.stem: p for p in folder.iterdir() if not p.name.startswith(".")}
    for name in sorted(expected):
        if name not in present:
            problems.append(f"{folder / (name + '.txt')}: missing file for {name}")
    for stem, path in sorted(present.items()):
        if path.suffix != ".txt" or stem not in expected:
            problems.append(f"{path}: extra file (not a {split} name of the {track.upper()} track)")
            continue
        try:
            values = parse_label_file(path, track, protocol, allow_invalid=False)
        except AbawError as exc:
            problems.append(str(exc))
            continue
        n_expected = expected[stem]
        if n_expected is not None and len(values) != n_expected:
            problems.append(f"{path}: {len(values)} lines after the header, but the video of {stem} has "
                            f"{n_expected} frames")
    return problems


def _validate_single(path: Path, root: str | Path, split: str, track: str,
                     protocol: str | tasks.Protocol | None) -> list[str]:
    expected, problems = _expected_frames(root, split, track, protocol)
    try:
        parsed = parse_single_file(path, track, protocol)
    except AbawError as exc:
        return [*problems, str(exc)]
    problems += list(parsed.problems.values())
    for name in sorted(expected):
        if name not in parsed.values and name not in parsed.problems:
            problems.append(f"{path}: no lines for {name}")
    for name, values in parsed.values.items():
        if name not in expected:
            problems.append(f"{path}: {name} is not a {split} name of the {track.upper()} track")
        elif expected[name] is not None and len(values) != expected[name]:
            problems.append(f"{path}: {len(values)} lines for {name}, but the video of {name} has {expected[name]} "
                            "frames")
    return problems


def zip_submission(folder: str | Path, zip_path: str | Path) -> Path:
    """Zip a result folder (kept as the top-level folder in the archive, e.g. ``VA_Set/<name>.txt``) or a single
    result file (at the top of the archive) atomically."""
    folder = Path(folder)
    if not folder.exists():
        raise AbawError("result folder not found", path=folder)
    zip_path = Path(zip_path)
    if zip_path.is_dir():
        raise AbawError("is a folder; --zip takes the path of the .zip file to write", path=zip_path)
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if folder.is_file():
            zf.write(folder, arcname=folder.name)
            return zip_path
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                zf.write(path, arcname=Path(folder.name) / path.relative_to(folder))
    return zip_path


# ---- scoring ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    """One name to score: its labels (invalid markers kept) and the frame count its result must cover."""

    name: str
    labels: np.ndarray
    n_frames: int


def _label_annotations(labels: str | Path) -> Path:
    """``LABELS/annotations``, or a one-line error saying what a label root is."""
    ann = Path(labels) / tasks.ANNOTATIONS_DIR
    if not ann.is_dir():
        raise AbawError(f"no {tasks.ANNOTATIONS_DIR}/ folder: not a label root (LABELS/{tasks.ANNOTATIONS_DIR}/"
                        f"<track folder>/<{'|'.join(tasks.LABEL_SPLIT_DIRS.values())}>/<name>.txt)", path=labels)
    return ann


def label_folder(labels: str | Path, split: str, track: str, protocol: str | tasks.Protocol | None = None) -> Path:
    """``LABELS/annotations/<track dir>/<split dir>/`` of a label root (either layout's track folder name)."""
    ann = _label_annotations(labels)
    split_dir = tasks.LABEL_SPLIT_DIRS[split]
    for name in _track_dir_names(track, protocol):
        if (ann / name / split_dir).is_dir():
            return ann / name / split_dir
    expected = ann / tasks.get_protocol(protocol).annotation_dir(track) / split_dir
    raise AbawError(f"no {track.upper()} {split} labels in the label root (expected {expected}/)", path=labels)


def _root_targets(root: str | Path, split: str, track: str, proto: tasks.Protocol,
                  strict: bool) -> list[_Target]:
    if split == tasks.TEST_SPLIT:
        raise AbawError("a data root has no test labels; score the test split against a label root with --labels "
                        f"LABELS (LABELS/{tasks.ANNOTATIONS_DIR}/<track folder>/{tasks.TEST_SPLIT_DIR}/<name>.txt)")
    ds = AffWild2(root, protocol=proto, strict=strict)
    entries = ds.entries(split, track)
    if not entries:
        raise AbawError(f"no {track.upper()} {split} annotations", path=ds.annotation_dir(split, track))
    return [_Target(e.name, ds.labels(e), e.n_frames) for e in entries]


def _label_root_targets(labels: str | Path, root: str | Path | None, split: str, track: str,
                        proto: tasks.Protocol) -> list[_Target]:
    """Targets from a label root; frame counts from the data root's videos when given, else the label lines."""
    from abaw.data.affwild2 import video_info

    folder = label_folder(labels, split, track, proto)
    paths = sorted(folder.glob("*.txt"))
    if not paths:
        raise AbawError(f"no {track.upper()} {split} label files", path=folder)
    ds = AffWild2(root, protocol=proto) if root is not None else None
    out = []
    for path in paths:
        lab = parse_label_file(path, track, proto)
        video = ds.video_path(path.stem) if ds is not None else None
        out.append(_Target(path.stem, lab, video_info(video)[0] if video is not None else len(lab)))
    return out


def _score_protocol(root: str | Path | None, labels: str | Path | None,
                    protocol: str | tasks.Protocol | None) -> tasks.Protocol:
    """The protocol given, else the data root's (from its layout), else the label root's layout's."""
    try:
        if protocol is not None:
            return tasks.get_protocol(protocol)
    except ValueError as exc:
        raise AbawError(str(exc)) from None
    if root is not None:
        return AffWild2(root).protocol
    _label_annotations(labels)
    return tasks.get_protocol(default_protocol(detect_layout(labels)))


def score_results(path: str | Path, root: str | Path | None, split: str, track: str,
                  protocol: str | tasks.Protocol | None = None, strict: bool = False,
                  labels: str | Path | None = None, fmt: str | None = None) -> dict:
    """Score result files of either format (detected, or ``fmt``) with the official metric (``abaw score``).

    Labels: the annotations of ``split`` in the data root ``root``, or, with ``labels``, those of a label root
    (``LABELS/annotations/<track folder>/<Train_Set|Validation_Set|Test_Set>/``; the only place test labels are
    read from). Each name's result must have one line per video frame (or per label line); where the video is
    shorter than its label file, the labels past the video's end have no prediction and are left out with a warning.
    A name without a result, and a result for a name without labels, are errors.
    """
    from abaw.metrics import score_track

    track = tasks.check_track(track)
    proto, pairs = scored_pairs(path, root, split, track, protocol, strict, labels, fmt)
    pred_all = np.concatenate([pred for _, pred, _ in pairs])
    true_all = np.concatenate([true for _, _, true in pairs])
    if track == "expr":
        pred_all = pred_all[:, 0]
    result = score_track(track, pred_all, true_all, proto)
    return {**result, "split": split, "n_videos": len(pairs)}


def scored_pairs(path: str | Path, root: str | Path | None, split: str, track: str,
                 protocol: str | tasks.Protocol | None = None, strict: bool = False,
                 labels: str | Path | None = None, fmt: str | None = None
                 ) -> tuple[tasks.Protocol, list[tuple[str, np.ndarray, np.ndarray]]]:
    """What :func:`score_results` scores, per name: the protocol and ``[(name, prediction, labels)]`` in label
    order, the two cut to the same frames (checked as there)."""
    track = tasks.check_track(track)
    _check_split(split)
    if root is None and labels is None:
        raise AbawError("give a data root (--data-root) or a label root (--labels)")
    proto = _score_protocol(root, labels, protocol)
    targets = (_label_root_targets(labels, root, split, track, proto) if labels is not None
               else _root_targets(root, split, track, proto, strict))
    names = [t.name for t in targets]
    single = result_format(path, track, proto, fmt) == "single"
    if single:
        source = resolve_single_file(path, track, proto)
        preds = read_single_file(source, track, proto, names)
        where = {name: source for name in preds}
        extra = sorted(set(preds) - set(names))
        if extra:
            raise AbawError(f"{extra[0]} has no {split} labels of the {track.upper()} track "
                            "(`abaw validate-submission` lists every problem)", path=source)
    else:
        source = resolve_track_folder(path, track, proto)
        preds = read_result_folder(source, track, proto, names=names)
        where = {name: source / f"{name}.txt" for name in preds}
        for file in sorted(source.iterdir()):  # as validate_submission: no file is ignored
            if not file.name.startswith(".") and (file.suffix != ".txt" or file.stem not in preds):
                raise AbawError(f"extra file (not a {split} name of the {track.upper()} track; "
                                "`abaw validate-submission` lists every problem)", path=file)
    pairs = []
    for target in targets:
        pred, true, file = preds[target.name], target.labels, where[target.name]
        if len(pred) not in (target.n_frames, len(true)):
            what = f"lines for {target.name}" if single else "lines after the header"
            raise AbawError(f"{len(pred)} {what}, but the video of {target.name} has {target.n_frames} frames",
                            path=file)
        n = min(len(pred), len(true))
        if len(true) > n:
            log.warning("%s: %d label lines of %s past the video's %d frames have no prediction and are not scored",
                        file, len(true) - n, target.name, n)
        pairs.append((target.name, pred[:n], true[:n]))
    return proto, pairs


#: The scorer's former name (it reads either format).
score_result_folder = score_results
