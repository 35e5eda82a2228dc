"""How strongly each stream of a synthetic set carries each label: simple, fast probes (linear models on small
crops, correlations of body motion, background colour and audio features with the labels).

These are figures for the docs and a check that a change to the generator kept the labels learnable; they are not
the project's models.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from abaw import tasks
from abaw.data.affwild2 import AffWild2, valid_mask
from abaw.tasks import BOXES_DIR

CROP_SIDE = 24


def _ccc(x: np.ndarray, y: np.ndarray) -> float:
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    return float(2 * cov / (x.var() + y.var() + (mx - my) ** 2 + 1e-12))


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 10 or x[ok].std() == 0 or y[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def _crops(ds: AffWild2, split: str, track: str, per_video: bool) -> tuple[np.ndarray, np.ndarray]:
    """Valid labelled frames' crops as 24x24 grey vectors; ``per_video`` subtracts each name's mean crop (removes
    the identity, as per-subject normalisation does)."""
    xs, ys = [], []
    for entry in ds.entries(split, track):
        labels = ds.labels(entry)
        ok = valid_mask(track, labels) & ds.crop_mask(entry.name, len(labels))
        rows = []
        for i in np.flatnonzero(ok):
            img = cv2.imread(str(ds.crop_path(entry.name, i + 1)), cv2.IMREAD_GRAYSCALE)
            rows.append(cv2.resize(img, (CROP_SIDE, CROP_SIDE), interpolation=cv2.INTER_AREA).reshape(-1) / 255.0)
            ys.append(labels[i])
        if rows:
            block = np.array(rows, dtype=np.float32)
            xs.extend(block - block.mean(axis=0) if per_video else block)
    return np.array(xs, dtype=np.float32), np.array(ys)


def face_probes(root: Path) -> dict:
    """Linear models on 24x24 grey crops, trained on the train videos and scored on the validation videos
    (``*_per_video``: each name's mean crop subtracted first)."""
    root = Path(root)
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import f1_score

    ds = AffWild2(root)
    out: dict = {}
    for per_video in (False, True):
        x_tr, y_tr = _crops(ds, "train", "expr", per_video)
        x_va, y_va = _crops(ds, "validation", "expr", per_video)
        if len(x_tr) and len(x_va):
            y_tr, y_va = y_tr[:, 0].astype(int), y_va[:, 0].astype(int)
            pred = LogisticRegression(max_iter=300, C=0.5).fit(x_tr, y_tr).predict(x_va)
            out["expr_f1" + ("_per_video" if per_video else "")] = float(f1_score(y_va, pred, average="macro"))
            major = np.full_like(y_va, np.bincount(y_tr).argmax())
            out["expr_f1_majority"] = float(f1_score(y_va, major, average="macro"))
    x_tr, y_tr = _crops(ds, "train", "au", True)
    x_va, y_va = _crops(ds, "validation", "au", True)
    if len(x_tr) and len(x_va):
        f1s, base = [], []
        for k in range(y_tr.shape[1]):
            if len(np.unique(y_tr[:, k])) < 2:
                continue
            pred = LogisticRegression(max_iter=300, C=0.5, class_weight="balanced").fit(x_tr, y_tr[:, k]).predict(x_va)
            f1s.append(f1_score(y_va[:, k], pred, zero_division=0))
            base.append(f1_score(y_va[:, k], np.ones_like(y_va[:, k]), zero_division=0))
        out["au_mean_f1_per_video"] = float(np.mean(f1s))
        out["au_mean_f1_all_ones"] = float(np.mean(base))
    x_tr, y_tr = _crops(ds, "train", "va", True)
    x_va, y_va = _crops(ds, "validation", "va", True)
    if len(x_tr) and len(x_va):
        pred = np.clip(Ridge(alpha=10.0).fit(x_tr, y_tr).predict(x_va), -1, 1)
        out["ccc_valence_per_video"] = _ccc(pred[:, 0], y_va[:, 0])
        out["ccc_arousal_per_video"] = _ccc(pred[:, 1], y_va[:, 1])
    return out


def _video_features(path: Path, n: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: background warmth (red minus blue of the top corners), audio RMS, voice brightness (power
    spectral centroid over the fundamental)."""
    warmth = np.full(n, np.nan)
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i >= n:
                break
            img = frame.to_ndarray(format="rgb24").astype(np.float32)
            h, w = img.shape[:2]
            corners = np.concatenate([img[: h // 6, : w // 8].reshape(-1, 3), img[: h // 6, -w // 8:].reshape(-1, 3)])
            warmth[i] = corners[:, 0].mean() - corners[:, 2].mean()
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return warmth, np.full(n, np.nan), np.full(n, np.nan)
        sr = c.streams.audio[0].codec_context.sample_rate
        audio = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)])
    hop = sr / fps
    win = 2048  # long enough to resolve the fundamental
    window = np.hanning(win)
    freqs = np.fft.rfftfreq(2 * win, 1.0 / sr)
    low = (freqs >= 70) & (freqs <= 400)
    rms, brightness = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        seg = audio[int(i * hop):int(i * hop) + int(hop)]
        if len(seg) < int(hop):
            break
        rms[i] = np.sqrt(np.mean(seg**2))
        centre = int((i + 0.5) * hop)
        long_seg = audio[max(0, centre - win // 2):centre + win // 2]
        if rms[i] > 0.02 and len(long_seg) == win:  # voiced frames only: the noise floor has no timbre
            power = np.abs(np.fft.rfft(long_seg * window, 2 * win)) ** 2
            f0 = freqs[low][np.argmax(power[low])]
            # timbre independent of pitch: the power centroid in units of the fundamental
            brightness[i] = float((power * freqs).sum() / (power.sum() + 1e-12)) / f0
    return warmth, rms, brightness


def stream_correlations(root: Path) -> dict:
    """Pearson correlation of each stream's cue with valence or arousal within each one-person VA video, averaged."""
    root = Path(root)
    ds = AffWild2(root)
    acc: dict[str, list[np.ndarray]] = {k: [] for k in ("valence", "arousal", "motion", "openness", "warmth", "rms",
                                                        "brightness")}
    kernel = np.ones(25) / 25  # one second: cues and labels both vary slowly
    for split in tasks.SPLITS:
        for entry in ds.entries(split, "va"):
            if entry.name != entry.video:
                continue
            va = ds.labels(entry)
            n = len(va)
            ok = valid_mask("va", va)
            boxes = pd.read_csv(root / BOXES_DIR / f"{entry.video}.csv")
            person = boxes[["person_x", "person_y", "person_w", "person_h"]].to_numpy()[:n]
            centre = person[:, :2] + person[:, 2:] / 2
            motion = np.r_[0.0, np.linalg.norm(np.diff(centre, axis=0), axis=1)] / person[:, 3].clip(1)
            openness = person[:, 2] / person[:, 3].clip(1)
            warmth, rms, brightness = _video_features(entry.video_path, n, entry.fps)
            smooth = {
                "motion": np.convolve(motion, kernel, mode="same"),
                "openness": openness,
                "warmth": warmth,
                "rms": np.convolve(np.nan_to_num(rms), kernel, mode="same"),
                "brightness": pd.Series(brightness).rolling(25, center=True, min_periods=3).mean().to_numpy(),
                "valence": np.where(ok, va[:, 0], np.nan),
                "arousal": np.where(ok, va[:, 1], np.nan),
            }
            for k, v in smooth.items():
                acc[k].append(v)
    # within-video correlations, averaged: rooms, bodies and voices differ between videos, the cue is how each
    # follows its person's labels over time
    pairs = {"body_motion~arousal": ("motion", "arousal"), "body_openness~arousal": ("openness", "arousal"),
             "scene_warmth~valence": ("warmth", "valence"), "audio_rms~arousal": ("rms", "arousal"),
             "audio_brightness~valence": ("brightness", "valence")}
    out = {}
    for key, (cue, label) in pairs.items():
        rs = [_corr(c, y) for c, y in zip(acc[cue], acc[label], strict=True)]
        rs = [r for r in rs if np.isfinite(r)]
        out[key] = float(np.mean(rs)) if rs else float("nan")
    return out


def measure_cues(root: str | Path) -> dict:
    """Every probe on a data root: ``{"face": {...}, "streams": {...}, "stats": {...}, "features": {...}}`` (the
    last two from :mod:`abaw.synth.probes`: per-stream ceilings per frame and over a second)."""
    from sklearn.exceptions import ConvergenceWarning

    from abaw.synth.probes import feature_probes, stat_probes

    root = Path(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {"face": face_probes(root), "streams": stream_correlations(root), "stats": stat_probes(root),
                "features": feature_probes(root)}
