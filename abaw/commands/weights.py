"""``abaw weights {list,fetch,verify}``: the model files abaw uses, downloaded once and verified."""

from __future__ import annotations

import argparse

from abaw.errors import AbawError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="list, fetch or verify the model files (detectors, FER, backbones)",
                              description=__doc__)
    p.add_argument("action", choices=("list", "fetch", "verify"))
    p.add_argument("names", nargs="*", help="catalogue names (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from abaw import weights
    from abaw.errors import report_failures

    selected = args.names or weights.names()
    for name in selected:
        weights.get(name)  # unknown name -> one-line error before doing anything
    if args.action == "list":
        for name in selected:
            entry = weights.get(name)
            local = weights.locate(name)
            print(f"{name:26s} {entry.filename:38s} {entry.licence:30s} {'present' if local else 'missing'}")
            print(f"{'':26s} {entry.url}")
            print(f"{'':26s} sha256 {entry.sha256 or '(not published)'}; {entry.note}")
        return 0
    if args.action == "fetch":
        fetch_failures = []
        for name in selected:
            try:
                print(f"{name}: {weights.fetch(name)}")
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
