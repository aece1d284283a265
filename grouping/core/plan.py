"""The grouping plan (the one type that crosses from the core to the adapter) and its checker.

A plan packs the non-empty windows of a masked token grid into groups of at most
``group_size`` visible tokens each, without splitting a window. Empty windows (count 0) belong
to no group.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import PlanError, check_int, invalid

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

    Raises:
        GroupingValueError: an argument that is not a finite non-negative number (ints, or
            floats for averages).
    """
    for name, value in (("num_groups", num_groups), ("group_size", group_size)):
        _check_amount(name, value)
    _check_amount("channels", channels)
    g = float(group_size)
    c = float(channels)
    return float(num_groups) * (4.0 * g * c * c + 2.0 * g * g * c)


def _check_amount(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or value < 0
    ):
        raise invalid(name, "a finite number >= 0", value)


def _readonly(array: ArrayLike, name: str) -> NDArray[np.int64]:
    try:
        out = np.array(array, dtype=np.int64, copy=True)
    except (TypeError, ValueError, OverflowError):
        raise invalid(name, "an array of ints", array) from None
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False, repr=False)
class GroupingPlan:
    """A packing of windows into equal-capacity groups.

    The groups are stored flat: ``windows[offsets[k]:offsets[k + 1]]`` are the window indices
    (row-major, into ``counts``) of group ``k``, in increasing order; groups are in packing
    order. Build one from a list of groups with :meth:`from_groups`.

    Attributes:
        windows: int64 ``[num_nonempty_windows]`` (read-only), the grouped windows, group by
            group.
        offsets: int64 ``[num_groups + 1]`` (read-only), group boundaries in ``windows``.
        group_size: capacity ``g`` of every group, in tokens.
        counts: int64 ``[num_windows]`` (read-only), the visible tokens per window the plan was
            solved for (empty windows included).
        lower_bound: a proven lower bound on the number of groups at this group size.
        optimal: True only if ``num_groups`` is proven minimal at this group size (then
            ``num_groups == lower_bound``).
        strategy: the strategy that produced the plan (``"greenmim"``, ``"ffd"``, ...).
        channels: the channels ``C`` of the cost model, or None.
    """

    windows: NDArray[np.int64]
    offsets: NDArray[np.int64]
    group_size: int
    counts: NDArray[np.int64]
    lower_bound: int
    optimal: bool
    strategy: str
    channels: int | None = None

    def __post_init__(self) -> None:
        for name in ("windows", "offsets", "counts"):
            value = getattr(self, name)
            if not (
                isinstance(value, np.ndarray)
                and value.dtype == np.int64
                and not value.flags.writeable
            ):
                object.__setattr__(self, name, _readonly(value, name))

    @classmethod
    def _trusted(cls, **fields: object) -> GroupingPlan:
        """Build a plan from fresh int64 arrays without copying them (the solver's fast path).

        The arrays are made read-only in place; callers hand over arrays nobody else holds.
        """
        fields["windows"].setflags(write=False)  # type: ignore[attr-defined]
        fields["offsets"].setflags(write=False)  # type: ignore[attr-defined]
        fields["counts"].setflags(write=False)  # type: ignore[attr-defined]
        plan = object.__new__(cls)
        plan.__dict__.update(fields)
        return plan

    @classmethod
    def _from_readonly(
        cls,
        windows: NDArray[np.int64],
        offsets: NDArray[np.int64],
        group_size: int,
        counts: NDArray[np.int64],
        lower_bound: int,
        optimal: bool,
        strategy: str,
        channels: int | None,
    ) -> GroupingPlan:
        """:meth:`_trusted` for arrays that are read-only already (views of one read-only
        buffer: the solver's fast path), positional; nothing is copied or checked."""
        plan = object.__new__(cls)
        fields = plan.__dict__  # item by item: the cheapest way in (no keyword dict)
        fields["windows"] = windows
        fields["offsets"] = offsets
        fields["group_size"] = group_size
        fields["counts"] = counts
        fields["lower_bound"] = lower_bound
        fields["optimal"] = optimal
        fields["strategy"] = strategy
        fields["channels"] = channels
        return plan

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[ArrayLike],
        group_size: int,
        counts: ArrayLike,
        *,
        lower_bound: int = 0,
        optimal: bool = False,
        strategy: str = "custom",
        channels: int | None = None,
    ) -> GroupingPlan:
        """Build a plan from explicit groups (sequences of window indices).

        Only the types are checked here (ints, a bool ``optimal``); :func:`check_plan` checks
        that the groups are a valid packing of ``counts``.
        """
        group_size = check_int("group_size", group_size)
        lower_bound = check_int("lower_bound", lower_bound)
        if not isinstance(optimal, (bool, np.bool_)):
            raise invalid("optimal", "True or False", optimal)
        if channels is not None:
            channels = check_int("channels", channels, minimum=1)
        arrays = [_readonly(g, "groups").ravel() for g in groups]
        sizes = np.array([a.size for a in arrays], dtype=np.int64)
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        windows = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        return cls(
            windows=windows,
            offsets=offsets,
            group_size=group_size,
            counts=_readonly(counts, "counts").ravel(),
            lower_bound=lower_bound,
            optimal=bool(optimal),
            strategy=strategy,
            channels=channels,
        )

    @cached_property
    def groups(self) -> tuple[NDArray[np.int64], ...]:
        """Tuple of read-only int64 arrays: the window indices of each group."""
        return tuple(
            self.windows[self.offsets[k] : self.offsets[k + 1]] for k in range(self.num_groups)
        )

    @property
    def num_groups(self) -> int:
        """Number of groups."""
        return int(self.offsets.shape[0]) - 1

    @property
    def num_windows(self) -> int:
        """Number of windows, empty ones included."""
        return int(self.counts.shape[0])

    @property
    def group_lengths(self) -> NDArray[np.int64]:
        """int64 ``[num_groups]``: number of windows in each group."""
        return np.diff(self.offsets)

    @property
    def cost(self) -> float:
        """``attention_cost(num_groups, group_size, channels)``; nan if no channels were given."""
        if self.channels is None:
            return math.nan
        return attention_cost(self.num_groups, self.group_size, self.channels)

    @property
    def fills(self) -> NDArray[np.int64]:
        """int64 ``[num_groups]``: visible tokens in each group."""
        if self.num_groups == 0:
            return np.zeros(0, dtype=np.int64)
        sums = np.zeros(self.num_groups, dtype=np.int64)
        np.add.at(
            sums,
            np.repeat(np.arange(self.num_groups), self.group_lengths),
            self.counts[self.windows],
        )
        return sums

    @property
    def num_tokens(self) -> int:
        """Visible tokens in all windows (the sum of the counts)."""
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

    @cached_property
    def group_of(self) -> NDArray[np.int64]:
        """int64 ``[num_windows]``: the group of every window, ``-1`` for empty windows."""
        out = np.full(self.num_windows, -1, dtype=np.int64)
        out[self.windows] = np.repeat(np.arange(self.num_groups), self.group_lengths)
        out.setflags(write=False)
        return out

    def flat(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``(windows, offsets)``: the form the adapter turns into tensors."""
        return self.windows, self.offsets

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
    if not isinstance(plan, GroupingPlan):
        raise PlanError(f"plan: expected a GroupingPlan, received {type(plan).__name__}")
    plan_counts = _int_field(plan.counts, "counts")
    if counts is not None:
        try:
            expected = np.asarray(counts).ravel()
        except (TypeError, ValueError, OverflowError):
            raise PlanError("counts: expected an array of ints") from None
        if expected.shape != plan_counts.shape or not np.array_equal(expected, plan_counts):
            raise PlanError("counts: the plan was solved for other counts than those given")
    if plan_counts.size and plan_counts.min() < 0:
        raise PlanError(f"counts: expected non-negative counts, received {plan_counts.min()}")
    g = plan.group_size
    if not _is_int(g) or g < 1:
        raise PlanError(f"group_size: expected a positive int, received {g!r}")
    if not _is_int(plan.lower_bound) or plan.lower_bound < 0:
        raise PlanError(f"lower_bound: expected an int >= 0, received {plan.lower_bound!r}")
    if not isinstance(plan.optimal, (bool, np.bool_)):
        raise PlanError(f"optimal: expected True or False, received {plan.optimal!r}")
    offsets = _int_field(plan.offsets, "offsets")
    windows = _int_field(plan.windows, "windows")
    if offsets.size < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise PlanError("offsets: expected a non-decreasing int array starting at 0")
    if offsets[-1] != windows.size:
        raise PlanError("offsets: the last offset must equal the number of grouped windows")
    seen = np.zeros(plan_counts.shape[0], dtype=np.int64)
    for k, members in enumerate(plan.groups):
        members = np.asarray(members)
        if members.ndim != 1 or members.size == 0:
            raise PlanError(f"group {k}: expected a non-empty 1-D array of window indices")
        if members.min() < 0 or members.max() >= plan_counts.shape[0]:
            raise PlanError(f"group {k}: window index out of range [0, {plan_counts.shape[0]})")
        np.add.at(seen, members, 1)
        fill = _exact_sum(plan_counts[members])
        if fill > g:
            raise PlanError(f"group {k}: fill {fill} exceeds the group size {g}")
    nonempty = plan_counts > 0
    if np.any(seen[nonempty] != 1):
        bad = np.flatnonzero(nonempty & (seen != 1))[:5].tolist()
        raise PlanError(f"windows {bad}: a non-empty window must be in exactly one group")
    if np.any(seen[~nonempty] != 0):
        bad = np.flatnonzero(~nonempty & (seen != 0))[:5].tolist()
        raise PlanError(f"windows {bad}: an empty window must belong to no group")
    total = _exact_sum(plan_counts)
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


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _exact_sum(values: NDArray[np.int64]) -> int:
    """The sum as a Python int (int64 sums of huge counts would wrap around)."""
    if values.size and int(values.max()) > (1 << 62) // values.size:
        return sum(int(v) for v in values.tolist())
    return int(values.sum())


def _int_field(value: object, name: str) -> NDArray[np.int64]:
    """A plan's array field as a 1-D int array (a corrupted plan may hold anything)."""
    array = np.asarray(value) if isinstance(value, np.ndarray) else None
    if array is None or array.ndim != 1 or (array.dtype.kind not in "iu" and array.size):
        raise PlanError(f"{name}: expected a 1-D int array, received {value!r:.80}")
    return array


def is_valid_plan(plan: GroupingPlan, counts: ArrayLike | None = None) -> bool:
    """True if :func:`check_plan` accepts ``plan``."""
    try:
        check_plan(plan, counts)
    except PlanError:
        return False
    return True
