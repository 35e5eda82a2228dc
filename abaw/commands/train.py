"""``abaw train`` (and ``train_affwild2.py``): the NTUA-CVSP command line with its defects fixed: every flag of the
seed's README and argparse with the seed's meaning (stream flags are real switches, ``--pretrained_affectnet`` takes a
checkpoint path, ``single`` or ``none``, track 3 is AU, ``--track all`` trains the three tasks jointly); the seed's
own ``config.json`` is read (``abaw.train.seed_config``); ``--seeds 0,1,2`` trains one config once per seed.

Where a seed flag cannot mean exactly what it meant there, and why:

- ``-d 0,1``: the seed ran DataParallel over the listed GPUs in one process; abaw trains one process per GPU
  (DDP), so several indices set ``CUDA_VISIBLE_DEVICES`` as the seed did and need ``torchrun`` with as many processes
  (one index N is ``cuda:N``).
- ``-r``: the seed's path of a checkpoint; abaw resumes exactly from ``checkpoints/last.pt`` (the run folder or that
  file), so ``best.pt`` is refused, and so is ``-c`` with ``-r`` (the seed's fine-tuning with a merged config would
  change the run under a checkpoint that records its config hash).
- ``-p`` / ``-ef``: parsed but never used by the seed's trainer (it logged ten times an epoch and validated every
  epoch); here ``train.log_interval`` (TensorBoard scalars, a line with ``-v``) and ``train.eval_every`` (the plateau
  scheduler and early stopping then count validations).
- ``--pretrained_affectnet single``: the seed loaded its authors' track checkpoint from a fixed folder; here
  ``checkpoints_affectnet/<track>.pt`` (``ABAW_AFFECTNET_DIR``), or a path; ``no``/``none`` is none.
- ``--cell_type rnn`` (a plain RNN) and optimizers other than SGD/Adam/AdamW are not offered.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
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


GPU_LIST = re.compile(r"\d+(,\d+)*")


def train_device_arg(text: str) -> str:
    """``-d/--device``: abaw's devices (:func:`device_arg`) or, as in the seed, GPU indices (``0`` or ``0,1``)."""
    key = text.strip().replace(" ", "")
    if GPU_LIST.fullmatch(key):
        return key
    return device_arg(text)


def seeds_arg(text: str) -> list[int]:
    """``--seeds 0,1,2``: distinct non-negative integers."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"--seeds takes non-negative integers separated by commas, got {text!r}")
    seeds = [int(part) for part in parts]
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds names a seed twice: {text!r}")
    return seeds


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The seed's flags (README and argparse of NTUA-CVSP's train_affwild2.py, with its meanings), then abaw's."""
    p.add_argument("-c", "--config",
                   help="config JSON (abaw's, or the seed's own config.json), or a preset name from configs/")
    p.add_argument("-r", "--resume", metavar="RUN_DIR|last.pt",
                   help="continue a stopped run exactly where it stopped (its folder, or its checkpoints/last.pt)")
    p.add_argument("-d", "--device", type=train_device_arg,
                   help=f"train.device: {DEVICE_HELP}; or GPU indices as in the seed (0, or 0,1 under torchrun)")
    p.add_argument("-p", "--print-freq", "--print_freq", dest="print_freq", type=int, metavar="N",
                   help="train.log_interval: log the training loss every N steps (TensorBoard; a line with -v)")
    p.add_argument("-ef", "--eval-freq", "--eval_freq", dest="eval_freq", type=int, metavar="N",
                   help="train.eval_every: validate every N epochs (and after the last)")
    p.add_argument("--exp_name", "--exp-name", dest="exp_name", help="the run's name (config key 'name')")
    p.add_argument("--track", type=parse_track, help="1 VA, 2 EXPR, 3 AU, or all (multi-task); default: the config's")
    p.add_argument("--arch", help="registered model name (model.name); the seed's resnet50_rnn is ntua_cvsp")
    p.add_argument("--dropout", type=float)
    p.add_argument("--pretrained_affectnet", metavar="PATH|single|none",
                   help="face CNN checkpoint (abaw pretrain-affectnet) loaded into the face stream, whose backbone it "
                        "sets; 'single': checkpoints_affectnet/<track>.pt as in the seed; 'none' for none")
    p.add_argument("--cell_type", choices=("gru", "lstm"))
    p.add_argument("--hidden_size", type=int)
    p.add_argument("--num_layers", type=int)
    for stream in STREAM_FLAGS:
        p.add_argument(f"--{stream}", action="store_true", help=f"use the {stream} stream")
    p.add_argument("--optimizer", choices=("SGD", "Adam", "AdamW"))
    p.add_argument("--lr", "--learning_rate", dest="lr", type=float)
    p.add_argument("--momentum", type=float, help="optim.momentum (SGD)")
    p.add_argument("--weight_decay", "--wd", dest="weight_decay", type=float, help="optim.weight_decay")
    p.add_argument("--duration", type=int, help="sequence length in frames")
    p.add_argument("--batch_size", "--batch-size", type=int, dest="batch_size")
    # abaw's own
    p.add_argument("--data-root", "--data_root", dest="data_root", help="Aff-Wild2 data root")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--seeds", type=seeds_arg, metavar="S,S,...",
                   help="train the config once per seed (sequential runs), then print the mean and std over them")
    p.add_argument("--mode", choices=("end2end", "cached"), help="train on frames or on cached CNN features")
    p.add_argument("--amp", choices=AMP_CHOICES,
                   help="train.amp: bf16 autocast (CPU or GPU), fp16 autocast with a loss scaler (CUDA only), none")
    p.add_argument("--bf16", action="store_true", help="same as --amp bf16")
    p.add_argument("--protocol", help="abaw2020 ... abaw2025 (default: the config's, abaw2021)")
    p.add_argument("--out", help="folder of run folders (default: the seed config's trainer.save_dir, else runs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. --set data.max_videos=4 (repeatable; value is JSON)")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps (resumable with --resume)")
    p.add_argument("--json", action="store_true", help="print the final scores as JSON")


def gpu_indices(device: str | None) -> list[str]:
    """The seed's ``-d 0,1`` as a list of GPU indices; empty for abaw's device names."""
    return device.split(",") if device and GPU_LIST.fullmatch(device) else []


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted config overrides the command-line flags ask for."""
    from abaw.train.config import parse_override
    from abaw.train.seed_config import SEED_ARCHS

    o: dict[str, Any] = {}
    if args.track:
        o["tasks"] = args.track
    streams = [s for s in STREAM_FLAGS if getattr(args, s)]
    if streams:
        o["data.streams"] = streams
    simple = {"optimizer": "optim.name", "lr": "optim.lr", "momentum": "optim.momentum",
              "weight_decay": "optim.weight_decay", "batch_size": "data.batch_size", "duration": "data.duration",
              "epochs": "train.epochs", "seed": "train.seed", "mode": "data.mode", "data_root": "data.root",
              "protocol": "protocol", "arch": "model.name", "exp_name": "name", "print_freq": "train.log_interval",
              "eval_freq": "train.eval_every"}
    for flag, key in simple.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if flag == "data_root":
            value = str(Path(value).resolve())
        elif flag == "arch":
            value = SEED_ARCHS.get(value, value)
        o[key] = value
    for flag in ("cell_type", "hidden_size", "num_layers", "dropout"):
        value = getattr(args, flag)
        if value is not None:
            o[f"model.kwargs.{flag}"] = value
    if args.bf16 and args.amp not in (None, "bf16"):
        raise AbawError(f"--bf16 and --amp {args.amp} disagree: give one of them")
    if args.bf16:
        o["train.amp"] = "bf16"
    if args.amp is not None:
        o["train.amp"] = None if args.amp == "none" else args.amp
    if args.device is not None:
        gpus = gpu_indices(args.device)
        # the seed's one index N is cuda:N; several are this process's share under torchrun (CUDA_VISIBLE_DEVICES)
        o["train.device"] = f"cuda:{gpus[0]}" if len(gpus) == 1 else ("auto" if gpus else args.device)
    for text in args.set:
        key, value = parse_override(text)
        o[key] = value
    return o


def resolve_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The resolved config the flags ask for (an abaw config or preset, or the seed's config.json, plus flags)."""
    return _resolve(args)[0]


def _resolve(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """(config, the seed config's trainer.save_dir or None)."""
    from abaw.train.config import resolve

    overrides = overrides_from_args(args)
    preset = find_config(args.config) if args.config else None
    seed_cfg = _read_seed_config(preset) if preset is not None else None
    pretrained = args.pretrained_affectnet
    if seed_cfg is not None:
        overrides = {**seed_cfg.overrides, **overrides}  # the flags win over the seed's config, as in the seed
        if "data.root" not in overrides and seed_cfg.data_pkl:
            overrides["data.root"] = _root_from_data_pkl(seed_cfg.data_pkl, preset)
        if pretrained is None and seed_cfg.pretrained_affectnet is not None:
            pretrained = seed_cfg.pretrained_affectnet
        preset = find_config(seed_cfg.base)
    kwargs = {k: v for k, v in overrides.items() if k.startswith("model.kwargs.")}
    rest = {k: v for k, v in overrides.items() if not k.startswith("model.kwargs.")}
    cfg = resolve(preset, rest, check_root=True)
    for key, value in kwargs.items():
        cfg["model"]["kwargs"][key.split(".", 2)[2]] = value
    apply_pretrained_affectnet(cfg, pretrained)
    return cfg, seed_cfg.out if seed_cfg is not None else None


def _read_seed_config(path: Path) -> Any:
    """The seed's config.json read into abaw keys (``SeedConfig``), or None for an abaw config."""
    from abaw.presets import read_json_object
    from abaw.train.seed_config import is_seed_config, read_seed_config

    data = read_json_object(path)
    if not is_seed_config(data):
        return None
    seed_cfg = read_seed_config(data, path)
    log.info("%s: the seed's config.json, read over the %s preset (%d keys mapped, %d read as abaw's fixed "
             "behaviour; -v lists them)", path, seed_cfg.base, len(seed_cfg.overrides), len(seed_cfg.notes))
    for note in seed_cfg.notes:
        log.debug("%s: %s", path, note)
    return seed_cfg


def _root_from_data_pkl(data_pkl: str, config: Path) -> str:
    """The seed's ``data_loader.data_pkl`` names the data: a folder there is the data root; a pickle is never read."""
    path = Path(data_pkl)
    if path.is_dir():
        return str(path.resolve())
    raise AbawError(f"seed config key 'data_loader.data_pkl' is {data_pkl!r}: abaw reads the Aff-Wild2 folder itself "
                    "and never opens the seed's pickle; give --data-root ROOT (or set data_pkl to that folder)",
                    path=config)


NO_CHECKPOINT = ("", "none", "no", "false", "0")
SEED_SWITCH = ("single", "true", "yes", "1")


def apply_pretrained_affectnet(cfg: dict[str, Any], value: Any) -> None:
    """``--pretrained_affectnet`` (or the seed config's ``arch.args.pretrained_affectnet``): a backbone checkpoint
    loaded into the face stream, whose backbone it sets from what the checkpoint records; ``single`` (the seed's
    switch) is ``checkpoints_affectnet/<track>.pt``; ``none``/``no``/false is none."""
    if value is None:
        return
    kwargs = cfg["model"]["kwargs"]
    text = str(value).strip()
    if value is False or text.lower() in NO_CHECKPOINT:
        kwargs.pop("pretrained_face", None)
        return
    if value is True or text.lower() in SEED_SWITCH:
        path = _seed_switch_checkpoint(cfg, text)
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise AbawError("--pretrained_affectnet: backbone checkpoint not found", path=path)
    backbone = checkpoint_backbone(path)
    explicit = kwargs.get("face_backbone")
    if explicit and explicit != backbone:
        raise AbawError(f"--pretrained_affectnet: the checkpoint holds backbone {backbone!r} but "
                        f"model.kwargs.face_backbone is {explicit!r}: give a checkpoint of {explicit!r} or "
                        f"--set model.kwargs.face_backbone={backbone}", path=path)
    kwargs["face_backbone"] = backbone
    kwargs["pretrained_face"] = str(path.resolve())


def _seed_switch_checkpoint(cfg: dict[str, Any], text: str) -> Path:
    from abaw.train.config import tracks_of
    from abaw.train.seed_config import affectnet_checkpoint

    tracks = tracks_of(cfg)
    if len(tracks) != 1:
        raise AbawError(f"--pretrained_affectnet {text}: the seed's switch names one track's AffectNet checkpoint; "
                        f"with tracks {', '.join(tracks)} give the checkpoint's path")
    path = affectnet_checkpoint(tracks[0])
    if not path.is_file():
        raise AbawError(f"--pretrained_affectnet {text}: the seed's AffectNet face CNN of track {tracks[0]} is read "
                        f"from here; write it with `abaw pretrain-affectnet --data AFFECTNET --backbone tv_resnet50 "
                        f"--out {path}`, or give a checkpoint's path", path=path)
    return path


def checkpoint_backbone(path: Path) -> str:
    """The backbone name an abaw backbone checkpoint records (``abaw pretrain-affectnet`` writes it)."""
    import torch

    from abaw.fileio import load_failure_reason
    from abaw.models.backbones import CHECKPOINT_FORMAT

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe file
        raise AbawError(f"cannot read weights: {load_failure_reason(exc)}", path=path) from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT or not isinstance(obj.get("backbone"), str):
        raise AbawError(f"--pretrained_affectnet takes an abaw backbone checkpoint (format {CHECKPOINT_FORMAT!r}, "
                        "written by abaw pretrain-affectnet)", path=path)
    return obj["backbone"]


def resume_dir(text: str) -> Path:
    """``-r``: a run folder, or (as the seed's checkpoint path) its ``checkpoints/last.pt``."""
    path = Path(text)
    if not path.is_file():
        return path
    if path.name != "last.pt":
        raise AbawError("a run resumes from its checkpoints/last.pt, the exact state where it stopped: give the run "
                        "folder or that file", path=path)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


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
    from abaw.train.distributed import world_info
    from abaw.train.loop import train

    gpus = gpu_indices(args.device)
    if len(gpus) > 1:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world_info()[1]))
        if local != len(gpus):
            raise AbawError(f"-d {args.device}: abaw trains on several GPUs with one process each: "
                            f"torchrun --nproc_per_node={len(gpus)} train_affwild2.py -d {args.device} ...")
        os.environ["CUDA_VISIBLE_DEVICES"] = args.device  # as the seed: each rank then takes its LOCAL_RANK
    if args.resume:
        if args.config:
            raise AbawError("-c with --resume: a resumed run continues with its own config.json (to start from "
                            "trained weights with another config, start a new run)")
        if args.seeds is not None:
            raise AbawError("--seeds with --resume: resume each seed's run folder on its own")
        run_dir = train(resume=resume_dir(args.resume), max_steps=args.max_steps, data_root=args.data_root,
                        out=args.out or "runs")
        return _report_single(run_dir, args.json) if world_info()[0] == 0 else 0
    if not args.config:
        raise AbawError("give a config (-c CONFIG) or --resume RUN_DIR")
    if args.seeds is not None and args.seed is not None:
        raise AbawError("--seed and --seeds: give one of them")
    cfg, seed_out = _resolve_for_cli(args)
    out = args.out or seed_out or "runs"
    check_device(cfg)
    check_validation(cfg)
    if args.seeds is None:
        run_dir = train(cfg, out=out, max_steps=args.max_steps)
        return _report_single(run_dir, args.json) if world_info()[0] == 0 else 0
    results = []
    for seed in args.seeds:
        seed_cfg = copy.deepcopy(cfg)
        seed_cfg["train"]["seed"] = seed
        run_dir = train(seed_cfg, out=out, max_steps=args.max_steps)
        if world_info()[0] != 0:
            continue
        result = {"seed": seed, **_run_result(run_dir)}
        results.append(result)
        if not args.json:
            print(f"seed {seed}: {_result_line(result)}", flush=True)
    if world_info()[0] == 0:
        _report_seeds(cfg, results, args.json)
    return 0


def _resolve_for_cli(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """``_resolve``; a seed config's unusable keys are one stderr line each, then the one error line."""
    import sys

    from abaw.train.seed_config import SeedConfigError

    try:
        return _resolve(args)
    except SeedConfigError as exc:
        for problem in exc.problems:
            print(f"abaw train: {exc.path}: {problem}", file=sys.stderr)
        raise AbawError(f"{exc.summary} (above)", path=exc.path) from None


def _run_result(run_dir: Path) -> dict[str, Any]:
    """A finished (or stopped) run's folder, status, validation scores and training time."""
    from abaw.runs.info import read_json

    info = read_json(run_dir / "run.json")
    result: dict[str, Any] = {"run_dir": str(run_dir), "status": info.get("status"), "steps": info.get("steps"),
                              "train_seconds": info.get("train_seconds"), "config_hash": info.get("config_hash")}
    scores_path = run_dir / "scores.json"
    if scores_path.is_file():
        scores = read_json(scores_path)
        result.update(score=scores["score"], tracks={t: s["score"] for t, s in scores["tracks"].items()},
                      scores=scores)
    return result


def _result_line(result: dict[str, Any]) -> str:
    run_dir = result["run_dir"]
    if "score" not in result:
        return f"{run_dir}: {result['status']} after {result['steps']} steps (continue with --resume {run_dir})"
    parts = ", ".join(f"{t} {s:.4f}" for t, s in result["tracks"].items())
    return f"{run_dir}: validation score {result['score']:.4f} ({parts}); {result['train_seconds']} s"


def _report_single(run_dir: Path, as_json: bool) -> int:
    result = _run_result(run_dir)
    if as_json and "scores" in result:
        print(json.dumps({"run_dir": str(run_dir), **result["scores"]}, default=str))
    else:
        print(_result_line(result))
    return 0


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); std None for fewer than two values."""
    import statistics

    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _report_seeds(cfg: dict[str, Any], results: list[dict[str, Any]], as_json: bool) -> None:
    """Mean and std over the seeds' validation scores (overall and per track); runs without scores are left out."""
    from abaw.runs.seeds import group_hash

    scored = [r for r in results if "score" in r]
    mean, std = _mean_std([r["score"] for r in scored])
    tracks = {t: dict(zip(("mean", "std"), _mean_std([r["tracks"][t] for r in scored]), strict=True))
              for t in (scored[0]["tracks"] if scored else {})}
    summary = {"name": cfg["name"], "group_hash": group_hash(cfg), "seeds": [r["seed"] for r in results],
               "n_scored": len(scored), "mean": mean, "std": std, "tracks": tracks,
               "runs": [{k: v for k, v in r.items() if k != "scores"} for r in results]}
    if as_json:
        print(json.dumps(summary, default=str))
        return
    if mean is None:
        print(f"{cfg['name']}: no run of the {len(results)} seeds finished with scores")
        return
    spread = f" ± {std:.4f} (std over {len(scored)} seeds)" if std is not None else " (a single seed: no spread)"
    parts = ", ".join(f"{t} {v['mean']:.4f}" + (f" ± {v['std']:.4f}" if v["std"] is not None else "")
                      for t, v in tracks.items())
    print(f"{cfg['name']} (group {summary['group_hash']}): validation score {mean:.4f}{spread}; {parts}")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a model on Aff-Wild2 (same as train_affwild2.py)",
                              description=__doc__.split("\n\n")[0])
    add_train_arguments(p)
    p.set_defaults(func=run)


TRACK_HELP = ", ".join(f"{k} {v}" for k, v in TRACK_NUMBERS.items())
