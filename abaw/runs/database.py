"""The runs database: one SQLite file recording every finished run and its validation scores.

``record_run(run_dir)`` reads a run folder (docs/design.md section 5: ``run.json``, ``config.json``,
``scores.json``, and ``scores_test.json`` when the run's test result files were scored against held-out labels) and
upserts one row per run and one score row per (track, split) it scores. Several processes may record at
once: the database is in WAL mode with a busy timeout, and every write is one ``BEGIN IMMEDIATE`` transaction, so a
killed writer leaves either the whole record or none of it. ``query_entries`` is the read side used by the
leaderboard. The ``config_hash`` column is :func:`abaw.runs.info.config_hash` of the run's ``config.json``, for every
run kind; ``group_hash`` is the same without the seed (:func:`abaw.runs.seeds.group_hash`), which groups the seeds of
one config, and ``seed`` the seed itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abaw.errors import AbawError
from abaw.runs.choices import DB_ENV, DEFAULT_DB
from abaw.runs.info import config_hash, float_or_none, now, read_json, read_run_info
from abaw.runs.seeds import config_seed, group_hash

BUSY_TIMEOUT_SECONDS = 60.0
SCHEMA_VERSION = 2
#: The held-out split whose scores the leaderboard shows next to the validation score, and the run folder's file of
#: them (written by ``abaw score --split test --labels DIR --run RUN_DIR``; the shape of ``scores.json``).
TEST_SPLIT = "test"
SPLIT_SCORE_FILES: dict[str, str] = {TEST_SPLIT: "scores_test.json"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created TEXT,
    recorded TEXT NOT NULL,
    git_commit TEXT,
    config_json TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    data_root TEXT,
    dataset_fingerprint TEXT,
    protocol TEXT,
    tracks TEXT NOT NULL,
    streams TEXT NOT NULL,
    model TEXT,
    n_params INTEGER,
    train_seconds REAL,
    status TEXT,
    members TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    seed INTEGER,
    group_hash TEXT,
    fit_uses_validation INTEGER
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    track TEXT NOT NULL,
    split TEXT NOT NULL,
    protocol TEXT,
    score REAL,
    components TEXT NOT NULL,
    PRIMARY KEY (run_id, track, split)
);
CREATE INDEX IF NOT EXISTS scores_by_track ON scores(track, protocol, split);
"""
#: Columns added after schema version 1, with their SQL type: a version 1 database gets them on its first write, and
#: a reader of one sees them as NULL.
_ADDED_COLUMNS: dict[str, str] = {"seed": "INTEGER", "group_hash": "TEXT", "fit_uses_validation": "INTEGER"}

#: Columns holding JSON text, decoded in an Entry.
_JSON_COLUMNS: tuple[str, ...] = ("components", "config_json", "tracks", "streams", "members")


@dataclass
class Entry:
    """One ranked leaderboard entry: a run's score on one track and split (validation by default), with its score
    on the held-out test split when that was scored (``test_score``, ``test_components``)."""

    run_id: str
    track: str
    split: str
    protocol: str | None
    score: float | None
    components: dict[str, Any]
    kind: str
    created: str | None
    git_commit: str | None
    config: dict[str, Any]
    config_hash: str
    data_root: str | None
    dataset_fingerprint: str | None
    tracks: list[str]
    streams: list[str]
    model: str | None
    n_params: int | None
    train_seconds: float | None
    status: str | None
    members: list[str] = field(default_factory=list)
    run_dir: str = ""
    seed: int | None = None
    group_hash: str | None = None
    #: True when the run's post-hoc fit (temporal, ensemble) used validation videos; None when run.json does not say.
    fit_uses_validation: bool | None = None
    test_score: float | None = None
    test_components: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_db_path() -> Path:
    """``$ABAW_DB`` if set, else ``runs/abaw.sqlite`` in the current directory."""
    env = os.environ.get(DB_ENV)
    return Path(env) if env else DEFAULT_DB


def _resolve(db_path: str | Path | None) -> Path:
    return Path(db_path) if db_path is not None else default_db_path()


def read_only_uri(path: Path, immutable: bool = False) -> str:
    """SQLite's URI for opening ``path`` read-only (``mode=ro``): nothing is written, not even the journal mode.
    ``immutable``: also without the WAL index (``-shm``), for a folder where it cannot be created."""
    return f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open read-only. A WAL database needs its ``-shm`` index, which a read-only folder cannot hold: there (where no
    one can be writing) it is opened as immutable."""
    conn = sqlite3.connect(read_only_uri(path), uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if "readonly" not in str(exc) and "unable to open" not in str(exc):
            raise
    return sqlite3.connect(read_only_uri(path, immutable=True), uri=True, timeout=BUSY_TIMEOUT_SECONDS,
                           isolation_level=None)


#: Where ``abaw demo`` puts its database by default (``abaw demo --out abaw-demo``: ``<out>/abaw.sqlite``).
DEMO_DBS: tuple[Path, ...] = (Path("abaw-demo") / "abaw.sqlite",)


def _missing_message(path: Path, db_path: str | Path | None) -> str:
    """No database at ``path``: say so, and name the demo's database when the default one is missing but it exists."""
    message = "no runs database here (record a run first, or pass --db / set ABAW_DB)"
    if db_path is None and not os.environ.get(DB_ENV):
        demo = next((d for d in DEMO_DBS if d.is_file()), None)
        if demo is not None:
            message = (f"no runs database here; the demo's is at {demo}: abaw leaderboard --db {demo} "
                       f"(or set {DB_ENV}={demo})")
    return message


@contextlib.contextmanager
def connect(db_path: str | Path | None = None, create: bool = True) -> Iterator[sqlite3.Connection]:
    """Open the database (creating it and its schema when ``create``); the connection is closed on exit."""
    path = _resolve(db_path)
    if not create and not path.is_file():
        raise AbawError(_missing_message(path, db_path), path=path)
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a write is exactly one transaction.
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        else:  # a reader opens read-only: a database in a read-only folder (or owned by another user) is readable
            conn = _connect_read_only(path)
    except sqlite3.Error as exc:
        raise AbawError(f"cannot open the runs database: {exc}", path=path) from exc
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        if create:  # the journal mode is stored in the file: only a writer sets it
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if create and conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            with _transaction(conn):
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                present = _columns(conn, "runs")
                for column, kind in _ADDED_COLUMNS.items():  # a version 1 database
                    if column not in present:
                        conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        yield conn
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc) or "no such column" in str(exc):
            raise AbawError(f"not an abaw runs database ({exc})", path=path) from exc
        raise AbawError(f"runs database error: {exc}", path=path) from exc
    finally:
        conn.close()


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


ScoreRow = tuple[str, str, str | None, float | None, str]


def _score_rows(path: Path, default_split: str, protocol: str | None) -> list[ScoreRow]:
    """The ``scores`` rows of one scores file (``scores.json`` or ``scores_<split>.json``); none when it is absent."""
    scores = (read_json(path) if path.is_file() else None) or {}
    if not isinstance(scores, dict):
        raise AbawError(f"{path.name} must hold a JSON object", path=path)
    split = str(scores.get("split") or default_split)
    tracks = scores.get("tracks") or {}
    if not isinstance(tracks, dict):
        raise AbawError(f"{path.name}: 'tracks' must map each track to its scores", path=path)
    rows = []
    for track, result in tracks.items():
        if not isinstance(result, dict):
            raise AbawError(f"{path.name}: track {track!r} must hold a JSON object", path=path)
        components = {k: v for k, v in result.items() if k != "score"}
        rows.append((str(track), split, scores.get("protocol") or protocol, float_or_none(result.get("score")),
                     json.dumps(components, sort_keys=True, default=str)))
    return rows


def _fit_uses_validation(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _run_row(run_dir: Path) -> tuple[dict[str, Any], list[ScoreRow]]:
    """Read a run folder into the ``runs`` row and its ``scores`` rows (validation, then the held-out splits)."""
    info = read_run_info(run_dir)
    config_path, scores_path = run_dir / "config.json", run_dir / "scores.json"
    config = read_json(config_path) if config_path.is_file() else {}
    scores = (read_json(scores_path) if scores_path.is_file() else None) or {}
    if not isinstance(scores, dict):
        raise AbawError("scores.json must hold a JSON object", path=scores_path)
    protocol = info.protocol or scores.get("protocol")
    row = {
        "run_id": info.run_id,
        "kind": info.kind,
        "created": info.created,
        "recorded": now(),
        "git_commit": info.git_commit,
        "config_json": json.dumps(config, sort_keys=True, default=str),
        # the hash of config.json, so the column means the same for every run kind and every run folder's age
        "config_hash": config_hash(config) if config_path.is_file() else (info.config_hash or config_hash({})),
        "data_root": info.data_root,
        "dataset_fingerprint": info.dataset_fingerprint,
        "protocol": protocol,
        "tracks": json.dumps(info.tracks),
        "streams": json.dumps(info.streams),
        "model": info.model,
        "n_params": info.n_params,
        "train_seconds": info.train_seconds,
        "status": info.status,
        "members": json.dumps(info.members or []),
        "run_dir": str(run_dir.resolve()),
        "seed": config_seed(config),
        "group_hash": None,
        "fit_uses_validation": _fit_uses_validation(info.extra.get("fit_uses_validation")),
    }
    row["group_hash"] = group_hash(config) if config_path.is_file() else row["config_hash"]
    score_rows = _score_rows(scores_path, "validation", protocol)
    for split, name in SPLIT_SCORE_FILES.items():
        seen = {(r[0], r[1]) for r in score_rows}
        # a file saying another split, or a track scores.json already holds for it, does not shadow those rows
        score_rows += [r for r in _score_rows(run_dir / name, split, protocol) if r[1] == split and r[:2] not in seen]
    return row, score_rows


def record_run(run_dir: str | Path, db_path: str | Path | None = None) -> str:
    """Record (insert or replace) the run in ``run_dir``; returns its run id."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AbawError("not a run folder", path=run_dir)
    row, score_rows = _run_row(run_dir)
    columns = list(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "run_id")
    sql = (f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
           f"ON CONFLICT(run_id) DO UPDATE SET {updates}")
    with connect(db_path) as conn, _transaction(conn):
        conn.execute(sql, [row[c] for c in columns])
        conn.execute("DELETE FROM scores WHERE run_id = ?", (row["run_id"],))
        conn.executemany("INSERT INTO scores (run_id, track, split, protocol, score, components) "
                         "VALUES (?, ?, ?, ?, ?, ?)", [(row["run_id"], *s) for s in score_rows])
    return row["run_id"]


def record_runs(run_dirs: Iterable[str | Path], db_path: str | Path | None = None) -> list[str]:
    return [record_run(d, db_path) for d in run_dirs]


def delete_run(run_id: str, db_path: str | Path | None = None) -> bool:
    """Remove a run and its scores; True if it was there."""
    with connect(db_path) as conn, _transaction(conn):
        cursor = conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
    return cursor.rowcount > 0


def query_entries(db_path: str | Path | None = None, track: str | None = None, protocol: str | None = None,
                  dataset: str | None = None, split: str | None = "validation") -> list[Entry]:
    """All scored (run, track) entries matching the filters, unranked.

    ``dataset`` matches a fingerprint prefix or the data root exactly.
    """
    where, params = [], []
    if track is not None:
        where.append("s.track = ?")
        params.append(track)
    if protocol is not None:
        where.append("s.protocol = ?")
        params.append(protocol)
    if split is not None:
        where.append("s.split = ?")
        params.append(split)
    if dataset is not None:
        where.append("(r.dataset_fingerprint LIKE ? ESCAPE '\\' OR r.data_root = ?)")
        params += [dataset.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", dataset]
    with connect(db_path, create=False) as conn:
        present = _columns(conn, "runs")
        # a version 1 database (read-only here, so not migrated) has NULL for the later columns
        added = ", ".join(f"r.{c}" if c in present else f"NULL AS {c}" for c in _ADDED_COLUMNS)
        test = split != TEST_SPLIT  # the held-out split's score of the same run and track, when it was scored
        sql = ("SELECT s.run_id, s.track, s.split, s.protocol, s.score, s.components, r.kind, r.created, "
               "r.git_commit, r.config_json, r.config_hash, r.data_root, r.dataset_fingerprint, r.tracks, r.streams, "
               f"r.model, r.n_params, r.train_seconds, r.status, r.members, r.run_dir, {added}, "
               + ("t.score AS test_score, t.components AS test_components " if test else
                  "NULL AS test_score, NULL AS test_components ")
               + "FROM scores s JOIN runs r ON r.run_id = s.run_id"
               + (" LEFT JOIN scores t ON t.run_id = s.run_id AND t.track = s.track AND t.split = ?" if test else ""))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY s.track, s.run_id"
        rows = conn.execute(sql, ([TEST_SPLIT] if test else []) + params).fetchall()
    return [_entry(row) for row in rows]


def _entry(row: sqlite3.Row) -> Entry:
    values = dict(row)
    for column in _JSON_COLUMNS:
        values[column] = json.loads(values[column])
    values["config"] = values.pop("config_json")
    if values["test_components"] is not None:
        values["test_components"] = json.loads(values["test_components"])
    if values["fit_uses_validation"] is not None:
        values["fit_uses_validation"] = bool(values["fit_uses_validation"])
    return Entry(**values)


def count_runs(db_path: str | Path | None = None) -> int:
    with connect(db_path, create=False) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def check_integrity(db_path: str | Path | None = None) -> str:
    """SQLite's own integrity check: ``'ok'`` for a sound database."""
    with connect(db_path, create=False) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
