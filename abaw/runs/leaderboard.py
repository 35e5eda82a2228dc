"""Ranked leaderboards from the runs database: a rich table per track in the terminal, JSON, and a static HTML page.

Entries are grouped by (track, protocol, split, dataset fingerprint): runs on different data, or scored with a
different protocol, are never ranked together. Published scores (:mod:`abaw.runs.reference_scores`) are shown in their
own tables, marked as reported on the real data.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table

from abaw.runs import database
from abaw.fileio import write_text
from abaw.runs.reference_scores import ReferenceScore, reference_scores
from abaw.tasks import TRACK_TITLES, TRACKS

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
    refs = reference_scores(track=track, protocol=protocol) if references else []
    return Leaderboard(rank_entries(entries), refs)


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
            comps = ", ".join(f"{k} {v:g}" for k, v in ref.components.items())
            table.add_row(ref.track.upper(), ref.system, ref.setting, _fmt_score(ref.score, 3), comps, ref.note)
        console.print(table)


# ---- HTML ----------------------------------------------------------------------------------------------------------

def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _template(name: str) -> str:
    return resources.files("abaw").joinpath("templates", name).read_text(encoding="utf-8")


def _href(path: Path, base: Path | None) -> str:
    """A link to ``path``: relative to the page's folder when possible, so the page and runs can move together."""
    if base is not None:
        try:
            return quote(os.path.relpath(path, base).replace(os.sep, "/"))
        except ValueError:  # another drive (Windows)
            pass
    return path.resolve().as_uri()


def _plots(run_dir: str, base: Path | None) -> str:
    folder = Path(run_dir) / "plots"
    if not folder.is_dir():
        return ""
    pngs = sorted(folder.glob("*.png"))[:MAX_PLOTS]
    if not pngs:
        return ""
    items = "".join(f'<a class="plot" href="{_esc(_href(p, base))}"><img loading="lazy" alt="{_esc(p.name)}" '
                    f'src="{_esc(_href(p, base))}"><span>{_esc(p.name)}</span></a>' for p in pngs)
    return f'<div class="plots"><h4>Plots</h4>{items}</div>'


def _details(e: database.Entry, base: Path | None) -> str:
    facts = [("run folder", e.run_dir), ("created", e.created), ("git commit", e.git_commit),
             ("config hash", e.config_hash), ("data root", e.data_root), ("dataset fingerprint", e.dataset_fingerprint),
             ("tracks", ", ".join(e.tracks)), ("status", e.status)]
    if e.members:
        facts.append(("members", ", ".join(e.members)))
    dl = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts if v)
    components = json.dumps(e.components, indent=1, sort_keys=True, default=str)
    config = json.dumps(e.config, indent=1, sort_keys=True, default=str)
    return (f'<div class="detail"><div class="facts"><dl>{dl}</dl>'
            f'<h4>Scores and components</h4><pre class="components">{_esc(components)}</pre></div>'
            f'<div class="config"><h4>Config</h4><pre>{_esc(config)}</pre></div>{_plots(e.run_dir, base)}</div>')


def _num_cell(value: Any, text: str, css: str = "num") -> str:
    data = "" if value is None else f"{float(value):.10g}"
    return f'<td class="{css}" data-value="{data}">{_esc(text)}</td>'


def _group_html(group: Group, base: Path | None) -> str:
    components = KEY_COMPONENTS.get(group.track, ())
    head = [("#", "number"), ("run", "text"), ("kind", "text"), ("model", "text"), ("streams", "text"),
            ("score", "number"), *[(c, "number") for c in components], ("params", "number"), ("train s", "number"),
            ("created", "text"), ("details", None)]
    ths = "".join(f'<th data-type="{t}" title="click to sort"{" aria-sort=ascending" if n == "#" else ""}>{_esc(n)}'
                  f'</th>' if t else f"<th>{_esc(n)}</th>" for n, t in head)
    rows = []
    for ranked in group.entries:
        e = ranked.entry
        cells = [_num_cell(ranked.rank, str(ranked.rank)), f'<td class="run">{_esc(e.run_id)}</td>',
                 f"<td>{_esc(e.kind)}</td>", f"<td>{_esc(e.model or '—')}</td>",
                 f"<td>{_esc('+'.join(e.streams) or '—')}</td>",
                 _num_cell(e.score, _fmt_score(e.score), "num score"),
                 *[_num_cell(_numeric(e.components.get(c)), _fmt_score(e.components.get(c))) for c in components],
                 _num_cell(e.n_params, _fmt_params(e.n_params)),
                 _num_cell(e.train_seconds, _fmt_seconds(e.train_seconds)),
                 f'<td class="time" data-value="{_esc(e.created or "")}">{_esc(_fmt_time(e.created))}</td>',
                 '<td><button type="button" class="toggle" aria-expanded="false">details</button></td>']
        # The details row follows its run's row; sorting moves the pair together.
        rows.append(f'<tr data-run="{_esc(e.run_id)}" class="run-row kind-{_esc(e.kind)}">{"".join(cells)}</tr>'
                    f'<tr class="detail-row" hidden><td colspan="{len(head)}">{_details(e, base)}</td></tr>')
    roots = ", ".join(group.data_roots) or "unknown"
    return (f'<section class="group" data-track="{_esc(group.track)}">'
            f"<h2>{_esc(group.title)}</h2>"
            f'<p class="meta">dataset fingerprint <code>{_esc(group.dataset_fingerprint or "unknown")}</code> · '
            f"data root {_esc(roots)} · {len(group.entries)} entries · ranked only against runs on this dataset</p>"
            f'<table class="board" id="board-{_esc(group.key)}" data-track="{_esc(group.track)}">'
            f"<thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


def _numeric(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _references_html(references: list[ReferenceScore]) -> str:
    if not references:
        return ""
    parts = ['<section class="references"><h2>Published scores</h2><p class="meta">Reported in the papers and '
             "challenge reports on the <strong>real Aff-Wild / Aff-Wild2</strong> data (validation or test set as "
             "stated). They are not comparable with runs on other data, such as the synthetic set, and are not "
             "ranked with them.</p>"]
    for track in TRACKS:
        refs = [r for r in references if r.track == track]
        if not refs:
            continue
        head = "".join(f'<th data-type="{t}" title="click to sort">{n}</th>' for n, t in
                       (("system", "text"), ("setting", "text"), ("protocol", "text"), ("score", "number"),
                        ("components", "text"), ("note", "text"), ("data", "text")))
        rows = "".join(
            f'<tr class="reference"><td>{_esc(r.system)}</td><td>{_esc(r.setting)}</td><td>{_esc(r.protocol)}</td>'
            f"{_num_cell(r.score, _fmt_score(r.score, 3))}"
            f"<td>{_esc(', '.join(f'{k} {v:g}' for k, v in r.components.items()))}</td><td>{_esc(r.note)}</td>"
            f'<td><span class="badge">reported · {_esc(r.dataset)}</span></td></tr>' for r in refs)
        parts.append(f'<h3>{_esc(track.upper())} · {_esc(TRACK_TITLES[track])}</h3>'
                     f'<table class="board reference" id="reference-{track}" data-track="{track}">'
                     f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


def render_html(board: Leaderboard, html_path: str | Path | None = None, title: str = "abaw leaderboard") -> str:
    """A self-contained page (inline CSS and JS, no network). Links to plots are relative to ``html_path``'s folder."""
    base = Path(html_path).resolve().parent if html_path is not None else None
    groups = "".join(_group_html(g, base) for g in board.groups) or (
        '<p class="empty">No scored runs recorded yet.</p>')
    nav = "".join(f'<li><a href="#board-{_esc(g.key)}">{_esc(g.title)}</a> ({len(g.entries)})</li>'
                  for g in board.groups)
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    values = {"css": _template("leaderboard.css"), "js": _template("leaderboard.js"), "title": _esc(title),
              "generated": _esc(generated), "nav": nav, "groups": groups,
              "references": _references_html(board.references)}
    # One pass over the template only, so text from configs can never be taken for a placeholder.
    page = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], _template("leaderboard.html"))
    return page


def write_html(board: Leaderboard, path: str | Path, title: str = "abaw leaderboard") -> Path:
    path = Path(path)
    write_text(path, render_html(board, path, title))
    return path
