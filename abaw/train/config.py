"""Training configuration: schema and defaults, validation, resolution (defaults + preset + overrides), hashing.

A config is plain JSON. Every key must be known (a misspelled one fails at once, naming the key and the closest
known key); every value must have the right type; the data root must exist.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

from abaw.errors import AbawError
from abaw.tasks import PROTOCOLS, TRACKS

STREAMS: tuple[str, ...] = ("face", "body", "context", "audio", "landmarks")
MODES: tuple[str, ...] = ("end2end", "cached")
OPTIMIZERS: tuple[str, ...] = ("SGD", "Adam", "AdamW")
SCHEDULERS: tuple[str, ...] = ("plateau", "cosine", "none")

#: Defaults of every key. A dict value is a section whose keys are fixed, except the free-form ones in FREE_FORM.
DEFAULTS: dict[str, Any] = {
    "name": "run",
    "protocol": "abaw2021",
    "tasks": ["va"],
    "data": {
        "root": None,
        "streams": ["face"],
        "duration": 16,  # frames per training window
        "stride": None,  # training window stride; None = duration (non-overlapping)
        "batch_size": 8,
        "eval_batch_size": None,  # None = batch_size
        "mode": "end2end",
        "image_size": None,  # None = the model's input_spec size; an int overrides it for every image stream
        "audio_window": None,  # seconds of log-mel centred on each frame; None = the model's input_spec
        "oversample_va": False,  # AffWildNet VA-quadrant oversampling
        "quadrant_targets": [0.43, 0.24, 0.19, 0.14],
        "workers": 0,
        "max_videos": None,  # keep only the first N videos per split (quick experiments)
        "extract_batch_size": 64,
    },
    "model": {
        "name": "demo_face",
        "kwargs": {},
    },
    "loss": {
        "weights": {"va": 1.0, "expr": 1.0, "au": 1.0},
        "va_loss": "ccc",
        "expr_class_weights": None,
        "au_pos_weight": None,
        "label_smoothing": 0.0,
    },
    "optim": {
        "name": "AdamW",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
    },
    "sched": {
        "name": "plateau",
        "patience": 5,
        "factor": 0.1,
        "min_lr": 0.0,
    },
    "train": {
        "epochs": 10,
        "patience": 10,  # early stopping: epochs without a better validation score
        "grad_clip": 5.0,
        "amp": None,  # None (fp32) or "bf16"
        "seed": 0,
        "log_interval": 20,
        "checkpoint_every": 50,  # steps between mid-epoch checkpoints (last.pt); 0 = only at epoch ends
        "device": None,  # None = cuda when available, else cpu
        "threads": None,  # torch threads; None = torch's default
        "progress": True,
    },
}

#: Sections whose keys are free (model kwargs are passed to create_model, which validates them).
FREE_FORM: frozenset[str] = frozenset({"model.kwargs"})

#: Types of keys whose default is None, or which accept more than the default's type.
TYPES: dict[str, tuple[type, ...]] = {
    "data.root": (str,),
    "data.stride": (int,),
    "data.eval_batch_size": (int,),
    "data.image_size": (int,),
    "data.max_videos": (int,),
    "data.audio_window": (int, float),
    "loss.expr_class_weights": (list,),
    "loss.au_pos_weight": (list,),
    "loss.label_smoothing": (int, float),
    "optim.lr": (int, float),
    "optim.momentum": (int, float),
    "optim.weight_decay": (int, float),
    "sched.factor": (int, float),
    "sched.min_lr": (int, float),
    "train.grad_clip": (int, float),
    "train.amp": (str,),
    "train.device": (str,),
    "train.threads": (int,),
}

#: Keys that may be None.
NULLABLE: frozenset[str] = frozenset({
    "data.root", "data.stride", "data.eval_batch_size", "data.image_size", "data.max_videos", "data.audio_window",
    "loss.expr_class_weights", "loss.au_pos_weight", "train.amp", "train.device", "train.threads", "train.grad_clip",
})

#: Keys left out of the config hash: they change where or how fast a run goes, not what it computes.
UNHASHED: tuple[str, ...] = ("data.root", "data.workers", "train.progress", "train.log_interval", "train.device",
                             "train.threads", "data.extract_batch_size")

CHOICES: dict[str, tuple[Any, ...]] = {
    "protocol": tuple(PROTOCOLS),
    "data.mode": MODES,
    "optim.name": OPTIMIZERS,
    "sched.name": SCHEDULERS,
    "train.amp": (None, "bf16"),
    "loss.va_loss": ("ccc", "mse", "ccc+mse"),
}


def _where(source: str | Path | None) -> str | None:
    return str(source) if source is not None else None


def _fail(message: str, source: str | Path | None) -> None:
    raise AbawError(message, path=_where(source))


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join({int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
                        dict: "an object"}[t] for t in types)


def _check(cfg: dict[str, Any], schema: dict[str, Any], prefix: str, source: str | Path | None) -> None:
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else f" (known: {', '.join(schema)})"
            _fail(f"unknown config key {dotted!r}{hint}", source)
        default = schema[key]
        if dotted in FREE_FORM:
            if not isinstance(value, dict):
                _fail(f"config key {dotted!r} must be an object, got {value!r}", source)
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                _fail(f"config key {dotted!r} must be an object, got {value!r}", source)
            _check(value, default, dotted + ".", source)
            continue
        if value is None:
            if dotted not in NULLABLE:
                _fail(f"config key {dotted!r} must not be null", source)
            continue
        types = TYPES.get(dotted, (type(default),))
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            _fail(f"config key {dotted!r} must be {_type_name(types)}, got {value!r}", source)
        if dotted in CHOICES and value not in CHOICES[dotted]:
            _fail(f"config key {dotted!r} must be one of {', '.join(map(str, CHOICES[dotted]))}, got {value!r}",
                  source)


def validate(cfg: dict[str, Any], source: str | Path | None = None, check_root: bool = True) -> dict[str, Any]:
    """Check keys, types and values of a (partial or full) config; raise a one-line AbawError naming the key."""
    if not isinstance(cfg, dict):
        _fail("a config must be a JSON object", source)
    _check(cfg, DEFAULTS, "", source)
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
    for key in ("duration", "batch_size"):
        if key in data and data[key] < 1:
            _fail(f"config key 'data.{key}' must be at least 1, got {data[key]}", source)
    if check_root and "root" in data:
        root = data["root"]
        if root is None:
            _fail("config key 'data.root' is not set (give --data-root ROOT)", source)
        if not Path(root).is_dir():
            _fail(f"config key 'data.root': data root {root} does not exist", source)
    return cfg


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
    path = Path(path)
    if not path.is_file():
        raise AbawError("config file not found", path=path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AbawError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    return validate(cfg, path, check_root=False)


def set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data.batch_size`` style keys (creating sections)."""
    node = cfg
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def get_dotted(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


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
    validate(cfg, source, check_root=check_root)
    if cfg["data"]["root"] is not None:
        cfg["data"]["root"] = str(Path(cfg["data"]["root"]).resolve())
    return cfg


def config_hash(cfg: dict[str, Any]) -> str:
    """sha256 (16 hex) of the config without the keys that do not change results."""
    clean = copy.deepcopy(cfg)
    for dotted in UNHASHED:
        parts = dotted.split(".")
        node = clean
        for part in parts[:-1]:
            node = node.get(part, {})
        node.pop(parts[-1], None)
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tracks_of(cfg: dict[str, Any]) -> list[str]:
    """The tasks in canonical order."""
    return [t for t in TRACKS if t in cfg["tasks"]]
