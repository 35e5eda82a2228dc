"""``abaw predict``: run a trained model (or, without one, the FER2013 mini-Xception) on any video or image.

Per input, ``OUT/<video>.csv`` has one row per video frame per tracked face (frames without a face included, with
``success`` 0 and ``face_score`` 0), in py-feat / OpenFace habits: ``frame, timestamp, face_id, name, face_x, face_y,
face_w, face_h, face_score, success, valence, arousal``, one probability column per expression (lower case),
``expression`` (the predicted name), ``AU01``... probabilities and ``AU01_c``... 0/1 decisions. Plots and an optional
annotated video go beside it. The detection, tracking and crops are those of ``abaw prepare``, made in a temporary
folder that is removed afterwards: only finished outputs ever appear in ``OUT``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from abaw import tasks
from abaw.data.affwild2 import CROPS_DIR, read_boxes
from abaw.fileio import atomic_open, write_json
from abaw.inference import decide
from abaw.video.decode import probe
from abaw.video.prepare import DETECT_EVERY, PrepareOptions, prepare_video, video_name

log = logging.getLogger(__name__)

WORK_DIR = "work"
#: Frames handled at a time: crops read, table rows built and appended to the CSV, so memory stays flat in the
#: video's length (only per-frame numbers of a whole video are held: boxes and model outputs, ~100 bytes a frame).
CHUNK_FRAMES = 512
NO_MODEL_NOTE = "no model given (--checkpoint): valence, arousal and AUs not predicted; expressions from FER2013"


@dataclass
class PredictOptions:
    checkpoint: str | Path | None = None
    detector: str = "yunet"
    person: str = "yolo-fastest"
    max_faces: int | None = None
    detect_every: int = DETECT_EVERY
    au_threshold: float = 0.5
    annotate: bool = False
    plots: bool = True
    progress: bool | None = None
    trust_weights: bool = False  # --trust-weights: open an unverified weights file a library unpickles
    person_weights: str | None = None  # --person-weights: the ultralytics model file


class FerPredictor:
    """Expressions from the FER2013 mini-Xception on the aligned face crops; no VA, no AUs. The model runs with
    OpenCV on its ONNX export (:mod:`abaw.models.fer_runtime`), so ``abaw predict`` without a checkpoint never
    imports torch once the export exists; ``path``: another Keras ``.hdf5`` than the catalogue's."""

    streams: tuple[str, ...] = ("face",)
    note = NO_MODEL_NOTE

    def __init__(self, path: str | Path | None = None) -> None:
        from abaw.models.fer_runtime import ExpressionClassifier

        self.classifier = ExpressionClassifier(path)
        self.protocol = tasks.get_protocol(None)
        self.expr_classes: tuple[str, ...] = tasks.EXPR_CLASSES_7
        self.au_names: tuple[str, ...] = self.protocol.au_names

    def predict(self, root: Path, name: str, video: str, n_frames: int, fps: float) -> dict[str, np.ndarray]:
        """Per-frame expression probabilities (NaN without a crop); crops are read :data:`CHUNK_FRAMES` at a time."""
        folder = root / CROPS_DIR / name
        frames = [f for f in range(1, n_frames + 1) if (folder / tasks.CROP_PATTERN.format(f)).is_file()]
        expr = np.full((n_frames, len(self.expr_classes)), np.nan, dtype=np.float32)
        for start in range(0, len(frames), CHUNK_FRAMES):
            chunk = frames[start:start + CHUNK_FRAMES]
            crops = [cv2.imread(str(folder / tasks.CROP_PATTERN.format(f))) for f in chunk]
            expr[np.asarray(chunk) - 1] = self.classifier.predict(crops)
        return {"expr": expr}


class ModelPredictor:
    """A trained run (docs/design.md section 5), run over a name's frames as ``abaw evaluate`` runs it
    (:mod:`abaw.inference`: the same windows, activation and decisions)."""

    note = ""

    def __init__(self, run_dir: str | Path, device: str | None = None) -> None:
        from abaw.inference import load_run_model, model_spec
        from abaw.train.config import tracks_of

        self.model, self.config, self.device = load_run_model(run_dir, device=device or "auto")
        self.protocol = tasks.get_protocol(self.config.get("protocol"))
        self.expr_classes = self.protocol.expr_classes
        self.au_names = self.protocol.au_names
        self.streams = tuple(self.config["data"]["streams"])
        self.tracks = tracks_of(self.config)
        audio = model_spec(self.model).get("audio") or {}
        self.n_mels = int(audio.get("n_mels", 0)) or None  # the width of the audio stream's input, when it has one

    def predict(self, root: Path, name: str, video: str, n_frames: int, fps: float) -> dict[str, np.ndarray]:
        """Per-frame outputs of ``name`` read end to end from ``root``; NaN on frames without any stream's input."""
        from abaw.data.sequences import SequenceVideo
        from abaw.inference import HAS_INPUT, batch_size, make_loader, predict_videos, window_length

        loader = make_loader(self.config, self.model, root=root, mode="end2end")
        entry = SequenceVideo(name=name, video=video, n_frames=n_frames, fps=fps, video_frames=n_frames)
        out = predict_videos(self.model, [entry], loader, window_length(self.config), batch_size(self.config),
                             self.tracks, self.device, self.config["train"]["amp"], embeddings=False)[name]
        has_input = out.pop(HAS_INPUT)
        for values in out.values():
            values[~has_input] = np.nan  # no input of any stream: no prediction, as for a missing face
        return out


def load_predictor(checkpoint: str | Path | None, device: str | None = None) -> FerPredictor | ModelPredictor:
    """The trained run's model on ``device`` (None or "auto": the best available), else the FER2013 classifier."""
    return ModelPredictor(checkpoint, device=device) if checkpoint else FerPredictor()


def frame_table(boxes: pd.DataFrame, outputs: dict[str, dict[str, np.ndarray]], predictor: Any,
                au_threshold: float = 0.5) -> pd.DataFrame:
    """The per-frame prediction table from the boxes table and each track's outputs (keyed by name)."""
    expr_cols = [tasks.expr_column(c) for c in predictor.expr_classes]
    au_cols = [tasks.au_column(a) for a in predictor.au_names]
    parts = []
    for name, rows in boxes.groupby("name", sort=False):
        rows = rows.sort_values("frame")
        n = len(rows)
        idx = rows["frame"].to_numpy(np.int64) - 1
        out = outputs.get(str(name), {})
        part = rows[["frame", "timestamp", "face_id", "name", "face_x", "face_y", "face_w", "face_h",
                     "face_score"]].reset_index(drop=True)
        part["success"] = (part["face_score"] > 0).astype(int)
        va = _take(out.get("va"), idx, n, 2)
        part["valence"], part["arousal"] = va[:, 0], va[:, 1]
        expr = _take(out.get("expr"), idx, n, len(expr_cols))
        part[expr_cols] = expr
        known = np.isfinite(expr).all(axis=1)
        names = np.array([c.lower() for c in predictor.expr_classes], dtype=object)
        part["expression"] = np.where(known, names[decide("expr", np.nan_to_num(expr, nan=0))], "")
        au = _take(out.get("au"), idx, n, len(au_cols))
        part[au_cols] = au
        decisions = decide("au", au, au_threshold).astype(float)
        decisions[~np.isfinite(au)] = np.nan
        part[[f"{c}_c" for c in au_cols]] = decisions
        if predictor.note:
            part["note"] = predictor.note
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["frame", "face_id"], kind="stable").reset_index(drop=True)


def write_frame_table(boxes: pd.DataFrame, outputs: dict[str, dict[str, np.ndarray]], predictor: Any,
                      path: Path, au_threshold: float = 0.5, chunk: int | None = None) -> tuple[Path, int]:
    """Write :func:`frame_table` to ``path`` as CSV, :data:`CHUNK_FRAMES` frames at a time, appended to a temporary
    file renamed onto ``path`` at the end; returns (path, frames with a face)."""
    chunk = chunk or CHUNK_FRAMES
    frames = boxes["frame"].to_numpy(np.int64)
    last = int(frames.max()) if len(frames) else 0
    face_frames = 0
    with atomic_open(path, "w") as fh:
        for start in range(1, last + 1, chunk):
            rows = boxes[(frames >= start) & (frames < start + chunk)]
            if rows.empty:
                continue
            part = frame_table(rows, outputs, predictor, au_threshold)
            part.to_csv(fh, index=False, header=fh.tell() == 0)
            face_frames += int(part.groupby("frame")["success"].max().sum())
    return path, face_frames


def _take(values: np.ndarray | None, idx: np.ndarray, n: int, width: int) -> np.ndarray:
    out = np.full((n, width), np.nan, dtype=np.float32)
    if values is not None:
        ok = idx < len(values)
        out[ok] = values[idx[ok]]
    return out


def output_names(paths: list[Path]) -> list[str]:
    """Output name of each input: its stem, or ``<stem>_<ext>`` where two inputs share a stem."""
    stems = [p.stem for p in paths]
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def predict_file(path: str | Path, out_dir: str | Path, opts: PredictOptions, predictor: Any,
                 name: str | None = None) -> dict[str, Path]:
    """Predict one video or image (outputs named ``name``, default the stem); returns the files written.

    Detection, crops and every output are made in a hidden temporary folder inside ``out_dir`` and moved into
    place only when all of them exist (the JSON summary last), so a failure leaves nothing behind.
    """
    path, out_dir = Path(path), Path(out_dir)
    video = name or video_name(path)
    streams = tuple(s for s in predictor.streams if s in ("face", "body", "context", "audio"))
    if "face" not in streams:
        streams = ("face", *streams)  # the face crops are always made: they are what the table reports
    persons = bool({"body", "context"} & set(streams))
    prep = PrepareOptions(detector=opts.detector, person=opts.person if persons else "face", streams=streams,
                          max_faces=opts.max_faces, detect_every=opts.detect_every, force=True,
                          progress=opts.progress, trust_weights=opts.trust_weights,
                          person_weights=opts.person_weights if persons else None)
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]  # removed again if this input fails
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _predict_into(path, out_dir, opts, predictor, video, prep)
    except BaseException:
        for folder in created:  # innermost first; a folder that meanwhile got other files stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def mask_missing_audio(work: Path, video: str, predictor: Any) -> list[str]:
    """An input without sound (a still image) gets the audio file of a silent video: 0 seconds of audio, so every
    frame's window is invalid and the model masks the audio stream as it masks any absent stream input (no face
    crop, no audio). Returns ``["audio"]`` when that happened. Only ever written into ``predict``'s own work folder."""
    from abaw.fileio import save_npz
    from abaw.video.audio import HOP_SECONDS, SAMPLE_RATE

    path = work / tasks.PREPARED_DIR / "audio" / f"{video}.npz"
    if path.is_file() or not getattr(predictor, "n_mels", None):
        return []
    save_npz(path, logmel=np.zeros((predictor.n_mels, 0), np.float32), hop_seconds=np.float64(HOP_SECONDS),
             sample_rate=np.int64(SAMPLE_RATE), audio_seconds=np.float64(0.0))
    log.info("%s: no sound (a still image): the model's audio stream is masked, as for a video without sound", video)
    return ["audio"]


def _predict_into(path: Path, out_dir: Path, opts: PredictOptions, predictor: Any, video: str,
                  prep: PrepareOptions) -> dict[str, Path]:
    """:func:`predict_file` once ``out_dir`` exists."""
    with tempfile.TemporaryDirectory(prefix=f".predict-{video}-", dir=out_dir) as tmp_name:
        work, staged = Path(tmp_name) / WORK_DIR, Path(tmp_name) / "out"
        staged.mkdir()
        prepare_video(path, work, prep, name=video)
        missing = mask_missing_audio(work, video, predictor) if "audio" in prep.streams else []
        boxes = read_boxes(work, video)
        n_frames = int(boxes["frame"].max())
        fps = probe(path).fps
        outputs = {str(n): predictor.predict(work, str(n), video, n_frames, fps)
                   for n in dict.fromkeys(boxes["name"].astype(str))}
        csv_path, face_frames = write_frame_table(boxes, outputs, predictor, staged / f"{video}.csv",
                                                  opts.au_threshold)
        del outputs
        written = {"csv": csv_path}
        meta = {"source": str(path), "frames": n_frames, "fps": fps, "faces": sorted(set(boxes["name"].astype(str))),
                "face_frames": face_frames,
                "model": str(opts.checkpoint) if opts.checkpoint else "fer2013_mini_xception",
                "expression_classes": list(predictor.expr_classes), "au_threshold": opts.au_threshold}
        if predictor.note:
            meta["note"] = predictor.note
        if missing:
            meta["missing_streams"] = missing
        if opts.plots or opts.annotate:
            table = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])  # the written table, read back
        if opts.plots:
            from abaw.apps.predict_plots import plot_predictions

            written.update(plot_predictions(table, staged, video, predictor.expr_classes, predictor.au_names))
        if opts.annotate:
            from abaw.apps.predict_plots import annotate_video

            written["video"] = annotate_video(path, table, staged / f"{video}_annotated.mp4", fps)
        final = {kind: out_dir / p.name for kind, p in written.items()}
        write_json(staged / f"{video}.json", {**meta, "files": {k: str(v) for k, v in final.items()}})
        for kind, staged_path in written.items():
            os.replace(staged_path, final[kind])
        final["json"] = out_dir / f"{video}.json"
        os.replace(staged / f"{video}.json", final["json"])
    return final
