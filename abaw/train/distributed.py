"""``torchrun`` distributed data parallel: gloo on CPU, nccl on GPU; helpers that are no-ops in one process."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def world_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init(device: torch.device) -> bool:
    """Join the process group when started by torchrun; return whether training is distributed."""
    _, world, _ = world_info()
    if world <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return True


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
