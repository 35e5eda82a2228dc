"""``abaw predict VIDEO...``: per-frame valence/arousal, expressions and AUs of any video or image, with plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from abaw.commands.detection_args import add_detection_args, detect_every, person_weights, trust_weights
from abaw.commands.train import device_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="predict valence/arousal, expressions and AUs per frame of videos or images",
        description=__doc__ + " Without --checkpoint the FER2013 mini-Xception gives the expressions (no VA, no AU).")
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help="video files (.mp4, .avi, .mov, ...) or images")
    p.add_argument("--checkpoint", metavar="RUN_DIR", help="a training run folder (runs/<run_id>)")
    p.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    p.add_argument("--annotate", action="store_true", help="also write <video>_annotated.mp4")
    p.add_argument("--no-plots", action="store_true", help="do not draw the plots")
    add_detection_args(p, "person detector, used when the model has body/context streams")
    p.add_argument("--max-faces", type=int, default=None, help="keep at most this many face tracks (default: all)")
    p.add_argument("--au-threshold", type=float, default=0.5, help="AU decision threshold (default: 0.5)")
    p.add_argument("--device", default="auto", type=device_arg,
                   help="where the --checkpoint model runs: auto (the GPU when there is one, else the CPU; default), "
                        "cpu, cuda or cuda:N")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw.apps.predict import PredictOptions, load_predictor, output_names, predict_file
    from abaw.errors import AbawError, report_failures

    paths = [Path(p) for p in args.inputs]
    for path in paths:
        if path.is_dir():
            raise AbawError("is a folder, not a video or image file (give the files inside it)", path=path)
        if not path.is_file():
            raise AbawError("no such file", path=path)
    opts = PredictOptions(checkpoint=args.checkpoint, detector=args.detector, person=args.person,
                          max_faces=args.max_faces, au_threshold=args.au_threshold, annotate=args.annotate,
                          plots=not args.no_plots, detect_every=detect_every(args),
                          trust_weights=trust_weights(args), person_weights=person_weights(args))
    predictor = load_predictor(args.checkpoint, device=args.device)
    if predictor.note:
        print(f"note: {predictor.note}")
    failed = []
    for path, name in zip(paths, output_names(paths), strict=True):
        try:
            written = predict_file(path, args.out, opts, predictor, name=name)
        except AbawError as exc:
            if len(paths) == 1:
                raise
            failed.append(str(exc) if exc.path is not None else f"{path}: {exc}")  # the error names its file
            continue
        print(f"{path}: " + ", ".join(str(p) for p in written.values()), flush=True)
    return report_failures("predict", failed, len(paths))
