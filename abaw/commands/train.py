"""``abaw train`` (and ``train_affwild2.py``): the NTUA-CVSP command line with its defects fixed: stream flags are
real switches, ``--pretrained_affectnet`` takes a checkpoint path (or ``none``), track 3 is AU, ``--track all``
trains the three tasks jointly."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from abaw.errors import AbawError
from abaw.presets import find_preset as find_config  # a config path, or a preset name (demo_va); kept for callers
from abaw.tasks import TRACK_NUMBERS, TRACKS

log = logging.getLogger(__name__)

STREAM_FLAGS = ("face", "body", "context", "audio", "landmarks")


def parse_track(text: str) -> list[str]:
    key = text.strip().lower()
    if key in ("all", "multitask", "mtl"):
        return list(TRACKS)
    try:
        from abaw.tasks import check_track

        return [check_track(key)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown track {text!r}; choose 1 (VA), 2 (EXPR), 3 (AU) or all") from None


DEVICE_HELP = "auto (this process's GPU when there is one, else the CPU), cpu, cuda or cuda:N"
AMP_CHOICES = ("bf16", "fp16", "none")


def device_arg(text: str) -> str:
    """An argparse ``type=`` for ``--device`` (no torch import: ``--help`` stays fast): auto, cpu, cuda or cuda:N."""
    key = text.strip().lower()
    kind, colon, index = key.partition(":")
    if key in ("auto", "cpu", "cuda") or (kind == "cuda" and colon and index.isdigit()):
        return key
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose {DEVICE_HELP}")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="config JSON, or a preset name from configs/ (e.g. demo_va)")
    p.add_argument("--track", type=parse_track, help="1 VA, 2 EXPR, 3 AU, or all (multi-task); default: the config's")
    for stream in STREAM_FLAGS:
        p.add_argument(f"--{stream}", action="store_true", help=f"use the {stream} stream")
    p.add_argument("--pretrained_affectnet", metavar="PATH|none",
                   help="backbone checkpoint (abaw pretrain-affectnet) loaded into the face stream; 'none' for none")
    p.add_argument("--optimizer", choices=("SGD", "Adam", "AdamW"))
    p.add_argument("--lr", type=float)
    p.add_argument("--batch_size", "--batch-size", type=int, dest="batch_size")
    p.add_argument("--duration", type=int, help="sequence length in frames")
    p.add_argument("--cell_type", choices=("gru", "lstm"))
    p.add_argument("--hidden_size", type=int)
    p.add_argument("--num_layers", type=int)
    p.add_argument("--dropout", type=float)
    p.add_argument("--arch", help="registered model name (overrides model.name)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run exactly where it stopped")
    p.add_argument("--data-root", "--data_root", dest="data_root", help="Aff-Wild2 data root")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--mode", choices=("end2end", "cached"), help="train on frames or on cached CNN features")
    p.add_argument("--device", type=device_arg, help=f"train.device: {DEVICE_HELP} (default: the config's, auto)")
    p.add_argument("--amp", choices=AMP_CHOICES,
                   help="train.amp: bf16 autocast (CPU or GPU), fp16 autocast with a loss scaler (CUDA only), none")
    p.add_argument("--bf16", action="store_true", help="same as --amp bf16")
    p.add_argument("--protocol", help="abaw2020 | abaw2021 | abaw2022")
    p.add_argument("--out", default="runs", help="folder of run folders (default runs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. --set data.max_videos=4 (repeatable; value is JSON)")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps (resumable with --resume)")
    p.add_argument("--json", action="store_true", help="print the final scores as JSON")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted config overrides the command-line flags ask for."""
    from abaw.train.config import parse_override

    o: dict[str, Any] = {}
    if args.track:
        o["tasks"] = args.track
    streams = [s for s in STREAM_FLAGS if getattr(args, s)]
    if streams:
        o["data.streams"] = streams
    simple = {"optimizer": "optim.name", "lr": "optim.lr", "batch_size": "data.batch_size",
              "duration": "data.duration", "epochs": "train.epochs", "seed": "train.seed", "mode": "data.mode",
              "data_root": "data.root", "protocol": "protocol", "arch": "model.name"}
    for flag, key in simple.items():
        value = getattr(args, flag)
        if value is not None:
            o[key] = str(Path(value).resolve()) if flag == "data_root" else value
    for flag in ("cell_type", "hidden_size", "num_layers", "dropout"):
        value = getattr(args, flag)
        if value is not None:
            o[f"model.kwargs.{flag}"] = value
    if args.pretrained_affectnet is not None and args.pretrained_affectnet.lower() not in ("none", ""):
        path = Path(args.pretrained_affectnet)
        if not path.is_file():
            raise AbawError("--pretrained_affectnet: backbone checkpoint not found", path=path)
        o["model.kwargs.pretrained_face"] = str(path.resolve())
    if args.bf16 and args.amp not in (None, "bf16"):
        raise AbawError(f"--bf16 and --amp {args.amp} disagree: give one of them")
    if args.bf16:
        o["train.amp"] = "bf16"
    if args.amp is not None:
        o["train.amp"] = None if args.amp == "none" else args.amp
    if args.device is not None:
        o["train.device"] = args.device
    for text in args.set:
        key, value = parse_override(text)
        o[key] = value
    return o


def resolve_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from abaw.train.config import resolve

    overrides = overrides_from_args(args)
    preset = find_config(args.config) if args.config else None
    kwargs = {k: v for k, v in overrides.items() if k.startswith("model.kwargs.")}
    rest = {k: v for k, v in overrides.items() if not k.startswith("model.kwargs.")}
    cfg = resolve(preset, rest, check_root=True)
    for key, value in kwargs.items():
        cfg["model"]["kwargs"][key.split(".", 2)[2]] = value
    if args.pretrained_affectnet is not None and args.pretrained_affectnet.lower() == "none":
        cfg["model"]["kwargs"].pop("pretrained_face", None)
    return cfg


def check_validation(cfg: dict[str, Any]) -> None:
    """Before a run folder is made: a data root with no validation annotations for any of the config's tracks is an
    error (training selects on them), one missing some of them a warning line on stderr."""
    import sys

    from abaw.commands.index import missing_validation
    from abaw.data.affwild2 import AffWild2
    from abaw.train.config import tracks_of

    root = cfg["data"].get("root")
    if not root or not Path(root).is_dir():
        return  # the trainer says so
    ds = AffWild2(root, protocol=cfg.get("protocol"))
    tracks = tracks_of(cfg)
    note = missing_validation(ds, tracks)
    if note is None:
        return
    if not any(ds.has("validation", t) for t in tracks):
        raise AbawError(note)
    print(f"abaw train: warning: {note}", file=sys.stderr)


def check_device(cfg: dict[str, Any]) -> None:
    """Before a run folder is made: the device exists in this process and supports the precision (fp16 needs
    CUDA), as one-line errors."""
    import torch

    from abaw.train.fitting import check_amp, pick_device

    device = pick_device(cfg["train"]["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AbawError(f"train.device is {str(device)!r} but torch sees no CUDA device here")
    check_amp(cfg["train"]["amp"], device)


def run(args: argparse.Namespace) -> int:
    from abaw.runs.info import read_json
    from abaw.train.loop import train

    if args.resume:
        run_dir = train(resume=args.resume, max_steps=args.max_steps, data_root=args.data_root, out=args.out)
    else:
        if not args.config:
            raise AbawError("give a config (-c CONFIG) or --resume RUN_DIR")
        cfg = resolve_from_args(args)
        check_device(cfg)
        check_validation(cfg)
        run_dir = train(cfg, out=args.out, max_steps=args.max_steps)
    from abaw.train.distributed import world_info

    if world_info()[0] != 0:
        return 0
    info = read_json(run_dir / "run.json")
    scores_path = run_dir / "scores.json"
    if args.json and scores_path.is_file():
        print(json.dumps({"run_dir": str(run_dir), **read_json(scores_path)}, default=str))
    elif scores_path.is_file():
        scores = read_json(scores_path)
        parts = ", ".join(f"{t} {s['score']:.4f}" for t, s in scores["tracks"].items())
        print(f"{run_dir}: validation score {scores['score']:.4f} ({parts}); {info.get('train_seconds')} s")
    else:
        print(f"{run_dir}: {info.get('status')} after {info.get('steps')} steps (continue with --resume {run_dir})")
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a model on Aff-Wild2 (same as train_affwild2.py)",
                              description=__doc__)
    add_train_arguments(p)
    p.set_defaults(func=run)


TRACK_HELP = ", ".join(f"{k} {v}" for k, v in TRACK_NUMBERS.items())
