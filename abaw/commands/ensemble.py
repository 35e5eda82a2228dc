"""``abaw ensemble RUN_DIR... --track T --method M``: fuse runs of one track and print members beside the fusion."""

from __future__ import annotations

import argparse
import sys

from abaw import tasks
from abaw.posthoc.choices import ENSEMBLE_METHODS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ensemble", help="fuse two or more runs of a track (mean, tuned weights, stacking), optionally smoothed",
        description=__doc__ + " Tuned weights, stackers, smoothing windows and AU thresholds are scored on held-out "
        "videos (grouped cross-validation over the validation videos).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders with predictions/<split>.parquet")
    p.add_argument("--track", required=True, choices=tasks.TRACKS)
    p.add_argument("--method", default="mean", choices=ENSEMBLE_METHODS)
    p.add_argument("--smooth", action="store_true", help="tune a temporal filter (box/gaussian/median) on top")
    p.add_argument("--thresholds", action="store_true", help="tune per-AU decision thresholds (AU track)")
    p.add_argument("--data-root", default=None, help="Aff-Wild2 root (default: the first run's data root)")
    p.add_argument("--out", default="runs", help="folder for the fused run (default: runs)")
    p.add_argument("--split", default="validation", choices=tasks.SPLITS)
    p.add_argument("--folds", type=int, default=5, help="grouped cross-validation folds (default: 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from abaw.posthoc.ensemble import ensemble_runs

    report = ensemble_runs(args.runs, args.track, args.method, smooth=args.smooth,
                           tune_au_thresholds=args.thresholds, data_root=args.data_root, out_dir=args.out,
                           split=args.split, n_splits=args.folds)
    table = Table(title=f"{args.track.upper()} ensemble on {args.split} ({args.method})")
    table.add_column("run")
    table.add_column("score", justify="right")
    table.add_column("note")
    for run_id, value in report.member_scores.items():
        table.add_row(run_id, f"{value:.4f}", "member")
    best = max(report.member_scores.values())
    fused = report.fused
    note = "held out (grouped CV)" if args.method != "mean" else "nothing fitted"
    table.add_row(f"fused ({args.method})", f"{fused.score['score']:.4f}",
                  f"{note}; {fused.score['score'] - best:+.4f} vs best member")
    if fused.in_sample_score is not None:
        table.add_row(f"fused ({args.method}), in-sample", f"{fused.in_sample_score:.4f}",
                      "fitted and scored on the same frames: optimistic")
    if report.smoothing is not None:
        sm = report.smoothing
        table.add_row(f"+ smoothing ({sm.method}, {sm.window})", f"{sm.cv_score:.4f}",
                      f"held out (grouped CV); gain {sm.gain:+.4f}; in-sample {sm.in_sample_score:.4f}; "
                      + ("applied" if sm.gain > 0 else "not applied (no held-out gain)"))
    if report.thresholds is not None:
        th = report.thresholds
        gain = th.cv_score - th.default_score
        table.add_row("+ per-AU thresholds", f"{th.cv_score:.4f}",
                      f"held out (grouped CV); gain {gain:+.4f}; in-sample {th.in_sample_score:.4f}; "
                      + ("applied" if gain > 0 else "not applied (no held-out gain)"))
    table.add_row("final", f"{report.final_score:.4f}", str(report.run_dir))
    Console(width=None if sys.stdout.isatty() else 140).print(table)
    return 0
