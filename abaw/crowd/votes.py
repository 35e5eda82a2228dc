"""Readers for crowd labels: one column per annotator (AffectNetC25, any such table) or tabulated vote counts
(CREMA-D).

Two shapes come out of here:

- :class:`AnnotatorTable`: ``values`` (N items, R annotators) float64 with NaN where an annotator gave no label.
  Class labels are integer codes stored as floats; valence/arousal are the values themselves.
- :class:`VoteCounts`: ``counts`` (N items, K classes) int64, how many annotators chose each class (the only form
  CREMA-D publishes), plus the published aggregate when the file carries one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from abaw.errors import AbawError
from abaw.tasks import AFFECTNETC25_CLASSES, AFFECTNETC25_VA_LEVELS, CREMAD_CLASSES

#: AffectNetC25 kinds of file (``expression_set1_C25.csv`` …) and the column prefix of its annotators.
C25_KINDS: tuple[str, ...] = ("expression", "valence", "arousal")
C25_PARTICIPANT_PREFIX = "participant"
C25_ITEM_COLUMN = "filename"

#: CREMA-D ``tabulatedVotes``: one count column per emotion letter, in the file's (alphabetical) order.
CREMAD_CODES: tuple[str, ...] = ("A", "D", "F", "H", "N", "S")
CREMAD_ITEM_COLUMN = "fileName"
CREMAD_VOTE_COLUMN = "emoVote"


@dataclass
class AnnotatorTable:
    """Crowd labels with one column per annotator; NaN is a missing label."""

    items: list[str]
    annotators: list[str]
    values: np.ndarray
    kind: str = "class"  # "class" (integer codes) or "value" (continuous, e.g. valence / arousal)
    classes: tuple[str, ...] | None = None
    source: str = ""

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    @property
    def n_classes(self) -> int:
        if self.classes is not None:
            return len(self.classes)
        observed = self.values[~np.isnan(self.values)]
        return int(observed.max()) + 1 if observed.size else 0

    def codes(self) -> np.ndarray:
        """Integer labels (N, R) with -1 where missing (the form the crowd losses and Dawid-Skene take)."""
        if self.kind != "class":
            raise AbawError("these labels are continuous values, not class codes", path=self.source or None)
        out = np.full(self.values.shape, -1, dtype=np.int64)
        seen = ~np.isnan(self.values)
        out[seen] = self.values[seen].astype(np.int64)
        return out

    def counts(self) -> VoteCounts:
        """Vote counts per class (N, K)."""
        return VoteCounts(list(self.items), counts_from_codes(self.codes(), self.n_classes),
                          self.classes or tuple(str(k) for k in range(self.n_classes)), source=self.source)


@dataclass
class VoteCounts:
    """Votes per class for each item; ``published`` is the file's own aggregate (e.g. CREMA-D ``emoVote``)."""

    items: list[str]
    counts: np.ndarray
    classes: tuple[str, ...]
    codes: tuple[str, ...] = ()
    published: list[str] | None = None
    source: str = ""
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def counts_from_codes(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, R) integer codes with -1 missing -> (N, K) vote counts."""
    codes = np.asarray(codes)
    n = codes.shape[0]
    counts = np.zeros((n, n_classes), dtype=np.int64)
    rows, cols = np.nonzero(codes >= 0)
    np.add.at(counts, (rows, codes[rows, cols]), 1)
    return counts


def _read_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise AbawError("no such file", path=path)
    try:
        df = pd.read_csv(path, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AbawError(f"not a readable CSV table ({str(exc).splitlines()[0]})", path=path) from None
    if df.empty:
        raise AbawError("no rows after the header line", path=path)
    return df


def _numeric_block(df: pd.DataFrame, columns: list[str], path: Path) -> np.ndarray:
    """The annotator columns as float64 (empty cells -> NaN); a non-numeric cell is an error naming its line."""
    block = df[columns].apply(pd.to_numeric, errors="coerce")
    bad = block.isna() & df[columns].notna() & (df[columns].astype(str).apply(lambda s: s.str.strip()) != "")
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise AbawError(f"column {columns[col]!r}: not a number: {df[columns[col]].iloc[row]!r}", path=path,
                        line=int(row) + 2)
    return block.to_numpy(dtype=np.float64)


def c25_kind(path: str | Path) -> str | None:
    """``expression`` / ``valence`` / ``arousal`` from an AffectNetC25 file name (``arousal_set1_C25.csv``)."""
    name = Path(path).name.lower()
    for kind in C25_KINDS:
        if name.startswith(kind):
            return kind
    return None


def read_c25(path: str | Path, kind: str | None = None) -> AnnotatorTable:
    """Read one AffectNetC25 CSV (``index, filename, participant0 … participant24``).

    ``kind`` (expression / valence / arousal) defaults to the one named by the file. Expression codes are
    AffectNetC25's (0 happiness … 6 contempt, 7 neutral); valence and arousal must lie on the 9 levels -1 … 1.
    """
    path = Path(path)
    kind = kind or c25_kind(path)
    if kind not in C25_KINDS:
        raise AbawError(f"cannot tell whether this is expression, valence or arousal; pass kind (one of "
                        f"{', '.join(C25_KINDS)})", path=path)
    df = _read_csv(path)
    participants = [c for c in df.columns if re.fullmatch(rf"{C25_PARTICIPANT_PREFIX}\d+", str(c))]
    if C25_ITEM_COLUMN not in df.columns or not participants:
        raise AbawError(f"not an AffectNetC25 file: needs columns {C25_ITEM_COLUMN!r} and "
                        f"{C25_PARTICIPANT_PREFIX}0, {C25_PARTICIPANT_PREFIX}1, …; found {list(df.columns)[:6]}",
                        path=path)
    participants.sort(key=lambda c: int(str(c)[len(C25_PARTICIPANT_PREFIX):]))
    values = _numeric_block(df, participants, path)
    if kind == "expression":
        _check_codes(values, len(AFFECTNETC25_CLASSES), path)
        return AnnotatorTable(df[C25_ITEM_COLUMN].astype(str).tolist(), participants, values, "class",
                              AFFECTNETC25_CLASSES, str(path))
    levels = np.asarray(AFFECTNETC25_VA_LEVELS)
    seen = ~np.isnan(values)
    off = seen & (np.abs(values[..., None] - levels).min(-1) > 1e-6)
    if off.any():
        row, col = np.argwhere(off)[0]
        raise AbawError(f"{kind} {values[row, col]} of {participants[col]} is not one of the 9 levels -1, -0.75, "
                        f"…, 1", path=path, line=int(row) + 2)
    return AnnotatorTable(df[C25_ITEM_COLUMN].astype(str).tolist(), participants, values, "value", None, str(path))


def _check_codes(values: np.ndarray, n_classes: int | None, path: Path) -> None:
    """Class codes must be integers in 0..n_classes-1 (any non-negative integer when ``n_classes`` is None)."""
    seen = ~np.isnan(values)
    bad = seen & ((values != np.round(values)) | (values < 0))
    if n_classes is not None:
        bad |= seen & (values >= n_classes)
    if bad.any():
        row, _ = np.argwhere(bad)[0]
        allowed = f"an integer in 0..{n_classes - 1}" if n_classes is not None else "a non-negative integer"
        raise AbawError(f"class code {float(values[bad][0]):g} is not {allowed}", path=path, line=int(row) + 2)


def read_annotator_table(path: str | Path, item_column: str | None = None, annotator_columns: list[str] | None = None,
                         kind: str = "class", classes: tuple[str, ...] | None = None) -> AnnotatorTable:
    """Read any table with one row per item and one column per annotator (empty cell = no label).

    ``item_column`` defaults to the first column; ``annotator_columns`` to every other column (an ``index`` /
    unnamed row-number column is skipped). ``kind="class"`` needs integer codes (``classes`` names them).
    """
    path = Path(path)
    df = _read_csv(path)
    item_column = item_column or str(df.columns[0])
    if item_column not in df.columns:
        raise AbawError(f"no item column {item_column!r} (columns: {', '.join(map(str, df.columns))})", path=path)
    if annotator_columns is None:
        annotator_columns = [str(c) for c in df.columns
                             if c != item_column and str(c).lower() != "index" and not str(c).startswith("Unnamed")]
    missing = [c for c in annotator_columns if c not in df.columns]
    if missing or not annotator_columns:
        raise AbawError(f"annotator columns not found: {missing or 'none'}", path=path)
    values = _numeric_block(df, annotator_columns, path)
    if kind == "class":
        _check_codes(values, len(classes) if classes else None, path)
    elif kind != "value":
        raise AbawError(f"kind must be 'class' or 'value', not {kind!r}", path=path)
    return AnnotatorTable(df[item_column].astype(str).tolist(), list(annotator_columns), values, kind, classes,
                          str(path))


def read_cremad_votes(path: str | Path) -> VoteCounts:
    """Read CREMA-D ``tabulatedVotes.csv``: per rating session, the count of votes for each of A, D, F, H, N, S,
    and the published majority ``emoVote`` (tied emotions joined by ``:``, e.g. ``A:D``)."""
    path = Path(path)
    df = _read_csv(path)
    needed = [*CREMAD_CODES, CREMAD_ITEM_COLUMN]
    if any(c not in df.columns for c in needed):
        raise AbawError(f"not a CREMA-D tabulatedVotes file: needs columns {', '.join(needed)}", path=path)
    counts = _numeric_block(df, list(CREMAD_CODES), path)
    if np.isnan(counts).any() or (counts < 0).any() or (counts != np.round(counts)).any():
        row = int(np.argwhere(np.isnan(counts) | (counts < 0) | (counts != np.round(counts)))[0, 0])
        raise AbawError("vote counts must be non-negative integers", path=path, line=row + 2)
    published = df[CREMAD_VOTE_COLUMN].astype(str).tolist() if CREMAD_VOTE_COLUMN in df.columns else None
    first = df.columns[0]
    items = df[CREMAD_ITEM_COLUMN].astype(str).tolist()
    extra = {"session": df[first].astype(str).to_numpy()} if str(first).startswith("Unnamed") else {}
    return VoteCounts(items, counts.astype(np.int64), CREMAD_CLASSES, CREMAD_CODES, published, str(path), extra)


def detect_format(path: str | Path) -> str:
    """``c25``, ``cremad`` or ``table`` from a file's header line."""
    path = Path(path)
    if not path.is_file():
        raise AbawError("no such file", path=path)
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = [h.strip().strip('"') for h in fh.readline().split(",")]
    if C25_ITEM_COLUMN in header and f"{C25_PARTICIPANT_PREFIX}0" in header:
        return "c25"
    if all(c in header for c in (*CREMAD_CODES, CREMAD_ITEM_COLUMN)):
        return "cremad"
    return "table"
