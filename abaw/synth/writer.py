"""Output of the synthetic set: H.264 + AAC video files, annotation files, the boxes table, crops."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from abaw import tasks
from abaw.fileio import atomic_open, atomic_path, write_text

#: Columns of ``boxes/<video>.csv`` (docs/design.md section 1).
BOX_COLUMNS: tuple[str, ...] = (
    ("frame", "timestamp", "face_id", "name", "face_x", "face_y", "face_w", "face_h", "face_score")
    + tuple(f"lm{i}_{c}" for i in range(5) for c in ("x", "y"))
    + ("person_x", "person_y", "person_w", "person_h", "person_score")
)
JPEG_QUALITY = 90
#: x264 CPU feature names and the /proc/cpuinfo flags that provide them, up to AVX2.
_X264_CPU = (("MMX2", "mmx"), ("SSE", "sse"), ("SSE2", "sse2"), ("SSE3", "pni"), ("SSSE3", "ssse3"),
             ("SSE4.1", "sse4_1"), ("SSE4.2", "sse4_2"), ("AVX", "avx"), ("AVX2", "avx2"), ("FMA3", "fma"),
             ("LZCNT", "abm"), ("BMI1", "bmi1"), ("BMI2", "bmi2"))


def x264_params() -> str:
    """Single-threaded x264; on AVX-512 CPUs the AVX-512 kernels are left out, because with them the same frames
    encode to different bytes from run to run (measured with this x264 build); AVX2 and below are deterministic."""
    params = "threads=1:lookahead-threads=1"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return params
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    if "avx512f" in flags:
        params += ":asm=" + ",".join(name for name, flag in _X264_CPU if flag in flags)
    return params


class VideoWriter:
    """Deterministic H.264 (single-threaded x264, fixed options) with an AAC track, written atomically."""

    def __init__(self, path: Path, width: int, height: int, fps: float, sample_rate: int) -> None:
        self._atomic = atomic_path(path)
        self._tmp = self._atomic.__enter__()
        self.container = av.open(str(self._tmp), mode="w", format="mp4")
        self.container.metadata["encoder"] = "abaw-synth"  # no library version strings: same bytes across versions
        rate = Fraction(fps).limit_denominator(1001)
        self.time_base = 1 / rate
        self.video = self.container.add_stream("libx264", rate=rate)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.codec_context.thread_count = 1
        self.video.options = {"preset": "veryfast", "crf": "23", "x264-params": x264_params()}
        self.audio = self.container.add_stream("aac", rate=sample_rate, layout="mono")
        self.audio.codec_context.thread_count = 1
        self.sample_rate = sample_rate
        self.n = 0

    def add_frame(self, bgr: np.ndarray) -> None:
        # colour conversion here rather than in the encoder's scaler, whose threading makes the bytes vary
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        frame.pts = self.n
        frame.time_base = self.time_base  # without it x264 sees unset timestamps and its rate control varies
        self.n += 1
        for packet in self.video.encode(frame):
            self.container.mux(packet)

    def close(self, samples: np.ndarray) -> None:
        for packet in self.video.encode():
            self.container.mux(packet)
        chunk = 1024
        for start in range(0, len(samples), chunk):
            block = np.ascontiguousarray(samples[start:start + chunk], dtype=np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, self.sample_rate)
            for packet in self.audio.encode(frame):
                self.container.mux(packet)
        for packet in self.audio.encode():
            self.container.mux(packet)
        self.container.close()
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        try:
            self.container.close()
        finally:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_image(path: Path, image: np.ndarray) -> None:
    """JPEG into a folder that is itself renamed into place when complete (so no per-file atomic rename)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def boxes_table(rows: dict[str, np.ndarray], names: list[str]) -> pd.DataFrame:
    """Build the boxes table from per-column arrays (``face_id`` indexes ``names``), sorted by face_id, frame."""
    df = pd.DataFrame({c: rows[c] for c in BOX_COLUMNS if c != "name"})
    df.insert(3, "name", [names[i] for i in df["face_id"]])
    return df.sort_values(["face_id", "frame"], kind="stable").reset_index(drop=True)


def write_boxes(path: Path, df: pd.DataFrame) -> None:
    df = df.assign(timestamp=df["timestamp"].map("{:.6f}".format))  # exact enough for any fps
    with atomic_open(path, "w") as fh:
        df.to_csv(fh, index=False, float_format="%.2f", lineterminator="\n")


def format_labels(track: str, labels: np.ndarray, protocol: tasks.Protocol) -> str:
    """Annotation file text: header, then one line per frame (invalid markers already in ``labels``)."""
    lines = [tasks.header(track, protocol)]
    if track == "va":
        lines += [_va(v) + "," + _va(a) for v, a in labels]
    elif track == "expr":
        lines += [str(int(e)) for e in labels]
    else:
        lines += [",".join(str(int(x)) for x in row) for row in labels]
    return "\n".join(lines) + "\n"


def _va(x: float) -> str:
    if x == tasks.VA_INVALID:
        return str(int(tasks.VA_INVALID))
    s = f"{x:.3f}"
    return "0.000" if s == "-0.000" else s


def write_annotation(path: Path, track: str, labels: np.ndarray, protocol: tasks.Protocol) -> None:
    write_text(path, format_labels(track, labels, protocol))


def write_mtl(path: Path, rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
              protocol: tasks.Protocol) -> None:
    """Multi-task CSV: ``image,valence,arousal,expression,AU1,...``; ``rows`` = (name, frames, va, expr, au)."""
    lines = [",".join(tasks.MTL_HEADER_PREFIX + protocol.au_names)]
    for name, frames, va, expr, au in rows:
        for i, f in enumerate(frames):
            image = f"{name}/{tasks.CROP_PATTERN.format(int(f))}"
            lines.append(",".join([image, _va(va[i, 0]), _va(va[i, 1]), str(int(expr[i]))]
                                  + [str(int(x)) for x in au[i]]))
    write_text(path, "\n".join(lines) + "\n")
