"""``abaw weights {list,fetch,verify,convert}``: the model files abaw uses, downloaded once and verified; ``list`` also
says which presets start from each file, ``convert`` turns a pickled model (HSEmotion) into a safe state_dict once."""

from __future__ import annotations

import argparse
from typing import Any

from abaw.commands.detection_args import add_trust_weights_arg
from abaw.errors import AbawError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="list, fetch, verify or convert the model files (detectors, FER, "
                              "backbones)", description=__doc__)
    p.add_argument("action", choices=("list", "fetch", "verify", "convert"))
    p.add_argument("names", nargs="*", help="catalogue names (default: all; convert: the pickled models present; "
                   "convert fer2013_mini_xception: its ONNX export for OpenCV, made ahead of its first use)")
    add_trust_weights_arg(p)
    p.set_defaults(func=run)


def preset_weights() -> dict[str, list[Any]]:
    """Every shipped training preset (configs with a ``model`` section) -> what its image streams start from
    (:class:`abaw.models.pretrained.StreamWeights`)."""
    from abaw.models.pretrained import config_weights
    from abaw.presets import find_preset, list_presets, read_preset
    from abaw.train.config import resolve

    out = {}
    for name in list_presets():
        path = find_preset(name)
        if "model" in read_preset(path):
            out[name] = config_weights(resolve(path, check_root=False))
    return out


def _users(presets: dict[str, list[Any]], name: str) -> tuple[list[str], list[str]]:
    """The presets that start from catalogue entry ``name``, and those that would with ``pretrained: true``."""
    used, would = [], []
    for preset, streams in presets.items():
        which = [s.stream for s in streams if s.weights == name]
        if which:
            target = used if any(s.used for s in streams if s.weights == name) else would
            target.append(f"{preset} ({', '.join(which)})")
    return used, would


def run(args: argparse.Namespace) -> int:
    from abaw import weights
    from abaw.errors import report_failures

    selected = args.names or weights.names()
    for name in selected:
        weights.get(name)  # unknown name -> one-line error before doing anything
    if args.action == "list":
        presets = preset_weights()
        for name in selected:
            entry = weights.get(name)
            local = weights.locate(name)
            print(f"{name:26s} {entry.filename:38s} {entry.licence:30s} {'present' if local else 'missing'}")
            print(f"{'':26s} {entry.url}")
            sha = entry.sha256 or "(not published)"
            if entry.sha256_is_prefix:
                sha += " (the publisher's prefix)"
            print(f"{'':26s} sha256 {sha}; {entry.note}")
            if entry.citation:
                print(f"{'':26s} cite: {entry.citation}")
            used, would = _users(presets, name)
            if used:
                print(f"{'':26s} presets: {', '.join(used)}")
            if would:
                print(f"{'':26s} with pretrained=true: {', '.join(would)}")
        if not args.names:
            print("\npresets (image streams: backbone and the weights they start from)")
            for preset, streams in presets.items():
                print(f"{preset:34s} {'; '.join(s.describe() for s in streams) or 'no CNN'}")
        return 0
    if args.action == "convert":
        from abaw.models.convert import convert

        names = args.names or [n for n in weights.names()
                               if weights.get(n).layout == "timm_pickle" and weights.locate(n) is not None]
        if not names:
            print("nothing to convert: no pickled model file is present (abaw weights list shows them)")
            return 0
        for name in names:
            print(f"{name}: {convert(name, trust=args.trust_weights)}")
        return 0
    if args.action == "fetch":
        fetch_failures = []
        for name in selected:
            try:
                print(f"{name}: {weights.fetch(name, trust=args.trust_weights)}")
            except AbawError as exc:
                if len(selected) == 1:
                    raise
                fetch_failures.append(f"{name}: {exc}")
        return report_failures("weights fetch", fetch_failures, len(selected), "weight files")
    failures = []
    for name in selected:
        ok, message = weights.verify(name)
        # Without names, a file never fetched (e.g. yolov8n, which needs internet) is listed but is no failure;
        # a file present with the wrong bytes always is. Failures go to stderr, one line each, then a summary.
        if not ok and (bool(args.names) or weights.locate(name) is not None):
            failures.append(message)
        else:
            print(message)
    return report_failures("weights verify", failures, len(selected), "weight files")
