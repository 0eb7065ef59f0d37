"""Several processes training one adapter (DDP through `accelerate launch` or `torchrun`): which process
this is, and the few things rank 0 decides for all of them.

Rank 0 does everything tracked (data, checks, the run, checkpoints' bookkeeping, the adapter, the
registered version); the other ranks train beside it and learn its decisions by broadcast, so every
process takes the same path and the collectives of training always match."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class World:
    rank: int
    size: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """From the launcher's environment (RANK / WORLD_SIZE, set by torchrun and accelerate launch)."""
    return World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def _group() -> None:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def share(value: Any) -> Any:
    """Rank 0's `value`, on every rank (a no-op in one process)."""
    if world().size == 1:
        return value
    import torch.distributed as dist

    _group()
    box = [value if world().main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
