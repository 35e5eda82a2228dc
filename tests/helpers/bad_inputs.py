"""Writers of bad inputs for the bad-input corpus (tests/test_bad_inputs.py): broken videos, images, label files,
result folders, databases and weight files, each small and made inside the test."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np

from abaw import tasks
from tests.helpers.data_roots import write_video

#: Bytes that are no text, image, video or database.
JUNK = bytes(range(256)) * 8


def files_tree(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every file and folder under ``root``: relative path -> (is a folder, size, mtime in ns)."""
    out: dict[str, tuple[bool, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            is_dir = path.is_dir()
            out[str(path.relative_to(root))] = (is_dir, 0 if is_dir else st.st_size, 0 if is_dir else st.st_mtime_ns)
    return out


def write(path: Path, data: bytes | str) -> Path:
    """Write text or bytes, making the parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_bytes(data.encode())
    return path


def truncated_video(path: Path, n_frames: int = 30) -> Path:
    """A real H.264 .mp4 cut to its first third: no index (moov atom) left."""
    write_video(path, n_frames)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def zero_frame_video(path: Path) -> Path:
    """A well-formed container (header written) declaring one video stream and holding no frames."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    assert path.stat().st_size > 0
    return path


def image(path: Path, size: tuple[int, int] = (64, 64)) -> Path:
    """A grey image of ``size`` (width, height) in the format of the file name's extension."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix if path.suffix in (".png", ".jpg", ".bmp") else ".png",
                           np.full((size[1], size[0], 3), 128, dtype=np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def first_annotation(root: Path, track: str, split: str = "validation") -> Path:
    """The first annotation file of a track and split of a 2021-layout data root."""
    folder = root / "annotations" / tasks.get_protocol("abaw2021").annotation_dir(track) / tasks.SPLIT_DIRS[split]
    return sorted(folder.glob("*.txt"))[0]


def edit_lines(path: Path, row: int, text: str) -> Path:
    """Replace line ``row`` (0 is the header) of a text file."""
    lines = path.read_text().splitlines()
    lines[row] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def valid_results(root: Path, out: Path, track: str, split: str = "validation") -> Path:
    """A valid result folder (constant predictions) for every name of a split; returns the track folder."""
    from abaw.data.affwild2 import AffWild2
    from abaw.results import track_folder, write_result_folder

    ds = AffWild2(root)
    preds = {}
    for entry in ds.entries(split, track):
        k = {"va": 2, "expr": 1, "au": ds.protocol.n_au}[track]
        preds[entry.name] = np.zeros((entry.n_frames, k), dtype=np.float32)
    write_result_folder(out, track, preds, ds.protocol)
    return track_folder(out, track, ds.protocol)


def sqlite_file(path: Path, rows: int = 200) -> Path:
    """A valid SQLite database of some other program (table ``notes``), big enough to truncate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.executemany("INSERT INTO notes (body) VALUES (?)", [("x" * 200,)] * rows)
    con.commit()
    con.close()
    return path


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def run_folder(path: Path, run_json: str | None, status: str = "finished") -> Path:
    """A run folder holding ``run_json`` as its run.json (a default finished one when ``run_json`` is None)."""
    path.mkdir(parents=True, exist_ok=True)
    if run_json is None:
        run_json = json.dumps({"run_id": path.name, "kind": "train", "status": status, "tracks": ["va"]})
    (path / "run.json").write_text(run_json)
    return path
