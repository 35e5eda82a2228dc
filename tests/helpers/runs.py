"""Run folders built from noisy predictions of known labels, for the ensemble, temporal and smoothing tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from abaw import tasks
from abaw.fileio import save_npy, write_json

PROTOCOL = "abaw2021"
SPLIT_NAMES = {"train": ["t0", "t1", "t2", "t3"], "validation": ["v0", "v1", "v2_left", "v2_right"]}
N_FRAMES = 60
EMB_DIM = 8


def _labels(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Smooth latent trajectories -> VA in [-1, 1], piecewise-constant expressions, AU activations."""
    proto = tasks.get_protocol(PROTOCOL)
    latent = ndimage.gaussian_filter1d(rng.normal(size=(n, 4 + proto.n_expr + proto.n_au)) * 6, 6, axis=0)
    va = np.tanh(latent[:, :2]).astype(np.float32)
    expr = latent[:, 4: 4 + proto.n_expr].argmax(axis=1).astype(np.float32)[:, None]
    au = (latent[:, 4 + proto.n_expr:] > 0).astype(np.float32)
    va[:2] = tasks.VA_INVALID  # a few invalid frames, as in Aff-Wild2
    expr[-2:] = tasks.EXPR_INVALID
    au[3] = tasks.AU_INVALID
    return {"va": va, "expr": expr, "au": au}


def make_label_root(root: Path, seed: int = 0) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """An annotations-only Aff-Wild2 root (2021 layout); returns labels[split][name][track]."""
    rng = np.random.default_rng(seed)
    proto = tasks.get_protocol(PROTOCOL)
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for split, names in SPLIT_NAMES.items():
        out[split] = {}
        for name in names:
            labels = _labels(rng, N_FRAMES)
            out[split][name] = labels
            for track, arr in labels.items():
                folder = root / "annotations" / proto.annotation_dir(track) / tasks.SPLIT_DIRS[split]
                folder.mkdir(parents=True, exist_ok=True)
                fmt = "%.4f" if track == "va" else "%d"
                body = "\n".join(",".join(fmt % v for v in row) for row in arr)
                (folder / f"{name}.txt").write_text(proto.header(track) + "\n" + body + "\n")
    return out


def labels_of_root(root: Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """labels[split][name][track] of a data root, through the Aff-Wild2 reader."""
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(root, protocol=PROTOCOL)
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for split, track in ds.available():
        for entry in ds.entries(split, track):
            out.setdefault(split, {}).setdefault(entry.name, {})[track] = ds.labels(entry)
    return out


def _filled(lab: dict[str, np.ndarray], track: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """The labels of a track with invalid frames (and a track the name lacks) replaced by random values."""
    proto = tasks.get_protocol(PROTOCOL)
    if track == "va":
        arr = lab.get("va", np.full((n, 2), tasks.VA_INVALID))
        return np.where(arr > -2, arr, rng.uniform(-1, 1, arr.shape))
    if track == "expr":
        arr = lab.get("expr", np.full((n, 1), tasks.EXPR_INVALID))[:, 0]
        return np.where(arr >= 0, arr, rng.integers(0, proto.n_expr, len(arr))).astype(int)
    arr = lab.get("au", np.full((n, proto.n_au), tasks.AU_INVALID))
    return np.where(arr >= 0, arr, rng.integers(0, 2, arr.shape))


def make_run(runs: Path, run_id: str, labels: dict[str, dict[str, dict[str, np.ndarray]]], data_root: Path,
             noise: float, seed: int, tracks: tuple[str, ...] = tasks.TRACKS, skip: int = 13,
             drop: tuple[str, ...] = (), embeddings: bool = True) -> Path:
    """A run folder of noisy predictions of ``labels`` (frames divisible by ``skip`` have no face, so no row)."""
    rng = np.random.default_rng(seed)
    proto = tasks.get_protocol(PROTOCOL)
    run_dir = runs / run_id
    for split, by_name in labels.items():
        rows = []
        for name, lab in by_name.items():
            if name in drop:
                continue
            n = max(len(v) for v in lab.values())
            frames = np.array([f for f in range(1, n + 1) if f % skip])
            table = {"name": name, "frame": frames}
            va, expr, au = (_filled(lab, t, n, rng) for t in tasks.TRACKS)
            if "va" in tracks:
                va = va + rng.normal(0, noise, (n, 2))
                table.update(valence=np.clip(va[frames - 1, 0], -1, 1), arousal=np.clip(va[frames - 1, 1], -1, 1))
            if "expr" in tracks:
                logits = 2.0 * np.eye(proto.n_expr)[expr] + rng.normal(0, 2 * noise + 0.5, (n, proto.n_expr))
                probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
                table.update(dict(zip(tasks.expr_columns(PROTOCOL), probs[frames - 1].T, strict=True)))
            if "au" in tracks:
                z = 1.5 * (2 * au - 1) + rng.normal(0, 2 * noise + 0.5, (n, proto.n_au))
                table.update(dict(zip(tasks.au_columns(PROTOCOL), (1 / (1 + np.exp(-z)))[frames - 1].T, strict=True)))
            rows.append(pd.DataFrame(table))
            if embeddings:
                signal = np.concatenate([_filled(lab, "va", n, rng), au[:, :EMB_DIM - 2]], axis=1)
                save_npy(run_dir / "embeddings" / split / f"{name}.npy",
                         (signal + rng.normal(0, noise, signal.shape)).astype(np.float16))
        (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
        pd.concat(rows).to_parquet(run_dir / "predictions" / f"{split}.parquet", index=False)
    write_json(run_dir / "run.json", {"run_id": run_id, "kind": "train", "protocol": PROTOCOL,
                                      "data_root": str(data_root), "tracks": list(tracks), "status": "finished"})
    write_json(run_dir / "config.json", {"protocol": PROTOCOL})
    return run_dir
