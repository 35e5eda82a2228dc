"""``abaw ablate``: the README's ablations over seeds (streams alone vs fused, early vs late fusion, per-frame vs GRU vs
temporal statistics vs the transformer), resumable, writing their table (and the README's block with --readme)."""

from __future__ import annotations

import argparse
import json
import sys

from abaw.commands.train import seeds_arg

DEFAULT_OUT = "abaw-ablation"


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def command_text(args: argparse.Namespace) -> str:
    """The command with the options that decide the figures (not where they are written), for the table's note."""
    parts = ["abaw ablate"]
    if args.data_root:
        parts.append(f"--data-root {args.data_root}")
    parts.append(f"--seeds {','.join(map(str, args.seeds))} --tracks {','.join(args.tracks)}")
    if args.variants:
        parts.append(f"--variants {','.join(args.variants)}")
    if args.epochs is not None:
        parts.append(f"--epochs {args.epochs}")
    parts += [f"--set {text}" for text in args.set]
    if args.pretrained_face != "auto":
        parts.append(f"--pretrained-face {args.pretrained_face}")
    if args.test_labels:
        parts.append(f"--test-labels {args.test_labels}")
    return " ".join(parts)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ablate", help="the README's ablations over seeds: train, score, write the table",
        description=__doc__ + " Each variant is a shipped preset plus overrides, trained in cached mode once per seed "
        "and track; finished runs (same config hash and seed, same dataset) are reused, so a killed ablation "
        "resumes. Scores: mean ± sample std over the seeds, on validation and on the hidden test split when the data "
        "root has its labels (ROOT/test_labels).")
    p.add_argument("--data-root", "--data_root", dest="data_root", metavar="ROOT",
                   help="prepared data root (default: the synthetic default set, generated once into OUT/data)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"runs, database, table (default {DEFAULT_OUT})")
    p.add_argument("--seeds", type=seeds_arg, default=[0, 1, 2], metavar="S,S,...", help="default 0,1,2")
    p.add_argument("--tracks", type=_list, default=["va", "expr"], metavar="T,T", help="default va,expr")
    p.add_argument("--variants", type=_list, metavar="NAME,...",
                   help="a subset of the variants (default: all; --list shows them); a temporal variant brings its "
                        "source")
    p.add_argument("--list", action="store_true", help="list the variants (preset and overrides) and exit")
    p.add_argument("--epochs", type=int, help="train.epochs of every run (default: the presets')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for every training variant, e.g. --set data.batch_size=4 (repeatable)")
    p.add_argument("--pretrained-face", default="auto", metavar="PATH|auto|none",
                   help="face CNN checkpoint (abaw pretrain-affectnet) for the face stream; auto (default): the one "
                        "`abaw demo` made next to the data root (DEMO/pretrain), else none")
    p.add_argument("--test-labels", metavar="DIR", help="hidden test label root (default: ROOT/test_labels if there)")
    p.add_argument("--table", metavar="FILE", help="the markdown table (default OUT/ablation.md)")
    p.add_argument("--readme", metavar="FILE",
                   help="also replace the block between <!-- ablation:start --> and <!-- ablation:end --> in FILE")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw.apps.ablate import VARIANTS, rows_json, run_ablation
    from abaw.errors import AbawError
    from abaw.tasks import check_track
    from abaw.train.config import parse_override

    if args.list:
        width = max(len(v.name) for v in VARIANTS)
        for v in VARIANTS:
            extra = f" (fitted on {v.source})" if v.source else (" (when shipped)" if v.optional else "")
            print(f"{v.name:{width}s} {v.block:9s} {v.preset} {json.dumps(v.overrides)}{extra}: {v.title}")
        return 0
    if args.epochs is not None and args.epochs < 1:
        raise AbawError("--epochs must be 1 or more")
    try:
        tracks = tuple(check_track(t) for t in args.tracks)
    except ValueError as exc:
        raise AbawError(str(exc)) from exc
    overrides = dict(parse_override(text) for text in args.set)
    report = run_ablation(args.out, args.data_root, args.seeds, tracks, args.variants, args.epochs, overrides,
                          args.pretrained_face, args.test_labels, args.table, args.readme, command_text(args))
    if args.json:
        print(json.dumps({"rows": rows_json(report["rows"]), "table": report["table"]}, default=str))
    else:
        sys.stdout.write(report["markdown"])
        print(f"table: {report['table']}" + (f"; README block replaced in {report['readme']}"
                                             if report["readme"] else ""))
    return 0
