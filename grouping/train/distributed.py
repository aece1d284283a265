"""Distributed helpers, in one place: set-up from torchrun's environment, reductions, tear-down.

Under ``torchrun`` (which sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``) :func:`init_distributed` joins the process group with gloo on the CPU and nccl
on CUDA; without those variables it returns a single-process context and touches nothing. The
same code path serves one machine (``torchrun --standalone --nproc_per_node N``) and several
(``torchrun --nnodes M --node_rank i --rdzv-backend c10d --rdzv-endpoint HOST:PORT ...`` on each
machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..core.errors import invalid

__all__ = [
    "DistContext",
    "all_gather_objects",
    "all_reduce_mean",
    "all_reduce_sum",
    "barrier",
    "cleanup_distributed",
    "init_distributed",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the run.

    Attributes:
        rank: global rank, 0 for a single process.
        local_rank: rank on this machine (selects the CUDA device).
        world_size: number of processes.
        device: this process's device.
        backend: ``"gloo"``, ``"nccl"`` or None (not distributed).
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None

    @property
    def distributed(self) -> bool:
        """True when a process group is in use."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only one that writes logs and checkpoints."""
        return self.rank == 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise invalid(name, "an int (set by torchrun)", value) from None


def init_distributed(device: str | None = None) -> DistContext:
    """Join torchrun's process group, or describe a single process.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; None picks CUDA if available. Under
            torchrun with CUDA every process takes ``cuda:LOCAL_RANK``.

    Returns:
        The :class:`DistContext`.
    """
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(kind)
    except RuntimeError:
        raise invalid("device", "'cpu', 'cuda' or 'cuda:N'", device) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise invalid("device", "a device this machine has (no CUDA here)", device)
    world = _env_int("WORLD_SIZE")
    if world is None or world <= 1 or not dist.is_available():
        return DistContext(0, 0, 1, dev, None)
    rank, local = _env_int("RANK") or 0, _env_int("LOCAL_RANK") or 0
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistContext(rank, local, world, dev, backend)


def cleanup_distributed(ctx: DistContext) -> None:
    """Leave the process group (if any)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of ``value`` over the processes (``value`` itself for one process)."""
    if not ctx.distributed:
        return value
    return all_reduce_sum(value, ctx) / ctx.world_size


def all_reduce_sum(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum of ``value`` over the processes (``value`` itself for one process)."""
    if not ctx.distributed:
        return value
    out = value.detach().clone().to(ctx.device)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_objects(value: Any, ctx: DistContext) -> list[Any]:
    """``value`` of every process, by rank (``[value]`` for one process)."""
    if not ctx.distributed:
        return [value]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for every process (nothing for one process)."""
    if ctx.distributed:
        dist.barrier()
