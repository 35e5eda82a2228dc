"""``torchrun`` distributed data parallel: gloo on CPU, nccl on GPU; helpers that are no-ops in one process."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist


def world_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


#: Minutes a collective (a barrier, a broadcast, a gradient all-reduce) may wait for the slowest rank before the job
#: aborts. torch's default is 10 (NCCL) or 30 (gloo) minutes; ranks may legitimately wait longer (inside ``abaw
#: train`` every rank extracts its share of a missing feature cache, and the fastest waits for the slowest; rank 0
#: validates the full split alone, end to end for hours on a whole Aff-Wild2), so the default here is 6 hours.
#: A real hang is then found late, not never; set ``ABAW_DIST_TIMEOUT_MINUTES`` to change it.
DEFAULT_TIMEOUT_MINUTES = 360.0
TIMEOUT_ENV = "ABAW_DIST_TIMEOUT_MINUTES"


def timeout() -> datetime.timedelta:
    """The process-group timeout: ``$ABAW_DIST_TIMEOUT_MINUTES`` (a positive number), else
    :data:`DEFAULT_TIMEOUT_MINUTES`."""
    from abaw.errors import AbawError

    text = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        minutes = float(text) if text else DEFAULT_TIMEOUT_MINUTES
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise AbawError(f"{TIMEOUT_ENV} must be a positive number of minutes, got {text!r}")
    return datetime.timedelta(minutes=minutes)


def init(device: torch.device) -> bool:
    """Join the process group when started by torchrun (with :func:`timeout`); return whether training is
    distributed."""
    _, world, _ = world_info()
    if world <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timeout())
    return True


def find_unused_parameters(model: torch.nn.Module, tasks: Iterable[str]) -> bool:
    """Whether DDP must look for parameters that get no gradient in a step (a whole extra graph traversal per step).

    The rule: a multi-stream model (it has ``stream_encoders`` and ``tasks``) whose heads are exactly the trained
    tasks uses every trainable parameter in every step -- every stream runs on every batch, and a task with no valid
    label in the batch still keeps its head in the graph with a zero loss -- so no search is needed; frozen parts
    (the CNNs in cached mode) have ``requires_grad`` off and DDP ignores them. Any other model, or heads for tasks the
    loss does not train, may leave parameters without a gradient: search."""
    heads = getattr(model, "tasks", None)
    if not hasattr(model, "stream_encoders") or heads is None:
        return True
    return set(heads) != set(tasks)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast(obj: Any, src: int = 0) -> Any:
    """Send a picklable-by-torch object from ``src`` to every rank (internal, trusted: it is our own process)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def cleanup() -> None:
    """Tear the process group down after a successful run: every rank first waits for the others, so none exits
    while another is still inside gloo (which can abort the late one with "terminate called without an active
    exception")."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
