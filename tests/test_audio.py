"""abaw.video.audio: PyAV decode + resample, log-mel, one window per frame; no audio track -> zeros, valid=False."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from abaw.errors import AbawError
from abaw.video import audio


def write_av(path: Path, seconds: float, fps: int = 10, tone_hz: float | None = 1000.0, rate: int = 44100) -> Path:
    """A small grey mp4 (mpeg4) with, optionally, a sine tone on an AAC track."""
    n_frames = int(round(seconds * fps))
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = None
        if tone_hz is not None:
            sound = container.add_stream("aac", rate=rate)
            sound.layout = "mono"
        for i in range(n_frames):
            image = np.full((48, 64, 3), (i * 5) % 255, dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(video.encode())
        if sound is not None:
            t = np.arange(int(seconds * rate)) / rate
            wave = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            for start in range(0, len(wave), 1024):
                frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


def test_load_audio_resamples_to_mono_16k(tmp_path: Path) -> None:
    path = write_av(tmp_path / "tone.mp4", seconds=1.5)
    wave = audio.load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size / 16000 - 1.5) < 0.1
    assert 0.3 < np.abs(wave[2000:-2000]).max() <= 0.6  # the tone's amplitude survives resampling
    spectrum = np.abs(np.fft.rfft(wave[2000:18000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 1000) < 10  # 16000 samples: 1 Hz bins


def test_real_video_audio(media_dir: Path) -> None:
    wave = audio.load_audio(media_dir / "single_face.mp4")
    assert 2.0 < wave.size / audio.SAMPLE_RATE < 3.0  # 72 frames at 30 fps
    feats = audio.audio_features(media_dir / "single_face.mp4")
    assert feats["logmel"].shape[0] == audio.N_MELS and feats["logmel"].shape[1] == pytest.approx(
        wave.size / 160, abs=2)


def test_logmel_puts_a_tone_in_the_right_band() -> None:
    t = np.arange(16000) / 16000
    low, high = (np.sin(2 * np.pi * f * t).astype(np.float32) for f in (300.0, 4000.0))
    mel_low, mel_high = audio.logmel(low), audio.logmel(high)
    assert mel_low.shape == (64, 101) and mel_low.dtype == np.float32
    assert mel_low.mean(axis=1).argmax() < mel_high.mean(axis=1).argmax()
    assert mel_low.max() - mel_low.min() <= 80.0 + 1e-3  # top_db
    assert audio.logmel(np.zeros(0, np.float32)).shape == (64, 0)


def test_logmel_uses_the_htk_mel_scale() -> None:
    """The filterbank is HTK's (torchaudio's default; librosa's default, Slaney's, puts these tones in other bands):
    a tone peaks in the band whose HTK centre frequency is nearest."""
    t = np.arange(16000) / 16000

    def mel(hz: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    centres = 700.0 * (10 ** (np.linspace(0.0, mel(8000.0), audio.N_MELS + 2)[1:-1] / 2595.0) - 1.0)
    for hz in (250.0, 1000.0, 3000.0, 6000.0):
        band = audio.logmel(np.sin(2 * np.pi * hz * t).astype(np.float32)).mean(axis=1).argmax()
        assert band == np.abs(centres - hz).argmin()


def test_frame_windows_are_centred_and_masked() -> None:
    hop = 0.01
    spec = np.tile(np.arange(200, dtype=np.float32), (4, 1))  # column j holds j: its time is j * hop
    windows, valid = audio.frame_windows(spec, hop, audio_seconds=2.0, n_frames=60, fps=25, window_seconds=0.2)
    assert windows.shape == (60, 4, 20) and valid.dtype == bool
    assert valid[:50].all() and not valid[50:].any()  # frames at t >= 2 s have no audio
    assert not windows[50:].any()
    centre = windows[25, 0]  # frame 26 is at 1.0 s: column 100 sits in the middle of its window
    assert centre[10] == 100 and centre[0] == 90 and centre[-1] == 109
    assert windows[0, 0, :10].tolist() == [0.0] * 10  # before the start: padded with the floor (0 here)


def test_video_without_audio_gives_zeros_and_invalid(tmp_path: Path) -> None:
    path = write_av(tmp_path / "silent.mp4", seconds=1.0, tone_hz=None)
    assert audio.load_audio(path).size == 0
    arrays = audio.save_audio_features(path, tmp_path / "a.npz")
    loaded = audio.load_audio_features(tmp_path / "a.npz")
    assert loaded["logmel"].shape == (64, 0) and float(loaded["audio_seconds"]) == 0.0
    windows, valid = audio.frame_windows(arrays["logmel"], float(arrays["hop_seconds"]),
                                         float(arrays["audio_seconds"]), n_frames=10, fps=10)
    assert windows.shape == (10, 64, 100) and not windows.any() and not valid.any()


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    text = tmp_path / "text.mp4"
    text.write_text("not a video")
    with pytest.raises(AbawError, match="cannot decode audio") as info:
        audio.load_audio(text)
    assert "\n" not in str(info.value) and str(text) in str(info.value)
    with pytest.raises(AbawError, match="no such file"):
        audio.load_audio(tmp_path / "missing.mp4")
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(AbawError, match="not an abaw audio feature file"):
        audio.load_audio_features(tmp_path / "bad.npz")
