"""The grouping plan (the one type that crosses from the core to the adapter) and its checker.

A plan packs the non-empty windows of a masked token grid into groups of at most
``group_size`` visible tokens each, without splitting a window. Empty windows (count 0) belong
to no group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import PlanError

__all__ = ["GroupingPlan", "attention_cost", "check_plan", "is_valid_plan"]


def attention_cost(num_groups: int, group_size: int, channels: int) -> float:
    """Multiply-accumulate count of multi-head self-attention over ``num_groups`` groups.

    ``num_groups * (4*g*C**2 + 2*g**2*C)``: per group of ``g`` tokens with ``C`` channels, the
    q/k/v and output projections cost ``4*g*C**2`` and the two attention products
    (``q @ k^T`` and ``attn @ v``) ``2*g**2*C``, independent of the number of heads. This is the
    window-attention cost of the Swin paper (Liu et al. 2021, eq. 2) applied to a group.

    Args:
        num_groups: number of groups (>= 0).
        group_size: tokens per group ``g`` (padding included).
        channels: embedding width ``C``.

    Returns:
        The cost as a float (exact for all realistic sizes).
    """
    g = float(group_size)
    c = float(channels)
    return float(num_groups) * (4.0 * g * c * c + 2.0 * g * g * c)


def _readonly(array: NDArray[np.int64]) -> NDArray[np.int64]:
    array = np.ascontiguousarray(array, dtype=np.int64)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class GroupingPlan:
    """A packing of windows into equal-capacity groups.

    Attributes:
        groups: tuple of int64 arrays (read-only); ``groups[k]`` holds the window indices
            (row-major, into ``counts``) of group ``k``, in packing order.
        group_size: capacity ``g`` of every group, in tokens.
        counts: int64 ``[num_windows]`` (read-only), the visible tokens per window the plan was
            solved for.
        lower_bound: a proven lower bound on the number of groups at this group size.
        optimal: True only if ``num_groups`` is proven minimal at this group size (then
            ``num_groups == lower_bound``).
        strategy: the strategy that produced the plan (``"greenmim"``, ``"ffd"``, ...).
        channels: the channels ``C`` of the cost model, or None.
    """

    groups: tuple[NDArray[np.int64], ...]
    group_size: int
    counts: NDArray[np.int64]
    lower_bound: int
    optimal: bool
    strategy: str
    channels: int | None = None
    _group_of: NDArray[np.int64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(_readonly(g) for g in self.groups))
        object.__setattr__(self, "counts", _readonly(self.counts))
        group_of = np.full(self.counts.shape[0], -1, dtype=np.int64)
        for k, members in enumerate(self.groups):
            group_of[members] = k
        object.__setattr__(self, "_group_of", _readonly(group_of))

    @property
    def num_groups(self) -> int:
        """Number of groups."""
        return len(self.groups)

    @property
    def num_windows(self) -> int:
        """Number of windows, empty ones included."""
        return int(self.counts.shape[0])

    @property
    def cost(self) -> float:
        """``attention_cost(num_groups, group_size, channels)``; nan if no channels were given."""
        if self.channels is None:
            return math.nan
        return attention_cost(self.num_groups, self.group_size, self.channels)

    @property
    def fills(self) -> NDArray[np.int64]:
        """int64 ``[num_groups]``: visible tokens in each group."""
        return np.array([int(self.counts[g].sum()) for g in self.groups], dtype=np.int64)

    @property
    def num_tokens(self) -> int:
        """Visible tokens in all groups (the sum of the counts)."""
        return int(self.counts.sum())

    @property
    def padding(self) -> int:
        """Padding slots in all groups: ``num_groups * group_size - num_tokens``."""
        return self.num_groups * self.group_size - self.num_tokens

    @property
    def padding_fraction(self) -> float:
        """Padding slots over all slots (0.0 for an empty plan)."""
        slots = self.num_groups * self.group_size
        return self.padding / slots if slots else 0.0

    @property
    def group_of(self) -> NDArray[np.int64]:
        """int64 ``[num_windows]``: the group of every window, ``-1`` for empty windows."""
        return self._group_of

    def flat(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The groups as two flat arrays: ``(windows, offsets)``.

        ``windows[offsets[k]:offsets[k + 1]]`` is ``groups[k]``; ``offsets`` has
        ``num_groups + 1`` entries. This is the form the adapter turns into tensors.
        """
        sizes = np.array([len(g) for g in self.groups], dtype=np.int64)
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        windows = (
            np.concatenate(self.groups).astype(np.int64)
            if self.groups
            else np.zeros(0, dtype=np.int64)
        )
        return windows, offsets

    def __repr__(self) -> str:
        return (
            f"GroupingPlan(strategy={self.strategy!r}, group_size={self.group_size}, "
            f"num_groups={self.num_groups}, lower_bound={self.lower_bound}, "
            f"optimal={self.optimal}, num_windows={self.num_windows}, "
            f"padding_fraction={self.padding_fraction:.3f})"
        )


def check_plan(plan: GroupingPlan, counts: ArrayLike | None = None) -> None:
    """Raise :class:`PlanError` if ``plan`` is not a valid grouping of ``counts``.

    Checks: every non-empty window in exactly one group and no empty window in any group (so
    no window is split), no group empty, every fill ``<= group_size``, ``num_groups >=
    lower_bound >= ceil(sum / group_size)``, and ``optimal`` only with ``num_groups ==
    lower_bound``.

    Args:
        plan: the plan to check.
        counts: the counts the plan must group (int, any shape, flattened row-major); defaults
            to ``plan.counts``.
    """
    plan_counts = np.asarray(plan.counts)
    if counts is not None:
        expected = np.asarray(counts).ravel()
        if expected.shape != plan_counts.shape or not np.array_equal(expected, plan_counts):
            raise PlanError("counts: the plan was solved for other counts than those given")
    g = plan.group_size
    if not isinstance(g, (int, np.integer)) or g < 1:
        raise PlanError(f"group_size: expected a positive int, received {g!r}")
    seen = np.zeros(plan_counts.shape[0], dtype=np.int64)
    for k, members in enumerate(plan.groups):
        members = np.asarray(members)
        if members.ndim != 1 or members.size == 0:
            raise PlanError(f"group {k}: expected a non-empty 1-D array of window indices")
        if members.min() < 0 or members.max() >= plan_counts.shape[0]:
            raise PlanError(f"group {k}: window index out of range [0, {plan_counts.shape[0]})")
        np.add.at(seen, members, 1)
        fill = int(plan_counts[members].sum())
        if fill > g:
            raise PlanError(f"group {k}: fill {fill} exceeds the group size {g}")
    nonempty = plan_counts > 0
    if np.any(seen[nonempty] != 1):
        bad = np.flatnonzero(nonempty & (seen != 1))[:5].tolist()
        raise PlanError(f"windows {bad}: a non-empty window must be in exactly one group")
    if np.any(seen[~nonempty] != 0):
        bad = np.flatnonzero(~nonempty & (seen != 0))[:5].tolist()
        raise PlanError(f"windows {bad}: an empty window must belong to no group")
    total = int(plan_counts.sum())
    trivial = -(-total // g)
    if plan.lower_bound < trivial:
        raise PlanError(
            f"lower_bound: expected at least ceil(sum/g) = {trivial}, received {plan.lower_bound}"
        )
    if plan.num_groups < plan.lower_bound:
        raise PlanError(
            f"num_groups {plan.num_groups} is below the claimed lower bound {plan.lower_bound}"
        )
    if plan.optimal and plan.num_groups != plan.lower_bound:
        raise PlanError(
            f"optimal: claimed with num_groups {plan.num_groups} != lower_bound {plan.lower_bound}"
        )


def is_valid_plan(plan: GroupingPlan, counts: ArrayLike | None = None) -> bool:
    """True if :func:`check_plan` accepts ``plan``."""
    try:
        check_plan(plan, counts)
    except PlanError:
        return False
    return True
