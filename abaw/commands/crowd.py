"""``abaw crowd aggregate|simulate``, ``abaw train-crowd`` and ``abaw pretrain-affectnet``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from abaw.commands.train import DEVICE_HELP, device_arg
from abaw.errors import AbawError

if TYPE_CHECKING:
    import pandas as pd

AGGREGATE_METHODS = ("mv", "soft", "ds", "mean", "median")
#: train-crowd: what the labels are, the methods and the crowd layers (kept equal to abaw.crowd: not imported, so
#: that the CLI builds its parsers without torch).
CROWD_KINDS = ("expression", "va", "valence", "arousal")
CLASS_METHODS = ("mv", "soft", "ds", "crowd")
VALUE_METHODS = ("mv", "mean", "median", "crowd")
TRAIN_METHODS = tuple(dict.fromkeys((*CLASS_METHODS, *VALUE_METHODS)))
CLASS_LAYERS = ("MW", "VW", "VB", "VW+B")
VALUE_LAYERS = ("S", "B", "S+B", "B+S")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    crowd = subparsers.add_parser("crowd", help="aggregate crowd labels; simulated-annotator benchmark",
                                  description="Crowd labels: aggregation and a simulated-annotator benchmark.")
    sub = crowd.add_subparsers(dest="crowd_command", metavar="ACTION")
    crowd.set_defaults(func=lambda args: (crowd.print_help(), 2)[1])

    agg = sub.add_parser("aggregate", help="aggregate a votes table (AffectNetC25, CREMA-D, one column per annotator)")
    agg.add_argument("votes", type=Path, help="votes CSV")
    agg.add_argument("--method", choices=AGGREGATE_METHODS, default=None,
                     help="mv (majority vote, ties to the smallest code, reported), soft (vote distribution), "
                          "ds (Dawid-Skene EM), mean / median (valence, arousal); default mv for classes, mean for "
                          "values")
    agg.add_argument("--out", type=Path, default=None, help="output CSV (default: print the table)")
    agg.add_argument("--format", dest="fmt", choices=("auto", "c25", "cremad", "table"), default="auto")
    agg.add_argument("--kind", default=None,
                     help="c25: expression|valence|arousal (default from the file name); table: class|value")
    agg.add_argument("--item-column", default=None, help="table: the item id column (default: the first)")
    agg.add_argument("--classes", default=None, help="table: comma-separated class names, in code order")
    agg.set_defaults(func=run_aggregate)

    sim = sub.add_parser("simulate", help="benchmark aggregation and crowd layers on simulated annotators")
    sim.add_argument("--classes", type=int, default=5)
    sim.add_argument("--dim", type=int, default=10, help="input dimension of the Gaussian class clusters")
    sim.add_argument("--items", type=int, default=1500)
    sim.add_argument("--reliable", type=int, default=2)
    sim.add_argument("--noisy", type=int, default=3)
    sim.add_argument("--adversarial", type=int, default=3)
    sim.add_argument("--missing", type=float, default=0.2, help="fraction of labels dropped")
    sim.add_argument("--epochs", type=int, default=30)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--values", action="store_true",
                     help="valence/arousal-like values instead of classes: regression crowd layers S, B, S+B, B+S "
                          "against the majority level, mean and median (test CCC and RMSE)")
    sim.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    sim.set_defaults(func=run_simulate)

    tc = subparsers.add_parser("train-crowd", help="train a face CNN on AffectNet-format images with crowd labels "
                                                   "(expressions, or valence/arousal)")
    tc.add_argument("--data", type=Path, required=True, help="AffectNet-format root")
    src = tc.add_mutually_exclusive_group(required=True)
    src.add_argument("--votes", type=Path, nargs="+", metavar="CSV",
                     help="AffectNetC25 expression CSV, or valence and/or arousal CSVs (filename = "
                          "subDirectory_filePath); the kind comes from the file names")
    src.add_argument("--simulate", metavar="SPEC", help="simulate annotators from the true labels, e.g. "
                                                        "reliable=2,noisy=3,adversarial=3[,missing=0.2]")
    tc.add_argument("--kind", choices=CROWD_KINDS, default=None,
                    help="what the crowd labels: expression (default with --simulate) or valence/arousal (va, "
                         "valence, arousal); with --votes it comes from the file names")
    tc.add_argument("--method", choices=TRAIN_METHODS, default="crowd",
                    help="expression: mv, soft, ds or crowd; valence/arousal: mv (majority level), mean, median or "
                         "crowd (default: crowd)")
    tc.add_argument("--crowd-layer", default=None, choices=(*CLASS_LAYERS, *VALUE_LAYERS),
                    help=f"crowd layer of --method crowd: {', '.join(CLASS_LAYERS)} for expressions (default MW), "
                         f"regression {', '.join(VALUE_LAYERS)} for valence/arousal (default S+B)")
    tc.add_argument("--backbone", default="tiny_cnn")
    tc.add_argument("--pretrained", default=None, help="backbone init: none, imagenet or a backbone checkpoint")
    tc.add_argument("--epochs", type=int, default=10)
    tc.add_argument("--batch-size", type=int, default=32)
    tc.add_argument("--lr", type=float, default=1e-3)
    tc.add_argument("--crowd-lr", type=float, default=1e-2, help="learning rate of the crowd layer")
    tc.add_argument("--crowd-init", choices=("identity", "ds"), default="identity",
                    help="MW start: identity (Rodrigues & Pereira) or the Dawid-Skene confusion matrices")
    tc.add_argument("--image-size", type=int, default=112)
    tc.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--device", default="auto", type=device_arg, help=f"{DEVICE_HELP} (default: auto)")
    tc.add_argument("--out", type=Path, required=True, help="run folder")
    tc.set_defaults(func=run_train_crowd)

    pre = subparsers.add_parser("pretrain-affectnet", help="pretrain a face CNN on AffectNet-format data")
    pre.add_argument("--data", type=Path, required=True, help="AffectNet-format root")
    pre.add_argument("--backbone", required=True, help="backbone name (abaw.models.backbones), e.g. tiny_cnn")
    pre.add_argument("--tasks", choices=("expr", "expr+va"), default="expr")
    pre.add_argument("--out", type=Path, required=True, help="backbone checkpoint to write (.pt)")
    pre.add_argument("--classes", default="affectnet", help="expression order: affectnet (8, default), abaw7 "
                                                            "(Contempt dropped) or abaw8 (Contempt, None -> Other)")
    pre.add_argument("--pretrained", default=None, help="backbone init: none, imagenet or a backbone checkpoint")
    pre.add_argument("--epochs", type=int, default=10)
    pre.add_argument("--batch-size", type=int, default=32)
    pre.add_argument("--lr", type=float, default=1e-3)
    pre.add_argument("--image-size", type=int, default=112)
    pre.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--device", default="auto", type=device_arg, help=f"{DEVICE_HELP} (default: auto)")
    pre.add_argument("--force", action="store_true", help="retrain even if --out is a finished checkpoint")
    pre.set_defaults(func=run_pretrain)


# ---- aggregate -------------------------------------------------------------------------------------------------

def run_aggregate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from abaw.crowd import aggregate as agg
    from abaw.crowd import votes as vt

    fmt = vt.detect_format(args.votes) if args.fmt == "auto" else args.fmt
    summary: list[str] = []
    if fmt == "cremad":
        counts_obj = vt.read_cremad_votes(args.votes)
        table = None
    elif fmt == "c25":
        table = vt.read_c25(args.votes, args.kind)
        counts_obj = None
    else:
        classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else None
        table = vt.read_annotator_table(args.votes, args.item_column, kind=args.kind or "class", classes=classes)
        counts_obj = None

    if table is not None and table.kind == "value":
        method = args.method or "mean"
        if method not in ("mean", "median"):
            raise AbawError(f"these labels are continuous values: use --method mean or median, not {method}",
                            path=args.votes)
        fn = agg.mean_values if method == "mean" else agg.median_values
        df = pd.DataFrame({"item": table.items, "value": fn(table.values),
                           "n_votes": (~np.isnan(table.values)).sum(axis=1)})
        summary.append(f"{len(df)} items, {table.n_annotators} annotators, {method} of the values")
        return _emit(df, args.out, summary)

    method = args.method or "mv"
    if method in ("mean", "median"):
        raise AbawError(f"--method {method} is for valence/arousal values; these are class votes", path=args.votes)
    if counts_obj is None:
        counts_obj = table.counts()
    counts, classes = counts_obj.counts, counts_obj.classes
    names = counts_obj.codes or classes
    df = pd.DataFrame({"item": counts_obj.items})
    mv = agg.majority_vote(counts)
    summary.append(f"{len(df)} items, {counts.sum()} votes, {len(classes)} classes; majority vote: {mv.n_ties} "
                   f"tie{'s' if mv.n_ties != 1 else ''} (reported in tie_set, label = smallest tied code)")
    if method == "mv":
        df["label"] = mv.labels
        df["class"] = [classes[k] if k >= 0 else "" for k in mv.labels]
        df["tied"] = mv.tied
        df["tie_set"] = [":".join(str(names[k]) if counts_obj.codes else str(k) for k in s) for s in mv.tie_sets]
    elif method == "soft":
        probs = agg.soft_labels(counts)
        for k, name in enumerate(classes):
            df[f"p_{name.lower()}"] = probs[:, k]
    else:  # ds
        votes = table.codes() if table is not None else counts[:, None, :]
        ds = agg.dawid_skene(votes, len(classes))
        df["label"] = ds.labels
        df["class"] = [classes[k] for k in ds.labels]
        for k, name in enumerate(classes):
            df[f"p_{name.lower()}"] = ds.posterior[:, k]
        changed = int((ds.labels != mv.labels).sum())
        summary.append(f"Dawid-Skene: {ds.n_iter} EM iterations (converged: {ds.converged}); differs from the "
                       f"majority vote on {changed} items")
    df["n_votes"] = mv.n_votes
    if counts_obj.published is not None:
        published = np.asarray(counts_obj.published)
        ours = np.array([":".join(str(names[k]) for k in s) for s in mv.tie_sets])
        clear = ~mv.tied
        same_clear = int((ours[clear] == published[clear]).sum())
        same_tied = int((ours[~clear] == published[~clear]).sum())
        summary.append(f"published vote: majority vote matches {same_clear} of {int(clear.sum())} rows without a "
                       f"tie; tie sets match {same_tied} of {int((~clear).sum())} tied rows")
        df["published"] = published
    return _emit(df, args.out, summary)


def _emit(df: pd.DataFrame, out: Path | None, summary: list[str]) -> int:
    from abaw.fileio import write_text

    stream = sys.stdout if out is not None else sys.stderr
    for line in summary:
        print(line, file=stream)
    if out is not None:
        write_text(out, df.to_csv(index=False))
        print(f"wrote {out}", file=stream)
    else:
        df.to_csv(sys.stdout, index=False)
    return 0


# ---- simulate --------------------------------------------------------------------------------------------------

def run_simulate(args: argparse.Namespace) -> int:
    from abaw.crowd.benchmark import simulated_benchmark, value_benchmark

    if args.values:
        figures = value_benchmark(dim=args.dim, n_items=args.items, reliable=args.reliable, noisy=args.noisy,
                                  adversarial=args.adversarial, missing=args.missing, epochs=args.epochs,
                                  seed=args.seed)
    else:
        figures = simulated_benchmark(n_classes=args.classes, dim=args.dim, n_items=args.items,
                                      reliable=args.reliable, noisy=args.noisy, adversarial=args.adversarial,
                                      missing=args.missing, epochs=args.epochs, seed=args.seed)
    print(json.dumps(figures, indent=2))
    if args.out is not None:
        from abaw.fileio import write_json

        write_json(args.out, figures)
    return 0


# ---- train-crowd / pretrain-affectnet ----------------------------------------------------------------------------

def crowd_kind(args: argparse.Namespace) -> str:
    """``expression`` or a valence/arousal kind, from ``--kind`` or the votes files' names; checks that the method
    and the crowd layer fit it (one line otherwise)."""
    from abaw.crowd.votes import c25_kind

    kind = args.kind
    if args.votes:
        found = {c25_kind(p) for p in args.votes}
        is_value = found <= {"valence", "arousal"}
        if found == {"expression"} and len(args.votes) == 1:
            vote_kind = "expression"
        elif is_value:
            vote_kind = "va" if len(found) == 2 else found.pop()
        else:
            raise AbawError("--votes takes one AffectNetC25 expression file, or a valence and/or an arousal file "
                            "(named as AffectNetC25 names them)", path=args.votes[0])
        if kind is not None and kind != vote_kind:
            raise AbawError(f"--kind {kind} does not match the votes files ({vote_kind})", path=args.votes[0])
        kind = vote_kind
    kind = kind or "expression"
    if kind != "expression" and args.crowd_init != "identity":
        raise AbawError("--crowd-init ds starts an MW layer of expressions; it does not apply to valence/arousal")
    methods, layers = (CLASS_METHODS, CLASS_LAYERS) if kind == "expression" else (VALUE_METHODS, VALUE_LAYERS)
    what = "expressions" if kind == "expression" else "valence/arousal"
    if args.method not in methods:
        raise AbawError(f"--method {args.method} is not for {what}; choose one of {', '.join(methods)}")
    if args.crowd_layer is not None and args.crowd_layer not in layers:
        raise AbawError(f"--crowd-layer {args.crowd_layer} is not for {what}; choose one of {', '.join(layers)}")
    return kind


def run_train_crowd(args: argparse.Namespace) -> int:
    kind = crowd_kind(args)
    if kind == "expression":
        from abaw.crowd.images import train_crowd_images

        scores = train_crowd_images(args.data, args.out, votes=args.votes[0] if args.votes else None,
                                    simulate=args.simulate, method=args.method,
                                    conn_type=args.crowd_layer or CLASS_LAYERS[0], backbone=args.backbone,
                                    pretrained=args.pretrained, epochs=args.epochs, batch_size=args.batch_size,
                                    lr=args.lr, image_size=args.image_size, seed=args.seed, device=args.device,
                                    limit=args.limit, crowd_lr=args.crowd_lr, crowd_init=args.crowd_init)
    else:
        from abaw.crowd.value_images import train_crowd_values

        scores = train_crowd_values(args.data, args.out, votes=args.votes, simulate=args.simulate, kind=kind,
                                    method=args.method, conn_type=args.crowd_layer or "S+B", backbone=args.backbone,
                                    pretrained=args.pretrained, epochs=args.epochs, batch_size=args.batch_size,
                                    lr=args.lr, image_size=args.image_size, seed=args.seed, device=args.device,
                                    limit=args.limit, crowd_lr=args.crowd_lr)
    print(json.dumps(scores, indent=2))
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from abaw.train.pretrain import PretrainConfig, pretrain_affectnet

    cfg = PretrainConfig(data=args.data, backbone=args.backbone, tasks=tuple(args.tasks.split("+")), out=args.out,
                         target=args.classes, pretrained=args.pretrained, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, image_size=args.image_size, limit=args.limit,
                         seed=args.seed, device=args.device)
    result = pretrain_affectnet(cfg, force=args.force)
    print(json.dumps(result, indent=2, default=str))
    return 0
