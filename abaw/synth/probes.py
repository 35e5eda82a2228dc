"""Per-stream ceilings of a (synthetic) data root: what a linear probe reaches from each stream, per frame and with
the inputs averaged over a second (the gain a temporal model can expect), trained on the train videos and scored on
the validation videos.

Two kinds of input: simple per-frame statistics anyone can check (:func:`stat_probes`: the frame's colours around the
person, the voice's band energies, the person box's shape and motion), and the cached CNN features the models train
on (:func:`feature_probes`, when ``abaw extract`` has run), which also shows a stream whose features vanished.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd

from abaw import tasks
from abaw.data.affwild2 import AffWild2, valid_mask
from abaw.tasks import BOXES_DIR, FEATURES_DIR

#: Inputs are averaged over this many seconds for the "temporal" figure.
SMOOTH_SECONDS = 1.0
GRID = (6, 8)  # rows, columns of the context colour grid
N_BANDS = 16


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    return float(2 * cov / (x.var() + y.var() + (mx - my) ** 2 + 1e-12))


def smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Centred moving average along time (axis 0) of one name's rows; NaN rows are left out of the mean."""
    if frames <= 1:
        return x
    ok = np.isfinite(x).all(axis=1).astype(np.float64)
    filled = np.where(ok[:, None] > 0, x, 0.0)
    kernel = np.ones(frames)
    num = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, filled)
    den = np.convolve(ok, kernel, mode="same")[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-9), np.nan)


def _fit_score(x_tr: np.ndarray, y_tr: np.ndarray, g_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
               track: str) -> dict:
    """Ridge (VA: CCC valence/arousal) or logistic regression (EXPR: macro F1) on standardised inputs, the penalty
    chosen by cross-validation over the training names ``g_tr`` (frames of one video are not independent)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_tr)
    a, b = scaler.transform(x_tr), scaler.transform(x_va)
    folds = min(4, len(np.unique(g_tr)))
    if track == "va":
        model = Ridge()
        grid = {"alpha": np.logspace(0, 5, 6)}
    else:
        y_tr, y_va = y_tr[:, 0].astype(int), y_va[:, 0].astype(int)
        model = LogisticRegression(max_iter=200)
        grid = {"C": np.logspace(-3, 0, 4)}
    if folds >= 2:
        model = GridSearchCV(model, grid, cv=GroupKFold(folds)).fit(a, y_tr, groups=g_tr).best_estimator_
    else:
        model = model.fit(a, y_tr)
    pred = model.predict(b)
    if track == "va":
        pred = np.clip(pred, -1, 1)
        v, ar = ccc(pred[:, 0], y_va[:, 0]), ccc(pred[:, 1], y_va[:, 1])
        return {"valence": round(v, 4), "arousal": round(ar, 4), "score": round((v + ar) / 2, 4)}
    return {"f1": round(float(f1_score(y_va, pred, average="macro")), 4)}


def _probe(rows: dict[str, list[tuple[np.ndarray, np.ndarray]]], track: str, window: int) -> dict:
    """rows: split -> [(inputs (n, d) with NaN where none, labels (n, k) with NaN where invalid)] per name."""
    out = {}
    for label, w in (("frame", 1), ("smoothed", window)):
        data = {}
        for split in tasks.SPLITS:
            xs, ys, gs = [], [], []
            for k, (x, y) in enumerate(rows.get(split, [])):
                xs_ = smooth(x, w)
                ok = np.isfinite(xs_).all(axis=1) & np.isfinite(y).all(axis=1)
                xs.append(xs_[ok])
                ys.append(y[ok])
                gs.append(np.full(int(ok.sum()), k))
            if not xs or not sum(len(v) for v in xs):
                return {}
            data[split] = (np.concatenate(xs), np.concatenate(ys), np.concatenate(gs))
        if len(np.unique(data["train"][1][:, 0])) < 2:
            return {}
        x_tr, y_tr, g_tr = data["train"]
        out[label] = _fit_score(x_tr, y_tr, g_tr, data["validation"][0], data["validation"][1], track)
    return out


def _labels(ds: AffWild2, entry, track: str) -> np.ndarray:
    lab = ds.labels(entry).astype(np.float64)
    lab[~valid_mask(track, lab)] = np.nan
    return lab


def _frame_stats(path: Path, boxes: pd.DataFrame, n: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the context colour grid (person box greyed out) and the audio's log band energies."""
    person = boxes[["person_x", "person_y", "person_w", "person_h"]].to_numpy()[:n]
    grid = np.full((n, GRID[0] * GRID[1] * 3), np.nan)
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i >= n:
                break
            img = frame.to_ndarray(format="rgb24").astype(np.float32)
            x, y, w, h = (int(round(v)) for v in person[i])
            img[max(0, y):y + h, max(0, x):x + w] = np.nan
            rows = np.array_split(img, GRID[0], axis=0)
            cells = [np.nanmean(cell.reshape(-1, 3), axis=0) if np.isfinite(cell).any() else np.full(3, 128.0)
                     for r in rows for cell in np.array_split(r, GRID[1], axis=1)]
            grid[i] = np.concatenate(cells)
    bands = np.full((n, N_BANDS), np.nan)
    with av.open(str(path)) as c:
        if c.streams.audio:
            sr = c.streams.audio[0].codec_context.sample_rate
            audio = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)])
            hop = int(sr / fps)
            edges = np.geomspace(60, sr / 2, N_BANDS + 1)
            freqs = np.fft.rfftfreq(hop, 1.0 / sr)
            idx = np.digitize(freqs, edges) - 1
            for i in range(n):
                seg = audio[i * hop:(i + 1) * hop]
                if len(seg) < hop:
                    break
                power = np.abs(np.fft.rfft(seg * np.hanning(hop))) ** 2
                bands[i] = np.log10(np.bincount(idx.clip(0, N_BANDS - 1), power, N_BANDS) + 1e-10)
    return grid, bands


def _body_stats(boxes: pd.DataFrame, n: int) -> np.ndarray:
    """Per frame: the person box's aspect, size relative to its median, and motion (box centre speed)."""
    person = boxes[["person_x", "person_y", "person_w", "person_h"]].to_numpy()[:n].astype(np.float64)
    h = person[:, 3].clip(1)
    centre = person[:, :2] + person[:, 2:] / 2
    motion = np.r_[0.0, np.linalg.norm(np.diff(centre, axis=0), axis=1)] / h
    return np.stack([person[:, 2] / h, person[:, 2] / np.median(person[:, 2]).clip(1), motion,
                     np.r_[0.0, np.abs(np.diff(person[:, 2]))] / h], axis=1)


def stat_probes(root: str | Path) -> dict:
    """Ridge on simple per-frame statistics of the body, context and audio streams -> valence/arousal (one-person
    videos of the VA track)."""
    root = Path(root)
    ds = AffWild2(root)
    rows: dict[str, dict[str, list]] = {s: {} for s in ("body", "context", "audio")}
    fps = 25.0
    for split in tasks.SPLITS:
        for entry in ds.entries(split, "va"):
            if entry.name != entry.video:
                continue
            lab = _labels(ds, entry, "va")
            fps = entry.fps
            boxes = pd.read_csv(root / BOXES_DIR / f"{entry.video}.csv")
            grid, bands = _frame_stats(entry.video_path, boxes, len(lab), entry.fps)
            for stream, x in (("body", _body_stats(boxes, len(lab))), ("context", grid), ("audio", bands)):
                rows[stream].setdefault(split, []).append((x, lab))
    window = max(1, int(round(SMOOTH_SECONDS * fps)))
    return {stream: _probe(r, "va", window) for stream, r in rows.items()}


def feature_probes(root: str | Path) -> dict:
    """Ridge / logistic regression on each cached feature set ``features/<stream>/<extractor>/``: VA for every
    stream, EXPR for the face; ``scale`` is the mean absolute feature value (0 = the features vanished)."""
    root = Path(root)
    ds = AffWild2(root)
    out: dict = {}
    base = root / FEATURES_DIR
    for stream in tasks.ENCODED_STREAMS:
        for folder in sorted((base / stream).glob("*")) if (base / stream).is_dir() else []:
            result: dict = {}
            tracks = ("va", "expr") if stream == "face" else ("va",)
            scale: list[float] = []
            for track in tracks:
                rows: dict[str, list] = {}
                fps = 25.0
                for split in tasks.SPLITS:
                    for entry in ds.entries(split, track):
                        path = folder / f"{entry.name}.npz"
                        if not path.is_file():
                            continue
                        with np.load(path, allow_pickle=False) as z:
                            feats, valid = z["feats"].astype(np.float64), z["valid"].astype(bool)
                        lab = _labels(ds, entry, track)
                        n = min(len(lab), len(feats))
                        feats, valid, lab = feats[:n], valid[:n], lab[:n]
                        feats[~valid] = np.nan
                        scale.append(float(np.nanmean(np.abs(feats))) if valid.any() else 0.0)
                        rows.setdefault(split, []).append((feats, lab))
                        fps = entry.fps
                probe = _probe(rows, track, max(1, int(round(SMOOTH_SECONDS * fps))))
                if probe:
                    result[track] = probe
            result["scale"] = float(np.mean(scale)) if scale else 0.0
            out[f"{stream}/{folder.name}"] = result
    return out
