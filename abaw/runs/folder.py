"""Run folders (docs/design.md section 5): creating one, checking one, finishing one and recording it."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from abaw.errors import AbawError
from abaw.fileio import write_json
from abaw.runs import database
from abaw.runs.info import RunInfo, read_run_info, write_run_info

log = logging.getLogger(__name__)

#: The ``run.json`` status of a run not yet finished nor stopped: ``abaw record`` and the leaderboard skip it.
UNFINISHED = "running"


def new_run_id(name: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    return f"{safe}-{stamp}-{secrets.token_hex(2)}"


def create_run_dir(out: str | Path, name: str) -> Path:
    out = Path(out)
    for _ in range(10):
        run_dir = out / new_run_id(name)
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise AbawError("could not create a new run folder", path=out)


@contextlib.contextmanager
def removed_on_failure(run_dir: str | Path, created: bool = True,
                       keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Run the body; when it raises (an error, Ctrl-C), remove ``run_dir`` if this run ``created`` it and ``keep``
    (when given) does not ask to keep it (e.g. a training run with a checkpoint to resume from). A run folder is
    thus complete or absent: a failed command leaves no orphan folder for ``abaw record`` or the leaderboard."""
    run_dir = Path(run_dir)
    try:
        yield run_dir
    except BaseException:
        if created and run_dir.is_dir() and not (keep is not None and keep(run_dir)):
            shutil.rmtree(run_dir, ignore_errors=True)
            log.debug("removed the unfinished run folder %s", run_dir)
        raise


def unfinished_reason(run_dir: str | Path) -> str | None:
    """Why ``run_dir`` is not a run folder to record (None when it is one): no ``run.json`` (a run that failed or is
    still being created), or one whose status is still ``running`` (a run going on, or killed)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None  # not a folder at all: the reader says so
    if not (run_dir / "run.json").is_file():
        return "unfinished run folder (no run.json)"
    info = read_run_info(run_dir)
    if info.status == UNFINISHED:
        return f"unfinished run (status {UNFINISHED} in run.json)"
    return None


def check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise AbawError("not a training run folder (no config.json)", path=run_dir)
    return run_dir


def finish_run(run_dir: Path, info: RunInfo, scores: dict[str, Any], **fields: Any) -> None:
    """Write ``scores.json``, mark ``run.json`` finished (with ``fields`` set) and record the run."""
    write_json(run_dir / "scores.json", scores)
    write_run_info(run_dir, info.updated(status="finished", **fields))
    record_run(run_dir)


def record_run(run_dir: Path) -> None:
    """Record a finished run in the runs database (``$ABAW_DB`` or the default); a failure is logged, not raised."""
    try:
        database.record_run(run_dir)
    except Exception as exc:  # the database is a convenience: a failure must not lose a finished run
        log.warning("could not record run %s in the runs database: %s", run_dir, exc)
