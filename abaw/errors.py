"""The one exception type the command line turns into a one-line message."""

from __future__ import annotations

import sys
from pathlib import Path


class AbawError(Exception):
    """A user-facing error: bad input, missing file, wrong config. Printed as one line, never a traceback."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


def report_failures(command: str, failures: list[str], total: int, what: str = "inputs") -> int:
    """Print each per-file failure as one stderr line, then a summary line; the exit code (1 when any failed)."""
    for line in failures:
        print(f"abaw {command}: failed: {line}", file=sys.stderr)
    if failures:
        print(f"abaw {command}: error: {len(failures)} of {total} {what} failed", file=sys.stderr)
    return 1 if failures else 0
