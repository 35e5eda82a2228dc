"""Ranked leaderboards from the runs database: a rich table per track in the terminal, JSON, and a static HTML page.

Entries are grouped by (track, protocol, split, dataset fingerprint): runs on different data, or scored with a
different protocol, are never ranked together. Within a group, the runs of one config that differ only in their seed
(:func:`abaw.runs.seeds.group_hash`) form one row, ranked by their mean score with a t-based 95 % confidence interval
of the mean (sample std, n - 1 degrees of freedom); a config with one run is marked *single seed*. Next to the
validation score stands the held-out test score where the run's test result files were scored against labels
(``scores_test.json``), so that overfitting to the validation videos shows; a run whose post-hoc fit used validation
videos (run.json ``fit_uses_validation``) is marked. Published scores (:mod:`abaw.runs.reference_scores`) are shown in
their own tables, marked as reported on the real data.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import math
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
from abaw.runs.seeds import group_hash
from abaw.tasks import TRACK_TITLES, TRACKS

log = logging.getLogger(__name__)

#: The components shown as columns, per track (all components are in the details and the JSON).
KEY_COMPONENTS: dict[str, tuple[str, ...]] = {
    "va": ("ccc_valence", "ccc_arousal"),
    "expr": ("f1", "accuracy"),
    "au": ("f1", "accuracy"),
}
#: Most plots shown per run in the HTML details (a run folder may hold many).
MAX_PLOTS = 12


#: How the interval around a config's mean score is computed (said in the JSON and on the page).
INTERVAL = "t-based 95% confidence interval of the mean over seeds (sample std, n-1 degrees of freedom)"
#: Marker texts (terminal notes, HTML badges).
SINGLE_SEED = "single seed"
FIT_ON_VALIDATION = "fit used validation videos"


@dataclass
class RankedEntry:
    rank: int
    entry: database.Entry


@dataclass(frozen=True)
class Stat:
    """A score over the seeds of one config: how many, their mean, sample std and the 95 % CI half-width."""

    n: int
    mean: float | None = None
    std: float | None = None
    ci95: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def t_quantile(n: int, level: float = 0.95) -> float:
    """Student's t quantile for a two-sided ``level`` interval from ``n`` values (n - 1 degrees of freedom)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, n - 1))


def summarize(values: Iterable[float | None]) -> Stat:
    """Mean, sample std and t-based 95 % CI half-width of the numbers in ``values`` (None values are left out)."""
    numbers = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(numbers)
    if n == 0:
        return Stat(0)
    mean = sum(numbers) / n
    if n == 1:
        return Stat(1, mean)
    std = math.sqrt(sum((x - mean) ** 2 for x in numbers) / (n - 1))
    return Stat(n, mean, std, t_quantile(n) * std / math.sqrt(n))


@dataclass
class ConfigEntry:
    """One config's runs (its seeds) on one track: ranked by the mean validation score."""

    rank: int
    group_hash: str
    runs: list[database.Entry]  # best validation score first
    score: Stat
    test: Stat
    components: dict[str, float]  # the mean of each numeric component over the runs
    name_shared: bool = False  # another config of the table has the same name: the name shows the hash too

    @property
    def best(self) -> database.Entry:
        return self.runs[0]

    @property
    def single_seed(self) -> bool:
        return len(self.runs) == 1

    @property
    def seeds(self) -> list[int | None]:
        return [e.seed for e in self.runs]

    @property
    def name(self) -> str:
        """The run id of a single run; else the config's name and the number of runs."""
        if self.single_seed:
            return self.best.run_id
        name = self.best.config.get("name") if isinstance(self.best.config, dict) else None
        tag = f" {self.group_hash[:6]}" if self.name_shared or not name else ""
        return f"{name or ''}{tag} ({len(self.runs)} runs)".lstrip()

    @property
    def fit_uses_validation(self) -> bool:
        return any(e.fit_uses_validation for e in self.runs)

    @property
    def notes(self) -> list[str]:
        return [text for text, on in ((SINGLE_SEED, self.single_seed),
                                      (FIT_ON_VALIDATION, self.fit_uses_validation)) if on]

    @property
    def train_seconds(self) -> float | None:
        return summarize(e.train_seconds for e in self.runs).mean


@dataclass
class Group:
    """The runs ranked together: one track, protocol, split and dataset."""

    track: str
    protocol: str | None
    split: str
    dataset_fingerprint: str | None
    data_roots: list[str]
    entries: list[RankedEntry] = field(default_factory=list)  # every run, ranked by its own score
    configs: list[ConfigEntry] = field(default_factory=list)  # the runs grouped by config across seeds

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


def _ranks(scores: list[float | None]) -> list[int]:
    """Competition ranks of scores sorted best first: equal scores share a rank (1, 1, 3)."""
    ranks, previous, rank = [], None, 0
    for position, score in enumerate(scores, start=1):
        if score is None or score != previous:
            rank = position
        previous = score
        ranks.append(rank)
    return ranks


def _seed_key(entry: database.Entry) -> tuple[str, str, str | None, tuple[str, ...]]:
    """Runs with this key are one config over seeds (kind, model and streams guard against a hash-less config)."""
    return (entry.group_hash or group_hash(entry.config), entry.kind, entry.model, tuple(entry.streams))


def _mean_components(runs: list[database.Entry]) -> dict[str, float]:
    names = [k for k, v in runs[0].components.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    means = {name: summarize(e.components.get(name) for e in runs).mean for name in names}
    return {k: v for k, v in means.items() if v is not None}


def rank_configs(members: list[database.Entry]) -> list[ConfigEntry]:
    """Group one table's runs by config across seeds and rank the configs by their mean score, best first.

    ``members`` are sorted best first (as :func:`rank_entries` sorts them), so each config's runs are too.
    """
    buckets: dict[tuple[str, str, str | None, tuple[str, ...]], list[database.Entry]] = {}
    for entry in members:
        buckets.setdefault(_seed_key(entry), []).append(entry)
    configs = [ConfigEntry(0, key[0], runs, summarize(e.score for e in runs), summarize(e.test_score for e in runs),
                           _mean_components(runs)) for key, runs in buckets.items()]
    configs.sort(key=lambda c: (c.score.mean is None, -(c.score.mean or 0.0), c.best.created or "", c.group_hash))
    for config, rank in zip(configs, _ranks([c.score.mean for c in configs]), strict=True):
        config.rank = rank
    names = [c.best.config.get("name") if isinstance(c.best.config, dict) else None for c in configs]
    for config, name in zip(configs, names, strict=True):
        config.name_shared = name is not None and names.count(name) > 1
    return configs


def rank_entries(entries: Iterable[database.Entry]) -> list[Group]:
    """Group entries by (track, protocol, split, dataset) and rank each group by score, best first.

    Equal scores share a rank (1, 1, 3); runs without a score come last. Ties are listed by creation time, then id,
    so the order is deterministic. Each group also ranks its configs across seeds (:func:`rank_configs`).
    """
    buckets: dict[tuple[str, str | None, str, str], list[database.Entry]] = {}
    for entry in entries:
        # A run without a fingerprint can only be compared with runs on the very same data root.
        dataset = entry.dataset_fingerprint or f"root:{entry.data_root}"
        buckets.setdefault((entry.track, entry.protocol, entry.split, dataset), []).append(entry)
    groups = []
    for (track, protocol, split, _), members in buckets.items():
        members.sort(key=lambda e: (e.score is None, -(e.score or 0.0), e.created or "", e.run_id))
        ranked = [RankedEntry(rank, e) for rank, e in zip(_ranks([e.score for e in members]), members, strict=True)]
        roots = sorted({e.data_root for e in members if e.data_root})
        groups.append(Group(track, protocol, split, members[0].dataset_fingerprint, roots, ranked,
                            rank_configs(members)))
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


def _fmt_interval(stat: Stat, digits: int = 4) -> str:
    """``0.5123 ± 0.0210`` (the CI half-width), or the value alone for one run, or ``—``."""
    if stat.mean is None:
        return "—"
    return _fmt_score(stat.mean, digits) + ("" if stat.ci95 is None else f" ± {_fmt_score(stat.ci95, digits)}")


def _fmt_test(config: ConfigEntry) -> str:
    """The test score's mean ± CI, with how many runs were scored when not all of them."""
    text = _fmt_interval(config.test)
    if 0 < config.test.n < len(config.runs):
        text += f" ({config.test.n} of {len(config.runs)})"
    return text


def _entry_json(ranked: RankedEntry) -> dict[str, Any]:
    out = ranked.entry.as_dict()
    out["rank"] = ranked.rank
    return out


def _config_json(config: ConfigEntry) -> dict[str, Any]:
    best = config.best
    return {"rank": config.rank, "name": config.name, "group_hash": config.group_hash, "kind": best.kind,
            "model": best.model, "streams": best.streams, "n_runs": len(config.runs), "seeds": config.seeds,
            "single_seed": config.single_seed, "score": config.score.as_dict(),
            "test": config.test.as_dict() if config.test.n else None, "components": config.components,
            "fit_uses_validation": config.fit_uses_validation, "notes": config.notes,
            "runs": [{"run_id": e.run_id, "seed": e.seed, "score": e.score, "test_score": e.test_score,
                      "config_hash": e.config_hash, "run_dir": e.run_dir} for e in config.runs]}


def to_json(board: Leaderboard) -> dict[str, Any]:
    """Everything the tables show and more, as plain JSON: per group, the configs over seeds (``configs``, as the
    tables show them) and every run on its own (``entries``)."""
    return {
        "interval": INTERVAL,
        "groups": [{"track": g.track, "protocol": g.protocol, "split": g.split,
                    "dataset_fingerprint": g.dataset_fingerprint, "data_roots": g.data_roots,
                    "configs": [_config_json(c) for c in g.configs],
                    "entries": [_entry_json(r) for r in g.entries]} for g in board.groups],
        "references": [r.as_dict() for r in board.references],
    }


# ---- terminal ------------------------------------------------------------------------------------------------------

def make_console() -> Console:
    """A console for the tables: the terminal's width, or 160 columns when the output is a file or pipe."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def render_terminal(board: Leaderboard, console: Console | None = None, top: int | None = None) -> None:
    """Print one rich table per group (a row per config, its seeds pooled), then the published reference rows."""
    console = console or make_console()
    if not board.groups:
        console.print("No scored runs recorded yet (train, evaluate or run `abaw demo` first).")
    for group in board.groups:
        components = KEY_COMPONENTS.get(group.track, ())
        caption = (f"data root: {', '.join(group.data_roots) or 'unknown'} · score: the mean over a config's seeds; "
                   f"± 95% CI: {INTERVAL}; test: the held-out test split, where scored")
        table = Table(title=group.title, caption=caption, title_justify="left", caption_justify="left")
        table.add_column("#", justify="right")
        table.add_column("run")
        table.add_column("kind")
        table.add_column("model")
        table.add_column("streams")
        table.add_column("score", justify="right", style="bold")
        table.add_column("± 95% CI", justify="right")
        table.add_column("seeds", justify="right")
        table.add_column("test", justify="right")
        for name in components:
            table.add_column(name, justify="right")
        table.add_column("params", justify="right")
        table.add_column("train s", justify="right")
        table.add_column("notes")
        shown = group.configs if top is None else group.configs[:top]
        for config in shown:
            e = config.best
            table.add_row(str(config.rank), config.name, e.kind, e.model or "—", "+".join(e.streams) or "—",
                          _fmt_score(config.score.mean), _fmt_score(config.score.ci95), str(len(config.runs)),
                          _fmt_test(config), *[_fmt_score(config.components.get(c)) for c in components],
                          _fmt_params(e.n_params), _fmt_seconds(config.train_seconds), ", ".join(config.notes))
        if top is not None and len(group.configs) > top:
            table.add_row("…", f"{len(group.configs) - top} more (--top 0 shows all)",
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
            ("score", "number"), ("± 95% CI", "number"), ("seeds", "number"), ("test", "number"),
            *[(c, "number") for c in KEY_COMPONENTS.get(track, ())], ("params", "number"), ("train s", "number"),
            ("created", "text"), ("notes", "text"), ("details", None)]


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
        data_value=_data_value, interval=_fmt_interval, test=_fmt_test,
        pretty=lambda obj: json.dumps(obj, indent=1, sort_keys=True, default=str),
        components=_fmt_components)
    env.globals.update(facts=_facts, group_head=_group_head, key_components=KEY_COMPONENTS, tracks=TRACKS,
                       track_titles=TRACK_TITLES, interval_text=INTERVAL)
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
