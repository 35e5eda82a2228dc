"""``abaw evaluate RUN_DIR --data-root ROOT --split validation|train|test [--submission DIR]``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _kind(run_dir: str) -> str:
    from abaw.errors import AbawError
    from abaw.runs.info import read_run_info

    try:
        return read_run_info(run_dir).kind
    except (AbawError, OSError):
        return "train"  # evaluate_run reports a missing or broken run folder in one line


def run(args: argparse.Namespace) -> int:
    from abaw.errors import AbawError
    from abaw.train.evaluate import evaluate_run

    kind = _kind(args.run_dir)
    if kind in ("temporal", "ensemble"):  # fitted on top of other runs: apply the fit to the test set
        if args.split != "test":
            raise AbawError(f"{'an' if kind == 'ensemble' else 'a'} {kind} run is scored when it is made; only "
                            "--split test applies it to new videos",
                            path=args.run_dir)
        if kind == "temporal":
            from abaw.temporal.train import predict_temporal as apply
        else:
            from abaw.posthoc.ensemble import apply_ensemble as apply
        folder = apply(args.run_dir, "test")
        print(f"{args.run_dir}: test result files in {folder}")
        return 0
    result = evaluate_run(args.run_dir, args.data_root, args.split, submission=args.submission,
                          which=args.checkpoint, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result, default=str))
    elif args.split == "test":
        for track, info in result["tracks"].items():
            if info["folder"].endswith(".txt"):  # the single-file format of the run's protocol (2023 on)
                print(f"{args.run_dir}: {track.upper()} test result file valid: {info['folder']}")
            else:
                print(f"{args.run_dir}: {track.upper()} test result files valid: {info['files']} in {info['folder']}")
    else:
        parts = ", ".join(f"{t} {s['score']:.4f}" for t, s in result["tracks"].items())
        print(f"{args.run_dir}: {args.split} score {result['score']:.4f} ({parts})")
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a trained run: predictions, result files, scores, plots",
                              description=__doc__)
    p.add_argument("run_dir", help="a training run folder (runs/<run_id>)")
    p.add_argument("--data-root", "--data_root", dest="data_root",
                   help="Aff-Wild2 data root (default: the run's)")
    p.add_argument("--split", default="validation", choices=("validation", "train", "test"),
                   help="test: result files for the names of test_set/<track>.txt (no scores), in the format of the "
                   "run's protocol (a folder per track up to abaw2022, one file per track from abaw2023); for a "
                   "temporal or ensemble run, its fit applied to its sources' test predictions (evaluate those first)")
    p.add_argument("--submission", metavar="DIR", help="also write the result files into DIR (same format)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--batch-size", type=int)
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=run)
