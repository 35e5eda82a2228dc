"""Reading run folders (docs/design.md section 5): predictions, embeddings, labels of their frames, and writing the
outputs of derived runs (temporal models, ensembles).

Frame sets of several runs are aligned strictly: a video missing in one run, or a different frame set, is an
:class:`~abaw.errors.AbawError` naming the run and the video, never a silent misalignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abaw import tasks
from abaw.errors import AbawError
from abaw.fileio import atomic_path
from abaw.inference import decide
from abaw.runs.info import RunInfo, read_json, read_run_info

KEY_COLUMNS = ("name", "frame")


def track_columns(track: str, protocol: str | tasks.Protocol | None = None) -> list[str]:
    """Prediction-table columns of one track: ``valence, arousal``; the expression probabilities; the AU ones."""
    track = tasks.check_track(track)
    if track == "va":
        return list(tasks.VA_NAMES)
    if track == "expr":
        return tasks.expr_columns(protocol)
    return tasks.au_columns(protocol)


@dataclass
class Run:
    """A run folder and its metadata."""

    path: Path
    info: RunInfo
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.info.run_id or self.path.name

    @property
    def protocol(self) -> str:
        return str(self.info.protocol or self.config.get("protocol") or tasks.DEFAULT_PROTOCOL)

    @property
    def data_root(self) -> str | None:
        data = self.config.get("data")
        return (self.info.data_root or self.config.get("data_root")
                or (data.get("root") if isinstance(data, dict) else None))

    def predictions_path(self, split: str) -> Path:
        return self.path / "predictions" / f"{split}.parquet"

    def predictions(self, split: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The run's prediction table of ``split`` sorted by name and frame (only ``columns`` besides the keys)."""
        return read_predictions(self.predictions_path(split), columns, run=self.run_id)

    def embedding_path(self, split: str, name: str) -> Path:
        return self.path / "embeddings" / split / f"{name}.npy"

    def open_embedding(self, split: str, name: str) -> np.ndarray:
        """The per-frame embedding ``(n_frames, F)`` of one name, memory-mapped (nothing read yet) and checked."""
        path = self.embedding_path(split, name)
        if not path.is_file():
            raise AbawError(f"run {self.run_id} has no embedding for video {name}", path=path)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AbawError(f"cannot read the embedding: {exc}", path=path) from None
        if arr.ndim != 2:
            raise AbawError(f"embedding must be 2-D (n_frames, F), got shape {arr.shape}", path=path)
        return arr

    def embedding(self, split: str, name: str) -> np.ndarray:
        """The per-frame embedding ``(n_frames, F)`` of one name, as float32."""
        return np.asarray(self.open_embedding(split, name), dtype=np.float32)

    def has_embeddings(self, split: str) -> bool:
        return (self.path / "embeddings" / split).is_dir()

    def scores(self) -> dict[str, Any]:
        path = self.path / "scores.json"
        return read_json(path) if path.is_file() else {}


def load_run(path: str | Path) -> Run:
    """Open a run folder; ``run.json`` and ``config.json`` are read when present."""
    path = Path(path)
    if not path.is_dir():
        raise AbawError("run folder not found", path=path)
    if not (path / "run.json").is_file():
        raise AbawError("not a run folder (no run.json)", path=path)
    info = read_run_info(path)
    config = read_json(path / "config.json") if (path / "config.json").is_file() else {}
    return Run(path=path, info=info, config=config)


def read_predictions(path: Path, columns: list[str] | None = None, run: str | None = None) -> pd.DataFrame:
    """Read a prediction table, check its keys and ``columns``, and sort it by (name, frame)."""
    if not path.is_file():
        raise AbawError(f"run {run or path.parent.parent.name} has no predictions for this split", path=path)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise AbawError(f"cannot read the prediction table: {exc}", path=path) from None
    missing = [c for c in (*KEY_COLUMNS, *(columns or [])) if c not in df.columns]
    if missing:
        raise AbawError(f"prediction table lacks columns {', '.join(missing)}", path=path)
    if columns is not None:
        df = df[[*KEY_COLUMNS, *columns]]
    df = df.astype({"name": str, "frame": np.int64}).sort_values(list(KEY_COLUMNS), kind="stable")
    if df.duplicated(list(KEY_COLUMNS)).any():
        dup = df[df.duplicated(list(KEY_COLUMNS))].iloc[0]
        raise AbawError(f"duplicate row for video {dup['name']} frame {dup['frame']}", path=path)
    return df.reset_index(drop=True)


def check_same_frames(tables: list[pd.DataFrame], runs: list[str]) -> None:
    """Raise unless every table has exactly the (name, frame) rows of the first, in the same order.

    Tables must be sorted by (name, frame) (``read_predictions`` does it). Cost is linear in the rows.
    """
    ref, ref_run = tables[0], runs[0]
    ref_names = ref["name"].to_numpy()
    ref_frames = ref["frame"].to_numpy()
    for df, run in zip(tables[1:], runs[1:], strict=True):
        if len(df) == len(ref) and np.array_equal(df["name"].to_numpy(), ref_names) and np.array_equal(
                df["frame"].to_numpy(), ref_frames):
            continue
        _raise_frame_mismatch(ref, ref_run, df, run)


def _raise_frame_mismatch(ref: pd.DataFrame, ref_run: str, df: pd.DataFrame, run: str) -> None:
    ref_sets = ref.groupby("name", sort=True)["frame"].apply(lambda s: s.to_numpy())
    sets = df.groupby("name", sort=True)["frame"].apply(lambda s: s.to_numpy())
    for name in sorted(set(ref_sets.index) | set(sets.index)):
        if name not in sets.index:
            raise AbawError(f"video {name} is in run {ref_run} but missing in run {run}")
        if name not in ref_sets.index:
            raise AbawError(f"video {name} is in run {run} but missing in run {ref_run}")
        a, b = ref_sets[name], sets[name]
        if len(a) != len(b) or not np.array_equal(a, b):
            raise AbawError(f"video {name} has {len(b)} predicted frames in run {run} but {len(a)} in run {ref_run}"
                            " (different frame sets)")
    raise AbawError(f"runs {ref_run} and {run} have different frame sets")


def stack_runs(runs: list[Run], split: str, columns: list[str],
               names: set[str] | list[str] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Aligned member outputs: the (name, frame) keys and an array ``(n_runs, n_rows, len(columns))``.

    ``names`` keeps only those videos (a track's videos, when multi-task runs also predict others).
    """
    tables = [r.predictions(split, columns) for r in runs]
    if names is not None:
        keep = set(names)
        tables = [t[t["name"].isin(keep)].reset_index(drop=True) for t in tables]
    check_same_frames(tables, [r.run_id for r in runs])
    values = np.stack([t[columns].to_numpy(dtype=np.float64) for t in tables])
    return tables[0][list(KEY_COLUMNS)].reset_index(drop=True), values


def video_groups(names: np.ndarray | pd.Series) -> np.ndarray:
    """Group label per row for cross-validation: the video file, so ``_left``/``_right`` of one video stay together."""
    uniq, inverse = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    videos = np.array([tasks.split_two_person(n)[0] for n in uniq])
    return videos[inverse]


def video_slices(names: np.ndarray | pd.Series) -> list[tuple[str, int, int]]:
    """``(name, start, end)`` of each video's contiguous rows in a table sorted by name."""
    names = np.asarray(names, dtype=str)
    if len(names) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    ends = np.r_[starts[1:], len(names)]
    return [(str(names[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def grouped_folds(groups: np.ndarray, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held-out rows) of a cross-validation grouped by video: no video is on both sides of a fold."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise AbawError(f"grouped cross-validation needs at least 2 videos, the split has {n_groups}")
    folds = GroupKFold(n_splits=min(n_splits, n_groups)).split(np.zeros(len(groups)), groups=groups)
    return [(np.asarray(a), np.asarray(b)) for a, b in folds]


# ---- labels --------------------------------------------------------------------------------------------------


def load_labels(data_root: str | Path, split: str, track: str, protocol: str | None = None) -> dict[str, np.ndarray]:
    """Labels ``{name: (n_lines, k)}`` of one split and track from the Aff-Wild2 reader (invalid markers kept)."""
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(data_root, protocol=protocol or tasks.DEFAULT_PROTOCOL)
    return {e.name: np.asarray(ds.labels(e), dtype=np.float32) for e in ds.entries(split, track)}


def split_frame_counts(data_root: str | Path, split: str, track: str, protocol: str | None = None) -> dict[str, int]:
    """Frames each result file of ``split`` must have, by name: label lines for an annotated split, the video's frame
    count for ``test`` (the names of ``test_set/<track>.txt``)."""
    if split != "test":
        return {n: len(v) for n, v in load_labels(data_root, split, track, protocol).items()}
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(data_root, protocol=protocol or tasks.DEFAULT_PROTOCOL)
    if not ds.has_test_set(track):
        raise AbawError(f"no {track.upper()} test set list", path=Path(data_root) / tasks.TEST_SET_DIR)
    counts = {e.name: int(e.n_frames or 0) for e in ds.test_entries(track)}
    missing = sorted(n for n, c in counts.items() if c <= 0)
    if missing:
        raise AbawError(f"test name {missing[0]!r}: no video file to count its frames", path=data_root)
    return counts


def labels_for_rows(keys: pd.DataFrame, labels: dict[str, np.ndarray], track: str,
                    protocol: str | None = None) -> np.ndarray:
    """The label row of every (name, frame) row of ``keys``; rows without a label get the invalid marker."""
    k = tasks.get_protocol(protocol).n_outputs(track) if track != "expr" else 1
    out = np.full((len(keys), k), tasks.INVALID[tasks.check_track(track)], dtype=np.float32)
    names = keys["name"].to_numpy(dtype=str)
    frames = keys["frame"].to_numpy(dtype=np.int64)
    for name, s, e in video_slices(names):
        lab = labels.get(name)
        if lab is None:
            continue
        lab = lab.reshape(len(lab), -1)
        idx = frames[s:e] - 1
        ok = (idx >= 0) & (idx < len(lab))
        out[s:e][ok] = lab[idx[ok]]
    return out


# ---- writing derived runs ------------------------------------------------------------------------------------


def write_predictions(run_dir: Path, split: str, keys: pd.DataFrame, columns: dict[str, np.ndarray]) -> Path:
    """Write ``predictions/<split>.parquet`` from the keys and named columns, atomically."""
    df = keys[list(KEY_COLUMNS)].reset_index(drop=True).copy()
    for col, vals in columns.items():
        df[col] = np.asarray(vals, dtype=np.float32)
    path = run_dir / "predictions" / f"{split}.parquet"
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def write_results(run_dir: Path, split: str, track: str, keys: pd.DataFrame, values: np.ndarray,
                  n_frames: dict[str, int], protocol: str, thresholds: np.ndarray | float = 0.5) -> Path:
    """Result files of one track under ``results/<split>/`` (``abaw.results.write_results``: the test split in the
    protocol's format, the other splits as folders)."""
    from abaw.results import split_format
    from abaw.results import write_results as write_files

    decoded = decide(track, values, thresholds)
    decoded = decoded.reshape(len(decoded), -1).astype(np.float64)
    names = keys["name"].to_numpy(dtype=str)
    frames = keys["frame"].to_numpy(dtype=np.int64)
    preds: dict[str, np.ndarray] = {}
    for name in np.unique(names):
        rows = names == name
        length = max(int(n_frames.get(name, 0)), int(frames[rows].max()))
        arr = np.full((length, decoded.shape[1]), np.nan)
        arr[frames[rows] - 1] = decoded[rows]
        preds[str(name)] = arr
    out = run_dir / "results" / split
    write_files(out, track, preds, protocol, split_format(split, protocol))
    return out
