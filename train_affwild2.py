#!/usr/bin/env python
"""Train on Aff-Wild2: ``python train_affwild2.py -c CONFIG --track {1,2,3,all} [--face] [--body] [--context]
[--audio] ...``; the same command as ``abaw train`` (works under ``torchrun --nproc_per_node=N``)."""

from __future__ import annotations

import sys

from abaw.cli import main as abaw_main


def main(argv: list[str] | None = None) -> int:
    """Run ``abaw train`` with this script's arguments (the parser lives in :mod:`abaw.commands.train`)."""
    return abaw_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
