"""``abaw temporal --source RUN_DIR --config PRESET``: the CNU_ADL temporal statistical model on a run's outputs."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "temporal", help="train the temporal statistical model (block statistics -> multi-task heads) on a run",
        description=__doc__ + " By default (fit_on=validation) it is fitted on the source run's validation outputs "
        "by grouped cross-validation (outputs the source model did not train on; each validation video is predicted "
        "by a model fitted on other videos, so the validation score is out of fold); --set fit_on=train fits it on "
        "the source's training-split outputs instead. Writes a run folder of kind 'temporal'; its run.json says "
        "fit_uses_validation.")
    p.add_argument("--source", required=True, metavar="RUN_DIR", help="a trained run with predictions/validation "
                   "(and predictions/train for fit_on=train; embeddings/ for the embedding input)")
    p.add_argument("-c", "--config", default=None,
                   help="preset JSON, or a preset name (e.g. cnu_adl_temporal, cnu_adl_temporal_bilstm)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a config key, e.g. --set block=32 --set 'stats=[\"max\",\"mean\"]'")
    p.add_argument("--data-root", default=None, help="Aff-Wild2 root (default: the source run's data root)")
    p.add_argument("--out", default="runs", help="folder for the new run (default: runs)")
    p.add_argument("--force", action="store_true", help="retrain even when the same run is already finished")
    p.set_defaults(func=run)


def _overrides(items: list[str]) -> dict:
    from abaw.errors import AbawError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise AbawError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value  # a bare string such as variant=bilstm
    return out


def run(args: argparse.Namespace) -> int:
    from abaw.presets import find_preset
    from abaw.runs.info import read_json
    from abaw.temporal.config import load_config
    from abaw.temporal.train import fit_temporal

    config = load_config(find_preset(args.config) if args.config else None, _overrides(args.set))
    run_dir = fit_temporal(args.source, config, args.data_root, args.out, force=args.force)
    doc = read_json(run_dir / "scores.json")
    scores = doc.get("tracks", {})
    fit_on = (doc.get("temporal") or {}).get("fit_on", "train")
    print(f"temporal run: {run_dir} (fitted on {fit_on}"
          f"{': validation scores out of fold' if fit_on == 'validation' else ''})")
    for track, result in scores.items():
        print(f"  {track:5s} validation score {result['score']:.4f}")
    return 0
