"""The temporal model's inputs, read a few videos at a time: memory is bounded by a chunk of rows, never a split.

A split keeps only what is small per row (:class:`SplitTable`: the source's prediction table, the face flags, the
targets). A feature row is [block statistics, embedding, current outputs]; :meth:`SplitTable.load` builds them for a
few videos (:class:`Chunk`: statistics in float64 over a video, stored as float32; embedding rows read from the
source's ``embeddings/<split>/<name>.npy`` through a memory map that is closed again; BiLSTM windows as row indices,
gathered per batch). :class:`VideoSet` is a set of videos of one split cut into chunks of at most ``chunk_rows``
rows; :func:`epoch_batches` is the training sampler over it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abaw.errors import AbawError
from abaw.runs.outputs import Run, labels_for_rows, load_labels, split_frame_counts, track_columns, video_slices
from abaw.temporal.stats import block_stats, carry_index, n_stat_features, window_rows


@dataclass
class Chunk:
    """The model inputs of a few videos: row ``i`` is row ``rows[i]`` of the split's table."""

    rows: np.ndarray  # (m,) int64 table rows
    x: np.ndarray  # (m, S + k) float32: S block-statistic columns, then the k current outputs
    emb: np.ndarray | None  # (m, F) embedding rows in their stored dtype (float16 for abaw's runs)
    n_stats: int
    win: np.ndarray | None  # (m, block) int64 chunk rows of each row's BiLSTM window, oldest first, -1 = padding
    lengths: np.ndarray | None  # (m,) window lengths

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.rows, self.x, self.emb, self.win, self.lengths) if a is not None)

    def features(self, idx: Any, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
        """The float32 feature rows ``idx`` (a slice or index array), normalised when ``mean``/``std`` are given."""
        x = self.x[idx]
        parts = [x[:, : self.n_stats]]
        if self.emb is not None:
            parts.append(self.emb[idx].astype(np.float32))
        parts.append(x[:, self.n_stats:])
        feat = np.concatenate(parts, axis=1)
        if mean is not None and std is not None:
            feat = (feat - mean) / std
        return feat.astype(np.float32, copy=False)

    def sequences(self, idx: Any) -> tuple[np.ndarray, np.ndarray]:
        """The BiLSTM input of rows ``idx``: ``(B, block, k)`` float32 outputs of each window (zero padded) and the
        window lengths; equal to :func:`abaw.temporal.stats.block_windows` of the rows' videos."""
        if self.win is None or self.lengths is None:
            raise ValueError("this chunk was loaded without windows")
        win = self.win[idx]
        values = self.x[:, self.n_stats:]
        seq = values[np.maximum(win, 0)]
        seq[win < 0] = 0.0
        return seq.astype(np.float32, copy=False), self.lengths[idx]


@dataclass
class SplitTable:
    """What is held for one split: the source's prediction rows (keys and the k input columns), face flags, targets.

    ``load(videos)`` builds the feature rows of those videos (indices into ``videos``) on demand.
    """

    source: Run
    split: str
    config: dict[str, Any]
    df: pd.DataFrame
    columns: list[str]
    face: np.ndarray
    videos: list[tuple[str, int, int]]  # (name, start row, end row) in table order
    use_embedding: bool
    emb_dim: int = 0
    emb_dtype: Any = np.float16  # float16 when the source stores float16, else float32
    targets: dict[str, np.ndarray] = field(default_factory=dict)  # track -> label of each row (invalid markers kept)
    n_frames: dict[str, dict[str, int]] = field(default_factory=dict)  # track -> name -> label lines

    def __len__(self) -> int:
        return len(self.df)

    @property
    def keys(self) -> pd.DataFrame:
        return self.df[["name", "frame"]]

    @property
    def n_stats(self) -> int:
        return n_stat_features(len(self.columns), self.config["stats"], self.config["quantiles"])

    @property
    def dim(self) -> int:
        """D, the width of a feature row."""
        return self.n_stats + self.emb_dim + len(self.columns)

    def video_rows(self, videos: Sequence[int]) -> int:
        return int(sum(self.videos[v][2] - self.videos[v][1] for v in videos))

    def load(self, videos: Sequence[int], windows: bool | None = None) -> Chunk:
        """Feature rows of ``videos`` (indices into :attr:`videos`), built one video at a time."""
        windows = self.config["variant"] == "bilstm" if windows is None else windows
        block = int(self.config["block"])
        n_stats, k = self.n_stats, len(self.columns)
        m = self.video_rows(videos)
        rows = np.empty(m, dtype=np.int64)
        x = np.empty((m, n_stats + k), dtype=np.float32)
        emb = np.empty((m, self.emb_dim), dtype=self.emb_dtype) if self.use_embedding else None
        win = np.full((m, block), -1, dtype=np.int64) if windows else None
        lengths = np.zeros(m, dtype=np.int64) if windows else None
        frames = self.df["frame"].to_numpy()
        col_arrays = [self.df[c].to_numpy() for c in self.columns]  # the table's own columns: no copy
        at = 0
        for v in videos:
            name, s, e = self.videos[v]
            n = e - s
            values = np.stack([c[s:e] for c in col_arrays], axis=1).astype(np.float64)
            face = self.face[s:e]
            here = carry_index(np.full(n, name), face)  # a row's block lies in its own video
            rows[at: at + n] = np.arange(s, e)
            x[at: at + n, :n_stats] = block_stats(values, block, self.config["stats"], self.config["quantiles"],
                                                  valid=face)[here]
            x[at: at + n, n_stats:] = values
            if emb is not None:
                vemb = embedding_rows(self.source, self.split, name, frames[s:e])
                if vemb.shape[1] != self.emb_dim:
                    raise AbawError(f"run {self.source.run_id}: embedding of video {name} has {vemb.shape[1]} "
                                    f"columns, others {self.emb_dim}",
                                    path=self.source.embedding_path(self.split, name))
                emb[at: at + n] = vemb
            if win is not None and lengths is not None:
                vwin, vlen = window_rows(face, block)
                win[at: at + n] = np.where(vwin[here] >= 0, vwin[here] + at, -1)
                lengths[at: at + n] = vlen[here]
            at += n
        return Chunk(rows, x, emb, n_stats, win, lengths)



def embedding_rows(source: Run, split: str, name: str, frames: np.ndarray) -> np.ndarray:
    """The embedding rows of ``frames`` (1-based) of one video, read through a memory map that is then closed (so
    only these rows count in the process's memory); float16 stays float16, anything else becomes float32."""
    path, arr = source.embedding_path(split, name), source.open_embedding(split, name)
    if len(frames) and frames.max() > len(arr):
        raise AbawError(f"run {source.run_id}: embedding of video {name} has {len(arr)} frames but frame "
                        f"{frames.max()} is predicted", path=path)
    rows = np.array(arr[frames - 1])  # a copy of these rows; the map is closed when ``arr`` goes
    del arr
    return rows if rows.dtype == np.float16 else rows.astype(np.float32)


def embedding_spec(source: Run, split: str, name: str) -> tuple[int, Any]:
    """F and the dtype rows are kept in (float16 or float32), from the header of one video's embedding file."""
    arr = source.open_embedding(split, name)
    return int(arr.shape[1]), np.float16 if arr.dtype == np.float16 else np.float32


def read_split(source: Run, split: str, config: dict[str, Any], data_root: str | Path, protocol: str,
               inputs: list[str], task_list: list[str], use_embedding: bool, labels: bool = True) -> SplitTable:
    """The table of one split: rows whose every input column is present; targets when ``labels`` (the test set has
    none: only each listed name's frame count, for its result file)."""
    columns = [c for t in inputs for c in track_columns(t, protocol)]
    df = source.predictions(split, columns)
    df = df[df[columns].notna().all(axis=1).to_numpy()].reset_index(drop=True)
    face = face_frames(data_root, protocol, df) if config["face_frames_only"] else np.ones(len(df), bool)
    videos = video_slices(df["name"])
    table = SplitTable(source, split, config, df, columns, face, videos, use_embedding)
    if use_embedding and videos:
        table.emb_dim, table.emb_dtype = embedding_spec(source, split, videos[0][0])
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(data_root, protocol=protocol) if split == "test" else None
    for track in task_list:
        if ds is not None:
            if ds.has_test_set(track):
                table.n_frames[track] = split_frame_counts(data_root, split, track, protocol)
            continue
        lab = load_labels(data_root, split, track, protocol)
        table.n_frames[track] = {n: len(v) for n, v in lab.items()}
        if labels:
            table.targets[track] = labels_for_rows(table.keys, lab, track, protocol)
    return table


def face_frames(data_root: str | Path, protocol: str, df: pd.DataFrame) -> np.ndarray:
    """True for rows whose frame has a face crop; a video without a crop folder (or without any crop) counts as
    all faces, so a root without crops changes nothing."""
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(data_root, protocol=protocol)
    face = np.ones(len(df), dtype=bool)
    frames = df["frame"].to_numpy()
    for name, s, e in video_slices(df["name"]):
        if not ds.crop_path(name, 1).parent.is_dir():
            continue
        mask = ds.crop_mask(name, int(frames[s:e].max()))[frames[s:e] - 1]
        if mask.any():
            face[s:e] = mask
    return face


class VideoSet:
    """Some videos of one split (indices into ``table.videos``, kept in table order), read in chunks of at most
    ``chunk_rows`` rows (a longer video is a chunk of its own). A set that fits in one chunk loads it once."""

    def __init__(self, table: SplitTable, videos: Sequence[int], chunk_rows: int) -> None:
        self.table = table
        self.videos = sorted(int(v) for v in videos)
        self.chunk_rows = int(chunk_rows)
        self._whole: Chunk | None = None

    def __len__(self) -> int:
        return self.table.video_rows(self.videos)

    @property
    def names(self) -> list[str]:
        return [self.table.videos[v][0] for v in self.videos]

    @property
    def rows(self) -> np.ndarray:
        """The set's table rows, in the order :meth:`chunks` yields them."""
        parts = [np.arange(s, e) for _, s, e in (self.table.videos[v] for v in self.videos)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def blocks(self, videos: Sequence[int]) -> list[list[int]]:
        """``videos`` in order, cut into consecutive blocks of at most ``chunk_rows`` rows."""
        out: list[list[int]] = []
        size = 0
        for v in videos:
            n = self.table.video_rows([v])
            if not out or size + n > self.chunk_rows:
                out.append([])
                size = 0
            out[-1].append(int(v))
            size += n
        return out

    def chunks(self) -> Iterator[Chunk]:
        """The set's chunks in table order."""
        blocks = self.blocks(self.videos)
        if len(blocks) == 1:
            if self._whole is None:
                self._whole = self.table.load(blocks[0])
            yield self._whole
            return
        for block in blocks:
            yield self.table.load(block)

    def release(self) -> None:
        self._whole = None


def labelled(table: SplitTable, rows: np.ndarray) -> np.ndarray:
    """True for rows with a valid label of at least one target track."""
    from abaw import tasks

    out = np.zeros(len(rows), dtype=bool)
    for track, true in table.targets.items():
        t = true[rows]
        out |= (t > tasks.INVALID[track]).all(axis=1) if track != "au" else ((t == 0) | (t == 1)).any(axis=1)
    return out


def epoch_batches(data: VideoSet, rng: np.random.Generator, batch_size: int) -> Iterator[tuple[Chunk, np.ndarray]]:
    """One epoch of training batches ``(chunk, chunk row indices)`` over the labelled rows of ``data``.

    A set that fits in one chunk is one random permutation of its labelled rows. A larger one: the videos are
    shuffled and cut into blocks of at most ``chunk_rows`` rows, and each block's labelled rows are permuted together
    (only one block is held at a time). The order is a pure function of the generator's state.
    """
    blocks = data.blocks(data.videos)
    if len(blocks) > 1:
        blocks = data.blocks(rng.permutation(data.videos))
    for block in blocks:
        chunk = next(data.chunks()) if len(blocks) == 1 else data.table.load(block)
        order = rng.permutation(np.flatnonzero(labelled(data.table, chunk.rows)))
        for s in range(0, len(order), batch_size):
            yield chunk, order[s: s + batch_size]


def moments(data: VideoSet, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and population std (+1e-6) of the raw feature rows of ``data``, as float32: float64 sums over
    slices of ``chunk`` rows within each loaded chunk, chunks merged with Chan's formula."""
    n_all, mean_all, m2_all = 0, np.zeros(data.table.dim), np.zeros(data.table.dim)
    for part in data.chunks():
        n = len(part)
        if n == 0:
            continue
        total = np.zeros(data.table.dim)
        for s in range(0, n, chunk):
            total += part.features(slice(s, s + chunk)).sum(axis=0, dtype=np.float64)
        mean = total / n
        m2 = np.zeros(data.table.dim)
        for s in range(0, n, chunk):
            m2 += ((part.features(slice(s, s + chunk)) - mean) ** 2).sum(axis=0)
        if n_all == 0:
            n_all, mean_all, m2_all = n, mean, m2
            continue
        delta = mean - mean_all
        n_new = n_all + n
        mean_all = mean_all + delta * (n / n_new)
        m2_all = m2_all + m2 + delta**2 * (n_all * n / n_new)
        n_all = n_new
    std = np.sqrt(m2_all / max(n_all, 1)).astype(np.float32) + np.float32(1e-6)
    return mean_all.astype(np.float32), std
