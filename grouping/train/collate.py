"""The collator: masks drawn and steps prepared inside the DataLoader workers.

:class:`MaskingCollator` is the DataLoader's ``collate_fn``. For every batch it stacks the
images, draws the masks and calls the model's :class:`~grouping.models.step.Preparer` (the
grouping solver and the index tensors of every stage), all in the worker process, so the
training process only moves the finished step to its device.

Seeding (so that the masks do not depend on the number of workers or processes, nor on a
resume): a per-sample mask is drawn from ``(seed, position)`` of its sample, a mask shared by
the batch from ``(seed, step)`` of its global step.

The step's tensors travel packed into one buffer (:func:`grouping.adapter.pack_tensors`): a
DataLoader moves every tensor through shared memory with its own file descriptor, about 1 ms
each, which for the ~60 tensors of a Swin-T step cost ~75 ms per batch in the training process
(measured); packed it is one tensor (and one host-to-device copy on CUDA). The loop unpacks it
with :meth:`~grouping.adapter.PackedTensors.unpack` (views, no copy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ..adapter.tensors import PackedTensors, pack_tensors
from ..core.errors import check_int, check_mask_ratio
from ..models.step import Preparer, Step
from .data import MASK_STREAM, SHARED_MASK_STREAM, stack_images, stream_rng

__all__ = ["MaskingCollator", "TrainBatch"]


class TrainBatch(NamedTuple):
    """One batch as a worker hands it over.

    Attributes:
        inputs: float32 ``[B, C, H, W]`` images.
        step: the prepared step (masks, layouts, indices) on the CPU, packed into one buffer
            unless the collator was told not to (``unpack_step`` gives the step).
        positions: the stream position of every sample.
        global_step: the step this batch belongs to (0-based).
    """

    inputs: torch.Tensor
    step: Step | PackedTensors
    positions: list[int]
    global_step: int

    def unpack_step(self, device: torch.device | str, non_blocking: bool = False) -> Step:
        """The step on ``device`` (one copy of the packed buffer, then views)."""
        step = self.step.to(device, non_blocking=non_blocking)
        return step.unpack() if isinstance(step, PackedTensors) else step


class MaskingCollator:
    """``collate_fn`` that draws the masks and prepares the step of every batch.

    Args:
        preparer: the model's ``preparer(...)`` (picklable, no weights).
        mask_ratio: fraction of the mask grid masked, in ``[0, 1)``.
        per_sample: one mask per sample (seeded by its position) instead of one per batch
            (seeded by the global step).
        seed: the run's seed.
        global_batch: samples per step over all processes (to tell the step of a position).
        pack: hand the step over packed into one buffer (see the module docstring).
    """

    def __init__(
        self,
        preparer: Preparer,
        mask_ratio: float,
        *,
        per_sample: bool,
        seed: int,
        global_batch: int,
        pack: bool = True,
    ) -> None:
        self.preparer = preparer
        self.mask_ratio = check_mask_ratio(mask_ratio)
        self.per_sample = bool(per_sample)
        self.seed = check_int("seed", seed, minimum=0)
        self.global_batch = check_int("global_batch", global_batch, minimum=1)
        self.pack = bool(pack)

    def masks(self, positions: Sequence[int]) -> np.ndarray:
        """The masks of a batch: bool ``[B, *grid]`` per sample or ``[*grid]`` shared."""
        draw = self.preparer.draw_mask
        if self.per_sample:
            return np.stack(
                [
                    draw(self.mask_ratio, rng=stream_rng(self.seed, MASK_STREAM, p))
                    for p in positions
                ]
            )
        step = positions[0] // self.global_batch
        return draw(self.mask_ratio, rng=stream_rng(self.seed, SHARED_MASK_STREAM, step))

    def __call__(self, samples: Sequence[tuple[torch.Tensor, int]]) -> TrainBatch:
        images, positions = stack_images(samples)
        step = self.preparer(self.masks(positions), batch=len(positions))
        packed = pack_tensors(step) if self.pack else step
        return TrainBatch(images, packed, positions, positions[0] // self.global_batch)

    def __repr__(self) -> str:
        kind = "per-sample" if self.per_sample else "batch-shared"
        return (
            f"MaskingCollator({kind}, mask_ratio={self.mask_ratio}, seed={self.seed}, "
            f"global_batch={self.global_batch})"
        )
