"""The NTUA-CVSP seed's own ``config.json`` (pytorch-template layout: ``n_gpu``, ``arch``, ``data_loader``, ``rnn``,
``optimizer``, ``lr_scheduler``, ``trainer``, ...) read into abaw config keys.

``train_affwild2.py -c config.json`` detects such a file (:func:`is_seed_config`) and reads it over the
``ntua_cvsp`` preset (the seed's ``resnet50_rnn`` architecture). The rule per key:

- a key that changes what is trained maps onto its abaw key (``optimizer.args.lr`` -> ``optim.lr``, ...) or, when
  abaw cannot do what its value asks (``optimizer.type: RMSprop``), is refused;
- a key that only says where outputs go or how much is logged, or that names what abaw always does
  (``trainer.tensorboard``, ``metrics_*``, ``loss_categorical: cross_entropy_loss``), is read as a note;
- a key the seed's code does not know is refused.

Every refused key is one line saying what to use instead; :class:`SeedConfigError` carries them all.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abaw.errors import AbawError

#: Keys only a seed config has (an abaw config has none of them).
SEED_MARKERS: tuple[str, ...] = ("n_gpu", "arch", "data_loader", "rnn", "modalities", "optimizer", "lr_scheduler",
                                 "trainer", "run_id", "loss_continuous", "loss_categorical", "metrics_continuous",
                                 "metrics_categorical")
#: The seed's architecture names -> abaw's registered models.
SEED_ARCHS: dict[str, str] = {"resnet50_rnn": "ntua_cvsp"}
#: The abaw preset a seed config is read over, per track (any other track: the first).
BASE_PRESETS: dict[str, str] = {"va": "ntua_cvsp_track1", "expr": "ntua_cvsp_track2"}
SEED_OPTIMIZERS: dict[str, str] = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}
SEED_SCHEDULERS: dict[str, str] = {"reducelronplateau": "plateau", "cosineannealinglr": "cosine"}
SEED_METRICS: tuple[str, ...] = ("ccc", "accuracy", "f1_score")
#: Where ``--pretrained_affectnet single`` looks (the seed loaded ``checkpoints_affectnet/<its file>``).
AFFECTNET_DIR_ENV = "ABAW_AFFECTNET_DIR"
AFFECTNET_DIR = "checkpoints_affectnet"
_ABAW_KEYS = ("extends", "protocol", "tasks", "data", "model", "loss", "optim", "sched", "train")
_KNOWN: tuple[str, ...] = (
    "name", "run_id", "n_gpu", "track", "data_loader.data_pkl", "data_loader.batch_size", "data_loader.num_workers",
    "data_loader.duration", "arch.type", "arch.args.dropout", "arch.args.pretrained_affectnet", "rnn.hidden_size",
    "rnn.num_layers", "rnn.type", "modalities.face", "modalities.body", "modalities.context", "modalities.audio",
    "loss_categorical", "loss_continuous", "metrics_categorical", "metrics_continuous", "optimizer.type",
    "optimizer.args.lr", "optimizer.args.momentum", "optimizer.args.weight_decay", "lr_scheduler.type",
    "lr_scheduler.args.patience", "lr_scheduler.args.factor", "lr_scheduler.args.min_lr", "lr_scheduler.args.mode",
    "lr_scheduler.args.verbose", "lr_scheduler.args.eta_min", "lr_scheduler.args.T_max", "trainer.epochs",
    "trainer.save_dir", "trainer.save_period", "trainer.verbosity", "trainer.monitor", "trainer.early_stop",
    "trainer.tensorboard",
)


class SeedConfigError(AbawError):
    """A seed config with keys abaw cannot use; ``problems`` holds one line per key."""

    def __init__(self, problems: list[str], path: str | Path | None = None) -> None:
        n = len(problems)
        self.summary = f"{n} key{'s' if n != 1 else ''} of the seed's config cannot be used"
        super().__init__(f"{self.summary}: " + "; ".join(problems), path=path)
        self.problems = problems


@dataclass
class SeedConfig:
    """What a seed config says, in abaw's terms."""

    base: str  # the abaw preset it is read over
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted abaw config keys
    out: str | None = None  # trainer.save_dir: the folder of run folders (--out)
    data_pkl: str | None = None  # data_loader.data_pkl, never opened (a pickle): a folder there is the data root
    pretrained_affectnet: Any = None  # arch.args.pretrained_affectnet, as --pretrained_affectnet reads it
    notes: list[str] = field(default_factory=list)  # keys read as what abaw always does


def is_seed_config(data: Any) -> bool:
    """Whether a config file's object is the seed's layout (it has one of the seed's own top-level keys)."""
    return isinstance(data, dict) and any(key in data for key in SEED_MARKERS)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and any(k.startswith(f"{dotted}.") for k in _KNOWN):
            out.update(_flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Reader:
    """Walks the flattened keys once; ``ok`` maps a key, ``note`` keeps it as a note, ``bad`` refuses it."""

    def __init__(self, base: str) -> None:
        self.result = SeedConfig(base=base)
        self.problems: list[str] = []
        self.streams: dict[str, bool] = {}

    def ok(self, abaw_key: str, value: Any) -> None:
        self.result.overrides[abaw_key] = value

    def note(self, key: str, text: str) -> None:
        self.result.notes.append(f"{key}: {text}")

    def bad(self, key: str, text: str) -> None:
        self.problems.append(f"'{key}' {text}")


def read_seed_config(data: dict[str, Any], path: str | Path | None = None) -> SeedConfig:
    """The abaw reading of a seed config; a :class:`SeedConfigError` lists every key that cannot be used."""
    from abaw.tasks import check_track

    flat = _flatten(data)
    track = flat.get("track")
    tasks: list[str] = []
    problems: list[str] = []
    if track is not None:
        try:
            tasks = [check_track(track)]
        except (ValueError, TypeError):
            problems.append(f"'track' is {track!r}: give 1 (VA), 2 (EXPR) or 3 (AU)")
    r = _Reader(BASE_PRESETS.get(tasks[0] if tasks else "va", BASE_PRESETS["va"]))
    r.problems += problems
    if tasks:
        r.ok("tasks", tasks)
    epochs = flat.get("trainer.epochs")
    for key, value in flat.items():
        _read_key(r, key, value, epochs)
    if r.streams:
        streams = [s for s in ("face", "body", "context", "audio") if r.streams.get(s)]
        if streams:
            r.ok("data.streams", streams)
        else:
            r.bad("modalities", "switches every stream off; switch one on (or use --face/--body/--context/--audio)")
    _check_values(r, path)
    if r.problems:
        raise SeedConfigError(r.problems, path=path)
    return r.result


def _read_key(r: _Reader, key: str, value: Any, epochs: Any) -> None:
    simple = {"data_loader.batch_size": "data.batch_size", "data_loader.duration": "data.duration",
              "data_loader.num_workers": "data.workers", "rnn.hidden_size": "model.kwargs.hidden_size",
              "rnn.num_layers": "model.kwargs.num_layers", "arch.args.dropout": "model.kwargs.dropout",
              "optimizer.args.lr": "optim.lr", "optimizer.args.momentum": "optim.momentum",
              "optimizer.args.weight_decay": "optim.weight_decay", "lr_scheduler.args.patience": "sched.patience",
              "lr_scheduler.args.factor": "sched.factor", "lr_scheduler.args.min_lr": "sched.min_lr",
              "lr_scheduler.args.eta_min": "sched.min_lr", "trainer.epochs": "train.epochs",
              "trainer.early_stop": "train.patience"}
    if key == "track":
        return
    if key in simple:
        r.ok(simple[key], value)
    elif key == "name":
        r.ok("name", str(value))
    elif key == "run_id":
        r.note(key, "abaw names each run folder <name>-<UTC time>-<4 hex digits> under --out (trainer.save_dir)")
    elif key == "n_gpu":
        _read_n_gpu(r, value)
    elif key == "data_loader.data_pkl":
        r.result.data_pkl = None if value is None else str(value)
    elif key == "arch.type":
        name = SEED_ARCHS.get(str(value), str(value))
        if _is_model(name):
            r.ok("model.name", name)
        else:
            r.bad(key, f"is {value!r}: the seed's architecture is 'resnet50_rnn' (abaw's ntua_cvsp); another abaw "
                       "model goes in --arch NAME")
    elif key == "arch.args.pretrained_affectnet":
        r.result.pretrained_affectnet = value
    elif key == "rnn.type":
        cell = str(value).lower()
        if cell in ("lstm", "gru"):
            r.ok("model.kwargs.cell_type", cell)
        else:
            r.bad(key, f"is {value!r}: abaw's recurrent layers are 'lstm' or 'gru'")
    elif key.startswith("modalities."):
        switch = _bool(value)
        if switch is None:
            r.bad(key, f"is {value!r}: give true or false")
        else:
            r.streams[key.split(".", 1)[1]] = switch
    elif key == "loss_continuous":
        if str(value).lower() in ("ccc", "mse"):
            r.ok("loss.va_loss", str(value).lower())
        else:
            r.bad(key, f"is {value!r}: abaw's VA losses are 'ccc', 'mse' or 'ccc+mse' (loss.va_loss in an abaw "
                       "config)")
    elif key == "loss_categorical":
        if str(value) in ("cross_entropy_loss", "cross_entropy"):
            r.note(key, "abaw's EXPR loss is the cross-entropy (class weights and label smoothing: loss.*)")
        else:
            r.bad(key, f"is {value!r}: abaw's EXPR loss is the cross-entropy ('cross_entropy_loss')")
    elif key in ("metrics_continuous", "metrics_categorical"):
        names = value if isinstance(value, list) else [value]
        unknown = [str(n) for n in names if str(n) not in SEED_METRICS]
        if unknown:
            r.bad(key, f"has {', '.join(map(repr, unknown))}: abaw reports the official score of the protocol and "
                       f"its components ({', '.join(SEED_METRICS)} among them)")
        else:
            r.note(key, "abaw reports the official score and its components (CCC per dimension, F1, accuracy)")
    elif key == "optimizer.type":
        name = SEED_OPTIMIZERS.get(str(value).lower())
        if name:
            r.ok("optim.name", name)
        else:
            r.bad(key, f"is {value!r}: abaw's optimizers are SGD, Adam and AdamW")
    elif key == "lr_scheduler.type":
        name = SEED_SCHEDULERS.get(str(value).lower())
        if name:
            r.ok("sched.name", name)
        else:
            r.bad(key, f"is {value!r}: abaw's schedulers are ReduceLROnPlateau (plateau, on the validation score) "
                       "and CosineAnnealingLR (cosine); sched.name 'none' in an abaw config for a fixed rate")
    elif key == "lr_scheduler.args.mode":
        if value == "max":
            r.note(key, "abaw's plateau scheduler watches the validation score, which is maximised")
        else:
            r.bad(key, f"is {value!r}: abaw's plateau scheduler watches the validation score: mode 'max'")
    elif key == "lr_scheduler.args.verbose":
        r.note(key, "abaw records the learning rate of every epoch in metrics.jsonl")
    elif key == "lr_scheduler.args.T_max":
        if value != epochs:
            r.bad(key, f"is {value!r}: abaw's cosine schedule spans trainer.epochs ({epochs!r}); make them equal")
    elif key == "trainer.save_dir":
        r.result.out = str(value)
    elif key == "trainer.monitor":
        if str(value).split() in (["max", "val_total"], ["max", "val_score"]):
            r.note(key, "abaw keeps the epoch with the best official validation score (the seed's val_total)")
        else:
            r.bad(key, f"is {value!r}: abaw selects on the official validation score ('max val_total'); to turn "
                       "early stopping off set trainer.early_stop to trainer.epochs")
    elif key == "trainer.save_period":
        r.note(key, "abaw keeps checkpoints/last.pt (every epoch and every train.checkpoint_every steps) and best.pt")
    elif key == "trainer.verbosity":
        r.note(key, "abaw logs one line per epoch; -v adds debug lines (the loss every --print-freq steps)")
    elif key == "trainer.tensorboard":
        r.note(key, "abaw always writes TensorBoard logs to the run folder's tb/")
    else:
        _unknown(r, key)


def _read_n_gpu(r: _Reader, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        r.bad("n_gpu", f"is {value!r}: give the number of GPUs (0 for the CPU)")
    elif value == 0:
        r.ok("train.device", "cpu")
    elif value > 1 and int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1))) != value:
        r.bad("n_gpu", f"is {value}: abaw trains on several GPUs with one process each: "
                       f"torchrun --nproc_per_node={value} train_affwild2.py -c CONFIG ...")
    # n_gpu 1 (or this process's share under torchrun): the device stays auto, this process's GPU


def _unknown(r: _Reader, key: str) -> None:
    top = key.split(".", 1)[0]
    if top in _ABAW_KEYS:
        r.bad(key, "is an abaw config key: do not mix the two layouts; write an abaw config that says "
                   "\"extends\": \"ntua_cvsp_track1\", or give the key with --set KEY=VALUE")
        return
    close = difflib.get_close_matches(key, _KNOWN, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    r.bad(key, f"is not a key of the seed's config{hint}; other settings: --set KEY=VALUE with an abaw config key")


def _is_model(name: str) -> bool:
    from abaw.models.registry import is_model

    return is_model(name)


def _check_values(r: _Reader, path: str | Path | None) -> None:
    """Each mapped value against abaw's schema, named by its seed key (types and ranges)."""
    from abaw.schema import set_dotted
    from abaw.train.config import validate

    seed_key = {"data.batch_size": "data_loader.batch_size", "data.duration": "data_loader.duration",
                "data.workers": "data_loader.num_workers", "optim.lr": "optimizer.args.lr",
                "optim.momentum": "optimizer.args.momentum", "optim.weight_decay": "optimizer.args.weight_decay",
                "sched.patience": "lr_scheduler.args.patience", "sched.factor": "lr_scheduler.args.factor",
                "sched.min_lr": "lr_scheduler.args.min_lr", "train.epochs": "trainer.epochs",
                "train.patience": "trainer.early_stop"}
    for key, value in r.result.overrides.items():
        if key.startswith("model.kwargs."):
            if key != "model.kwargs.cell_type" and not _number(value):
                r.bad(key.replace("model.kwargs.", "rnn." if "dropout" not in key else "arch.args."),
                      f"is {value!r}: give a number")
            continue
        partial: dict[str, Any] = {}
        set_dotted(partial, key, value)
        try:
            validate(partial, source=None, check_root=False)
        except AbawError as exc:
            r.bad(seed_key.get(key, key), f"-> {exc}")


def affectnet_checkpoint(track: str) -> Path:
    """The file ``--pretrained_affectnet single`` means for ``track``: ``<ABAW_AFFECTNET_DIR or
    checkpoints_affectnet>/<track>.pt`` (the seed loaded its single-task AffectNet ResNet-50 of the track from a
    fixed folder, ``checkpoints_affectnet/``)."""
    return Path(os.environ.get(AFFECTNET_DIR_ENV) or AFFECTNET_DIR) / f"{track}.pt"
