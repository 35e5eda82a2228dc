"""``abaw leaderboard``: ranked validation scores per track; ``abaw record``: add run folders to the database."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from abaw.errors import AbawError
from abaw.runs.choices import DB_ENV, DEFAULT_DB, TERMINAL_TOP
from abaw.tasks import PROTOCOLS, check_track


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "leaderboard", help="ranked validation scores per track (terminal, JSON, HTML)",
        description="Rank the recorded runs per track, protocol and dataset (runs on different data are never "
                    "ranked together), with the published scores as reference rows. The runs of one config that "
                    "differ only in their seed share a row, ranked by their mean score with a t-based 95% confidence "
                    "interval (a config with one run is marked single seed); the test column is the hidden test "
                    "split where a run's test result files were scored (RUN_DIR/scores_test.json).")
    p.add_argument("--track", help="va, expr or au (or 1, 2, 3); default: all")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), help="only runs scored with this protocol")
    p.add_argument("--dataset", help="only runs on this dataset: a fingerprint (or its prefix) or a data root")
    p.add_argument("--split", default="validation", help="the scored split (default: validation)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page here")
    p.add_argument("--top", type=int, default=TERMINAL_TOP, metavar="N",
                   help=f"show the best N runs per table in the terminal (default {TERMINAL_TOP}; "
                        "0 shows all; the JSON and HTML always hold all)")
    p.add_argument("--no-reference", action="store_true", help="leave out the published reference rows")
    p.add_argument("--db", metavar="PATH", help=f"runs database (default: ${DB_ENV} or {DEFAULT_DB})")
    p.set_defaults(func=run)

    r = subparsers.add_parser("record", help="record finished run folders in the runs database",
                              description="Read RUN_DIR/run.json, config.json, scores.json and (when there) "
                                          "scores_test.json, and upsert the run.")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    r.add_argument("--db", metavar="PATH", help=f"runs database (default: ${DB_ENV} or {DEFAULT_DB})")
    r.set_defaults(func=run_record)


def run(args: argparse.Namespace) -> int:
    from abaw.runs import leaderboard

    try:
        track = check_track(args.track) if args.track else None
    except ValueError as exc:
        raise AbawError(str(exc)) from exc
    if args.top < 0:
        raise AbawError("--top must be 0 (all) or more")
    dataset = args.dataset
    if dataset and Path(dataset).is_dir():  # a data root: runs record it resolved
        dataset = str(Path(dataset).resolve())
    board = leaderboard.load_leaderboard(args.db, track=track, protocol=args.protocol, dataset=dataset,
                                         split=args.split, references=not args.no_reference)
    note = leaderboard.skipped_note(board)
    if note:
        print(f"abaw leaderboard: {note}", file=sys.stderr)
    if args.json:
        json.dump(leaderboard.to_json(board), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        leaderboard.render_terminal(board, top=args.top or None)
    if args.html:
        path = leaderboard.write_html(board, args.html)
        print(f"HTML leaderboard: {path.resolve()}", file=sys.stderr if args.json else sys.stdout)
    return 0


def run_record(args: argparse.Namespace) -> int:
    """Record each folder; an unfinished one is skipped with a note, a bad one is reported, and the others go on."""
    from abaw.errors import report_failures
    from abaw.runs import database
    from abaw.runs.folder import unfinished_reason

    failures = []
    for run_dir in args.run_dirs:
        try:
            reason = unfinished_reason(run_dir)
            if reason is not None:
                print(f"abaw record: skipped {run_dir}: {reason}", file=sys.stderr)
                continue
            run_id = database.record_run(run_dir, args.db)
        except AbawError as exc:
            failures.append(str(exc))
            continue
        print(f"recorded {run_id}")
    return report_failures("record", failures, len(args.run_dirs), "run folders")
