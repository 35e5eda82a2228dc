"""Frames per second of each stage of the real-video pipeline and of the whole of it, plus peak memory.

A CNN stage is a model preset's per-frame stream encoders (what ``abaw extract`` runs), e.g. ``demo_multitask``:
ImageNet MobileNetV2 on the 112 px face, body and context images and the audio CNN on 1 s log-mel windows, batched,
channels_last, ``inference_mode``, fp32 or bf16 autocast (whichever is faster here). By default four are measured,
from three ResNet-50s (NTUA-CVSP) down to the face MobileNetV2 alone (``--cnn``).

The whole pipeline goes from the video file to those features in one streaming pass, by chunks of frames: decode
(PyAV), detect faces on every k-th frame and interpolate between (YuNet, ``abaw.video.keyframes``, k as in
``abaw prepare``; key frames detected by ``--workers`` threads), detect persons about once a second (Yolo-Fastest),
align the face and cut the body and context images (the same threads), make the audio windows, then run the encoders
on full batches with every core. The CNN stage alone runs the same inputs, already in memory, through the same
batches. Other stages are timed alone.

    ABAW_WEIGHTS_DIR=../shared/assets/weights .venv/bin/python scripts/bench_pipeline.py
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from abaw.data.stream_inputs import image_spec
from abaw.train.checkpoint import model_from_config
from abaw.train.config import resolve
from abaw.video.align import align_face
from abaw.video.audio import audio_features, frame_windows
from abaw.video.decode import iter_frames, prefetch, probe, read_frames
from abaw.video.faces import YuNetDetector, per_thread
from abaw.video.inputs import body_input, context_input
from abaw.video.keyframes import detect_every
from abaw.video.persons import create_person_detector
from abaw.video.prepare import DETECT_EVERY, PERSON_EVERY
from abaw.video.tracking import derived_person_box, person_for_face

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
IMAGE_STREAMS = ("face", "body", "context")


def timed(fn: Callable[[], int], repeat: int = 1) -> float:
    """Items per second of ``fn`` (which returns how many items it processed), best of ``repeat``."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


class Encoders:
    """The preset's per-frame stream encoders, fed per-stream batches (uint8 images are normalised per batch)."""

    def __init__(self, config: Path, streams: list[str], bf16: bool, batch_size: int) -> None:
        cfg = resolve(config, check_root=False)
        model = model_from_config(cfg).eval()
        self.spec = model.input_spec()
        self.streams = [s for s in streams if s in model.stream_encoders()]
        self.encoders = {s: model.stream_encoders()[s] for s in self.streams}
        for s, enc in self.encoders.items():
            if s != "audio":
                enc.to(memory_format=torch.channels_last)
        self.images = {s: image_spec(self.spec[s]) for s in self.streams if s in IMAGE_STREAMS}
        self.audio_window = float(cfg["data"]["audio_window"] or self.spec.get("audio", {}).get("window_seconds", 1))
        self.bf16, self.batch_size = bf16, batch_size
        self.pending: dict[str, list[np.ndarray]] = {s: [] for s in self.streams}

    def names(self) -> str:
        """``face+body+context+audio tv_mobilenet_v2/audio_cnn``: the streams and their backbones."""
        backbones = dict.fromkeys(str(self.spec[s]["backbone"]) for s in self.streams)
        return f"{'+'.join(self.streams)} {'/'.join(backbones)}"

    @torch.inference_mode()
    def run(self, stream: str, inputs: list[np.ndarray]) -> None:
        x = torch.from_numpy(np.stack(inputs))
        if stream != "audio":  # uint8 BGR (N, H, W, 3) -> normalised RGB (N, 3, H, W), channels_last by the permute
            spec = self.images[stream]
            scale = torch.from_numpy(spec["scale"] / 255.0).float().view(1, -1, 1, 1)
            shift = torch.from_numpy(spec["shift"]).float().view(1, -1, 1, 1)
            x = x.flip(-1).permute(0, 3, 1, 2).float() * scale + shift
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            self.encoders[stream](x).float()

    def add(self, stream: str, x: np.ndarray) -> None:
        """Queue one frame's input; a full batch is encoded at once."""
        batch = self.pending[stream]
        batch.append(x)
        if len(batch) == self.batch_size:
            self.run(stream, batch)
            self.pending[stream] = []

    def flush(self) -> None:
        for stream, batch in self.pending.items():
            if batch:
                self.run(stream, batch)
            self.pending[stream] = []


def audio_inputs(path: Path, n_frames: int, fps: float, window: float) -> np.ndarray:
    """(n_frames, 1, n_mels, W) log-mel windows, one per video frame (zeros where there is no sound)."""
    feats = audio_features(path)
    windows, _ = frame_windows(feats["logmel"], float(feats["hop_seconds"]), float(feats["audio_seconds"]),
                               n_frames, fps, window)
    return windows[:, None]


def person_box(image: np.ndarray, face: Any, persons: list) -> np.ndarray:
    """The box of the body and context images, chosen as abaw prepare does (abaw.video.tracking.boxes_table)."""
    found = person_for_face(face.box, persons) if face is not None else None
    if found is not None:
        return found[0]
    if face is not None:
        return derived_person_box(face.box, image.shape[1], image.shape[0])
    if persons:
        return max(persons, key=lambda p: p[1])[0]
    return np.array([0, 0, image.shape[1], image.shape[0]], np.float32)


def frame_inputs(path: Path, enc: Encoders, detect: Callable, person_detector: Any, pool: ThreadPoolExecutor,
                 args: argparse.Namespace) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Per decoded frame: (frame number, uint8 BGR image per image stream; no face image without a face).

    Frames go by chunks of ``args.chunk``: faces detected on key frames by the ``pool``'s ``args.workers``
    threads, then the chunk's images cut by the same threads (OpenCV releases the GIL)."""
    face_spec, body_spec, context_spec = (enc.images.get(s) for s in IMAGE_STREAMS)

    def make(item: tuple) -> tuple[int, dict[str, np.ndarray]]:
        frame, faces, persons = item
        image, out = frame.image, {}
        face = max(faces, key=lambda f: f.score) if faces else None
        if face is not None and face_spec:
            out["face"] = align_face(image, face.landmarks, face_spec["size"][0])
        if body_spec or context_spec:
            box = person_box(image, face, persons)
            if body_spec:
                out["body"] = body_input(image, box, body_spec["size"][0])
            if context_spec:
                out["context"] = context_input(image, box, context_spec["size"][0])
        return frame.index, out

    persons: list = []
    last_person = -PERSON_EVERY
    frames = iter_frames(path, max_frames=args.max_frames)
    detected_frames = detect_every(frames, detect, args.detect_every, pool, args.workers)
    while chunk := list(islice(detected_frames, args.chunk)):
        jobs = []
        for frame, faces, detected in chunk:
            if detected and (body_spec or context_spec) and frame.index - last_person >= PERSON_EVERY:
                persons, last_person = person_detector.detect(frame.image), frame.index
            jobs.append((frame, faces, persons))
        yield from list(pool.map(make, jobs))  # the whole chunk before the CNN: the two must not share the cores


def stage_rates(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Frames per second of each stage alone on one core (decoding with PyAV's own threads)."""
    yunet = YuNetDetector(max_side=args.detect_side)
    person = create_person_detector("yolo-fastest")
    frames = read_frames(path, max_frames=args.max_frames)
    images = [f.image for f in frames]
    n, fps = len(frames), probe(path).fps
    out: dict[str, Any] = {"frames": n, "size": f"{images[0].shape[1]}x{images[0].shape[0]}"}
    out["decode"] = timed(lambda: sum(1 for _ in iter_frames(path, max_frames=args.max_frames)), 3)
    out["detect"] = timed(lambda: sum(1 for im in images if yunet.detect(im) is not None), 2)
    out["detect/k"] = timed(lambda: sum(1 for _ in detect_every(frames, yunet.detect, args.detect_every)), 2)
    out["persons"] = timed(lambda: sum(1 for im in images[::PERSON_EVERY] if person.detect(im) is not None)
                           * PERSON_EVERY, 2)
    faces = [max(f, key=lambda d: d.score) for f in (yunet.detect(im) for im in images) if f]
    out["face_share"] = len(faces) / n
    found = [(im, f.landmarks) for im, f in zip(images, faces, strict=False)]
    out["align"] = timed(lambda: sum(1 for im, lm in found if align_face(im, lm, 112) is not None), 3)
    box = faces[0].box if faces else np.array([0, 0, 64, 64], np.float32)
    out["inputs"] = timed(lambda: sum(1 for im in images if body_input(im, box) is not None
                                      and context_input(im, box) is not None), 3)
    out["audio"] = timed(lambda: len(audio_inputs(path, n, fps, 1.0)), 3)
    return out


def cnn_vs_pipeline(path: Path, enc: Encoders, args: argparse.Namespace) -> dict[str, float]:
    """Frames per second of the CNN stage alone and of the whole pipeline, and the ratio of the two."""
    person = create_person_detector("yolo-fastest")
    detect = per_thread(lambda: YuNetDetector(max_side=args.detect_side))
    pool = ThreadPoolExecutor(args.workers)  # one pool for the run: its threads keep their own detectors
    fps = probe(path).fps
    # The CNN stage alone: the same per-frame inputs, already in memory, through the same batching.
    inputs = [x for _, x in frame_inputs(path, enc, detect, person, pool, args)]
    n = len(inputs)
    audio = audio_inputs(path, n, fps, enc.audio_window)

    def cnn_only() -> int:
        for i, x in enumerate(inputs):
            for stream, value in x.items():
                enc.add(stream, value)
            if "audio" in enc.streams:
                enc.add("audio", audio[i])
        enc.flush()
        return n

    def pipeline() -> int:
        stream = frame_inputs(path, enc, detect, person, pool, args)
        if args.mode == "overlap":
            stream = prefetch(stream, size=2 * args.batch_size)
        windows = audio_inputs(path, probe(path).n_frames or n, fps, enc.audio_window) if "audio" in enc.streams \
            else None
        done = 0
        for index, x in stream:
            for name, value in x.items():
                enc.add(name, value)
            if windows is not None and index <= len(windows):
                enc.add("audio", windows[index - 1])
            done += 1
        enc.flush()
        return done

    cnn_only()  # warm-up
    # The speed of shared cores drifts by tens of percent: alternate the two, report the best of each and, as the
    # ratio, the median of the ratios of back-to-back rounds (both halves of a round see about the same machine).
    rounds = [(timed(cnn_only), timed(pipeline)) for _ in range(args.repeat)]
    pool.shutdown()
    return {"cnn": max(c for c, _ in rounds), "pipeline": max(p for _, p in rounds),
            "ratio": float(np.median([p / c for c, p in rounds]))}


def synthetic_video(folder: Path, frames: int) -> Path:
    from abaw.synth.dataset import generate

    generate(folder, videos=1, frames=frames, seed=0)
    return next((folder / "videos").rglob("*.mp4"))


def parse_stage(text: str) -> tuple[Path, list[str]]:
    """``PRESET[:stream+stream]`` -> (config path, streams); a bare name is looked up in configs/."""
    name, _, streams = text.partition(":")
    path = Path(name) if name.endswith(".json") else REPO / "configs" / f"{name}.json"
    return path, streams.split("+") if streams else ["face", "body", "context", "audio"]


def pick_bf16(args: argparse.Namespace, config: Path, streams: list[str]) -> tuple[bool, dict[bool, float]]:
    """Whether bf16 autocast runs the image encoders faster than fp32 (random inputs, one batch per stream)."""
    speeds = {}
    for bf16 in (False, True):
        enc = Encoders(config, streams, bf16, args.batch_size)
        rng = np.random.default_rng(0)
        batch = {s: [rng.integers(0, 256, (*enc.images[s]["size"], 3), dtype=np.uint8)] * args.batch_size
                 for s in enc.images}
        enc.run(next(iter(batch)), next(iter(batch.values())))  # warm-up
        speeds[bf16] = timed(lambda enc=enc, batch=batch: [enc.run(s, b) for s, b in batch.items()] and
                             args.batch_size, 3)
    bf16 = speeds[True] > speeds[False] if args.dtype == "auto" else args.dtype == "bf16"
    return bf16, speeds


DEFAULT_STAGES = ("ntua_cvsp_track1", "multitask_late_fusion", "demo_multitask", "demo_multitask:face")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, help="videos to measure (default: single_face.mp4, "
                        "face_noface.mov and a synthetic one)")
    parser.add_argument("--cnn", nargs="+", default=list(DEFAULT_STAGES), metavar="PRESET[:STREAMS]",
                        help="CNN stages to measure: a preset of configs/ (or a .json path), optionally with the "
                        "streams joined by '+' (default: " + " ".join(DEFAULT_STAGES) + ")")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--detect-every", type=int, default=DETECT_EVERY,
                        help=f"face detection on every k-th frame (default {DETECT_EVERY}, as abaw prepare)")
    parser.add_argument("--mode", choices=("phases", "overlap"), default="phases",
                        help="phases (default): the plumbing of a chunk of frames on --workers threads, then the CNN "
                        "on it, each with every core; overlap: the plumbing in a background thread while the CNN runs")
    parser.add_argument("--workers", type=int, default=torch.get_num_threads(),
                        help="threads of the plumbing (face detection on key frames, crops); default: all cores")
    parser.add_argument("--chunk", type=int, default=64, help="frames per plumbing chunk (default 64)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds of CNN-alone then pipeline timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--cv-threads", type=int, default=1,
                        help="OpenCV threads (default 1: its pool and torch's OpenMP threads must not fight for cores)")
    parser.add_argument("--detect-side", type=int, default=640,
                        help="YuNet runs on frames shrunk to this longest side (default 640, as abaw prepare)")
    parser.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto",
                        help="CNN precision (auto: whichever is faster here)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.cv_threads)
    print(f"torch threads {args.threads}, OpenCV threads {args.cv_threads}, plumbing workers {args.workers} "
          f"({args.mode}), faces detected every {args.detect_every} frames at {args.detect_side} px, persons every "
          f"{PERSON_EVERY}")
    stages = ("decode", "detect", "detect/k", "persons", "align", "inputs", "audio")
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos or [ASSETS / "media" / "single_face.mp4", ASSETS / "media" / "face_noface.mov",
                                 synthetic_video(Path(tmp) / "synth", 300)]
        print("\nStages alone, frames/s ('detect/k': key frames; 'persons': per video frame; 'inputs': body+context):")
        print(f"{'video':24s} {'frames':>6s} {'size':>9s} {'face%':>6s} " + " ".join(f"{s:>9s}" for s in stages))
        for path in videos:
            r = stage_rates(Path(path), args)
            print(f"{Path(path).name[:24]:24s} {r['frames']:6d} {r['size']:>9s} {100 * r['face_share']:5.0f}% "
                  + " ".join(f"{r[s]:9.1f}" for s in stages))
        print("\nCNN stage alone vs whole pipeline, frames/s:")
        print(f"{'video':24s} {'CNN stage':70s} {'dtype':>5s} {'cnn':>8s} {'pipeline':>9s} {'pipeline/cnn':>13s}")
        for text in args.cnn:
            config, streams = parse_stage(text)
            bf16, _ = pick_bf16(args, config, streams)
            enc = Encoders(config, streams, bf16, args.batch_size)
            label = f"{config.stem} {enc.names()}"
            for path in videos:
                r = cnn_vs_pipeline(Path(path), enc, args)
                print(f"{Path(path).name[:24]:24s} {label[:70]:70s} {'bf16' if bf16 else 'fp32':>5s} "
                      f"{r['cnn']:8.1f} {r['pipeline']:9.1f} {100 * r['ratio']:12.0f}%")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
