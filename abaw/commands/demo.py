"""``abaw demo``: the whole job end to end on an embedded synthetic Aff-Wild2 (no data, no download)."""

from __future__ import annotations

import argparse
from pathlib import Path

from abaw.errors import AbawError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="the whole job on a synthetic Aff-Wild2: data, baselines, training, ensembles, leaderboard",
        description="Generate a synthetic Aff-Wild2, score the baselines, prepare and extract features, train "
                    "per-track and multi-task models, fit the temporal model and ensembles, write and validate "
                    "result files, and rank everything in a leaderboard (terminal and HTML). Stages that finished "
                    "are skipped when the demo is run again, so an interrupted demo resumes where it stopped.")
    p.add_argument("--out", default="abaw-demo", type=Path,
                   help="folder for data, runs, database and HTML (default: ./abaw-demo)")
    p.add_argument("--submissions", default=Path("submissions") / "demo", type=Path,
                   help="folder for the validated result files (default: ./submissions/demo)")
    p.add_argument("--quick", action="store_true", help="a smaller data set and shorter training (about 3 minutes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of every training (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw.apps.demo import run_demo

    if args.seed < 0:
        raise AbawError("--seed must be a non-negative integer")
    report = run_demo(args.out, quick=args.quick, seed=args.seed, submissions=args.submissions)
    states = [info.get("state") for info in report.values() if isinstance(info, dict)]
    submitted = report.get("submissions", {}).get("state") in ("ran", "done before")
    return 0 if submitted and "failed" not in states else 1
