"""Ranked leaderboards from the runs database: a rich table per track in the terminal, JSON, and a static HTML page.

Entries are grouped by (track, protocol, split, dataset fingerprint): runs on different data, or scored with a
different protocol, are never ranked together. Published scores (:mod:`abaw.runs.reference_scores`) are shown in their
own tables, marked as reported on the real data.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from rich.console import Console
from rich.table import Table

from abaw.fileio import write_text
from abaw.runs import database
from abaw.runs.folder import UNFINISHED
from abaw.runs.reference_scores import ReferenceScore, reference_scores
from abaw.tasks import TRACK_TITLES, TRACKS

log = logging.getLogger(__name__)

#: The components shown as columns, per track (all components are in the details and the JSON).
KEY_COMPONENTS: dict[str, tuple[str, ...]] = {
    "va": ("ccc_valence", "ccc_arousal"),
    "expr": ("f1", "accuracy"),
    "au": ("f1", "accuracy"),
}
#: Runs per table shown in the terminal by default (rich renders a few ms per row; the HTML page holds them all).
TERMINAL_TOP = 25
#: Most plots shown per run in the HTML details (a run folder may hold many).
MAX_PLOTS = 12


@dataclass
class RankedEntry:
    rank: int
    entry: database.Entry


@dataclass
class Group:
    """The runs ranked together: one track, protocol, split and dataset."""

    track: str
    protocol: str | None
    split: str
    dataset_fingerprint: str | None
    data_roots: list[str]
    entries: list[RankedEntry] = field(default_factory=list)

    @property
    def key(self) -> str:
        """A stable identifier (also the HTML table id)."""
        fingerprint = (self.dataset_fingerprint or "unknown")[:12]
        return f"{self.track}-{self.protocol or 'none'}-{self.split}-{fingerprint}"

    @property
    def title(self) -> str:
        return (f"{self.track.upper()} · {TRACK_TITLES.get(self.track, self.track)} · protocol {self.protocol} · "
                f"{self.split} · dataset {_short(self.dataset_fingerprint)}")


@dataclass
class Leaderboard:
    groups: list[Group]
    references: list[ReferenceScore]
    #: Run ids left out because their recorded status is still ``running`` (unfinished or killed).
    skipped: list[str] = field(default_factory=list)


def _short(fingerprint: str | None) -> str:
    return (fingerprint or "unknown")[:12]


def _track_order(track: str) -> int:
    return TRACKS.index(track) if track in TRACKS else len(TRACKS)


def rank_entries(entries: Iterable[database.Entry]) -> list[Group]:
    """Group entries by (track, protocol, split, dataset) and rank each group by score, best first.

    Equal scores share a rank (1, 1, 3); runs without a score come last. Ties are listed by creation time, then id,
    so the order is deterministic.
    """
    buckets: dict[tuple[str, str | None, str, str], list[database.Entry]] = {}
    for entry in entries:
        # A run without a fingerprint can only be compared with runs on the very same data root.
        dataset = entry.dataset_fingerprint or f"root:{entry.data_root}"
        buckets.setdefault((entry.track, entry.protocol, entry.split, dataset), []).append(entry)
    groups = []
    for (track, protocol, split, _), members in buckets.items():
        members.sort(key=lambda e: (e.score is None, -(e.score or 0.0), e.created or "", e.run_id))
        ranked, previous, rank = [], None, 0
        for position, entry in enumerate(members, start=1):
            if entry.score is None or entry.score != previous:
                rank = position
            previous = entry.score
            ranked.append(RankedEntry(rank, entry))
        roots = sorted({e.data_root for e in members if e.data_root})
        groups.append(Group(track, protocol, split, members[0].dataset_fingerprint, roots, ranked))
    groups.sort(key=lambda g: (_track_order(g.track), g.protocol or "", g.split, -len(g.entries),
                               g.dataset_fingerprint or ""))
    return groups


def load_leaderboard(db_path: str | Path | None = None, track: str | None = None, protocol: str | None = None,
                     dataset: str | None = None, split: str | None = "validation",
                     references: bool = True) -> Leaderboard:
    """Read, filter and rank the database; add the published reference rows (filtered by track and protocol)."""
    entries = database.query_entries(db_path, track=track, protocol=protocol, dataset=dataset, split=split)
    unfinished = sorted({e.run_id for e in entries if e.status == UNFINISHED})
    if unfinished:  # recorded while still running (or killed): not ranked
        log.debug("leaderboard: skipped unfinished runs %s", ", ".join(unfinished))
        entries = [e for e in entries if e.status != UNFINISHED]
    refs = reference_scores(track=track, protocol=protocol) if references else []
    return Leaderboard(rank_entries(entries), refs, unfinished)


def skipped_note(board: Leaderboard) -> str | None:
    """One line naming the unfinished runs the board leaves out (None when there are none)."""
    if not board.skipped:
        return None
    return (f"skipped {len(board.skipped)} unfinished run(s) (status {UNFINISHED}): {', '.join(board.skipped)}")


# ---- formatting helpers --------------------------------------------------------------------------------------------

def _fmt_score(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    try:
        return f"{round(float(value), digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0
    except (TypeError, ValueError):
        return str(value)


def _fmt_params(n: int | None) -> str:
    if n is None:
        return "—"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _fmt_time(iso: str | None) -> str:
    """``2026-11-22T03:37:43+00:00`` -> ``2026-11-22 03:37``."""
    return "" if not iso else iso[:16].replace("T", " ")


def _fmt_seconds(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f}"


def _fmt_components(components: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in components.items())


def _entry_json(ranked: RankedEntry) -> dict[str, Any]:
    out = ranked.entry.as_dict()
    out["rank"] = ranked.rank
    return out


def to_json(board: Leaderboard) -> dict[str, Any]:
    """Everything the tables show and more, as plain JSON."""
    return {
        "groups": [{"track": g.track, "protocol": g.protocol, "split": g.split,
                    "dataset_fingerprint": g.dataset_fingerprint, "data_roots": g.data_roots,
                    "entries": [_entry_json(r) for r in g.entries]} for g in board.groups],
        "references": [r.as_dict() for r in board.references],
    }


# ---- terminal ------------------------------------------------------------------------------------------------------

def make_console() -> Console:
    """A console for the tables: the terminal's width, or 160 columns when the output is a file or pipe."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def render_terminal(board: Leaderboard, console: Console | None = None, top: int | None = None) -> None:
    """Print one rich table per group, then the published reference rows."""
    console = console or make_console()
    if not board.groups:
        console.print("No scored runs recorded yet (train, evaluate or run `abaw demo` first).")
    for group in board.groups:
        components = KEY_COMPONENTS.get(group.track, ())
        table = Table(title=group.title, caption=f"data root: {', '.join(group.data_roots) or 'unknown'}",
                      title_justify="left", caption_justify="left")
        table.add_column("#", justify="right")
        table.add_column("run")
        table.add_column("kind")
        table.add_column("model")
        table.add_column("streams")
        table.add_column("score", justify="right", style="bold")
        for name in components:
            table.add_column(name, justify="right")
        table.add_column("params", justify="right")
        table.add_column("train s", justify="right")
        shown = group.entries if top is None else group.entries[:top]
        for ranked in shown:
            e = ranked.entry
            table.add_row(str(ranked.rank), e.run_id, e.kind, e.model or "—", "+".join(e.streams) or "—",
                          _fmt_score(e.score), *[_fmt_score(e.components.get(c)) for c in components],
                          _fmt_params(e.n_params), _fmt_seconds(e.train_seconds))
        if top is not None and len(group.entries) > top:
            table.add_row("…", f"{len(group.entries) - top} more (--top 0 shows all)",
                          *[""] * (len(table.columns) - 2))
        console.print(table)
    if board.references:
        table = Table(title="Published scores: reported on the real Aff-Wild / Aff-Wild2, not ranked with the runs "
                            "above", title_justify="left")
        for name in ("track", "system", "setting", "score", "components", "note"):
            table.add_column(name, justify="right" if name == "score" else "left")
        for ref in board.references:
            table.add_row(ref.track.upper(), ref.system, ref.setting, _fmt_score(ref.score, 3),
                          _fmt_components(ref.components), ref.note)
        console.print(table)


# ---- HTML ----------------------------------------------------------------------------------------------------------

def _href(path: Path, base: Path | None) -> str:
    """A link to ``path``: relative to the page's folder when possible, so the page and runs can move together."""
    if base is not None:
        try:
            return quote(os.path.relpath(path, base).replace(os.sep, "/"))
        except ValueError:  # another drive (Windows)
            pass
    return path.resolve().as_uri()


def _plots(run_dir: str, base: Path | None) -> list[tuple[str, str]]:
    """``(link, file name)`` of the run's first plots."""
    folder = Path(run_dir) / "plots"
    pngs = sorted(folder.glob("*.png"))[:MAX_PLOTS] if folder.is_dir() else []
    return [(_href(p, base), p.name) for p in pngs]


def _facts(e: database.Entry) -> list[tuple[str, Any]]:
    facts = [("run folder", e.run_dir), ("created", e.created), ("git commit", e.git_commit),
             ("config hash", e.config_hash), ("data root", e.data_root), ("dataset fingerprint", e.dataset_fingerprint),
             ("tracks", ", ".join(e.tracks)), ("status", e.status)]
    if e.members:
        facts.append(("members", ", ".join(e.members)))
    return [(k, v) for k, v in facts if v]


def _group_head(track: str) -> list[tuple[str, str | None]]:
    """The columns of a group's table and their sort type (None: not sortable)."""
    return [("#", "number"), ("run", "text"), ("kind", "text"), ("model", "text"), ("streams", "text"),
            ("score", "number"), *[(c, "number") for c in KEY_COMPONENTS.get(track, ())], ("params", "number"),
            ("train s", "number"), ("created", "text"), ("details", None)]


def _numeric(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _data_value(value: Any) -> str:
    """A numeric cell's sort key (empty when it has no number)."""
    return "" if value is None else f"{float(value):.10g}"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("abaw", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        score=_fmt_score, params=_fmt_params, seconds=_fmt_seconds, time=_fmt_time, numeric=_numeric,
        data_value=_data_value, pretty=lambda obj: json.dumps(obj, indent=1, sort_keys=True, default=str),
        components=_fmt_components)
    env.globals.update(facts=_facts, group_head=_group_head, key_components=KEY_COMPONENTS, tracks=TRACKS,
                       track_titles=TRACK_TITLES)
    return env


def render_html(board: Leaderboard, html_path: str | Path | None = None, title: str = "abaw leaderboard") -> str:
    """A self-contained page (inline CSS and JS, no network). Links to plots are relative to ``html_path``'s folder."""
    base = Path(html_path).resolve().parent if html_path is not None else None
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return _environment().get_template("leaderboard.html").render(
        title=title, generated=generated, groups=board.groups, references=board.references,
        plots=lambda run_dir: _plots(run_dir, base))


def write_html(board: Leaderboard, path: str | Path, title: str = "abaw leaderboard") -> Path:
    path = Path(path)
    write_text(path, render_html(board, path, title))
    return path
