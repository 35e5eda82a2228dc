#!/usr/bin/env python
"""Train on Aff-Wild2: ``python train_affwild2.py -c CONFIG --track {1,2,3,all} [--face] [--body] [--context]
[--audio] ...``; the same command as ``abaw train`` (works under ``torchrun --nproc_per_node=N``).

Every flag of the NTUA-CVSP seed's README and argparse keeps its meaning (-r/--resume, -d/--device, -p/--print-freq,
-ef/--eval-freq, --exp_name, --arch, --dropout, --pretrained_affectnet, --cell_type, --hidden_size, --num_layers, the
stream switches, --optimizer, --lr/--learning_rate, --momentum, --weight_decay/--wd, --duration, --batch_size), and
``-c`` also reads the seed's own config.json (``abaw.train.seed_config``)."""

from __future__ import annotations

import sys

from abaw.cli import main as abaw_main


def main(argv: list[str] | None = None) -> int:
    """Run ``abaw train`` with this script's arguments (the parser lives in :mod:`abaw.commands.train`)."""
    return abaw_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
