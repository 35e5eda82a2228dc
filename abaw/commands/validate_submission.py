"""``abaw validate-submission PATH``: check result files, either format (names, header, line counts, values)."""

from __future__ import annotations

import argparse
import sys

from abaw import tasks


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate-submission", help="check result files before submitting them",
                              description=__doc__ + " Exit 0 when valid; otherwise one line per problem on stderr, "
                              "a summary line, and exit 1.")
    p.add_argument("folder", metavar="PATH",
                   help="result files: the track folder (e.g. VA_Set/), the single result file (2023 on), or a folder "
                   "holding either")
    p.add_argument("--data-root", required=True, metavar="ROOT", help="Aff-Wild2 data root (videos, annotations)")
    p.add_argument("--split", required=True, choices=tasks.RESULT_SPLITS,
                   help="names to expect; test reads test_set/<track>.txt")
    p.add_argument("--track", required=True, choices=tasks.TRACKS)
    p.add_argument("--protocol", choices=tuple(tasks.PROTOCOLS), help="headers and classes (default: from the layout)")
    p.add_argument("--format", choices=tasks.RESULT_FORMATS, dest="fmt",
                   help="result-file format (default: detected from PATH)")
    p.add_argument("--zip", metavar="FILE", help="when valid, also write the files as a zip for submission")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw.data.affwild2 import AffWild2
    from abaw.results import (
        read_single_file,
        resolve_single_file,
        resolve_track_folder,
        result_format,
        validate_submission,
        zip_submission,
    )

    protocol = args.protocol or AffWild2(args.data_root).protocol.name
    problems = validate_submission(args.folder, args.data_root, args.split, args.track, protocol, args.fmt)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"abaw validate-submission: error: {args.folder}: not valid ({len(problems)} "
              f"problem{'s' if len(problems) > 1 else ''})", file=sys.stderr)
        return 1
    if result_format(args.folder, args.track, protocol, args.fmt) == "single":
        target = resolve_single_file(args.folder, args.track, protocol)
        values = read_single_file(target, args.track, protocol)
        what = f"single result file, {len(values)} names, {sum(len(v) for v in values.values())} lines"
    else:
        target = resolve_track_folder(args.folder, args.track, protocol)
        what = f"{sum(1 for p in target.glob('*.txt'))} result files"
    print(f"{target}: valid ({what}, {args.track.upper()} {args.split})")
    if args.zip:
        print(f"zip: {zip_submission(target, args.zip)}")
    return 0
