"""The face and person detection options shared by ``abaw prepare`` and ``abaw predict``, and ``--trust-weights``
for every command that may open a weights file a library unpickles."""

from __future__ import annotations

import argparse

from abaw.errors import AbawError
from abaw.video.choices import DETECT_EVERY, DETECTORS, PERSON_BACKENDS

#: Kept equal to abaw.weights.TRUST_FLAG (not imported: the CLI builds its parsers without loading pooch).
TRUST_FLAG = "--trust-weights"


def add_detection_args(p: argparse.ArgumentParser, person_help: str) -> None:
    p.add_argument("--detector", choices=DETECTORS, default="yunet", help="face detector (default: yunet)")
    p.add_argument("--person", choices=PERSON_BACKENDS, default="yolo-fastest",
                   help=f"{person_help} (default: yolo-fastest)")
    p.add_argument("--person-weights", metavar="PATH", default=None,
                   help="the model file of --person ultralytics (e.g. yolov8s.pt; default: the catalogue's yolov8n). "
                   f"ultralytics unpickles it, so a file whose sha256 is not in the catalogue needs {TRUST_FLAG}")
    p.add_argument("--detect-every", type=int, default=DETECT_EVERY, metavar="K",
                   help=f"detect faces on every K-th frame and interpolate between; where faces come or go, every "
                   f"frame is detected (default: {DETECT_EVERY}; 1 detects every frame). Persons: about once a second")
    add_trust_weights_arg(p)


def add_trust_weights_arg(p: argparse.ArgumentParser) -> None:
    """``--trust-weights``: for a command that may open a weights file that a library unpickles."""
    p.add_argument(TRUST_FLAG, action="store_true",
                   help="open a weights file that a library unpickles (ultralytics .pt) even when its sha256 is not "
                   "the catalogue's: such a file can run code, so only for files you trust (default: refuse them)")


def detect_every(args: argparse.Namespace) -> int:
    if args.detect_every < 1:
        raise AbawError(f"--detect-every must be at least 1, got {args.detect_every}")
    return args.detect_every


def person_weights(args: argparse.Namespace) -> str | None:
    """``--person-weights PATH``: only with ``--person ultralytics`` (the other detectors take no model file)."""
    path = getattr(args, "person_weights", None)
    if path is not None and getattr(args, "person", None) != "ultralytics":
        raise AbawError(f"--person-weights is the model file of --person ultralytics, not of --person {args.person}")
    return path


def trust_weights(args: argparse.Namespace) -> bool:
    """The ``--trust-weights`` flag; with ``--person ultralytics`` the weights file (``--person-weights`` or the
    catalogue's) is checked now, so that a refused file stops the command with one line before any work."""
    trust = bool(getattr(args, "trust_weights", False))
    person = getattr(args, "person", None)
    if person:
        from abaw.video.persons import check_person_weights

        check_person_weights(person, trust, person_weights(args))
    return trust
