"""Peak memory of ``abaw predict`` against video length: it should be flat (outputs are streamed to disk per chunk).

Makes a 1-minute and a 10-minute video by looping the shared asset ``single_face.mp4`` (scaled down, content kept),
runs ``abaw predict`` on each in a subprocess and prints each run's peak RSS (the child's own ``ru_maxrss`` from
``os.wait4``) and wall time, and the ratio of the peaks. Takes a few minutes::

    ABAW_WEIGHTS_DIR=/work/shared/assets/weights .venv/bin/python scripts/bench_predict_memory.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ASSET = Path(__file__).resolve().parents[2] / "shared" / "assets" / "media" / "single_face.mp4"


def looped_video(source: Path, path: Path, seconds: float, width: int = 320) -> Path:
    """``source`` played again and again for ``seconds`` (H.264, ``width`` wide, the source's frame rate)."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    height = int(round(frames[0].shape[0] * width / frames[0].shape[1] / 2)) * 2
    frames = [np.ascontiguousarray(cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)) for f in frames]
    total = int(round(seconds * fps))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        for i in range(total):
            for packet in video.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="bgr24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return path


def measure(video: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one ``abaw predict`` run."""
    cmd = [sys.executable, "-m", "abaw", "predict", str(video), "--out", str(out), *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ASSET, help=f"video to loop (default: {ASSET})")
    parser.add_argument("--minutes", type=float, nargs=2, default=(1.0, 10.0), help="the two lengths (default 1 10)")
    parser.add_argument("--width", type=int, default=320, help="width of the looped videos (default 320)")
    parser.add_argument("--predict-args", default="", help="extra arguments for abaw predict, e.g. '--no-plots'")
    args = parser.parse_args()
    if not args.source.is_file():
        raise SystemExit(f"{args.source}: no such file (the shared assets are needed)")
    os.environ.setdefault("ABAW_WEIGHTS_DIR", str(args.source.parents[1] / "weights"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        for minutes in args.minutes:
            video = looped_video(args.source, Path(tmp) / f"loop_{minutes:g}min.mp4", minutes * 60, args.width)
            peak, seconds = measure(video, Path(tmp) / f"out_{minutes:g}", args.predict_args.split())
            results.append((minutes, peak, seconds))
            print(f"{minutes:g} min video: peak RSS {peak:.0f} MB, wall {seconds:.1f} s", flush=True)
    (m1, p1, _), (m2, p2, _) = results
    print(f"peak RSS ratio {m2:g} min / {m1:g} min: {p2 / p1:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
