"""Hiera's mask-unit layout: stage grids, unroll / reroll permutations and mask-unit ids.

Hiera (Ryali et al. 2023) keeps the tokens of a hierarchical transformer in an *unrolled* order
so that (a) max-pooling by the query stride is a reduction over a leading block of the token
axis, ``x.view(B, s, -1, C).max(dim=1)``, and (b) after masking, every mask unit is a contiguous
set of positions, so dropping masked units never breaks the structure pooling needs.

Conventions (all functions here, any number of spatial axes):

* Grids are row-major; a flat index is the row-major index into the grid (``x_flat``).
* A *schedule* is a sequence of strides, each an int or one int per axis. Unrolling by one
  stride ``(s_0, s_1, ...)`` views the grid as ``[.., H // s_0, s_0, W // s_1, s_1]`` and moves
  the stride axes, in front, into a growing batch dimension: the token at ``h = hh * s_0 + dh``
  goes to the block ``dh`` (the finest offset is the outermost). Applying it once per stride of
  the schedule is Hiera's ``Unroll``.
* ``unroll_index(grid, schedule)`` is a permutation ``perm`` with ``x_unrolled =
  x_flat[perm]``; ``reroll_index`` is its inverse, ``x_flat = x_unrolled[inv]``.
* After unrolling by a schedule whose product equals the mask unit, the trailing axes are the
  mask-unit grid: position ``p`` holds a token of mask unit ``p % num_mask_units`` (mask units
  contiguous, mask-unit index fastest), which is what Hiera's ``x.view(B, -1, num_mask_units,
  C)`` and its mask tiling rely on.
* Masks elsewhere in the library are bool, True = visible; Hiera's "1 is *keep*, 0 is
  *remove*" is the same convention.

Examples:
    >>> lay = mask_unit_layout((32, 32), patch_stride=4, q_stride=2, num_stages=3,
    ...                        mask_unit_size=4)
    >>> lay.grids, lay.mask_units, lay.mask_unit_grid
    (((8, 8), (4, 4), (2, 2)), ((4, 4), (2, 2), (1, 1)), (2, 2))
    >>> perm = lay.unroll_index(0)           # int64[64]
    >>> (lay.mask_unit_ids(0).ravel()[perm] == np.arange(64) % 4).all()
    np.True_

References:
    Ryali et al., "Hiera: A Hierarchical Vision Transformer without the Bells-and-Whistles",
    ICML 2023 (``hiera/hiera_utils.py``: ``Unroll``, ``Reroll``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import as_int_tuple, check_grid, check_int, check_size, invalid

__all__ = [
    "MAX_STAGES",
    "MaskUnitLayout",
    "mask_unit_ids",
    "mask_unit_layout",
    "reroll_index",
    "stage_grids",
    "unroll_index",
]

Stride = int | tuple[int, ...]

#: The most stages a layout may have. Hierarchical vision models have 3 to 5; the limit keeps a
#: stage count from an unchecked source (``num_stages=2**62`` with ``q_stride=1`` made a list of
#: that many grids) from taking the machine's memory.
MAX_STAGES = 64


def _check_schedule(grid: tuple[int, ...], schedule: Any) -> tuple[tuple[int, ...], ...]:
    if isinstance(schedule, (str, bytes)) or not (
        isinstance(schedule, Sequence) or (isinstance(schedule, np.ndarray) and schedule.ndim)
    ):
        raise invalid(
            "schedule", "a sequence of strides (each an int or one int per axis)", schedule
        )
    strides = tuple(as_int_tuple("schedule", s, len(grid)) for s in schedule)
    total = tuple(math.prod(s[a] for s in strides) for a in range(len(grid)))
    if any(g % t for g, t in zip(grid, total, strict=True)):
        raise invalid(
            "schedule",
            f"strides whose product {total} divides the grid {grid} on every axis",
            schedule,
        )
    return strides


def _unroll_position(grid: tuple[int, ...], strides: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Unrolled position of every token, int64 ``[*grid]`` (the inverse permutation).

    Each coordinate is written in mixed radix, ``c = d_1 + s_1 * (d_2 + s_2 * (... + s_n * q))``;
    the unrolled position is the mixed-radix number with digits ``(d_1 per axis, ..., d_n per
    axis, q per axis)``, most significant first.
    """
    ndim = len(grid)
    rest = [np.arange(g, dtype=np.int64) for g in grid]
    pos = np.zeros(grid, dtype=np.int64)

    def along(axis: int, values: np.ndarray) -> np.ndarray:
        shape = [1] * ndim
        shape[axis] = grid[axis]
        return values.reshape(shape)

    for stride in strides:
        for axis, s in enumerate(stride):
            pos = pos * s + along(axis, rest[axis] % s)
            rest[axis] = rest[axis] // s
    for axis in range(ndim):
        radix = grid[axis] // math.prod(s[axis] for s in strides)
        pos = pos * radix + along(axis, rest[axis])
    return pos


def reroll_index(grid: tuple[int, ...], schedule: Sequence[Stride]) -> NDArray[np.int64]:
    """Inverse of :func:`unroll_index`: ``x_flat = x_unrolled[inv]``.

    ``inv[i]`` is the unrolled position of the token with row-major flat index ``i``.

    Args:
        grid: token grid, e.g. ``(H, W)`` or ``(T, H, W)``.
        schedule: strides, each an int or one int per axis; their product must divide the grid.

    Returns:
        int64 ``[L]`` with ``L = prod(grid)``, a permutation of ``range(L)``.

    Examples:
        >>> unroll_index((6,), [2]).tolist()     # even positions first, then odd
        [0, 2, 4, 1, 3, 5]
        >>> reroll_index((6,), [2]).tolist()
        [0, 3, 1, 4, 2, 5]
    """
    grid = check_grid(grid)
    strides = _check_schedule(grid, schedule)
    check_size("grid", grid, math.prod(grid), "tokens")
    return _unroll_position(grid, strides).ravel()


def unroll_index(grid: tuple[int, ...], schedule: Sequence[Stride]) -> NDArray[np.int64]:
    """Hiera's ``Unroll`` as an index permutation: ``x_unrolled = x_flat[perm]``.

    For each stride ``s`` of ``schedule``, the grid is viewed as ``[.., H // s_0, s_0, W // s_1,
    s_1]`` and the stride offsets are moved in front (into a growing batch dimension), so that
    ``x_unrolled.reshape(prod(s), -1)`` max-reduced over its first axis is max-pooling by
    ``s``. After the whole schedule the trailing axes are ``grid // prod(schedule)``.

    Args:
        grid: token grid, e.g. ``(H, W)`` or ``(T, H, W)``, row-major.
        schedule: strides, each an int or one int per axis; their product must divide the grid.

    Returns:
        int64 ``[L]``: ``perm[p]`` is the row-major flat index of the token at unrolled
        position ``p``.

    Examples:
        >>> unroll_index((2, 4), [2]).tolist()   # stride 2 on both axes: 4 blocks of 2 tokens
        [0, 2, 1, 3, 4, 6, 5, 7]
    """
    inv = reroll_index(grid, schedule)
    perm = np.empty_like(inv)
    perm[inv] = np.arange(inv.size, dtype=np.int64)
    return perm


def mask_unit_ids(grid: tuple[int, ...], mask_unit: Stride) -> NDArray[np.int64]:
    """Mask-unit id of every token: the row-major index of its unit in the mask-unit grid.

    Args:
        grid: token grid, e.g. ``(H, W)`` or ``(T, H, W)``.
        mask_unit: mask-unit size in tokens, an int or one int per axis; must divide the grid.

    Returns:
        int64 ``[*grid]``, values in ``[0, prod(grid // mask_unit))``.

    Examples:
        >>> mask_unit_ids((2, 4), 2).tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    grid = check_grid(grid)
    unit = as_int_tuple("mask_unit", mask_unit, len(grid))
    check_size("grid", grid, math.prod(grid), "tokens")
    if any(g % u for g, u in zip(grid, unit, strict=True)):
        raise invalid(
            "mask_unit", f"a mask unit that divides the grid {grid} on every axis", mask_unit
        )
    ids = np.zeros((), dtype=np.int64)
    for g, u in zip(grid, unit, strict=True):
        ids = np.add.outer(ids * (g // u), np.arange(g, dtype=np.int64) // u)
    return ids


def _stage_setup(
    input_size: Any,
    patch_stride: Any,
    q_stride: Any,
    num_stages: Any,
    q_pool: Any,
    mask_unit_size: Any,
) -> tuple[
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    int,
    list[tuple[int, ...]],
    tuple[int, ...] | None,
]:
    size = check_grid(input_size, "input_size")
    ndim = len(size)
    patch = as_int_tuple("patch_stride", patch_stride, ndim)
    qs = as_int_tuple("q_stride", q_stride, ndim)
    stages = check_int("num_stages", num_stages, minimum=1)
    if stages > MAX_STAGES:
        raise invalid("num_stages", f"an int in [1, MAX_STAGES = {MAX_STAGES}]", num_stages)
    pool = stages - 1 if q_pool is None else check_int("q_pool", q_pool, minimum=0)
    if pool > stages - 1:
        raise invalid("q_pool", f"an int in [0, num_stages - 1 = {stages - 1}]", q_pool)
    if any(i % p for i, p in zip(size, patch, strict=True)):
        raise invalid(
            "patch_stride",
            f"a stride that divides input_size {size} on every axis",
            patch_stride,
        )
    grid = tuple(i // p for i, p in zip(size, patch, strict=True))
    grids = [grid]
    for k in range(stages - 1):
        if k < pool:
            if any(g % s for g, s in zip(grid, qs, strict=True)):
                raise invalid(
                    "q_stride",
                    f"a stride that divides the stage-{k} grid {grid}, which is pooled into "
                    f"stage {k + 1}",
                    q_stride,
                    "use a larger input, a smaller patch_stride or fewer pooled stages (q_pool)",
                )
            grid = tuple(g // s for g, s in zip(grid, qs, strict=True))
        grids.append(grid)
    unit = None
    if mask_unit_size is not None:
        unit = as_int_tuple("mask_unit_size", mask_unit_size, ndim)
        if any(g % u for g, u in zip(grids[0], unit, strict=True)):
            raise invalid(
                "mask_unit_size",
                f"a mask unit (in stage-0 tokens) that divides the stage-0 grid {grids[0]} on "
                "every axis",
                mask_unit_size,
            )
        pooled = tuple(s**pool for s in qs)
        if any(u % p for u, p in zip(unit, pooled, strict=True)):
            raise invalid(
                "mask_unit_size",
                f"a multiple of q_stride**q_pool = {pooled} tokens on every axis",
                mask_unit_size,
                f"the mask unit must be a multiple of q_stride**q_pool = {pooled} tokens, so "
                "that every pooling window lies inside one mask unit",
            )
    return size, patch, qs, pool, grids, unit


def stage_grids(
    input_size: tuple[int, ...],
    *,
    patch_stride: Stride,
    q_stride: Stride,
    num_stages: int,
    q_pool: int | None = None,
    mask_unit_size: Stride | None = None,
) -> list[tuple[int, ...]]:
    """The token grid of every stage of a hierarchical transformer.

    Stage 0 is ``input_size // patch_stride``; each of the first ``q_pool`` stage transitions
    divides the grid by ``q_stride``, later ones keep it.

    Args:
        input_size: input size in pixels (or frames), e.g. ``(224, 224)`` or ``(16, 224, 224)``.
        patch_stride: patch-embedding stride, an int or one int per axis; must divide
            ``input_size``.
        q_stride: pooling stride between stages, an int or one int per axis.
        num_stages: number of stages, in ``[1, MAX_STAGES]``.
        q_pool: number of pooled transitions, in ``[0, num_stages - 1]``; default
            ``num_stages - 1``.
        mask_unit_size: optional mask-unit size in stage-0 tokens (int or per axis); when
            given it must divide the stage-0 grid and be a multiple of ``q_stride**q_pool``.

    Returns:
        ``num_stages`` grids (tuples of ints).

    Raises:
        GroupingValueError: if a stride or the mask unit does not fit the grids.

    Examples:
        >>> stage_grids((224, 224), patch_stride=4, q_stride=2, num_stages=4)
        [(56, 56), (28, 28), (14, 14), (7, 7)]
    """
    return _stage_setup(input_size, patch_stride, q_stride, num_stages, q_pool, mask_unit_size)[4]


@dataclass(frozen=True)
class MaskUnitLayout:
    """Hiera's mask-unit layout of every stage (build it with :func:`mask_unit_layout`).

    Attributes:
        input_size: input size per axis (pixels or frames).
        patch_stride: patch-embedding stride per axis.
        q_stride: pooling stride per axis.
        q_pool: number of pooled stage transitions.
        mask_unit_size: mask-unit size per axis in stage-0 tokens.
        grids: token grid of every stage.
        mask_units: mask-unit size in tokens of every stage, ``mask_unit_size //
            q_stride**min(k, q_pool)``.
        mask_unit_grid: number of mask units per axis (the same at every stage).
        schedule: the pooling schedule, ``q_stride`` repeated ``q_pool`` times.
        unroll_schedule: the strides the tokens are unrolled by: ``schedule`` followed by the
            strides that make the rest of the mask unit contiguous (``q_stride`` while it
            divides the rest, then the remainder if any). Its product is ``mask_unit_size``.
            Hiera itself unrolls ``num_stages - 1`` times by ``q_stride`` and needs
            ``mask_unit_size == q_stride**(num_stages - 1)``; for such configurations the two
            schedules are equal.
    """

    input_size: tuple[int, ...]
    patch_stride: tuple[int, ...]
    q_stride: tuple[int, ...]
    q_pool: int
    mask_unit_size: tuple[int, ...]
    grids: tuple[tuple[int, ...], ...]
    mask_units: tuple[tuple[int, ...], ...]
    mask_unit_grid: tuple[int, ...]
    schedule: tuple[tuple[int, ...], ...]
    unroll_schedule: tuple[tuple[int, ...], ...]

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.grids)

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.input_size)

    @property
    def num_mask_units(self) -> int:
        """Number of mask units, ``prod(mask_unit_grid)``."""
        return math.prod(self.mask_unit_grid)

    def num_tokens(self, stage: int = 0) -> int:
        """Number of tokens at ``stage``, ``prod(grids[stage])``."""
        return math.prod(self.grids[self._stage(stage)])

    def _stage(self, stage: Any) -> int:
        k = check_int("stage", stage, minimum=0)
        if k >= self.num_stages:
            raise invalid("stage", f"an int in [0, {self.num_stages - 1}]", stage)
        return k

    def stage_schedule(self, stage: int = 0) -> tuple[tuple[int, ...], ...]:
        """Strides the tokens of ``stage`` are still unrolled by: ``unroll_schedule[k:]``.

        Pooling ``x.view(B, prod(q_stride), -1, C).max(1)`` at the end of stage ``k`` consumes
        the first stride, so stage ``k + 1`` is in the order of ``unroll_schedule[k + 1:]``.
        """
        k = self._stage(stage)
        return self.unroll_schedule[min(k, self.q_pool) :]

    def unroll_index(self, stage: int = 0) -> NDArray[np.int64]:
        """int64 ``[L_stage]``: the unrolled order of ``stage``, ``x_unrolled = x_flat[perm]``.

        Position ``p`` holds a token of mask unit ``p % num_mask_units``.
        """
        k = self._stage(stage)
        return unroll_index(self.grids[k], self.stage_schedule(k))

    def reroll_index(self, stage: int = 0) -> NDArray[np.int64]:
        """int64 ``[L_stage]``: the inverse of :meth:`unroll_index`.

        ``x_flat = x_unrolled[inv]`` (spatial row-major order back, as Hiera's ``Reroll``).
        """
        k = self._stage(stage)
        return reroll_index(self.grids[k], self.stage_schedule(k))

    def mask_unit_ids(self, stage: int = 0) -> NDArray[np.int64]:
        """int64 ``[*grids[stage]]``: the mask unit of every token of ``stage``.

        Mask units are numbered row-major over ``mask_unit_grid``.
        """
        k = self._stage(stage)
        return mask_unit_ids(self.grids[k], self.mask_units[k])


def mask_unit_layout(
    input_size: tuple[int, ...],
    *,
    patch_stride: Stride,
    q_stride: Stride,
    num_stages: int,
    mask_unit_size: Stride,
    q_pool: int | None = None,
) -> MaskUnitLayout:
    """Build Hiera's mask-unit layout (grids, mask units and unroll schedule of every stage).

    Args:
        input_size: input size per axis, e.g. ``(224, 224)`` or ``(16, 224, 224)``.
        patch_stride: patch-embedding stride (int or per axis), must divide ``input_size``.
        q_stride: pooling stride (int or per axis), e.g. ``2`` or ``(1, 2, 2)`` for video.
        num_stages: number of stages, in ``[1, MAX_STAGES]``.
        mask_unit_size: mask-unit size in stage-0 tokens (int or per axis), e.g. ``8`` (32 px
            at patch stride 4); must divide the stage-0 grid and be a multiple of
            ``q_stride**q_pool``.
        q_pool: number of pooled transitions, default ``num_stages - 1``.

    Returns:
        The :class:`MaskUnitLayout`.

    Raises:
        GroupingValueError: if the strides or the mask unit do not fit (see :func:`stage_grids`).

    Examples:
        >>> lay = mask_unit_layout((224, 224), patch_stride=4, q_stride=2, num_stages=4,
        ...                        mask_unit_size=8)
        >>> lay.mask_unit_grid, lay.mask_units[1], len(lay.unroll_index(1))
        ((7, 7), (4, 4), 784)
    """
    if mask_unit_size is None:
        raise invalid("mask_unit_size", "an int or one int per axis", mask_unit_size)
    size, patch, qs, pool, grids, unit = _stage_setup(
        input_size, patch_stride, q_stride, num_stages, q_pool, mask_unit_size
    )
    assert unit is not None
    schedule = (qs,) * pool
    rest = tuple(u // s**pool for u, s in zip(unit, qs, strict=True))
    extra: list[tuple[int, ...]] = []
    while any(s > 1 for s in qs) and all(r % s == 0 for r, s in zip(rest, qs, strict=True)):
        extra.append(qs)
        rest = tuple(r // s for r, s in zip(rest, qs, strict=True))
    if any(r > 1 for r in rest):
        extra.append(rest)
    mask_units = tuple(
        tuple(u // s ** min(k, pool) for u, s in zip(unit, qs, strict=True))
        for k in range(len(grids))
    )
    return MaskUnitLayout(
        input_size=size,
        patch_stride=patch,
        q_stride=qs,
        q_pool=pool,
        mask_unit_size=unit,
        grids=tuple(grids),
        mask_units=mask_units,
        mask_unit_grid=tuple(g // u for g, u in zip(grids[0], unit, strict=True)),
        schedule=schedule,
        unroll_schedule=schedule + tuple(extra),
    )
