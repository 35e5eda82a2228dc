"""Run folders (docs/design.md section 5): creation, ``run.json``, and recording finished runs."""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import logging
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

from abaw.errors import AbawError
from abaw.fileio import write_json

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parents[2]


def git_commit() -> str | None:
    """The commit of the source tree, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AbawError("file not found", path=path) from None
    except json.JSONDecodeError as exc:
        raise AbawError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None


def check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise AbawError("not a training run folder (no config.json)", path=run_dir)
    return run_dir


def update_run_json(run_dir: Path, **fields: Any) -> dict[str, Any]:
    path = Path(run_dir) / "run.json"
    info = read_json(path) if path.is_file() else {}
    info.update(fields)
    write_json(path, info)
    return info


def record_run(run_dir: Path) -> None:
    """Record a finished run in the runs database when the registry module exists; skip silently if not."""
    if importlib.util.find_spec("abaw.runs.database") is None:
        return
    registry = importlib.import_module("abaw.runs.database")
    if not hasattr(registry, "record_run"):
        return
    try:
        registry.record_run(run_dir)
    except Exception as exc:  # the database is a convenience: a failure must not lose a finished training
        log.warning("could not record run %s in the runs database: %s", run_dir, exc)
