"""Voice-like audio: a harmonic source whose energy and pitch follow arousal and whose brightness (harmonic
roll-off) follows valence a little, voiced at the syllable rhythm of the person's talking, over room noise; the voice's
quality also shows the expression a little (laughter, a pressed or a dark voice, a tremor)."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_HARMONICS = 12


def _upsample(x: np.ndarray, n_samples: int, fps: float, sr: int) -> np.ndarray:
    """Per-frame values to per-sample values by linear interpolation at the frame times."""
    t_frames = np.arange(len(x)) / fps
    t = np.arange(n_samples) / sr
    return np.interp(t, t_frames, x)


#: Voice quality per expression state (weights of the smoothed states, in ``abaw.synth.latent.STATES`` order), each
#: scaled by ``expression_gain``: (roll-off change: negative = a brighter, pressed voice; tremor depth; laughter).
VOICE_QUALITY: dict[str, tuple[float, float, float]] = {
    "Happiness": (0.0, 0.0, 1.0),  # laughter: breathy bursts at about 4.5 per second, also between words
    "Anger": (-0.8, 0.0, 0.0),  # a pressed, harsh voice
    "Disgust": (-0.4, 0.0, 0.0),
    "Sadness": (0.6, 0.0, 0.0),  # a dark, soft voice
    "Fear": (0.0, 0.05, 0.0),  # a tremor of the pitch at about 7 per second
}


def voice(rng: np.random.Generator, va: np.ndarray, speech: np.ndarray, f0: float, fps: float,
          sr: int = SAMPLE_RATE, arousal_gain: float = 1.0, valence_gain: float = 0.25,
          expression: np.ndarray | None = None, states: tuple[str, ...] = (),
          expression_gain: float = 0.0) -> np.ndarray:
    """One person's voice for a video: ``va`` (n, 2), ``speech`` (n,) voicing envelope; returns float32 samples.

    ``arousal_gain`` scales how pitch and loudness follow arousal, ``valence_gain`` how the timbre follows valence
    (around the person's own timbre, so brightness says little about valence between people). ``expression`` (n, k)
    are the smoothed weights of the expression ``states``; ``expression_gain`` scales :data:`VOICE_QUALITY`."""
    n = len(va)
    n_samples = int(round(n / fps * sr))
    t = np.arange(n_samples) / sr
    valence = _upsample(va[:, 0], n_samples, fps, sr)
    arousal = _upsample(va[:, 1], n_samples, fps, sr)
    env = _upsample(speech, n_samples, fps, sr)
    shift = np.zeros(n_samples)
    tremor = np.zeros(n_samples)
    laugh = np.zeros(n_samples)
    if expression is not None and expression_gain > 0:
        for name, (d_roll, d_tremor, d_laugh) in VOICE_QUALITY.items():
            if name in states:
                w = _upsample(np.clip(expression[:, states.index(name)], 0.0, 1.0), n_samples, fps, sr)
                shift += expression_gain * d_roll * w
                tremor += expression_gain * d_tremor * w
                laugh += expression_gain * d_laugh * w**2
    pitch = f0 * 2.0 ** (0.6 * arousal_gain * arousal)  # higher, and (below) louder, when aroused
    pitch *= 1.0 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)  # intonation
    pitch *= 1.0 + tremor * np.sin(2 * np.pi * rng.uniform(6.5, 7.5) * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    own = rng.uniform(1.7, 2.5)  # the person's timbre
    rolloff = np.clip(own - valence_gain * valence + shift, 0.8, None)  # brighter timbre: slower harmonic roll-off
    sig = np.zeros(n_samples)
    for k in range(1, N_HARMONICS + 1):
        amp = k ** (-rolloff)
        amp = np.where(pitch * k < sr / 2 - 200, amp, 0.0)
        sig += amp * np.sin(k * phase)
    loud = 0.05 + 0.3 * np.clip(0.5 + 0.5 * arousal_gain * arousal, 0.0, 1.0) ** 1.5
    out = sig * env * loud
    if laugh.any():  # breathy bursts (noise through a gentle low-pass) at the laughter's rhythm, voiced or not
        bursts = np.clip(np.sin(2 * np.pi * rng.uniform(4.0, 5.0) * t), 0.0, None) ** 2
        breath = np.convolve(rng.standard_normal(n_samples), np.ones(4) / 4, mode="same")
        out = out + 0.25 * laugh * bursts * breath
    return out.astype(np.float32)


def mix(rng: np.random.Generator, voices: list[np.ndarray], noise_level: float = 0.004) -> np.ndarray:
    """Sum of voices plus room noise, limited to [-1, 1]."""
    n = max(len(v) for v in voices)
    out = np.zeros(n, dtype=np.float32)
    for v in voices:
        out[: len(v)] += v
    out += rng.normal(0, noise_level, n).astype(np.float32)
    return np.clip(out, -1.0, 1.0)
