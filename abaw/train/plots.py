"""Evaluation plots with matplotlib: valence/arousal over time, expression confusion matrix, per-AU F1."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from abaw.fileio import atomic_path
from abaw.tasks import get_protocol


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def _figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def plot_va(path: Path, preds: dict[str, dict[str, np.ndarray]], videos: Sequence[Any], n_videos: int = 3) -> None:
    """Predicted vs true valence and arousal over time for the first few videos with VA labels."""
    chosen = [v for v in videos if v.valid.get("va") is not None and v.valid["va"].any()][:n_videos]
    if not chosen:
        return
    fig, axes = _figure(len(chosen), 2, figsize=(12, 2.6 * len(chosen)), squeeze=False)
    for row, video in enumerate(chosen):
        frames = np.arange(1, video.n_frames + 1)
        for col, label in enumerate(("valence", "arousal")):
            ax = axes[row][col]
            true = np.where(video.valid["va"], video.labels["va"][:, col], np.nan)
            ax.plot(frames, true, color="black", lw=1.2, label="true")
            ax.plot(frames, preds[video.name]["va"][:, col], color="tab:red", lw=1.0, label="predicted")
            ax.set_ylim(-1.05, 1.05)
            ax.set_title(f"{video.name}: {label}", fontsize=9)
            ax.set_xlabel("frame")
            if row == 0 and col == 0:
                ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(path: Path, preds: dict[str, dict[str, np.ndarray]], videos: Sequence[Any],
                   protocol: str) -> None:
    """Row-normalised confusion matrix of the expression decisions on valid frames."""
    from sklearn.metrics import confusion_matrix

    classes = get_protocol(protocol).expr_classes
    true = np.concatenate([v.labels["expr"][:, 0][v.valid["expr"]] for v in videos]).astype(int)
    pred = np.concatenate([preds[v.name]["expr"].argmax(1)[v.valid["expr"]] for v in videos]).astype(int)
    if not len(true):
        return
    cm = confusion_matrix(true, pred, labels=list(range(len(classes)))).astype(float)
    cm_norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = _figure(figsize=(6.5, 5.5))
    im = ax.imshow(cm_norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if cm_norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("expression confusion (row-normalised colour, counts)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)


def plot_au_f1(path: Path, scores: dict[str, Any] | None, protocol: str) -> None:
    """Bar chart of the per-AU F1 of the official AU score."""
    au = ((scores or {}).get("tracks") or {}).get("au") or {}
    per = au.get("f1_per_au")
    if not per:
        return
    names = list(per) if isinstance(per, dict) else list(get_protocol(protocol).au_names)
    values = [float(per[n]) for n in names] if isinstance(per, dict) else [float(x) for x in per]
    fig, ax = _figure(figsize=(8, 3.5))
    ax.bar(names, values, color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title(f"per-AU F1 (mean {np.mean(values):.3f})")
    ax.tick_params(axis="x", rotation=45)
    _save(fig, path)


def plot_split(folder: Path, split: str, preds: dict[str, dict[str, np.ndarray]], videos: Sequence[Any],
               tasks: Sequence[str], protocol: str, scores: dict[str, Any] | None) -> list[Path]:
    """All plots of one split; returns the files written."""
    written = []
    if "va" in tasks:
        written.append(folder / f"{split}_va_time.png")
        plot_va(written[-1], preds, videos)
    if "expr" in tasks:
        written.append(folder / f"{split}_expr_confusion.png")
        plot_confusion(written[-1], preds, videos, protocol)
    if "au" in tasks:
        written.append(folder / f"{split}_au_f1.png")
        plot_au_f1(written[-1], scores, protocol)
    return [p for p in written if p.exists()]


def plot_curves(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Training loss and validation score per epoch (from metrics.jsonl records)."""
    if not records:
        return
    epochs = [r["epoch"] for r in records]
    fig, ax = _figure(figsize=(6, 3.5))
    ax.plot(epochs, [r.get("train_loss", np.nan) for r in records], label="train loss", color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(epochs, [r.get("val_score", np.nan) for r in records], label="validation score", color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:red")
    ax2.set_ylabel("validation score", color="tab:blue")
    fig.tight_layout()
    _save(fig, path)
