"""Training configuration: the typed schema and its defaults, validation, resolution (defaults + preset + overrides).

A config is plain JSON, declared here as dataclasses (``abaw.schema``). Every key must be known (a misspelled one
fails at once, naming the key and the closest known key); every value must have the right type and lie in its range
(``optim.lr`` > 0, dropout-like probabilities in [0, 1), sizes, epochs and batches at least 1), and related keys must
agree (``data.stride`` not above ``data.duration``); the data root must exist. A preset file may extend another
(``abaw.presets``).
"""

from __future__ import annotations

import copy
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abaw import schema
from abaw.errors import AbawError
from abaw.presets import read_preset
from abaw.schema import option, section, set_dotted
from abaw.tasks import PROTOCOLS, TRACKS

STREAMS: tuple[str, ...] = ("face", "body", "context", "audio", "landmarks")
MODES: tuple[str, ...] = ("end2end", "cached")
OPTIMIZERS: tuple[str, ...] = ("SGD", "Adam", "AdamW")
SCHEDULERS: tuple[str, ...] = ("plateau", "cosine", "none")
VA_LOSSES: tuple[str, ...] = ("ccc", "mse", "ccc+mse")


@dataclass
class DataConfig:
    root: str | None = None
    streams: list[str] = option(["face"])
    duration: int = option(16, ge=1)  # frames per training window
    stride: int | None = option(None, ge=1)  # training window stride; None = duration (non-overlapping)
    batch_size: int = option(8, ge=1)
    eval_batch_size: int | None = option(None, ge=1)  # None = batch_size
    mode: str = option("end2end", choices=MODES)
    image_size: int | None = option(None, ge=1)  # None = the model's input_spec size; an int: every image stream
    audio_window: float | None = option(None, gt=0)  # seconds of log-mel centred on each frame; None = input_spec
    oversample_va: bool = False  # AffWildNet VA-quadrant oversampling
    quadrant_targets: list[float] = option([0.43, 0.24, 0.19, 0.14], ge=0)
    # training order: "video" visits windows grouped by video (blocks of shuffle_block videos, each shuffled
    # within; reads each video once per epoch), "global" is one random order over all windows
    shuffle: str = option("video", choices=("video", "global"))
    shuffle_block: int = option(4, ge=1)
    workers: int | None = option(None, ge=0)  # DataLoader workers; None = 0 on the CPU, up to 4 on CUDA
    max_videos: int | None = option(None, ge=1)  # keep only the first N videos per split (quick experiments)
    extract_batch_size: int = option(64, ge=1)


@dataclass
class ModelSection:
    name: str = "demo_face"
    kwargs: dict[str, Any] = option({})  # free-form: passed to create_model, which checks them


@dataclass
class TaskWeights:
    va: float = option(1.0, ge=0)
    expr: float = option(1.0, ge=0)
    au: float = option(1.0, ge=0)


@dataclass
class LossConfig:
    weights: TaskWeights = section(TaskWeights)
    va_loss: str = option("ccc", choices=VA_LOSSES)
    expr_class_weights: list[float] | None = option(None, ge=0)
    au_pos_weight: list[float] | None = option(None, ge=0)
    label_smoothing: float = option(0.0, ge=0, lt=1)


@dataclass
class OptimConfig:
    name: str = option("AdamW", choices=OPTIMIZERS)
    lr: float = option(1e-3, gt=0)
    momentum: float = option(0.9, ge=0, lt=1)
    weight_decay: float = option(1e-4, ge=0)


@dataclass
class SchedConfig:
    name: str = option("plateau", choices=SCHEDULERS)
    patience: int = option(5, ge=0)
    factor: float = option(0.1, gt=0, lt=1)
    min_lr: float = option(0.0, ge=0)


@dataclass
class TrainLoopConfig:
    epochs: int = option(10, ge=1)
    patience: int = option(10, ge=0)  # early stopping: epochs without a better validation score
    grad_clip: float | None = option(5.0, ge=0)  # None or 0: no clipping
    # an exponential moving average of the weights (timm's ModelEmaV3, decay warmed up over the first steps) is what
    # is validated, kept as best and predicted with; 0 = off
    ema_decay: float = option(0.0, ge=0, lt=1)
    amp: str | None = option(None, choices=(None, "none", "bf16", "fp16"))  # None/"none" fp32; fp16: CUDA only
    seed: int = option(0, ge=0)
    log_interval: int = option(20, ge=1)
    eval_every: int = option(1, ge=1)  # validate every N epochs and after the last (the seed's --eval-freq)
    checkpoint_every: int = option(50, ge=0)  # steps between mid-epoch checkpoints (last.pt); 0 = only epoch ends
    device: str | None = None  # None or "auto" = cuda when available, else cpu; "cpu", "cuda", "cuda:N"
    threads: int | None = option(None, ge=1)  # torch threads; None = torch's default
    progress: bool = True


@dataclass
class TrainConfig:
    """Every key of a training config; a section is a nested dataclass."""

    name: str = "run"
    protocol: str = option("abaw2021", choices=tuple(PROTOCOLS))
    tasks: list[str] = option(["va"])
    data: DataConfig = section(DataConfig)
    model: ModelSection = section(ModelSection)
    loss: LossConfig = section(LossConfig)
    optim: OptimConfig = section(OptimConfig)
    sched: SchedConfig = section(SchedConfig)
    train: TrainLoopConfig = section(TrainLoopConfig)


#: Defaults of every key, as the plain dict a config is.
DEFAULTS: dict[str, Any] = schema.defaults(TrainConfig)


def _fail(message: str, source: str | Path | None) -> None:
    raise AbawError(message, path=str(source) if source is not None else None)


def validate(cfg: dict[str, Any], source: str | Path | None = None, check_root: bool = True) -> dict[str, Any]:
    """Check keys, types and values of a (partial or full) config; raise a one-line AbawError naming the key."""
    schema.check(TrainConfig, cfg, where=source)
    for task in cfg.get("tasks", []):
        if task not in TRACKS:
            _fail(f"config key 'tasks' has unknown task {task!r}; choose from {', '.join(TRACKS)}", source)
    if "tasks" in cfg and not cfg["tasks"]:
        _fail("config key 'tasks' must name at least one task", source)
    data = cfg.get("data", {})
    for stream in data.get("streams", []):
        if stream not in STREAMS:
            close = difflib.get_close_matches(str(stream), STREAMS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"config key 'data.streams' has unknown stream {stream!r}{hint}", source)
    if check_root and "root" in data:
        _check_root(data["root"], source)
    return cfg


def _check_root(root: str | None, source: str | Path | None) -> None:
    if root is None:
        _fail("config key 'data.root' is not set (give --data-root ROOT)", source)
    if not Path(root).is_dir():
        _fail(f"config key 'data.root': data root {root} does not exist", source)


def check_relations(cfg: dict[str, Any], source: str | Path | None = None) -> None:
    """Checks between keys of a full config (each key alone is checked by ``validate``)."""
    data, optim, sched = cfg["data"], cfg["optim"], cfg["sched"]
    if data["stride"] is not None and data["stride"] > data["duration"]:
        _fail(f"config key 'data.stride' ({data['stride']}) must not exceed 'data.duration' ({data['duration']}): "
              "the frames between windows would never be trained on", source)
    if sched["name"] != "none" and sched["min_lr"] > optim["lr"]:
        _fail(f"config key 'sched.min_lr' ({sched['min_lr']}) must not exceed 'optim.lr' ({optim['lr']})", source)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: sections merge key by key, other values are replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "kwargs":
            out[key] = merge(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_json(path: str | Path) -> dict[str, Any]:
    """A preset file with its parents (``"extends"``) merged in; every file is checked, errors name it."""
    return read_preset(path, check=lambda data, where: validate(data, where, check_root=False), merge=merge)


def parse_override(text: str) -> tuple[str, Any]:
    """``data.batch_size=4`` -> ("data.batch_size", 4); the value is JSON, or a plain string."""
    if "=" not in text:
        raise AbawError(f"override {text!r} must look like key=value (e.g. data.batch_size=4)")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def resolve(preset: str | Path | dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
            check_root: bool = True) -> dict[str, Any]:
    """Defaults + preset (path or dict) + dotted overrides -> a full, validated config."""
    cfg = copy.deepcopy(DEFAULTS)
    source: str | Path | None = None
    if isinstance(preset, (str, Path)):
        source = preset
        cfg = merge(cfg, load_json(preset))
    elif preset is not None:
        cfg = merge(cfg, validate(preset, check_root=False))
    for key, value in (overrides or {}).items():
        partial: dict[str, Any] = {}
        set_dotted(partial, key, value)
        validate(partial, source="override", check_root=False)
        cfg = merge(cfg, partial)
    validate(cfg, source, check_root=False)
    check_relations(cfg, source)
    if check_root:
        _check_root(cfg["data"]["root"], source)
    if cfg["data"]["root"] is not None:
        cfg["data"]["root"] = str(Path(cfg["data"]["root"]).resolve())
    return cfg


def tracks_of(cfg: dict[str, Any]) -> list[str]:
    """The tasks in canonical order."""
    return [t for t in TRACKS if t in cfg["tasks"]]
