#!/usr/bin/env python
"""``abaw predict`` against real time: frames/s of the whole process (start-up included) and the video's own rate.

Runs ``abaw predict VIDEO --no-plots`` with its default model (no ``--checkpoint``: YuNet faces, the FER2013
mini-Xception run by OpenCV on its ONNX export, so the process never imports torch) in a fresh process on the shared
asset ``single_face.mp4`` (2.4 s) and on a 1-minute clip made by looping it (``bench_predict_memory.looped_video``),
``--repeat`` times each, and prints per run the wall time, the frames/s and the real-time factor (video seconds / wall
seconds; at least 1.0 is faster than real time). The marginal rate (extra frames / extra seconds between the two
clips) and the implied start-up separate the two costs. The ONNX export, made once on first use like a download, is
made before the timed runs (``abaw weights convert fer2013_mini_xception``, untimed)::

    ABAW_WEIGHTS_DIR=/work/shared/assets/weights .venv/bin/python scripts/bench_predict_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_predict_memory import ASSET, looped_video


def video_seconds(path: Path) -> tuple[int, float]:
    """(frames, seconds) of a video, by decoding it (the container's count may be missing)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        frames = sum(1 for _ in container.decode(stream))
    return frames, frames / fps


def run_predict(video: Path, out: Path) -> float:
    """Wall seconds of one ``abaw predict`` process."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "abaw", "predict", str(video), "--out", str(out), "--no-plots"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the looped clip")
    ap.add_argument("--repeat", type=int, default=2, help="runs per clip (the best is kept)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not ASSET.is_file():
        raise SystemExit(f"skipped: {ASSET} is absent (the shared assets hold the real clip)")
    if not os.environ.get("ABAW_WEIGHTS_DIR"):
        print("note: ABAW_WEIGHTS_DIR is not set: YuNet and the FER model come from the cache or a download",
              file=sys.stderr)
    # The one-time ONNX export of the FER model (abaw.models.fer_runtime), like a download, is not part of a run.
    subprocess.run([sys.executable, "-m", "abaw", "weights", "convert", "fer2013_mini_xception"], check=True,
                   stdout=subprocess.DEVNULL)
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="abaw-bench-predict-") as tmp:
        long_clip = looped_video(ASSET, Path(tmp) / f"single_face_{int(args.seconds)}s.mp4", args.seconds,
                                 width=640)
        for video in (ASSET, long_clip):
            frames, seconds = video_seconds(video)
            walls = [run_predict(video, Path(tmp) / "out") for _ in range(args.repeat)]
            wall = min(walls)
            rows.append({"video": video.name, "frames": frames, "video_seconds": round(seconds, 2),
                         "wall_seconds": [round(w, 2) for w in walls], "fps": round(frames / wall, 1),
                         "real_time_factor": round(seconds / wall, 2)})
    (short, long_) = rows
    extra_wall = min(long_["wall_seconds"]) - min(short["wall_seconds"])
    marginal = (long_["frames"] - short["frames"]) / extra_wall if extra_wall > 0 else float("nan")
    startup = min(short["wall_seconds"]) - short["frames"] / marginal if marginal == marginal else float("nan")
    result = {"rows": rows, "marginal_fps": round(marginal, 1), "startup_seconds": round(startup, 2),
              "load_before": load, "load_after": os.getloadavg(), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"load average {load[0]:.1f} before, {result['load_after'][0]:.1f} after, {os.cpu_count()} CPUs")
    print(f"{'video':<26} {'frames':>7} {'video s':>8} {'wall s (best)':>14} {'frames/s':>9} {'x real time':>12}")
    for r in rows:
        print(f"{r['video']:<26} {r['frames']:>7} {r['video_seconds']:>8.2f} {min(r['wall_seconds']):>14.2f} "
              f"{r['fps']:>9.1f} {r['real_time_factor']:>12.2f}")
    print(f"marginal rate {result['marginal_fps']:.1f} frames/s; start-up about {result['startup_seconds']:.1f} s")


if __name__ == "__main__":
    main()
