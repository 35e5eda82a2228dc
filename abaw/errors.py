"""The one exception type the command line turns into a one-line message."""

from __future__ import annotations

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
