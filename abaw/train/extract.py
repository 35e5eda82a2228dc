"""``abaw extract``: run each stream's CNN once over every frame and cache float16 features
(``features/<stream>/<extractor>/<name>.npz`` with ``feats`` (n_frames, D) and ``valid`` (n_frames,)).

Batched, ``torch.inference_mode``, channels_last, optional bf16 autocast; one file per name and stream, written
atomically, so an interrupted extraction resumes by skipping the complete files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from abaw.data.sequences import SequenceVideo, load_videos
from abaw.data.stream_inputs import StreamLoader, feature_path
from abaw.errors import AbawError
from abaw.fileio import save_npz
from abaw.tasks import ENCODED_STREAMS, FEATURES_DIR, IMAGE_STREAMS, SPLITS, TRACKS
from abaw.video.prepare import shard

log = logging.getLogger(__name__)

#: Frames read and encoded per chunk (bounds memory on long videos).
CHUNK = 512


def _digest(encoder: nn.Module, spec: Any) -> str:
    """Hash of the encoder's weights and its input preprocessing: the cache is valid only for both."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    for key, tensor in sorted(encoder.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:10]


def extractor_names(cfg: dict[str, Any], model: nn.Module) -> dict[str, str]:
    """Cache folder name per encoded stream of the config: ``<backbone>-<input size>-<digest of weights and input>``
    (e.g. ``tv_mobilenet_v2-112x112-1a2b3c4d5e``)."""
    encoders = model.stream_encoders()
    spec = model.input_spec() if hasattr(model, "input_spec") else {}
    base = str(cfg["model"]["kwargs"].get("backbone") or cfg["model"]["name"])
    out = {}
    for stream in cfg["data"]["streams"]:
        if stream not in ENCODED_STREAMS:
            continue
        if stream not in encoders:
            raise AbawError(f"model {cfg['model']['name']!r} has no encoder for stream {stream!r}")
        sspec = dict(spec.get(stream) or {})
        if stream in IMAGE_STREAMS and cfg["data"]["image_size"]:
            sspec["size"] = cfg["data"]["image_size"]
        if stream == "audio" and cfg["data"]["audio_window"]:
            sspec["window_seconds"] = cfg["data"]["audio_window"]
        # backbone and input size for people, a digest of the actual weights and preprocessing for correctness
        # (the model's own "extractor" tag names how the weights were initialised, which a checkpoint load changes)
        sspec.pop("extractor", None)
        backbone = sspec.get("backbone") or base
        if stream == "audio":
            label = f"{backbone}-{sspec.get('n_mels', '')}x{sspec.get('window_seconds', '')}s"
        else:
            size = sspec.get("size", "")
            label = f"{backbone}-{'x'.join(map(str, size)) if isinstance(size, (list, tuple)) else size}"
        out[stream] = f"{label}-{_digest(encoders[stream], sspec)}".replace("/", "_")
    return out


def all_videos(root: str | Path, protocol: str) -> list[SequenceVideo]:
    """Every annotation and test name of the data root (all splits and tracks), covering the whole video."""
    from abaw.data.affwild2 import AffWild2
    from abaw.data.sequences import load_test_videos

    ds = AffWild2(root, protocol=protocol)
    seen: dict[str, SequenceVideo] = {}
    for split in SPLITS:
        tasks = [t for t in TRACKS if ds.entries(split, t)]
        if not tasks:
            continue
        for video in load_videos(ds, split, tasks, protocol, frames_only=True):
            video.n_frames = max(video.n_frames, video.video_frames)
            seen.setdefault(video.name, video)
    for video in load_test_videos(ds, [t for t in TRACKS if ds.has_test_set(t)], protocol):
        seen.setdefault(video.name, video)
    return [seen[k] for k in sorted(seen)]


def _array_shape(archive: zipfile.ZipFile, member: str) -> tuple[int, ...]:
    """The shape an ``.npz`` member declares in its ``.npy`` header, read without the array's data."""
    with archive.open(f"{member}.npy") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(f)
    return tuple(shape)


def _complete(path: Path, n_frames: int) -> bool:
    """True when the cached file holds one row per frame. Files are written atomically, so the headers suffice: the
    check costs the same for a 50-frame and a 50,000-frame video (reading the arrays made it linear in cache bytes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            feats, valid = _array_shape(archive, "feats"), _array_shape(archive, "valid")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False
    return len(feats) == 2 and feats[0] == n_frames and valid == (n_frames,)


def _chunks(loader: StreamLoader, video: SequenceVideo) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(frame indices, stream inputs) of one name, :data:`CHUNK` frames at a time."""
    for start in range(0, video.n_frames, CHUNK):
        idx = np.arange(start, min(start + CHUNK, video.n_frames))
        yield idx, loader.load(video, idx, len(idx))


@torch.inference_mode()
def encode_video(encoder: nn.Module, loader: StreamLoader, stream: str, video: SequenceVideo, batch_size: int,
                 device: torch.device, bf16: bool) -> tuple[np.ndarray, np.ndarray]:
    """Features of every frame of one name: (n_frames, D) float16 (zeros where the stream has no input), valid."""
    feats: np.ndarray | None = None
    valid = np.zeros(video.n_frames, bool)
    # Decoding the next chunk in a background thread (video.decode.prefetch) was measured slower here: 1,060 against
    # 1,285 frames/s with tiny_cnn, no gain with MobileNetV2, one torch thread, 2 cores; the work did not overlap.
    for idx, inputs in _chunks(loader, video):
        x = inputs[stream][:, 0] if stream == "audio" and inputs[stream].ndim == 5 else inputs[stream]
        ok = inputs[f"{stream}_valid"]
        valid[idx] = ok
        rows = np.flatnonzero(ok)
        for b in range(0, len(rows), batch_size):
            sel = rows[b:b + batch_size]
            xb = torch.from_numpy(x[sel]).to(device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                fb = encoder(xb)
            fb = fb.float().reshape(len(sel), -1).cpu().numpy()
            if feats is None:
                feats = np.zeros((video.n_frames, fb.shape[1]), np.float16)
            feats[idx[sel]] = fb.astype(np.float16)
    if feats is None:  # no frame had input: probe the feature size with one zero input
        probe = torch.zeros((1,) + x.shape[1:], device=device)
        dim = int(encoder(probe).reshape(1, -1).shape[1])
        feats = np.zeros((video.n_frames, dim), np.float16)
    return feats, valid


def extract_features(cfg: dict[str, Any], model: nn.Module, streams: list[str] | None = None, batch_size: int = 64,
                     bf16: bool = False, progress: bool = True, force: bool = False,
                     shard_of: tuple[int, int] = (1, 1)) -> dict[str, Any]:
    """Extract every missing feature file of the config's encoded streams; returns a summary per stream.
    ``shard_of`` (i, N) limits it to the i-th of N shares of the videos (``abaw extract`` passes the rank's)."""
    from tqdm import tqdm

    from abaw.train.fitting import pick_device

    root = Path(cfg["data"]["root"])
    names = extractor_names(cfg, model)
    wanted = [s for s in (streams or cfg["data"]["streams"]) if s in names]
    encoders = model.stream_encoders()
    device = pick_device(cfg["train"]["device"])
    videos = shard(all_videos(root, cfg["protocol"]), *shard_of)
    spec = model.input_spec() if hasattr(model, "input_spec") else {}
    summary: dict[str, Any] = {}
    for stream in wanted:
        encoder = encoders[stream].to(device).eval()
        if stream != "audio":
            encoder = encoder.to(memory_format=torch.channels_last)
        loader = StreamLoader(root, [stream], spec, mode="end2end", audio_window=cfg["data"]["audio_window"],
                              image_size=cfg["data"]["image_size"])
        done = skipped = frames = 0
        t0 = time.perf_counter()
        for video in tqdm(videos, desc=f"extract {stream}", disable=None if progress else True):
            path = feature_path(root, stream, names[stream], video.name)
            if not force and path.is_file() and _complete(path, video.n_frames):
                skipped += 1
                continue
            feats, valid = encode_video(encoder, loader, stream, video, batch_size, device, bf16)
            save_npz(path, feats=feats, valid=valid)
            done += 1
            frames += int(valid.sum())
        summary[stream] = {"extractor": names[stream], "written": done, "skipped": skipped, "frames": frames,
                           "folder": str(root / FEATURES_DIR / stream / names[stream]),
                           "seconds": round(time.perf_counter() - t0, 2)}
        log.info("extract %s -> %s: %d written, %d already complete", stream, names[stream], done, skipped)
    return summary
