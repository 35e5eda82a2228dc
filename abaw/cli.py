"""The ``abaw`` command line: one sub-command per module in :mod:`abaw.commands`.

Each command module defines ``add_parser(subparsers)`` (which registers the sub-command and sets
``func=run`` on it) and ``run(args) -> int``. Errors a user can fix are raised as :class:`abaw.errors.AbawError`
and printed as one line; nothing a user does should print a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from abaw import __version__
from abaw.commands import (
    crowd,
    demo,
    ensemble,
    evaluate,
    extract,
    index,
    leaderboard,
    predict,
    prepare,
    score,
    synth,
    temporal,
    train,
    validate_submission,
    weights,
)
from abaw.errors import AbawError

#: Sub-command modules, in the order ``abaw --help`` lists them. Each imports its heavy libraries inside ``run``, so
#: building the parser (and ``abaw --help``) loads no torch, pandas or scipy.
COMMANDS = (demo, synth, index, score, validate_submission, weights, prepare, extract, train, evaluate, ensemble,
            temporal, predict, crowd, leaderboard)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="abaw",
        description="Affective behaviour analysis in-the-wild: valence/arousal, expressions and action units.",
    )
    parser.add_argument("--version", action="version", version=f"abaw {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AbawError as exc:
        print(f"abaw {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"abaw {args.command}: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"abaw {args.command}: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
