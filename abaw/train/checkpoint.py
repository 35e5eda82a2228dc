"""Checkpoints: weights_only-safe dicts written atomically, RNG states, and ``load_model(run_dir)``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from abaw.errors import AbawError
from abaw.fileio import atomic_path, load_failure_reason


def rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as tensors, lists and ints (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically (a crash leaves the previous file intact)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AbawError("checkpoint not found", path=path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise AbawError(f"cannot read checkpoint: {load_failure_reason(exc)}", path=path) from None


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper."""
    return model.module if hasattr(model, "module") else model


def model_from_config(cfg: dict[str, Any], for_checkpoint: bool = False) -> nn.Module:
    """Create the model of a resolved config (seeded, so a randomly initialised CNN is the same every time).

    ``for_checkpoint``: the weights will come from a checkpoint, so no pretrained file is read (a trained run then
    loads on a machine without the ImageNet or AffectNet files it started from).
    """
    from abaw.models import create_model
    from abaw.train.config import tracks_of

    kwargs = dict(cfg["model"].get("kwargs", {}))
    if for_checkpoint:
        kwargs["pretrained"] = False
        kwargs.pop("pretrained_face", None)
    kwargs.setdefault("tasks", tuple(tracks_of(cfg)))
    kwargs.setdefault("protocol", cfg["protocol"])
    kwargs.setdefault("streams", tuple(s for s in cfg["data"]["streams"]))
    state = torch.get_rng_state()
    torch.manual_seed(int(cfg["train"]["seed"]))
    try:
        model = create_model(cfg["model"]["name"], **kwargs)
    except TypeError as exc:
        raise AbawError(f"model {cfg['model']['name']!r}: {exc} (check config key 'model.kwargs')") from None
    finally:
        torch.set_rng_state(state)
    return model


def load_model(run_dir: str | Path, which: str = "best") -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of a run folder (``best`` or ``last`` checkpoint) in eval mode, and its resolved config."""
    from abaw.runs.folder import check_run_dir
    from abaw.runs.info import read_json

    run_dir = check_run_dir(run_dir)
    cfg = read_json(run_dir / "config.json")
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file() and which == "best":
        path = run_dir / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(path)
    model = model_from_config(cfg, for_checkpoint=True)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise AbawError(f"checkpoint does not fit the model of config.json: {str(exc).splitlines()[0]}",
                        path=path) from None
    model.eval()
    return model, cfg
