"""``abaw score``: score a folder of 2020-2022 result files against the annotations of a split."""

from __future__ import annotations

import argparse
import json

from abaw import tasks


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("score", help="score result files with the official metric", description=__doc__)
    p.add_argument("--data-root", required=True, metavar="ROOT", help="Aff-Wild2 data root with the annotations")
    p.add_argument("--split", required=True, choices=tasks.SPLITS)
    p.add_argument("--track", required=True, choices=tasks.TRACKS)
    p.add_argument("--pred", required=True, metavar="DIR",
                   help="result folder: the track folder (e.g. VA_Set/) or a folder holding it")
    p.add_argument("--protocol", choices=tuple(tasks.PROTOCOLS), help="official metric (default: from the layout)")
    p.add_argument("--strict", action="store_true", help="label/frame count mismatches in the data root are errors")
    p.add_argument("--json", action="store_true", help="print one JSON object: score and its components")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw.results import score_result_folder

    result = score_result_folder(args.pred, args.data_root, args.split, args.track, args.protocol, args.strict)
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
