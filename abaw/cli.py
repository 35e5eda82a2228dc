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
import warnings

from abaw import __version__
from abaw.commands import (
    ablate,
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
            temporal, predict, crowd, leaderboard, ablate)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def quiet_third_parties(verbose: bool) -> None:
    """Keep library warnings out of the user's way: Python warnings are silenced, and other libraries' log records
    below ERROR dropped, unless ``-v`` (which routes warnings into the log and shows every level); abaw's own log
    stays at INFO."""
    logging.basicConfig(format="%(message)s")
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.ERROR)
    logging.getLogger("abaw").setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        logging.captureWarnings(True)
        warnings.simplefilter("default")
    else:
        warnings.simplefilter("ignore")
        os.environ.setdefault("YOLO_VERBOSE", "False")


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (``abaw ... | head``): point stdout at /dev/null so that the interpreter's final
    flush does not fail again, and exit as a process killed by SIGPIPE would (128 + 13), without a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (e.g. captured by a test)
        pass
    return 141


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    try:
        args = parser.parse_args(argv)
        quiet_third_parties(args.verbose)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        code = _run(args)
        sys.stdout.flush()
        return code
    except SystemExit:  # --help, --version, a usage error: flush here, where a closed pipe is caught
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            sys.exit(_quiet_broken_pipe())
        raise
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command; a user's error is one stderr line and exit 2."""
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
