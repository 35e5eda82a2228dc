"""What a long command that owns an output folder needs (``abaw demo``, ``abaw ablate``): one process at a time per
folder, and environment variables set for its duration (other modules record runs via ``ABAW_DB``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from abaw.errors import AbawError


@contextlib.contextmanager
def exclusive(out: Path, command: str) -> Iterator[None]:
    """Hold ``out/.lock``: a second ``command`` on the same folder would interleave stages and garble the outputs."""
    with open(out / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise AbawError(f"another {command} is running on this folder; wait for it or use another --out",
                            path=out) from exc
        yield


@contextlib.contextmanager
def temporary_env(**values: str) -> Iterator[None]:
    """Set environment variables, restoring the former values (or their absence) afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
