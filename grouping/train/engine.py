"""The optimizer-step loop every training command shares (MAE's ``engine_pretrain``).

:func:`train_steps` runs optimizer steps over an iterator of batches and yields one metrics
record after each step; everything else (metrics files, progress, checkpoints, evaluation) is
the caller's, between two records. What a step computes is ``forward(net, batch, device)``,
which returns the model's output: a ``NamedTuple`` whose ``loss`` is the scalar to minimise and
whose ``metrics`` (a mapping of scalar tensors, possibly empty) are logged beside it. Every
pretraining model's ``forward(inputs, mask=step)`` returns such an output
(:mod:`grouping.models.mae`); :func:`pretrain_forward` is that call on a
:class:`~grouping.train.collate.TrainBatch`.

The records hold ``step``, ``loss`` (the mean over processes), ``lr``, ``samples_per_s``,
``step_time_s``, ``data_wait_s``, ``cpu_time_s``, ``world_size``, ``global_batch`` and every
metric of the output (each the mean over processes).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import torch
from torch import nn

from ..adapter.tensors import map_tensors
from ..core.errors import GroupingValueError, check_int
from .collate import TrainBatch
from .distributed import DistContext, all_reduce_mean

__all__ = ["StepOutput", "pretrain_forward", "train_steps"]


class StepOutput(Protocol):
    """What ``forward`` returns: the loss first, and the metrics logged beside it."""

    @property
    def loss(self) -> torch.Tensor: ...

    @property
    def metrics(self) -> Mapping[str, torch.Tensor]: ...


def pretrain_forward(net: nn.Module, batch: TrainBatch, device: torch.device) -> StepOutput:
    """``net(inputs, mask=step)`` of a masking collator's batch, moved to ``device``."""
    inputs = map_tensors(batch.inputs, lambda t: t.to(device, non_blocking=True))
    return net(inputs, mask=batch.unpack_step(device, non_blocking=True))


def _original_message(exc: BaseException) -> str:
    """The message of an error re-raised by a DataLoader worker, without its traceback."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else str(exc)
    prefix = f"{type(exc).__name__}: "
    return last[len(prefix) :] if last.startswith(prefix) else last


def _next_batch(it: Iterator[Any]) -> Any:
    try:
        return next(it)
    except GroupingValueError as exc:  # raised in a worker: keep the message, drop the trace
        raise type(exc)(_original_message(exc)) from None


def train_steps(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Any],
    *,
    steps: range,
    lr_at: Callable[[int], float],
    ctx: DistContext,
    global_batch: int,
    forward: Callable[[nn.Module, Any, torch.device], StepOutput] = pretrain_forward,
    accum_steps: int = 1,
    clip_grad: float | None = None,
    bf16: bool = False,
) -> Iterator[dict[str, Any]]:
    """Run one optimizer step per entry of ``steps``; yield its metrics record after each.

    With ``accum_steps = K`` every optimizer step takes ``K`` batches (MAE's ``accum_iter``):
    each batch's loss is divided by ``K`` and back-propagated, gradients add up (under DDP they
    are reduced on the last batch only), and the optimizer steps once. A batch of ``B``
    samples with ``K`` accumulation steps then follows the loss curve of a batch of ``B * K``
    samples, provided the loss is a mean over samples with equal weights (per-sample masks
    with equal counts: every model of the registry).

    Args:
        net: the model, or its ``DistributedDataParallel`` wrapper.
        optimizer: its optimizer; every parameter group's ``lr`` is set before each step
            (times the group's ``lr_scale`` where it has one: layer-wise decay).
        batches: ``K`` batches per step (a DataLoader); a batch with a ``global_step`` must
            belong to optimizer step ``step - 1`` (0-based; the masking collator counts
            optimizer steps), which catches a sampler out of step with the run.
        steps: the 1-based optimizer steps to run (``range(start + 1, total + 1)``).
        lr_at: the learning rate of a step (:func:`grouping.train.cosine_lr`).
        ctx: this process's place in the run (reductions over processes).
        global_batch: samples per optimizer step over all processes and accumulation steps
            (for ``samples_per_s``).
        forward: ``forward(net, batch, device)`` -> the output (``loss``, ``metrics``).
        accum_steps: batches per optimizer step, ``K >= 1``.
        clip_grad: clip the gradient norm to this value (None: no clipping).
        bf16: run ``forward`` under bf16 autocast.

    Yields:
        One dict per optimizer step (see the module docstring), after the step; ``loss`` and
        the metrics are means over the ``K`` batches and the processes.
    """
    accum = check_int("accum_steps", accum_steps, minimum=1)
    ddp = isinstance(net, nn.parallel.DistributedDataParallel)
    it = iter(batches)
    for step in steps:
        t0, cpu0 = time.perf_counter(), time.process_time()
        lr = lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        optimizer.zero_grad(set_to_none=True)
        wait = 0.0
        loss_sum: torch.Tensor | float = 0.0
        metric_sums: dict[str, torch.Tensor] = {}
        for k in range(accum):
            t1 = time.perf_counter()
            batch = _next_batch(it)
            wait += time.perf_counter() - t1
            got = getattr(batch, "global_step", step - 1)
            if got != step - 1:
                raise RuntimeError(f"batch of step {got + 1} received at step {step}")
            sync = k == accum - 1 or not ddp
            with contextlib.nullcontext() if sync else net.no_sync():  # type: ignore[operator]
                with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
                    out = forward(net, batch, ctx.device)
                (out.loss / accum if accum > 1 else out.loss).backward()
            loss_sum = loss_sum + out.loss.detach().float()
            for name, value in out.metrics.items():
                metric_sums[name] = metric_sums.get(name, 0.0) + value.detach().float()
        if clip_grad is not None:
            nn.utils.clip_grad_norm_(net.parameters(), clip_grad)
        optimizer.step()
        mean_loss = float(all_reduce_mean(torch.as_tensor(loss_sum) / accum, ctx))
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        t2 = time.perf_counter()
        record: dict[str, Any] = {
            "step": step,
            "loss": mean_loss,
            "lr": lr,
            "samples_per_s": global_batch / (t2 - t0),
            "step_time_s": t2 - t0,
            "data_wait_s": wait,
            "cpu_time_s": time.process_time() - cpu0,  # this process, all its threads
            "world_size": ctx.world_size,
            "global_batch": global_batch,
        }
        for name, total in metric_sums.items():  # e.g. the PSNR of the reconstructions
            record[name] = float(all_reduce_mean(total / accum, ctx))
        yield record
