"""``abaw prepare DATA_ROOT | VIDEO...``: boxes, aligned face crops, body/context inputs and audio features."""

from __future__ import annotations

import argparse

from abaw.commands.detection_args import add_detection_args, detect_every, person_weights, trust_weights
from abaw.errors import AbawError, report_failures
from abaw.tasks import ENCODED_STREAMS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare", help="detect/track faces and persons, write aligned crops, body/context inputs, audio features",
        description=__doc__ + " Finished videos are skipped; run N processes with --shard 1/N ... N/N to split the "
        "work.")
    p.add_argument("inputs", nargs="+", metavar="DATA_ROOT|VIDEO", help="a data root (with videos/) or video files")
    p.add_argument("--out", help="output root (default: the data root itself; required for video files)")
    p.add_argument("--shard", help="i/N: prepare only the i-th of N equal shares of the videos (1-based)")
    add_detection_args(p, "person detector; 'face' derives the person box from the face")
    p.add_argument("--streams", default=",".join(ENCODED_STREAMS),
                   help=f"comma-separated subset of {','.join(ENCODED_STREAMS)} to write (default: all)")
    p.add_argument("--size", type=int, default=112, help="side of face, body and context images (default: 112)")
    p.add_argument("--workers", type=int, default=1,
                   help="threads detecting faces on key frames (default 1; --shard runs whole processes)")
    p.add_argument("--max-faces", type=int, default=2, help="tracks kept per video, largest first (default: 2)")
    p.add_argument("--force", action="store_true", help="redo finished videos and replace their outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw.video.prepare import PrepareOptions, VideoResult, parse_shard, prepare_all, resolve_inputs, shard

    streams = tuple(s.strip() for s in args.streams.split(",") if s.strip())
    unknown = [s for s in streams if s not in ENCODED_STREAMS]
    if unknown:
        raise AbawError(f"--streams: unknown stream {unknown[0]!r}; choose from {', '.join(ENCODED_STREAMS)}")
    if args.size < 16:
        raise AbawError("--size must be at least 16")
    videos, out_root = resolve_inputs(args.inputs, args.out)
    i, n = parse_shard(args.shard)
    videos = shard(videos, i, n)
    opts = PrepareOptions(detector=args.detector, person=args.person, streams=streams, face_size=args.size,
                          body_size=args.size, context_size=args.size, max_faces=args.max_faces or None,
                          detect_every=detect_every(args), workers=max(1, args.workers), force=args.force,
                          trust_weights=trust_weights(args), person_weights=person_weights(args))

    def report(r: VideoResult) -> None:
        if r.status == "done":
            print(f"{r.video}: {r.n_frames} frames, face in {r.face_frames} rows, tracks {', '.join(r.names)} "
                  f"({r.seconds:.1f} s)")
        elif r.status == "skipped":
            print(f"{r.video}: already prepared (use --force to redo)")

    results = prepare_all(videos, out_root, opts, report)
    failed = [r for r in results if r.status == "failed"]
    done = sum(r.status == "done" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    print(f"prepared {done}, skipped {skipped}, failed {len(failed)} of {len(results)} videos into {out_root}")
    return report_failures("prepare", [f"{r.video}: {r.reason}" for r in failed], len(results), "videos")
