"""Pictures of a prediction table: valence/arousal over time, the expression timeline, an AU heat map, and an
annotated copy of the video."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from abaw import tasks  # noqa: E402
from abaw.fileio import atomic_path  # noqa: E402
from abaw.video.decode import iter_frames  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _faces(table: pd.DataFrame) -> list[tuple[int, str, pd.DataFrame]]:
    return [(int(fid), str(rows["name"].iloc[0]), rows.sort_values("frame"))
            for fid, rows in table.groupby("face_id", sort=True)]


def plot_va(table: pd.DataFrame, path: Path) -> Path | None:
    if table[["valence", "arousal"]].isna().all().all():
        return None
    faces = _faces(table)
    fig, axes = plt.subplots(len(faces), 1, figsize=(10, 2.6 * len(faces)), squeeze=False, sharex=True)
    for ax, (_, name, rows) in zip(axes[:, 0], faces, strict=True):
        ax.plot(rows["timestamp"], rows["valence"], label="valence", color="tab:blue")
        ax.plot(rows["timestamp"], rows["arousal"], label="arousal", color="tab:red")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle("Valence and arousal over time")
    return _save(fig, path)


def plot_expressions(table: pd.DataFrame, path: Path, classes: tuple[str, ...]) -> Path | None:
    cols = [tasks.expr_column(c) for c in classes]
    if table[cols].isna().all().all():
        return None
    faces = _faces(table)
    colors = plt.get_cmap("tab10")(np.arange(len(cols)))
    fig, axes = plt.subplots(len(faces), 1, figsize=(10, 2.8 * len(faces)), squeeze=False, sharex=True)
    for ax, (_, name, rows) in zip(axes[:, 0], faces, strict=True):
        probs = rows[cols].to_numpy(dtype=float)
        t = rows["timestamp"].to_numpy(dtype=float)
        ax.stackplot(t, np.nan_to_num(probs).T, labels=list(classes), colors=colors, alpha=0.85)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{name}\nprobability")
        missing = ~np.isfinite(probs).all(axis=1)
        if missing.any():
            ax.fill_between(t, 0, 1, where=missing, color="lightgrey", step="mid", label="no face")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle("Expression probabilities over time")
    return _save(fig, path)


def plot_aus(table: pd.DataFrame, path: Path, au_names: tuple[str, ...]) -> Path | None:
    cols = [tasks.au_column(a) for a in au_names]
    if table[cols].isna().all().all():
        return None
    faces = _faces(table)
    fig, axes = plt.subplots(len(faces), 1, figsize=(10, 0.3 * len(cols) * len(faces) + 1.5), squeeze=False)
    image = None
    for ax, (_, name, rows) in zip(axes[:, 0], faces, strict=True):
        t = rows["timestamp"].to_numpy(dtype=float)
        values = np.ma.masked_invalid(rows[cols].to_numpy(dtype=float).T)
        image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                          extent=(t[0], t[-1] if len(t) > 1 else t[0] + 1, len(cols) - 0.5, -0.5))
        ax.set_yticks(range(len(cols)), cols, fontsize=8)
        ax.set_title(name, fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="AU probability")
    fig.suptitle("Action unit probabilities over time")
    return _save(fig, path)


def plot_predictions(table: pd.DataFrame, out_dir: Path, video: str, classes: tuple[str, ...],
                     au_names: tuple[str, ...]) -> dict[str, Path]:
    """Write the plots that have data; returns {kind: path}."""
    out = {
        "plot_va": plot_va(table, out_dir / f"{video}_va.png"),
        "plot_expr": plot_expressions(table, out_dir / f"{video}_expr.png", classes),
        "plot_au": plot_aus(table, out_dir / f"{video}_au.png", au_names),
    }
    return {k: v for k, v in out.items() if v is not None}


def _label(row: pd.Series) -> str:
    parts = []
    if isinstance(row.get("expression"), str) and row["expression"]:
        parts.append(row["expression"])
    if np.isfinite(row.get("valence", np.nan)):
        parts.append(f"V {row['valence']:+.2f} A {row['arousal']:+.2f}")
    return "  ".join(parts)


#: Time base of the annotated video: the MPEG clock, exact for 25, 30 and 29.97 fps.
TIME_BASE = Fraction(1, 90000)


def annotate_video(source: Path, table: pd.DataFrame, path: Path, fps: float) -> Path:
    """A copy of the video (H.264) with each face's box, expression and valence/arousal drawn on it.

    Only the faces' rows are kept (as plain arrays, looked up by frame), so memory stays small for a long video."""
    faces = table[table["success"] == 1].sort_values("frame", kind="stable")
    face_frames = faces["frame"].to_numpy(np.int64)
    face_boxes = faces[["face_x", "face_y", "face_w", "face_h"]].to_numpy(np.float64)
    labels = [_label(row) for _, row in faces.iterrows()]
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = None
        for frame in iter_frames(source):
            image = frame.image.copy()
            lo, hi = np.searchsorted(face_frames, [frame.index, frame.index + 1])
            for i in range(lo, hi):
                x, y, w, h = (int(round(v)) for v in face_boxes[i])
                cv2.rectangle(image, (x, y), (x + w, y + h), (0, 255, 0), 2)
                cv2.putText(image, labels[i], (x, max(15, y - 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                            (0, 255, 0), 2, cv2.LINE_AA)
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps or 25).limit_denominator(1001))
                stream.width, stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = TIME_BASE  # frames keep their own times (variable frame rate)
            image = image[: stream.height, : stream.width]
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            out.pts, out.time_base = int(round(frame.timestamp / TIME_BASE)), TIME_BASE
            for packet in stream.encode(out):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path
