"""``abaw score``: score result files (either format) against the annotations of a split."""

from __future__ import annotations

import argparse
import json

from abaw import tasks


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score", help="score result files with the official metric", description=__doc__ + " The labels come from "
        "the data root (train, validation) or from a label root given with --labels (any split; the only place "
        "test labels are read from).")
    p.add_argument("--data-root", metavar="ROOT",
                   help="Aff-Wild2 data root with the annotations (with --labels: optional, for the videos' frame "
                   "counts)")
    p.add_argument("--labels", metavar="DIR",
                   help=f"label root: DIR/{tasks.ANNOTATIONS_DIR}/<track folder>/<"
                   f"{'|'.join(tasks.LABEL_SPLIT_DIRS.values())}>/<name>.txt, e.g. the synthetic set's hidden test "
                   "labels")
    p.add_argument("--split", required=True, choices=tasks.RESULT_SPLITS,
                   help=f"{tasks.TEST_SPLIT} needs --labels (a data root has no test labels)")
    p.add_argument("--track", required=True, choices=tasks.TRACKS)
    p.add_argument("--pred", required=True, metavar="PATH",
                   help="result files: the track folder (e.g. VA_Set/), the single result file (2023 on), or a "
                   "folder holding either")
    p.add_argument("--format", choices=tasks.RESULT_FORMATS, dest="fmt",
                   help="result-file format (default: detected from --pred)")
    p.add_argument("--protocol", choices=tuple(tasks.PROTOCOLS), help="official metric (default: from the layout)")
    p.add_argument("--strict", action="store_true", help="label/frame count mismatches in the data root are errors")
    p.add_argument("--json", action="store_true", help="print one JSON object: score and its components")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw.errors import AbawError
    from abaw.results import score_results

    if args.data_root is None and args.labels is None:
        raise AbawError("give the labels: --data-root ROOT (train, validation) or --labels DIR (a label root)")
    result = score_results(args.pred, args.data_root, args.split, args.track, args.protocol, args.strict,
                           labels=args.labels, fmt=args.fmt)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{tasks.TRACK_TITLES[result['track']]} ({result['protocol']}, {args.split}, {result['n_videos']} videos, "
          f"{result['n_frames']} valid frames): score {result['score']:.4f}")
    for key in ("ccc_valence", "ccc_arousal", "f1", "accuracy"):
        if key in result:
            print(f"  {key:12s} {result[key]:.4f}")
    per = result.get("f1_per_class") or result.get("f1_per_au") or {}
    if per:
        print("  F1 per " + ("class" if "f1_per_class" in result else "AU") + ": "
              + ", ".join(f"{k} {v:.3f}" for k, v in per.items()))
    return 0
