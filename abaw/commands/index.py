"""``abaw index DATA_ROOT``: check an Aff-Wild2 data root and count, per track and split, videos, frames and labels."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from abaw import tasks

if TYPE_CHECKING:
    import pandas as pd

    from abaw.data.affwild2 import AffWild2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("index", help="check a data root and count videos, frames and valid labels",
                              description=__doc__)
    p.add_argument("data_root", metavar="DATA_ROOT", help="Aff-Wild2 data root (real or from `abaw synth`)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--out", metavar="FILE", help="also write the per-name index table (.csv or .parquet)")
    p.add_argument("--strict", action="store_true",
                   help="a label file whose line count differs from its video's frames is an error, not a warning")
    p.add_argument("--protocol", choices=tuple(tasks.PROTOCOLS),
                   help="class lists and headers (default: from the layout, abaw2021 or abaw2022)")
    p.add_argument("--layout", choices=(*tasks.LAYOUTS, tasks.MTL_LAYOUT), help="annotation layout (default: detected)")
    p.set_defaults(func=run)


def summarise(table: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """``{track: {split: {videos, video_files, frames, label_lines, valid_labels, crops, mismatched}}}``.

    ``videos`` counts annotation names (a two-person video gives two), ``video_files`` the files behind them.
    """
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (track, split), group in table.groupby(["track", "split"], sort=False):
        out.setdefault(str(track), {})[str(split)] = {
            "videos": int(group["name"].nunique()),
            "video_files": int(group["video"].nunique()),
            "frames": int(group["n_frames"].sum()),
            "label_lines": int(group["n_label_lines"].sum()),
            "valid_labels": int(group["n_valid"].sum()),
            "crops": int(group["n_crops"].sum()),
            "mismatched": int(group["label_mismatch"].sum()),
        }
    return out


#: Names shown per track pair in the overlap report.
SHOWN_NAMES = 5


def overlap_summary(table: pd.DataFrame) -> list[dict]:
    """Per (training track, validation track) pair: how many names sit in both splits, their frames and labels in
    the training file, and the first few names (:func:`abaw.data.affwild2.split_overlaps`)."""
    from abaw.data.affwild2 import split_overlaps

    out = []
    for (train_track, val_track), group in split_overlaps(table).groupby(["train_track", "validation_track"],
                                                                          sort=False):
        out.append({"train_track": str(train_track), "validation_track": str(val_track),
                    "names": int(len(group)), "train_frames": int(group["train_frames"].sum()),
                    "train_labels": int(group["train_labels"].sum()),
                    "examples": group["name"].astype(str).head(SHOWN_NAMES).tolist()})
    return out


def overlap_lines(overlaps: list[dict]) -> list[str]:
    """The overlap report as text lines (none when the splits are clean)."""
    if not overlaps:
        return []
    lines = ["names in a training split of one track and a validation split of another (multi-task training and "
             "ensembles leave them out of training):"]
    for o in overlaps:
        more = ", ..." if o["names"] > len(o["examples"]) else ""
        plural = "s" if o["names"] != 1 else ""
        lines.append(f"  {o['train_track'].upper()} train / {o['validation_track'].upper()} validation: "
                     f"{o['names']} name{plural}, {o['train_frames']} frames ({o['train_labels']} labelled): "
                     f"{', '.join(o['examples'])}{more}")
    return lines


def missing_validation(ds: AffWild2, tracks: list[str] | tuple[str, ...] = tasks.TRACKS) -> str | None:
    """One line naming the missing validation annotations of the ``tracks`` that have train annotations (None when
    every such track has them): training selects and scores on the validation split."""
    missing = [t for t in tracks if ds.has("train", t) and not ds.has("validation", t)]
    if not missing:
        return None
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    what = tasks.SPLIT_DIRS["validation"]
    return (f"{ds.annotation_dir('validation', missing[0])}: no {what}{more}: no validation annotations for "
            f"{', '.join(t.upper() for t in missing)} (training needs them)")


def run(args: argparse.Namespace) -> int:
    from abaw.data.affwild2 import AffWild2, dataset_fingerprint, write_table

    ds = AffWild2(args.data_root, protocol=args.protocol, strict=args.strict, layout=args.layout)
    note = missing_validation(ds)
    if note:
        print(f"abaw index: warning: {note}", file=sys.stderr)
    table = ds.index_table(progress=not args.json)
    if args.out:
        write_table(table, args.out)
    summary = summarise(table)
    overlaps = overlap_summary(table)
    if args.json:
        print(json.dumps({"root": str(ds.root), "layout": ds.layout, "protocol": ds.protocol.name,
                          "fingerprint": dataset_fingerprint(ds.root), "tracks": summary, "overlaps": overlaps}))
        return 0
    print(f"{ds.root}: layout {ds.layout}, protocol {ds.protocol.name}")
    print(f"{'track':6s} {'split':11s} {'videos':>7s} {'frames':>10s} {'label lines':>12s} {'valid labels':>13s} "
          f"{'crops':>10s} {'mismatched':>10s}")
    for track, splits in summary.items():
        for split, s in splits.items():
            print(f"{track:6s} {split:11s} {s['videos']:7d} {s['frames']:10d} {s['label_lines']:12d} "
                  f"{s['valid_labels']:13d} {s['crops']:10d} {s['mismatched']:10d}")
    for line in overlap_lines(overlaps):
        print(line)
    if args.out:
        print(f"index table: {args.out}")
    return 0
