"""``abaw evaluate RUN_DIR --data-root ROOT --split validation|train|test [--submission DIR]``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def run(args: argparse.Namespace) -> int:
    from abaw.train.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, args.data_root, args.split, submission=args.submission,
                          which=args.checkpoint, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result, default=str))
    elif args.split == "test":
        for track, info in result["tracks"].items():
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
                   help="test: result files for the names of test_set/<track>.txt (no scores)")
    p.add_argument("--submission", metavar="DIR", help="also write the result files into DIR")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--batch-size", type=int)
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=run)
