"""Frames per second of each stage of the real-video pipeline and of the whole of it, plus peak memory.

Stages: decoding (PyAV), face detection (YuNet), alignment (5-point warp), audio features, CNN features
(``tv_mobilenet_v2`` ImageNet, batched, channels_last, inference_mode, fp32 or bf16 autocast, whichever is faster),
and the whole pipeline, in which a background thread decodes, detects and aligns while the CNN runs on full batches.

    ABAW_WEIGHTS_DIR=../shared/assets/weights nice -n 10 .venv/bin/python scripts/bench_pipeline.py
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from abaw.align import align_face
from abaw.audio import audio_features
from abaw.models.backbones import create_backbone
from abaw.video.decode import iter_frames, prefetch, read_frames
from abaw.video.faces import YuNetDetector

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
CROP = 112
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def timed(fn: Callable[[], int], repeat: int = 1) -> float:
    """Items per second of ``fn`` (which returns how many items it processed), best of ``repeat``."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def crops_of(frames: Iterator, detector: YuNetDetector) -> Iterator[np.ndarray]:
    """Decoded frames -> aligned face crops of the most confident face (frames without a face give none)."""
    for frame in frames:
        faces = detector.detect(frame.image)
        if faces:
            best = max(faces, key=lambda f: f.score)
            yield align_face(frame.image, best.landmarks, CROP)


def to_batch(crops: list[np.ndarray]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(crops)[..., ::-1].copy()).permute(0, 3, 1, 2).float().div_(255)
    return ((x - MEAN) / STD).contiguous(memory_format=torch.channels_last)


class Cnn:
    def __init__(self, bf16: bool) -> None:
        self.model = create_backbone("tv_mobilenet_v2", pretrained=True).eval().to(memory_format=torch.channels_last)
        self.bf16 = bf16

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(batch).float()


def bench_video(path: Path, cnn: Cnn, batch_size: int, max_frames: int, detect_side: int) -> dict[str, float]:
    detector = YuNetDetector(max_side=detect_side)
    frames = read_frames(path, max_frames=max_frames)
    images = [f.image for f in frames]
    n = len(frames)
    out = {"frames": n, "size": f"{images[0].shape[1]}x{images[0].shape[0]}"}
    out["decode"] = timed(lambda: sum(1 for _ in iter_frames(path, max_frames=max_frames)), 2)
    faces = [detector.detect(im) for im in images]
    out["detect"] = timed(lambda: sum(1 for im in images if detector.detect(im) is not None), 2)
    found = [(im, max(f, key=lambda d: d.score).landmarks) for im, f in zip(images, faces, strict=True) if f]
    out["face_share"] = len(found) / n
    out["align"] = timed(lambda: sum(1 for im, lm in found if align_face(im, lm, CROP) is not None), 3)
    out["audio"] = timed(lambda: n if audio_features(path) else 0, 2)
    crops = [align_face(im, lm, CROP) for im, lm in found] or [np.zeros((CROP, CROP, 3), np.uint8)]
    crops = (crops * (batch_size * 6 // len(crops) + 1))[: batch_size * 6]

    def cnn_only() -> int:
        for start in range(0, len(crops), batch_size):
            cnn(to_batch(crops[start:start + batch_size]))
        return len(crops)

    cnn(to_batch(crops[:batch_size]))  # warm-up
    out["cnn"] = timed(cnn_only, 3)

    def pipeline() -> int:
        done, pending = 0, []
        for crop in prefetch(crops_of(iter_frames(path, max_frames=max_frames), detector), size=2 * batch_size):
            pending.append(crop)
            if len(pending) == batch_size:
                cnn(to_batch(pending))
                done, pending = done + len(pending), []
        if pending:
            cnn(to_batch(pending))
            done += len(pending)
        return n  # frames of video processed per second

    out["pipeline"] = timed(pipeline, 2)
    # The CNN runs on faces only: compare per face (pipeline frames/s x face share) with the CNN stage alone.
    out["pipeline_vs_cnn"] = out["pipeline"] * out["face_share"] / out["cnn"]
    return out


def synthetic_video(folder: Path, frames: int) -> Path:
    from abaw.synth import generate

    generate(folder, videos=1, frames=frames, seed=0)
    return next((folder / "videos").rglob("*.mp4"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, help="videos to measure (default: single_face.mp4 and a "
                        "synthetic one)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-frames", type=int, default=192)
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
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos or [ASSETS / "media" / "single_face.mp4", synthetic_video(Path(tmp) / "synth", 192)]
        # fp32 or bf16: keep whichever runs the CNN faster on this machine.
        # Random pixels, not zeros: an all-black batch runs at a different (misleading) speed.
        probe = list(np.random.default_rng(0).integers(0, 256, (args.batch_size, CROP, CROP, 3), dtype=np.uint8))
        speeds = {}
        for bf16 in (False, True):
            cnn = Cnn(bf16)
            cnn(to_batch(probe))
            speeds[bf16] = timed(lambda cnn=cnn: (cnn(to_batch(probe)), len(probe))[1], 3)
        bf16 = speeds[True] > speeds[False] if args.dtype == "auto" else args.dtype == "bf16"
        print(f"torch threads {args.threads}, OpenCV threads {args.cv_threads}; CNN tv_mobilenet_v2 {CROP}px "
              f"batch {args.batch_size}: fp32 "
              f"{speeds[False]:.1f} img/s, bf16 {speeds[True]:.1f} img/s -> using {'bf16' if bf16 else 'fp32'}")
        cnn = Cnn(bf16)
        stages = ("decode", "detect", "align", "audio", "cnn", "pipeline")
        print(f"{'video':28s} {'frames':>6s} {'size':>9s} {'face%':>6s} " + " ".join(f"{s:>9s}" for s in stages)
              + "  pipeline/cnn")
        for path in videos:
            r = bench_video(Path(path), cnn, args.batch_size, args.max_frames, args.detect_side)
            print(f"{Path(path).name[:28]:28s} {r['frames']:6d} {r['size']:>9s} {100 * r['face_share']:5.0f}% "
                  + " ".join(f"{r[s]:9.1f}" for s in stages) + f"  {100 * r['pipeline_vs_cnn']:10.0f}%")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(frames or images per second; peak memory {peak_mb:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
