"""The step protocol: everything a training step needs besides the weights, built from a mask.

A model's ``prepare(mask, ...)`` turns a mask (or none) into a *step*: index tensors, layouts
and loss masks. Building a step is host work (the grouping solver, numpy index arithmetic), so
it belongs in a DataLoader worker, not in ``forward``. A step is

* a frozen dataclass deriving from :class:`Step`, picklable (it crosses from a worker to the
  training process);
* movable with ``.to(device, non_blocking=True)`` and ``.pin_memory()`` (every tensor inside it,
  nested layouts included, see :func:`grouping.adapter.map_tensors`);
* specific to a batch when its masks are per sample (``batch``), or to any batch when one mask
  is shared (``batch is None``).

Solver settings (group size, strategy, layout mode) are arguments of ``prepare``; they never
live in an architecture config. Timing is the caller's business: a step holds no profiling
fields.

A :class:`Preparer` is the picklable form of ``model.prepare`` (the architecture config and the
solver settings, no weights): what the training package's collator calls in the workers.

Examples:
    >>> from grouping.models import create_model
    >>> model = create_model("greenmim_swin_tiny", img_size=64, window_size=4, embed_dim=8,
    ...                      num_heads=(1, 1, 1), depths=(1, 1, 1), mask_unit=16,
    ...                      decoder_dim=16, decoder_heads=1)
    >>> prep = model.preparer(strategy="ffd")
    >>> mask = prep.draw_mask(0.75, rng=0)                # bool [4, 4] on the mask-unit grid
    >>> step = prep(mask)                                 # what a DataLoader worker returns
    >>> step.batch is None, step.device.type
    (True, 'cpu')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray

from ..adapter.tensors import first_tensor, map_tensors
from ..core.errors import invalid
from ..core.masking import batch_mask

__all__ = ["Preparer", "Step", "draw_if_asked"]

S = TypeVar("S", bound="Step")


class Step:
    """Base class of prepared steps (subclasses are frozen dataclasses with a ``batch`` field).

    Attributes:
        batch: the batch of per-sample masks, None when one mask is shared by the batch.
    """

    batch: int | None

    @property
    def shared(self) -> bool:
        """True when one mask is shared by the whole batch."""
        return self.batch is None

    @property
    def device(self) -> torch.device:
        """Device of the step's tensors (the CPU if it has none)."""
        found = first_tensor(self)
        return torch.device("cpu") if found is None else found.device

    def to(self: S, device: torch.device | str, non_blocking: bool = False) -> S:
        """A copy with every tensor on ``device`` (self if already there).

        Args:
            device: the target device.
            non_blocking: asynchronous copies (from pinned memory, see :meth:`pin_memory`).
        """
        device = torch.device(device)
        if device == self.device:
            return self
        return map_tensors(self, lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self: S) -> S:
        """A copy with every tensor in pinned host memory (DataLoader's ``pin_memory=True``
        calls this), so that ``.to(cuda, non_blocking=True)`` overlaps with compute."""
        return map_tensors(self, lambda t: t.pin_memory())

    def check(self, batch: int, device: torch.device, name: str = "mask") -> None:
        """Raise :class:`~grouping.GroupingValueError` unless the step fits a batch of
        ``batch`` inputs on ``device``."""
        if self.batch is not None and self.batch != batch:
            raise invalid(
                name,
                f"a step prepared for a batch of {batch}",
                f"a step for a batch of {self.batch}",
                "prepare it from the masks of this batch",
            )
        if self.device != device:
            raise invalid(
                name,
                f"a step on {device} (the inputs' device)",
                f"a step on {self.device}",
                "move it with step.to(device)",
            )


@dataclass(frozen=True)
class Preparer:
    """``model.prepare`` as a picklable callable: an architecture config and solver settings.

    It holds no weights, so sending it to DataLoader workers costs nothing; the workers call
    it on the masks they draw.

    Attributes:
        fn: a module-level function ``fn(config, mask, *, batch=None, **options) -> Step``.
        config: the model's (frozen) architecture config.
        mask_grid: the grid masks are drawn on (e.g. the mask-unit grid of an image).
        options: keyword settings passed to ``fn`` (solver group size, strategy, ...).
    """

    fn: Callable[..., Step]
    config: Any
    mask_grid: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, mask: Any, *, batch: int | None = None) -> Step:
        """Build the step of ``mask`` (bool ``[*mask_grid]`` shared, ``[B, *mask_grid]`` per
        sample; True = visible; None = nothing masked) on the CPU."""
        return self.fn(self.config, mask, batch=batch, **self.options)

    def draw_mask(
        self, mask_ratio: float, *, rng: np.random.Generator | int | None = None
    ) -> NDArray[np.bool_]:
        """One random mask ``[*mask_grid]`` with MAE's keep count (True = visible).

        A batch of per-sample masks is a stack of such draws, one generator per sample.
        """
        return batch_mask(self.mask_grid, mask_ratio, rng=rng)


def draw_if_asked(
    model: Any,
    batch: int,
    mask_ratio: float | None,
    rng: np.random.Generator | int | None = None,
    per_sample: bool = False,
) -> Any:
    """The mask of a ``forward`` called without one: ``None`` (nothing masked) unless a
    ``mask_ratio`` is passed, then ``model.sample_mask(batch, mask_ratio, ...)``.

    This is the one meaning of ``mask=None`` in the models (MAE-Hiera keeps the official
    signature ``forward(x, mask_ratio=0.6, mask=None)``, where the ratio is always given).

    Raises:
        GroupingValueError: for ``rng`` or ``per_sample`` without a ``mask_ratio`` (they only
            apply to a draw).
    """
    if mask_ratio is None:
        if rng is not None or per_sample:
            raise invalid(
                "mask_ratio",
                "a mask ratio when rng or per_sample is given (they only apply to a draw)",
                None,
                "mask=None without mask_ratio means nothing is masked",
            )
        return None
    return model.sample_mask(batch, mask_ratio, rng=rng, per_sample=per_sample)
