"""``abaw extract --data-root ROOT --config CFG|--model NAME [--streams ...] [--batch-size N] [--bf16]``:
cache every stream CNN's per-frame features (resumable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from abaw.errors import AbawError
from abaw.tasks import ENCODED_STREAMS


def run(args: argparse.Namespace) -> int:
    from abaw.presets import find_preset
    from abaw.train.checkpoint import model_from_config
    from abaw.train.config import parse_override, resolve
    from abaw.train.extract import extract_features
    from abaw.video.prepare import parse_shard

    if not args.config and not args.model:
        raise AbawError("give --config CFG or --model NAME")
    overrides: dict[str, Any] = {"data.root": str(Path(args.data_root).resolve())}
    if args.model:
        overrides["model.name"] = args.model
    if args.streams:
        overrides["data.streams"] = args.streams
    for text in args.set:
        key, value = parse_override(text)
        overrides[key] = value
    cfg = resolve(find_preset(args.config) if args.config else None, overrides)
    model = model_from_config(cfg)
    if args.model and not args.streams and not args.config:
        cfg["data"]["streams"] = [s for s in model.stream_encoders() if s in ENCODED_STREAMS]
        model = model_from_config(cfg)
    summary = extract_features(cfg, model, streams=args.streams, batch_size=args.batch_size, bf16=args.bf16,
                               force=args.force, shard_of=parse_shard(args.shard))
    print(json.dumps(summary, indent=2))
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("extract", help="cache per-frame CNN features of each stream", description=__doc__)
    p.add_argument("--data-root", "--data_root", dest="data_root", required=True)
    p.add_argument("-c", "--config", help="training config or preset name (the cache its cached mode reads)")
    p.add_argument("--model", help="registered model name (instead of a config)")
    p.add_argument("--streams", nargs="+", choices=ENCODED_STREAMS)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--force", action="store_true", help="recompute complete files too")
    p.add_argument("--shard", help="i/N: only the i-th of N shares of the videos (default under torchrun: the rank's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.set_defaults(func=run)
