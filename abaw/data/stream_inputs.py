"""Loading the inputs of each stream for a window of frames (docs/design.md sections 1 and 4).

End-to-end mode reads images and audio: ``face`` from ``cropped_aligned/<name>/``, ``body`` and ``context`` from
``prepared/<stream>/<name>/``, ``audio`` windows from ``prepared/audio/<video>.npz`` through
:func:`abaw.video.audio.frame_windows`, ``landmarks`` from ``boxes/<video>.csv`` normalised to the face box. Cached mode
reads ``features/<stream>/<extractor>/<name>.npz``. A frame without input gives zeros and ``<stream>_valid`` False.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from abaw.errors import AbawError
from abaw.tasks import CROP_PATTERN, CROPS_DIR, FEATURES_DIR, IMAGE_STREAMS, PREPARED_DIR
from abaw.video.resize import resize

N_LANDMARKS = 5


def image_folder(root: Path, stream: str, name: str) -> Path:
    if stream == "face":
        return root / CROPS_DIR / name
    return root / PREPARED_DIR / stream / name


def feature_path(root: str | Path, stream: str, extractor: str, name: str) -> Path:
    return Path(root) / FEATURES_DIR / stream / extractor / f"{name}.npz"


def _frames_in(folder: Path) -> set[int]:
    """Frame numbers of the ``00001.jpg`` files of a folder (listed once, not a stat per frame)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return set()
    out = set()
    for n in names:
        stem, ext = os.path.splitext(n)
        if ext.lower() == ".jpg" and stem.isdigit():
            out.add(int(stem))
    return out


def image_spec(spec: dict[str, Any] | None, size: int | None = None) -> dict[str, Any]:
    """Normalise a model's ``input_spec()`` entry: size (h, w), channels, and (scale, shift) per channel such that
    ``x = pixel/255 * scale + shift``."""
    spec = dict(spec or {})
    raw = size or spec.get("size", 112)
    hw = (int(raw), int(raw)) if isinstance(raw, (int, float)) else (int(raw[0]), int(raw[1]))
    channels = int(spec.get("channels", 3))
    if "mean" in spec and "std" in spec:
        mean = np.asarray(spec["mean"], np.float32)
        std = np.asarray(spec["std"], np.float32)
        scale, shift = 1.0 / std, -mean / std
    elif "range" in spec:
        lo, hi = spec["range"]
        scale, shift = np.full(channels, hi - lo, np.float32), np.full(channels, lo, np.float32)
    else:
        scale, shift = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    return {"size": hw, "channels": channels, "scale": np.broadcast_to(scale, (channels,)).astype(np.float32),
            "shift": np.broadcast_to(shift, (channels,)).astype(np.float32)}


def read_image(path: Path, spec: dict[str, Any]) -> np.ndarray:
    """One JPEG as a normalised ``(C, H, W)`` float32 array."""
    flag = cv2.IMREAD_GRAYSCALE if spec["channels"] == 1 else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None:
        raise AbawError("cannot read image", path=path)
    h, w = spec["size"]
    if img.shape[:2] != (h, w):
        img = resize(img, w, h)
    if img.ndim == 2:
        img = img[:, :, None]
    else:
        img = img[:, :, ::-1]  # BGR -> RGB
    x = img.astype(np.float32) * (1.0 / 255.0)
    x = x * spec["scale"] + spec["shift"]
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def normalised_landmarks(boxes: Any, name: str, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The 5 landmarks of ``name`` per frame relative to its face box, scaled to [-1, 1] inside the box (the models'
    ``input_spec``): ``(n, 10)`` and valid."""
    rows = boxes[boxes["name"] == name] if "name" in boxes.columns else boxes
    out = np.zeros((n_frames, 2 * N_LANDMARKS), np.float32)
    ok = np.zeros(n_frames, bool)
    if rows.empty:
        return out, ok
    frame = rows["frame"].to_numpy(np.int64)
    keep = (frame >= 1) & (frame <= n_frames)
    rows, frame = rows[keep], frame[keep]
    fx, fy, fw, fh = (rows[c].to_numpy(np.float32) for c in ("face_x", "face_y", "face_w", "face_h"))
    cols = []
    for i in range(N_LANDMARKS):
        cols.append(2 * (rows[f"lm{i}_x"].to_numpy(np.float32) - fx) / np.maximum(fw, 1e-6) - 1)
        cols.append(2 * (rows[f"lm{i}_y"].to_numpy(np.float32) - fy) / np.maximum(fh, 1e-6) - 1)
    lm = np.stack(cols, axis=1)
    good = np.isfinite(lm).all(axis=1)
    out[frame[good] - 1] = lm[good]
    ok[frame[good] - 1] = True
    return out, ok


class StreamLoader:
    """Reads the inputs of the configured streams for a window of a :class:`~abaw.data.sequences.SequenceVideo`.

    ``spec`` is the model's ``input_spec()``; ``extractors`` maps a stream to its cache folder name in cached mode.
    Per-video tables (crop listings, audio windows, landmarks, cached features) are kept in a small LRU cache.
    """

    def __init__(self, root: str | Path, streams: Sequence[str], spec: dict[str, Any] | None = None,
                 mode: str = "end2end", extractors: dict[str, str] | None = None, audio_window: float | None = None,
                 image_size: int | None = None, cache_videos: int = 8) -> None:
        self.root = Path(root)
        self.streams = list(streams)
        self.mode = mode
        self.extractors = extractors or {}
        self.audio_window = float(audio_window) if audio_window else None
        spec = spec or {}
        self.specs = {s: image_spec(spec.get(s), image_size) for s in IMAGE_STREAMS if s in self.streams}
        self.audio_spec = dict(spec.get("audio") or {})
        wanted = (spec.get("landmarks") or {}).get("dim")
        if "landmarks" in self.streams and wanted not in (None, 2 * N_LANDMARKS):
            raise AbawError(f"the model wants {wanted} landmark values per frame, but boxes tables have "
                            f"{N_LANDMARKS} points ({2 * N_LANDMARKS} values): use landmarks=5")
        self._cache: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._cache_size = cache_videos

    # ---- per-video tables, cached -----------------------------------------------------------------------------
    def _cached(self, key: tuple[str, str], make: Any) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = make()
        self._cache[key] = value
        while len(self._cache) > self._cache_size * max(1, len(self.streams)):
            self._cache.popitem(last=False)
        return value

    def _features(self, stream: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        path = feature_path(self.root, stream, self.extractors[stream], name)

        def make() -> tuple[np.ndarray, np.ndarray]:
            if not path.is_file():
                raise AbawError("cached features missing (run `abaw extract` with this config)", path=path)
            with np.load(path, allow_pickle=False) as z:
                return np.asarray(z["feats"]), np.asarray(z["valid"], dtype=bool)

        return self._cached(("feat:" + stream, name), make)

    def _audio(self, video: Any) -> tuple[np.ndarray, np.ndarray]:
        from abaw.video.audio import frame_windows  # the audio engineer's module

        path = self.root / PREPARED_DIR / "audio" / f"{video.video}.npz"

        def make() -> tuple[np.ndarray, np.ndarray]:
            if not path.is_file():
                raise AbawError("audio features missing (run `abaw prepare` on the data root)", path=path)
            with np.load(path, allow_pickle=False) as z:
                logmel = np.asarray(z["logmel"], np.float32)
                hop, seconds = float(z["hop_seconds"]), float(z["audio_seconds"])
            # dB values as prepared: the model's input_spec says it standardises each window itself
            window = self.audio_window or float(self.audio_spec.get("window_seconds", 1.0))
            windows, valid = frame_windows(logmel, hop, seconds, video.n_frames, video.fps, window)
            return windows.astype(np.float32), np.asarray(valid, bool)

        return self._cached(("audio", video.video), make)

    def _landmarks(self, video: Any) -> tuple[np.ndarray, np.ndarray]:
        from abaw.data.affwild2 import read_boxes

        def make() -> tuple[np.ndarray, np.ndarray]:
            return normalised_landmarks(read_boxes(self.root, video.video), video.name, video.n_frames)

        return self._cached(("landmarks", video.name), make)

    def _listing(self, stream: str, name: str) -> set[int]:
        return self._cached(("list:" + stream, name), lambda: _frames_in(image_folder(self.root, stream, name)))

    # ---- a window -----------------------------------------------------------------------------------------------
    def load(self, video: Any, idx: np.ndarray, length: int) -> dict[str, np.ndarray]:
        """Inputs of frames ``idx`` (0-based) of ``video``, padded to ``length`` frames."""
        out: dict[str, np.ndarray] = {}
        n = len(idx)
        for stream in self.streams:
            if self.mode == "cached" and stream != "landmarks":
                feats, valid = self._features(stream, video.name)
                x = np.zeros((length, feats.shape[1]), np.float32)
                ok = np.zeros(length, bool)
                inside = idx[idx < len(feats)]
                x[: len(inside)] = feats[inside]
                ok[: len(inside)] = valid[inside]
                out[f"{stream}_feat"], out[f"{stream}_valid"] = x, ok
            elif stream in IMAGE_STREAMS:
                spec = self.specs[stream]
                h, w = spec["size"]
                x = np.zeros((length, spec["channels"], h, w), np.float32)
                ok = np.zeros(length, bool)
                have = self._listing(stream, video.name)
                folder = image_folder(self.root, stream, video.name)
                for j, i in enumerate(idx):
                    if int(i) + 1 in have:
                        x[j] = read_image(folder / CROP_PATTERN.format(int(i) + 1), spec)
                        ok[j] = True
                out[stream], out[f"{stream}_valid"] = x, ok
            elif stream == "audio":
                windows, valid = self._audio(video)
                x = np.zeros((length, 1) + windows.shape[1:], np.float32)
                ok = np.zeros(length, bool)
                x[:n, 0] = windows[idx]
                ok[:n] = valid[idx]
                out["audio"], out["audio_valid"] = x, ok
            elif stream == "landmarks":
                lm, valid = self._landmarks(video)
                x = np.zeros((length, lm.shape[1]), np.float32)
                ok = np.zeros(length, bool)
                x[:n], ok[:n] = lm[idx], valid[idx]
                out["landmarks"], out["landmarks_valid"] = x, ok
            else:
                raise AbawError(f"unknown stream {stream!r}")
        return out
