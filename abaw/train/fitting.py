"""The steps every training loop shares, as plain functions (in the style of torchvision's ``references/``).

The four loops -- the main one (:mod:`abaw.train.loop`), AffectNet pretraining (:mod:`abaw.train.pretrain`), crowd
layers (:mod:`abaw.crowd.train`) and the temporal model (:mod:`abaw.temporal.train`) -- keep their data, loss,
evaluation and selection rule; they share from here the device and CPU threads, mixed precision, the optimizer step with
gradient clipping, the training-state checkpoint (model, optimizer, scheduler, scaler, RNG), the progress bar and
the per-epoch log line. A typical step::

    with autocast(device, amp):
        out = net(x)
    loss = loss_fn(out.float(), y)
    optimizer_step(loss, optimizer, grad_clip=5.0, scaler=scaler)
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from abaw.errors import AbawError
from abaw.train.checkpoint import rng_state, set_rng_state
from abaw.train.distributed import world_info

#: Mixed-precision modes: None (float32), "bf16" (CPU or CUDA), "fp16" (CUDA only, with a GradScaler).
AMP_MODES: tuple[str | None, ...] = (None, "bf16", "fp16")


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Torch's CPU threads set to ``n`` (None: left as is) inside the block, restored after."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


DEVICE_HELP = "auto (this process's GPU when there is one, else the CPU), cpu, cuda or cuda:N"


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested`` (``"auto"`` or None: this process's GPU -- its ``LOCAL_RANK`` under torchrun -- else the CPU)."""
    if isinstance(requested, torch.device):
        return requested
    if requested and str(requested).strip().lower() != "auto":
        try:
            return torch.device(str(requested).strip().lower())  # as before: any device torch knows (mps, ...)
        except RuntimeError:
            raise AbawError(f"unknown device {requested!r}: give {DEVICE_HELP}") from None
    if torch.cuda.is_available():
        return torch.device("cuda", world_info()[2])
    return torch.device("cpu")


def parse_device(text: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a device (``auto`` is :func:`pick_device`'s); an AbawError otherwise."""
    key = text.strip().lower()
    kind, _, index = key.partition(":")
    if kind == "cpu" and not index or kind == "cuda" and (not index or index.isdigit()):
        return torch.device(key)
    raise AbawError(f"unknown device {text!r}: give {DEVICE_HELP}")


def setup_device(device: torch.device) -> torch.device:
    """Per-process settings of a device: on CUDA, float32 matmuls and convolutions may use TF32 tensor cores
    (``set_float32_matmul_precision("high")``; about 10 bits of mantissa, the usual choice for training); the CPU
    is left exactly as it is."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


#: DataLoader worker processes when ``data.workers`` is null: none on the CPU (the model competes with the workers for
#: the same cores, and starting them costs more than the tiny CPU runs gain), up to this many on a GPU.
CUDA_WORKERS = 4


def loader_options(workers: int | None, device: torch.device) -> dict[str, Any]:
    """DataLoader keyword arguments for ``device``: ``workers`` processes (None: 0 on the CPU, up to
    :data:`CUDA_WORKERS` on CUDA), with pinned memory and persistent workers only on CUDA with workers."""
    import os

    if workers is None:
        workers = min(CUDA_WORKERS, os.cpu_count() or 1) if device.type == "cuda" else 0
    on_gpu = device.type == "cuda" and workers > 0
    return {"num_workers": int(workers), "pin_memory": on_gpu, "persistent_workers": on_gpu}


def amp_mode(amp: str | None) -> str | None:
    """``amp`` with ``"none"`` read as None (float32)."""
    return None if amp is None or str(amp).lower() == "none" else amp


def check_amp(amp: str | None, device: torch.device) -> None:
    """An AbawError for an unknown mode, or float16 off CUDA."""
    amp = amp_mode(amp)
    if amp not in AMP_MODES:
        raise AbawError(f"amp must be null, \"none\", \"bf16\" or \"fp16\", got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise AbawError(f"amp \"fp16\" needs a CUDA device (use \"bf16\" on {device.type})")


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """The autocast context of ``amp`` on ``device`` (a no-op for float32)."""
    check_amp(amp, device)
    amp = amp_mode(amp)
    if amp is None:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str | None) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for float16 (bfloat16 has float32's range and needs none)."""
    check_amp(amp, device)
    return torch.amp.GradScaler(device.type, enabled=amp_mode(amp) == "fp16")


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, grad_clip: float | None = None,
                   scaler: torch.amp.GradScaler | None = None,
                   params: Iterable[torch.Tensor] | None = None) -> torch.Tensor | None:
    """Zero the gradients, back-propagate ``loss``, clip the gradient norm of ``params`` (default: the optimizer's)
    to ``grad_clip`` when set, step. With an enabled ``scaler`` the loss is scaled and the gradients unscaled before
    clipping (a step with inf/NaN gradients is skipped by the scaler). Returns the total norm before clipping, or
    None without clipping."""
    optimizer.zero_grad(set_to_none=True)
    scaling = scaler is not None and scaler.is_enabled()
    (scaler.scale(loss) if scaling else loss).backward()
    norm = None
    if grad_clip:
        if scaling:
            scaler.unscale_(optimizer)
        if params is None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
        norm = nn.utils.clip_grad_norm_(params, float(grad_clip))
    if scaling:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return norm


# ---- training state ---------------------------------------------------------------------------------------------

def training_state(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
                   scaler: torch.amp.GradScaler | None = None, **extra: Any) -> dict[str, Any]:
    """Everything needed to continue training exactly, as a ``weights_only``-safe dict (tensors, numbers, strings,
    lists, dicts): model, optimizer, scheduler and scaler states, the RNG states, and the loop's own ``extra``."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state(), **extra}


def restore_training_state(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any = None, scaler: torch.amp.GradScaler | None = None) -> None:
    """Load a :func:`training_state` dict back into the objects and the RNGs."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])


def cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict (to keep the best weights while training goes on)."""
    return {k: v.detach().cpu().clone() for k, v in state_dict.items()}


# ---- progress and the per-epoch line ---------------------------------------------------------------------------

def show_progress(requested: bool, main: bool = True) -> bool:
    """Whether to draw a progress bar: asked for, on the main process, and stderr is a terminal."""
    return bool(requested and main and sys.stderr.isatty())


def progress(iterable: Iterable[Any], enabled: bool, total: int | None = None, desc: str | None = None) -> tqdm:
    """A tqdm bar over ``iterable``, cleared when done; a disabled one (no output, same methods) if not ``enabled``."""
    return tqdm(iterable, total=total, desc=desc, leave=False, disable=not enabled)


def epoch_line(epoch: int, record: dict[str, Any], best: bool = False, prefix: str = "epoch") -> str:
    """``"epoch 3: loss 0.1234, val_f1 0.5000 (best)"``: the numbers of ``record`` (nested dicts flattened with
    ``/``; ``epoch`` itself left out)."""
    parts = [f"{k} {_number(v)}" for k, v in _flat(record) if k != "epoch" and v is not None]
    return f"{prefix} {epoch}: {', '.join(parts)}{' (best)' if best else ''}"


def _flat(record: dict[str, Any], head: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in record.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{head}{k}/")
        else:
            yield f"{head}{k}", v


def _number(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)
