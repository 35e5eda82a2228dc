"""Audio features (docs/design.md, "Audio features"): the sound track as a log-mel spectrogram, and one window of it
centred on each video frame.

A video without an audio track, or whose audio is shorter than the picture, is not an error: the frames it does not
cover get a zero window and ``valid=False``.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torchaudio

from abaw.errors import AbawError
from abaw.fileio import save_npz

SAMPLE_RATE = 16000
N_MELS = 64
WIN_SECONDS = 0.025
HOP_SECONDS = 0.010


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio track of ``path`` to mono float32 at ``sample_rate`` (streaming, PyAV).

    Returns an empty array for a file without an audio track; raises :class:`AbawError` for an unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise AbawError("no such file", path=path)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return np.zeros(0, dtype=np.float32)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue  # a damaged packet in the middle of the track: keep the rest
                for frame in frames:
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):  # flush
                chunks.append(out.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise AbawError(f"cannot decode audio: {exc}", path=path) from None
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def logmel(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, n_mels: int = N_MELS, win_seconds: float = WIN_SECONDS,
           hop_seconds: float = HOP_SECONDS) -> np.ndarray:
    """Log-mel spectrogram (n_mels, T) float32 in dB (top_db 80, not normalised); column j is at ``j * hop``."""
    if wave.size == 0:
        return np.zeros((n_mels, 0), dtype=np.float32)
    win = int(round(win_seconds * sample_rate))
    hop = int(round(hop_seconds * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, win_length=win, hop_length=hop,
                                               n_mels=n_mels, power=2.0)
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0)
    with torch.inference_mode():
        spec = to_db(mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))))
    return spec.numpy().astype(np.float32, copy=False)


def frame_windows(logmel: np.ndarray, hop_seconds: float, audio_seconds: float, n_frames: int, fps: float,
                  window_seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One log-mel window per video frame, centred on the frame's time ``(frame - 1) / fps``.

    Returns ``(windows float32 (n_frames, n_mels, W), valid bool (n_frames,))`` with ``W = round(window / hop)``.
    A frame whose time the audio does not cover gets zeros and ``valid=False``; a covered frame whose window runs
    past either end of the audio is padded with the spectrogram's floor (silence), not zeros, so that padding does
    not look like a loud sound in dB.
    """
    n_mels, n_cols = logmel.shape
    width = max(1, int(round(window_seconds / hop_seconds)))
    windows = np.zeros((n_frames, n_mels, width), dtype=np.float32)
    times = np.arange(n_frames) / float(fps)
    valid = (times < audio_seconds) & (n_cols > 0)
    if not valid.any():
        return windows, valid
    floor = float(logmel.min())
    padded = np.pad(logmel, ((0, 0), (width, width)), constant_values=floor)
    centres = np.rint(times / hop_seconds).astype(np.int64)
    starts = centres - width // 2 + width  # index into ``padded``
    for i in np.flatnonzero(valid):
        windows[i] = padded[:, starts[i]:starts[i] + width]
    return windows, valid


def audio_features(video_path: str | Path, sample_rate: int = SAMPLE_RATE, n_mels: int = N_MELS,
                   win_seconds: float = WIN_SECONDS, hop_seconds: float = HOP_SECONDS) -> dict[str, np.ndarray]:
    """The arrays of ``prepared/audio/<video>.npz`` for one video."""
    wave = load_audio(video_path, sample_rate)
    return {
        "logmel": logmel(wave, sample_rate, n_mels, win_seconds, hop_seconds),
        "hop_seconds": np.asarray(hop_seconds, dtype=np.float64),
        "sample_rate": np.asarray(sample_rate, dtype=np.int64),
        "audio_seconds": np.asarray(wave.size / sample_rate, dtype=np.float64),
    }


def save_audio_features(video_path: str | Path, out_npz: str | Path, sample_rate: int = SAMPLE_RATE,
                        n_mels: int = N_MELS, win_seconds: float = WIN_SECONDS,
                        hop_seconds: float = HOP_SECONDS) -> dict[str, np.ndarray]:
    """Write ``prepared/audio/<video>.npz`` (atomically) and return its arrays."""
    arrays = audio_features(video_path, sample_rate, n_mels, win_seconds, hop_seconds)
    save_npz(out_npz, **arrays)
    return arrays


def load_audio_features(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``prepared/audio/<video>.npz`` written by :func:`save_audio_features`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("logmel", "hop_seconds", "sample_rate", "audio_seconds")}
    except (OSError, ValueError, KeyError) as exc:
        raise AbawError(f"not an abaw audio feature file: {exc}", path=path) from None
    return arrays
