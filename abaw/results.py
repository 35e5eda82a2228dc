"""Challenge result files: the 2020-2022 folder format, the 2023+ single-file format, a validator and a zip.

2020-2022: a folder named like the track's annotation folder (``VA_Set`` ...), one ``<name>.txt`` per name with the
annotation header and one line per frame of the whole video. Frames without a prediction are filled: linear
interpolation for VA (clipped to [-1, 1]), the nearest predicted frame for EXPR and AU.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from abaw import tasks
from abaw.data.affwild2 import AffWild2, parse_label_file
from abaw.errors import AbawError
from abaw.fileio import atomic_open, atomic_path

log = logging.getLogger(__name__)

SINGLE_FILE_KEY = "image_location"


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
        fh.write(f"{SINGLE_FILE_KEY},{proto.header(track)}\n")
        for name in sorted(preds):
            lines = format_lines(track, fill_missing(track, preds[name], proto))
            fh.writelines(f"{name}/{tasks.CROP_PATTERN.format(i)},{line}\n" for i, line in enumerate(lines, 1))
    return Path(path)


def resolve_track_folder(folder: str | Path, track: str, protocol: str | tasks.Protocol | None = None) -> Path:
    """Accept either the track folder itself or a folder holding it (under either layout's name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AbawError("result folder not found", path=folder)
    track = tasks.check_track(track)
    names = [tasks.get_protocol(protocol).annotation_dir(track)]
    names += [dirs[track] for dirs in tasks.ANNOTATION_DIRS.values() if dirs[track] not in names]
    for name in names:
        if (folder / name).is_dir():
            return folder / name
    return folder


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


def _expected_frames(root: str | Path, split: str, track: str,
                     protocol: str | tasks.Protocol | None) -> tuple[dict[str, int | None], list[str]]:
    """Names a submission must contain, with the frame count each file must have (None: unknown)."""
    ds = AffWild2(root, protocol=protocol)
    problems: list[str] = []
    if split == "test":
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


def validate_submission(folder: str | Path, root: str | Path, split: str, track: str,
                        protocol: str | tasks.Protocol | None = None) -> list[str]:
    """Check a 2020-2022 result folder against a data root; returns one line per problem (empty when valid).

    Checks: a file for every name of the split (``test``: ``test_set/<track>.txt``) and no other file, the header,
    the number of lines against the video's frame count, and every value and its range.
    """
    track = tasks.check_track(track)
    if split not in (*tasks.SPLITS, "test"):
        raise AbawError(f"unknown split {split!r}; choose one of {', '.join((*tasks.SPLITS, 'test'))}")
    if protocol is None:
        protocol = AffWild2(root).protocol
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


def zip_submission(folder: str | Path, zip_path: str | Path) -> Path:
    """Zip a result folder (kept as the top-level folder in the archive, e.g. ``VA_Set/<name>.txt``) atomically."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AbawError("result folder not found", path=folder)
    zip_path = Path(zip_path)
    if zip_path.is_dir():
        raise AbawError("is a folder; --zip takes the path of the .zip file to write", path=zip_path)
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                zf.write(path, arcname=Path(folder.name) / path.relative_to(folder))
    return zip_path


def score_result_folder(folder: str | Path, root: str | Path, split: str, track: str,
                        protocol: str | tasks.Protocol | None = None, strict: bool = False) -> dict:
    """Score a 2020-2022 result folder against the annotations of ``split`` (``abaw score``).

    Each file must have one line per video frame (or per label line); where the video is shorter than its label
    file, the labels past the video's end have no prediction and are left out with a warning.
    """
    from abaw.metrics import score_track

    ds = AffWild2(root, protocol=protocol, strict=strict)
    track = tasks.check_track(track)
    entries = ds.entries(split, track)
    if not entries:
        raise AbawError(f"no {track.upper()} {split} annotations", path=ds.annotation_dir(split, track))
    preds = read_result_folder(folder, track, ds.protocol, names=[e.name for e in entries])
    for path in sorted(resolve_track_folder(folder, track, ds.protocol).iterdir()):  # as validate_submission: no
        if not path.name.startswith(".") and (path.suffix != ".txt" or path.stem not in preds):  # file is ignored
            raise AbawError(f"extra file (not a {split} name of the {track.upper()} track; "
                            "`abaw validate-submission` lists every problem)", path=path)
    pred_parts, true_parts = [], []
    for entry in entries:
        pred, true = preds[entry.name], ds.labels(entry)
        path = resolve_track_folder(folder, track, ds.protocol) / f"{entry.name}.txt"
        if len(pred) not in (entry.n_frames, len(true)):
            raise AbawError(f"{len(pred)} lines after the header, but the video of {entry.name} has "
                            f"{entry.n_frames} frames", path=path)
        n = min(len(pred), len(true))
        if len(true) > n:
            log.warning("%s: %d label lines past the video's %d frames have no prediction and are not scored",
                        path, len(true) - n, n)
        pred_parts.append(pred[:n])
        true_parts.append(true[:n])
    pred_all, true_all = np.concatenate(pred_parts), np.concatenate(true_parts)
    if track == "expr":
        pred_all = pred_all[:, 0]
    result = score_track(track, pred_all, true_all, ds.protocol)
    return {**result, "split": split, "n_videos": len(entries)}
