"""The runs database: one SQLite file recording every finished run and its validation scores.

``record_run(run_dir)`` reads a run folder (docs/design.md section 5: ``run.json``, ``config.json``,
``scores.json``) and upserts one row per run and one score row per track it scores. Several processes may record at
once: the database is in WAL mode with a busy timeout, and every write is one ``BEGIN IMMEDIATE`` transaction, so a
killed writer leaves either the whole record or none of it. ``query_entries`` is the read side used by the
leaderboard.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abaw.errors import AbawError

DEFAULT_DB = Path("runs") / "abaw.sqlite"
DB_ENV = "ABAW_DB"
BUSY_TIMEOUT_SECONDS = 60.0
SCHEMA_VERSION = 1

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
    run_dir TEXT NOT NULL
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

RUN_KINDS: tuple[str, ...] = ("train", "temporal", "ensemble", "baseline")


@dataclass
class Entry:
    """One ranked leaderboard entry: a run's validation score on one track."""

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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_db_path() -> Path:
    """``$ABAW_DB`` if set, else ``runs/abaw.sqlite`` in the current directory."""
    env = os.environ.get(DB_ENV)
    return Path(env) if env else DEFAULT_DB


def _resolve(db_path: str | Path | None) -> Path:
    return Path(db_path) if db_path is not None else default_db_path()


@contextlib.contextmanager
def connect(db_path: str | Path | None = None, create: bool = True) -> Iterator[sqlite3.Connection]:
    """Open the database (creating it and its schema when ``create``); the connection is closed on exit."""
    path = _resolve(db_path)
    if not create and not path.is_file():
        raise AbawError("no runs database here (record a run first, or pass --db / set ABAW_DB)", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a write is exactly one transaction.
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    except sqlite3.Error as exc:
        raise AbawError(f"cannot open the runs database: {exc}", path=path) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if create and conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            with _transaction(conn):
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        yield conn
    except sqlite3.DatabaseError as exc:
        raise AbawError(f"runs database error: {exc}", path=path) from exc
    finally:
        conn.close()


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _read_json(path: Path, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise AbawError("missing (not a finished run folder?)", path=path)
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AbawError(f"not valid JSON: {exc}", path=path) from exc


def config_hash(config: Any) -> str:
    """A short stable hash of a config (canonical JSON: sorted keys, no spaces)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _int_or_none(value: Any, path: Path, key: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AbawError(f"{key} must be an integer, got {value!r}", path=path) from None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _run_row(run_dir: Path) -> tuple[dict[str, Any], list[tuple[str, str, str | None, float | None, str]]]:
    """Read a run folder into the ``runs`` row and its ``scores`` rows."""
    run = _read_json(run_dir / "run.json", required=True)
    if not isinstance(run, dict):
        raise AbawError("run.json must hold a JSON object", path=run_dir / "run.json")
    config = _read_json(run_dir / "config.json", required=False)
    config = {} if config is None else config
    scores = _read_json(run_dir / "scores.json", required=False) or {}
    if not isinstance(scores, dict):
        raise AbawError("scores.json must hold a JSON object", path=run_dir / "scores.json")
    run_id = str(run.get("run_id") or run_dir.name)
    kind = str(run.get("kind") or "train")
    protocol = run.get("protocol") or scores.get("protocol")
    model = run.get("model")
    if isinstance(model, dict):  # a model given as {"name": ..., kwargs}: keep its name for the table
        model = model.get("name")
    row = {
        "run_id": run_id,
        "kind": kind,
        "created": run.get("created"),
        "recorded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": run.get("git_commit"),
        "config_json": json.dumps(config, sort_keys=True, default=str),
        "config_hash": str(run.get("config_hash") or config_hash(config)),
        "data_root": None if run.get("data_root") is None else str(run.get("data_root")),
        "dataset_fingerprint": run.get("dataset_fingerprint"),
        "protocol": protocol,
        "tracks": json.dumps(_as_list(run.get("tracks"))),
        "streams": json.dumps(_as_list(run.get("streams"))),
        "model": None if model is None else str(model),
        "n_params": _int_or_none(run.get("n_params"), run_dir / "run.json", "n_params"),
        "train_seconds": _float_or_none(run.get("train_seconds")),
        "status": run.get("status"),
        "members": json.dumps(_as_list(run.get("members"))),
        "run_dir": str(run_dir.resolve()),
    }
    split = str(scores.get("split") or "validation")
    score_rows = []
    tracks = scores.get("tracks") or {}
    if not isinstance(tracks, dict):
        raise AbawError("scores.json: 'tracks' must map each track to its scores", path=run_dir / "scores.json")
    for track, result in tracks.items():
        if not isinstance(result, dict):
            raise AbawError(f"scores.json: track {track!r} must hold a JSON object", path=run_dir / "scores.json")
        components = {k: v for k, v in result.items() if k != "score"}
        score_rows.append((str(track), split, scores.get("protocol") or protocol, _float_or_none(result.get("score")),
                           json.dumps(components, sort_keys=True, default=str)))
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
    sql = ("SELECT s.run_id, s.track, s.split, s.protocol, s.score, s.components, r.kind, r.created, r.git_commit, "
           "r.config_json, r.config_hash, r.data_root, r.dataset_fingerprint, r.tracks, r.streams, r.model, "
           "r.n_params, r.train_seconds, r.status, r.members, r.run_dir "
           "FROM scores s JOIN runs r ON r.run_id = s.run_id")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY s.track, s.run_id"
    with connect(db_path, create=False) as conn:
        rows = conn.execute(sql, params).fetchall()
    return [Entry(run_id=r[0], track=r[1], split=r[2], protocol=r[3], score=r[4], components=json.loads(r[5]),
                  kind=r[6], created=r[7], git_commit=r[8], config=json.loads(r[9]), config_hash=r[10],
                  data_root=r[11], dataset_fingerprint=r[12], tracks=json.loads(r[13]), streams=json.loads(r[14]),
                  model=r[15], n_params=r[16], train_seconds=r[17], status=r[18], members=json.loads(r[19]),
                  run_dir=r[20]) for r in rows]


def count_runs(db_path: str | Path | None = None) -> int:
    with connect(db_path, create=False) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def check_integrity(db_path: str | Path | None = None) -> str:
    """SQLite's own integrity check: ``'ok'`` for a sound database."""
    with connect(db_path, create=False) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
