"""``abaw validate-submission DIR``: check a 2020-2022 result folder (names, header, line counts, values)."""

from __future__ import annotations

import argparse
import sys

from abaw import tasks


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate-submission", help="check result files before submitting them",
                              description=__doc__ + " Exit 0 when valid; otherwise one line per problem on stderr, "
                              "a summary line, and exit 1.")
    p.add_argument("folder", metavar="DIR", help="result folder: the track folder (e.g. VA_Set/) or one holding it")
    p.add_argument("--data-root", required=True, metavar="ROOT", help="Aff-Wild2 data root (videos, annotations)")
    p.add_argument("--split", required=True, choices=(*tasks.SPLITS, "test"),
                   help="names to expect; test reads test_set/<track>.txt")
    p.add_argument("--track", required=True, choices=tasks.TRACKS)
    p.add_argument("--protocol", choices=tuple(tasks.PROTOCOLS), help="headers and classes (default: from the layout)")
    p.add_argument("--zip", metavar="FILE", help="when valid, also write the folder as a zip for submission")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw.results import resolve_track_folder, validate_submission, zip_submission

    problems = validate_submission(args.folder, args.data_root, args.split, args.track, args.protocol)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"abaw validate-submission: error: {args.folder}: not valid ({len(problems)} "
              f"problem{'s' if len(problems) > 1 else ''})", file=sys.stderr)
        return 1
    folder = resolve_track_folder(args.folder, args.track, args.protocol)
    n_files = sum(1 for p in folder.glob("*.txt"))
    print(f"{folder}: valid ({n_files} result files, {args.track.upper()} {args.split})")
    if args.zip:
        print(f"zip: {zip_submission(folder, args.zip)}")
    return 0
