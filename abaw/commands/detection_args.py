"""The face and person detection options shared by ``abaw prepare`` and ``abaw predict``."""

from __future__ import annotations

import argparse

from abaw.errors import AbawError
from abaw.video.choices import DETECT_EVERY, DETECTORS, PERSON_BACKENDS


def add_detection_args(p: argparse.ArgumentParser, person_help: str) -> None:
    p.add_argument("--detector", choices=DETECTORS, default="yunet", help="face detector (default: yunet)")
    p.add_argument("--person", choices=PERSON_BACKENDS, default="yolo-fastest",
                   help=f"{person_help} (default: yolo-fastest)")
    p.add_argument("--detect-every", type=int, default=DETECT_EVERY, metavar="K",
                   help=f"detect faces on every K-th frame and interpolate between; where faces come or go, every "
                   f"frame is detected (default: {DETECT_EVERY}; 1 detects every frame). Persons: about once a second")


def detect_every(args: argparse.Namespace) -> int:
    if args.detect_every < 1:
        raise AbawError(f"--detect-every must be at least 1, got {args.detect_every}")
    return args.detect_every
