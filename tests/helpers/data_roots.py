"""Small hand-written Aff-Wild2 data roots (every layout) for the reader, CLI, results and baselines tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd

from abaw import tasks
from abaw.data import affwild2

#: name -> (video file relative to videos/, split, frames). vid2 is a two-person video (two annotation names).
VIDEOS = {
    "vid1": ("vid1.mp4", "train", 24),
    "vid2": ("batch1/vid2.mp4", "train", 20),
    "vid3": ("batch2/vid3.avi", "validation", 18),
    "vid4": ("vid4.mp4", "validation", 22),
    "vid5": ("batch2/vid5.mp4", "test", 15),
}
NAMES = {"train": ["vid1", "vid2_left", "vid2_right"], "validation": ["vid3", "vid4"]}


def write_video(path: Path, n_frames: int, fps: int = 25, size: int = 32) -> Path:
    """A tiny real video (H.264 in .mp4, MPEG-4 part 2 in .avi) with ``n_frames`` frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "mpeg4" if path.suffix == ".avi" else "libx264"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            image = np.full((size, size, 3), (i * 9) % 255, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def random_labels(track: str, n: int, rng: np.random.Generator, protocol: str = "abaw2021") -> np.ndarray:
    """Labels with both classes/values present and about 10% invalid frames."""
    proto = tasks.get_protocol(protocol)
    invalid = rng.random(n) < 0.1
    if track == "va":
        lab = np.round(rng.uniform(-1, 1, (n, 2)), 3)
    elif track == "expr":
        lab = rng.integers(0, proto.n_expr, (n, 1)).astype(float)
    else:
        lab = (rng.random((n, proto.n_au)) < 0.4).astype(float)
    lab[invalid] = tasks.INVALID[track]
    return lab.astype(np.float32)


def label_text(track: str, labels: np.ndarray, protocol: str = "abaw2021") -> str:
    lines = [tasks.header(track, protocol)]
    for row in labels.reshape(len(labels), -1):
        lines.append(",".join(f"{v:g}" if track == "va" else str(int(v)) for v in row))
    return "\n".join(lines) + "\n"


def make_root(root: Path, layout: str = "abaw2021", protocol: str = "abaw2021", seed: int = 0,
              videos: bool = True) -> Path:
    """A complete small data root: videos (batch folders, .avi, a two-person video), crops for some frames,
    annotation files of all tracks (or the multi-task CSV), test lists and a boxes table."""
    rng = np.random.default_rng(seed)
    frames = {}
    for video, (rel, _, n) in VIDEOS.items():
        frames[video] = n
        if videos:
            write_video(root / "videos" / rel, n)
    all_names = [*NAMES["train"], *NAMES["validation"], "vid5"]
    for name in all_names:
        crops = root / "cropped_aligned" / name
        crops.mkdir(parents=True)
        for f in range(1, frames[tasks.split_two_person(name)[0]] + 1, 2):  # odd frames have a face
            (crops / tasks.CROP_PATTERN.format(f)).write_bytes(b"jpg")
    labels: dict[tuple[str, str, str], np.ndarray] = {}
    for split, names in NAMES.items():
        for name in names:
            n = frames[tasks.split_two_person(name)[0]]
            for track in tasks.TRACKS:
                labels[(split, track, name)] = random_labels(track, n, rng, protocol)
    if layout == "mtl":
        proto = tasks.get_protocol(protocol)
        for split, names in NAMES.items():
            lines = [",".join(tasks.MTL_HEADER_PREFIX) + ",aus"]
            for name in names:
                va, ex, au = (labels[(split, t, name)] for t in tasks.TRACKS)
                for i in range(0, len(va), 2):  # the CSV has rows only for frames with a crop
                    values = [f"{va[i, 0]:g}", f"{va[i, 1]:g}", str(int(ex[i, 0]))] + [str(int(v)) for v in au[i]]
                    lines.append(f"{name}/{tasks.CROP_PATTERN.format(i + 1)}," + ",".join(values))
            path = root / "annotations" / "MTL" / tasks.MTL_FILES[split]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
            assert proto.n_au == 12
    else:
        for (split, track, name), lab in labels.items():
            folder = root / "annotations" / tasks.ANNOTATION_DIRS[layout][track] / tasks.SPLIT_DIRS[split]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.txt").write_text(label_text(track, lab, protocol))
    (root / "test_set").mkdir()
    for track in tasks.TRACKS:
        (root / "test_set" / f"{track}.txt").write_text("vid5\n")
    (root / "boxes").mkdir()
    rows = [{c: 1.0 for c in affwild2.BOX_COLUMNS} | {"frame": f, "face_id": 0, "name": "vid1"} for f in (2, 1)]
    pd.DataFrame(rows).to_csv(root / "boxes" / "vid1.csv", index=False)
    return root


def add_to_training(root: Path, name: str, track: str, like: str, layout: str = "abaw2021",
                    protocol: str = "abaw2021", seed: int = 0) -> Path:
    """Put ``name`` into the training split of ``track`` as well (random labels, as many lines as its annotation file
    of track ``like``): a name in one track's training split and another's validation split, as Aff-Wild2 2020/2021
    has. Returns the new label file."""
    folders = tasks.ANNOTATION_DIRS[layout]
    source = next((root / "annotations" / folders[like]).glob(f"*/{name}.txt"))
    n = len(source.read_text().strip().splitlines()) - 1
    path = root / "annotations" / folders[track] / tasks.SPLIT_DIRS["train"] / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(label_text(track, random_labels(track, n, np.random.default_rng(seed), protocol), protocol))
    return path
