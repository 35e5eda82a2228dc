"""``abaw demo``: the whole job end to end on an embedded synthetic Aff-Wild2 (no data, no download)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from abaw import tasks
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
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every training of the track models (default: 0); the data and the pretrained "
                        "face CNN stay the same, so runs with other seeds measure the training noise")
    p.add_argument("--data-seed", type=int, default=0,
                   help="seed of the synthetic data and of the face CNN pretrained on it (default: 0)")
    p.add_argument("--result-format", choices=tasks.RESULT_FORMATS, default="folder",
                   help="format of the submitted result files: folder (2020-2022: a folder per track, the "
                   "default) or single (2023 on: also one file per track, SUBMISSIONS/single/<track folder>.txt, "
                   "validated and zipped)")
    p.set_defaults(func=run)


def _single_files(out: Path, submissions: Path, report: dict[str, Any]) -> bool:
    """Rewrite each track's validated submission folder as a single result file, validate and zip it."""
    from abaw.apps.demo import Demo
    from abaw.data.affwild2 import AffWild2
    from abaw.results import convert_results, validate_submission, zip_submission

    tracks = ((report.get("submissions") or {}).get("summary") or {}).get("tracks") or {}
    if not tracks:
        return False
    data_root = Demo(out=out.resolve(), submissions=submissions.resolve()).data_root
    protocol = AffWild2(data_root).protocol
    for track, info in tracks.items():
        path = convert_results(info["folder"], submissions / "single", track, protocol, fmt="single",
                               src_fmt="folder")
        problems = validate_submission(path, data_root, info["split"], track, protocol, fmt="single")
        if problems:
            raise AbawError(f"the {track.upper()} single result file does not validate: {problems[0]}", path=path)
        zip_path = zip_submission(path, path.with_suffix(".zip"))
        print(f"  {track.upper():4s} single result file: {path} (valid; zip {zip_path})")
    return True


def run(args: argparse.Namespace) -> int:
    from abaw.apps.demo import run_demo

    if args.seed < 0 or args.data_seed < 0:
        raise AbawError("--seed and --data-seed must be non-negative integers")
    report = run_demo(args.out, quick=args.quick, seed=args.seed, submissions=args.submissions,
                      data_seed=args.data_seed)
    states = [info.get("state") for info in report.values() if isinstance(info, dict)]
    submitted = report.get("submissions", {}).get("state") in ("ran", "done before")
    if submitted and args.result_format == "single":
        submitted = _single_files(args.out, args.submissions, report)
    return 0 if submitted and "failed" not in states else 1
