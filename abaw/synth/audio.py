"""Voice-like audio: a harmonic source whose energy and pitch follow arousal and whose brightness (harmonic
roll-off) follows valence a little, voiced at the syllable rhythm of the person's talking, over room noise."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_HARMONICS = 12


def _upsample(x: np.ndarray, n_samples: int, fps: float, sr: int) -> np.ndarray:
    """Per-frame values to per-sample values by linear interpolation at the frame times."""
    t_frames = np.arange(len(x)) / fps
    t = np.arange(n_samples) / sr
    return np.interp(t, t_frames, x)


def voice(rng: np.random.Generator, va: np.ndarray, speech: np.ndarray, f0: float, fps: float,
          sr: int = SAMPLE_RATE, arousal_gain: float = 1.0, valence_gain: float = 0.25) -> np.ndarray:
    """One person's voice for a video: ``va`` (n, 2), ``speech`` (n,) voicing envelope; returns float32 samples.

    ``arousal_gain`` scales how pitch and loudness follow arousal, ``valence_gain`` how the timbre follows valence
    (around the person's own timbre, so brightness says little about valence between people)."""
    n = len(va)
    n_samples = int(round(n / fps * sr))
    valence = _upsample(va[:, 0], n_samples, fps, sr)
    arousal = _upsample(va[:, 1], n_samples, fps, sr)
    env = _upsample(speech, n_samples, fps, sr)
    pitch = f0 * 2.0 ** (0.6 * arousal_gain * arousal)  # higher, and (below) louder, when aroused
    pitch *= 1.0 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * np.arange(n_samples) / sr)  # intonation
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    own = rng.uniform(1.7, 2.5)  # the person's timbre
    rolloff = own - valence_gain * valence  # positive valence: brighter timbre (slower harmonic roll-off)
    sig = np.zeros(n_samples)
    for k in range(1, N_HARMONICS + 1):
        amp = k ** (-rolloff)
        amp = np.where(pitch * k < sr / 2 - 200, amp, 0.0)
        sig += amp * np.sin(k * phase)
    loud = 0.05 + 0.3 * np.clip(0.5 + 0.5 * arousal_gain * arousal, 0.0, 1.0) ** 1.5
    return (sig * env * loud).astype(np.float32)


def mix(rng: np.random.Generator, voices: list[np.ndarray], noise_level: float = 0.004) -> np.ndarray:
    """Sum of voices plus room noise, limited to [-1, 1]."""
    n = max(len(v) for v in voices)
    out = np.zeros(n, dtype=np.float32)
    for v in voices:
        out[: len(v)] += v
    out += rng.normal(0, noise_level, n).astype(np.float32)
    return np.clip(out, -1.0, 1.0)
