"""The defaults the ``abaw leaderboard`` and ``abaw record`` parsers show, without importing the database and the
leaderboard (rich, jinja2): the CLI builds every sub-command's parser at start-up."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DB = Path("runs") / "abaw.sqlite"
DB_ENV = "ABAW_DB"
#: Runs per table shown in the terminal by default (rich renders a few ms per row; the HTML page holds them all).
TERMINAL_TOP = 25
