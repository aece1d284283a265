"""The window-grouping solver: ``solve``, the group-size sweep and the JIT warm-up.

Strategies (all return a :class:`~grouping.core.plan.GroupingPlan`):

* ``"greenmim"``: the published repeated-knapsack algorithm (``packing.py``), the same groups
  in the same order, window for window.
* ``"ffd"`` / ``"bfd"``: first-fit / best-fit decreasing (``packing.py``).
* ``"exact"``: lower bounds (Martello-Toth's L2, Fekete-Schepers' dual feasible functions and
  Farley's bound from the cutting-stock LP), the best of FFD, BFD, the repeated knapsack over
  windows in decreasing order, the published algorithm and the rounded cutting-stock LP
  (``cutting.py``), an exact re-packing of the tail of that packing, then a complete branch
  and bound that raises the lower bound or finds a packing meeting it, until they meet or a
  node budget (default 2,000,000 nodes) runs out (then ``optimal=False``).
* ``"auto"`` (default): the same with small budgets (5,000 nodes, 5,000,000 knapsack cells for
  the LP), each step only while the bound is unmet, so it costs microseconds to a few
  milliseconds. It starts from FFD and only keeps improvements, so it never returns more
  groups than ``"ffd"``, ``"bfd"`` or ``"greenmim"`` (hence a sweep with "auto" never costs
  more than GreenMIM's choice).

Notes:
    ``optimal`` is True exactly when ``num_groups == lower_bound``. For "greenmim", "ffd" and
    "bfd" the lower bound is L2 (at least ``ceil(sum / g)``); "auto" and "exact" add the
    stronger bounds when L2 is not met and raise the bound past every group count the exact
    search proves infeasible. The heuristics are not necessarily minimal.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import cutting, packing
from .cutting import rounded_lp_packing
from .errors import check_int, invalid
from .packing import (
    FAST_STRATEGIES,
    INT64_MAX,
    best_fit_decreasing,
    decreasing_knapsack,
    dff_bound,
    fast_plan,
    first_fit_decreasing,
    greenmim_groups,
    group_by_bin,
    kernel_array,
    lower_bound,
    search,
    split_counts,
)
from .plan import GroupingPlan, attention_cost

__all__ = ["STRATEGIES", "SweepResult", "solve", "sweep_group_sizes", "warmup"]

STRATEGIES = ("auto", "greenmim", "ffd", "bfd", "exact")
Strategy = Literal["auto", "greenmim", "ffd", "bfd", "exact"]

AUTO_NODE_LIMIT = 5_000
EXACT_NODE_LIMIT = 2_000_000
AUTO_LP_CELLS = 5_000_000  # knapsack DP cells the LP may spend in "auto" (a few ms)

# An input on which "auto" runs every step (found by a random search; used by the warm-up and
# its test): FFD, BFD, the knapsack, the LP and the published algorithm all need 9 groups of
# 118, the bound is 8, and the tail repair's search first proves a re-packing impossible,
# then finds one with more donor groups (8 groups, optimal).
HARD_GROUP_SIZE = 118
HARD_COUNTS = (
    *(39, 40, 48, 35, 29, 34, 28, 47, 38, 48, 40, 30),
    *(36, 52, 49, 33, 48, 46, 37, 49, 35, 31, 30, 32),
)


def _as_counts(counts: ArrayLike) -> NDArray[np.int64]:
    """``counts`` as a 1-D :func:`~grouping.core.packing.kernel_array` (int64, C-contiguous,
    writeable: one kernel signature whatever the input); not yet checked for negative values.
    """
    array = counts if type(counts) is np.ndarray else np.asarray(counts)
    if array.dtype.kind not in "iu" and array.size:
        raise invalid(
            "counts",
            "an array of non-negative integers (visible tokens per window)",
            array,
            "cast integral float counts with .astype(int)",
        )
    return kernel_array(array.reshape(-1))


def _negative_counts(smallest: int) -> None:
    if smallest < 0:
        raise invalid("counts", "non-negative counts", f"a count of {smallest}", "check the mask")


def _check_strategy(strategy: Any) -> str:
    if strategy not in STRATEGIES:
        raise invalid("strategy", f"one of {STRATEGIES}", strategy)
    return str(strategy)


def _check_channels(channels: Any) -> int | None:
    if channels is None:
        return None
    return check_int("channels", channels, minimum=1)


class _Packing(NamedTuple):
    order: NDArray[np.int64]  # positions into the positive items, group by group
    offsets: NDArray[np.int64]
    lower_bound: int


def _repair(
    sizes: NDArray[np.int64],
    capacity: int,
    bins: NDArray[np.int64],
    num_bins: int,
    bound: int,
    budget: int,
) -> tuple[NDArray[np.int64], int, int]:
    """Try to remove bins from a packing by re-solving its tail exactly.

    The bins that are not full, plus a growing number of full "donor" bins (the last packed
    first), are re-packed by the exact search into one bin fewer. Full bins carry no slack, so
    the sub-problem has the whole slack of the packing and the freedom of the donors' items.
    Returns ``(bins, num_bins, nodes_used)``.
    """
    used = 0
    while num_bins > bound and used < budget:
        fills = np.bincount(bins, weights=sizes, minlength=num_bins)
        slack = np.flatnonzero(fills < capacity)
        full = np.flatnonzero(fills >= capacity)[::-1]
        improved = False
        for donors in (0, 1, 2, 4, 8, 16, 32, 64):
            if donors > full.shape[0] or used >= budget:
                break
            chosen = np.concatenate([slack, full[:donors]])
            members = np.isin(bins, chosen)
            tries = max(1, min(budget - used, budget // 4))
            status, sub_bins, nodes = search(sizes[members], capacity, chosen.shape[0] - 1, tries)
            used += nodes
            if status == 1:
                assert sub_bins is not None
                bins = bins.copy()
                bins[members] = chosen[sub_bins]
                _, bins = np.unique(bins, return_inverse=True)
                num_bins = int(bins.max()) + 1
                improved = True
                break
        if not improved:
            break
    return bins.astype(np.int64), num_bins, used


def _lp_packing(
    sizes: NDArray[np.int64], capacity: int, effort: float, max_cells: int | None
) -> tuple[NDArray[np.int64], int, int]:
    """The rounded cutting-stock LP, its leftovers packed by the better of FFD and knapsack.

    Returns ``(bins, num_bins, lp_bound)``.
    """
    bins, num, lp_bound = rounded_lp_packing(sizes, capacity, effort=effort, max_cells=max_cells)
    left = bins < 0
    if left.any():
        rest = np.ascontiguousarray(sizes[left])
        rest_bins, rest_num = first_fit_decreasing(rest, capacity)
        kd_bins, kd_num = decreasing_knapsack(rest, capacity)
        if kd_num < rest_num:
            rest_bins, rest_num = kd_bins, kd_num
        bins = bins.copy()
        bins[left] = rest_bins + num
        num += rest_num
    return bins, num, lp_bound


def _greenmim_bins(sizes: NDArray[np.int64], capacity: int) -> tuple[NDArray[np.int64], int]:
    """The published algorithm's packing as a bin per item (so "auto" is never worse)."""
    order, offsets = greenmim_groups(sizes, capacity)
    bins = np.empty(sizes.shape[0], dtype=np.int64)
    bins[order] = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))
    return bins, int(offsets.shape[0] - 1)


def _pack(
    sizes: NDArray[np.int64], capacity: int, strategy: str, node_limit: int | None
) -> _Packing:
    """Pack positive ``sizes`` (each <= capacity) into bins with the given strategy."""
    n = sizes.shape[0]
    if n == 0:
        return _Packing(np.zeros(0, np.int64), np.zeros(1, np.int64), 0)
    bound = lower_bound(sizes, capacity)
    if strategy == "greenmim":
        order, offsets = greenmim_groups(sizes, capacity)
        return _Packing(order, offsets, bound)
    if strategy == "bfd":
        bins, num = best_fit_decreasing(sizes, capacity)
        return _Packing(*group_by_bin(bins, num), bound)
    bins, num = first_fit_decreasing(sizes, capacity)
    if strategy == "ffd":
        return _Packing(*group_by_bin(bins, num), bound)
    # auto / exact: the other heuristics, a stronger bound, the rounded LP, a repair of the
    # tail, then a proof by branch and bound; each step only runs while the bound is unmet
    budget = node_limit
    if budget is None:
        budget = AUTO_NODE_LIMIT if strategy == "auto" else EXACT_NODE_LIMIT
    for heuristic in (best_fit_decreasing, decreasing_knapsack):
        if num <= bound:
            break
        bins_h, num_h = heuristic(sizes, capacity)
        if num_h < num:
            bins, num = bins_h, num_h
    if num > bound:
        bound = max(bound, dff_bound(sizes, capacity))
    if num > bound:
        cells = AUTO_LP_CELLS if strategy == "auto" else None
        bins_lp, num_lp, lp_bound = _lp_packing(sizes, capacity, 30.0, cells)
        bound = max(bound, lp_bound)
        if num_lp < num:
            bins, num = bins_lp, num_lp
    if num > bound:  # never worse than the published algorithm (rarely better than the above)
        bins_g, num_g = _greenmim_bins(sizes, capacity)
        if num_g < num:
            bins, num = bins_g, num_g
    if num > bound:
        bins, num, used = _repair(sizes, capacity, bins, num, bound, budget // 2)
        budget -= used
    while num > bound and budget > 0:
        status, found, nodes = search(sizes, capacity, bound, budget)
        budget -= nodes
        if status == 1:
            assert found is not None
            bins, num = found, int(found.max()) + 1
        elif status == 0:
            bound += 1  # proven: no packing into `bound` bins
        else:
            break
    return _Packing(*group_by_bin(bins, num), bound)


class SweepResult(NamedTuple):
    """Attention cost against group size (``sweep_group_sizes``).

    Attributes:
        group_sizes: int64 ``[S]``, the sizes tried, from the largest count upwards.
        num_groups: int64 ``[S]``, groups needed at each size by the chosen strategy.
        costs: float64 ``[S]``, ``attention_cost(num_groups, g, channels)``.
        best: index of the cheapest size (the smallest size among ties).
        cap: the size beyond which no size can beat the best (see Notes of
            :func:`sweep_group_sizes`).
    """

    group_sizes: NDArray[np.int64]
    num_groups: NDArray[np.int64]
    costs: NDArray[np.float64]
    best: int
    cap: int


def _sweep(
    sizes: NDArray[np.int64],
    channels: int,
    strategy: str,
    max_group_size: int | None,
    node_limit: int | None,
    extra: int = 0,
) -> SweepResult:
    total = int(sizes.sum())
    start = int(sizes.max()) if sizes.size else 1
    c = float(channels)
    limit = max(start, total)  # from `total` on, one group holds everything
    if max_group_size is not None:
        limit = min(limit, max_group_size)
    rows_g: list[int] = []
    rows_n: list[int] = []
    rows_c: list[float] = []
    best_cost = math.inf
    best = 0
    cap = limit
    g = start
    while g <= limit:
        # no size >= g can cost less than total * (4C^2 + 2gC): stop there
        if total * (4.0 * c * c + 2.0 * g * c) > best_cost:
            cap = g - 1
            break
        packing = _pack(sizes, g, strategy, node_limit)
        num = packing.offsets.shape[0] - 1
        cost = attention_cost(num, g, channels)
        rows_g.append(g)
        rows_n.append(num)
        rows_c.append(cost)
        if cost < best_cost:
            best_cost, best = cost, len(rows_g) - 1
        g += 1
    for _ in range(extra):  # optional extra sizes past the cap, for plots
        if g > limit:
            break
        num = _pack(sizes, g, strategy, node_limit).offsets.shape[0] - 1
        rows_g.append(g)
        rows_n.append(num)
        rows_c.append(attention_cost(num, g, channels))
        g += 1
    return SweepResult(
        np.array(rows_g, dtype=np.int64),
        np.array(rows_n, dtype=np.int64),
        np.array(rows_c, dtype=np.float64),
        best,
        cap,
    )


def sweep_group_sizes(
    counts: ArrayLike,
    channels: int,
    *,
    strategy: Strategy = "auto",
    max_group_size: int | None = None,
    node_limit: int | None = None,
    extra: int = 0,
) -> SweepResult:
    """Attention cost of the best packing at every group size worth trying.

    Sizes run from the largest count ``m`` upwards and stop at the cap: the first size ``g``
    with ``S * (4C^2 + 2gC) > best cost so far`` (``S`` = total visible tokens). Since
    ``num_groups(g) * g >= S``, ``attention_cost(num_groups(g), g, C) >= S * (4C^2 + 2gC)``,
    which grows with ``g``: no size past the cap can beat the best one. Sizes never exceed
    ``max(m, S)`` (one group holds everything) nor ``max_group_size``.

    Args:
        counts: int ``[num_windows]`` visible tokens per window (any shape, flattened).
        channels: ``C`` of the cost model.
        strategy: packing strategy used at every size.
        max_group_size: optional upper limit on the sizes tried.
        node_limit: node budget of the exact search ("auto"/"exact") per size.
        extra: also evaluate this many sizes past the cap (for plots).

    Returns:
        A :class:`SweepResult`; empty arrays for all-zero counts.
    """
    _, sizes, largest, smallest = split_counts(_as_counts(counts))
    _negative_counts(smallest)
    channels_ = _check_channels(channels)
    if channels_ is None:
        raise invalid("channels", "a positive int (the sweep needs the cost model)", channels)
    strategy = _check_strategy(strategy)
    if max_group_size is not None:
        max_group_size = check_int("max_group_size", max_group_size, minimum=1)
    if sizes.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return SweepResult(empty, empty, np.zeros(0), 0, 0)
    if max_group_size is not None and largest > max_group_size:
        raise invalid(
            "max_group_size",
            f"at least the largest window count {largest}",
            max_group_size,
            "a window cannot be split across groups",
        )
    return _sweep(sizes, channels_, strategy, max_group_size, node_limit, extra)


def solve(
    counts: ArrayLike,
    group_size: int | Literal["sweep"] | None = None,
    *,
    strategy: Strategy = "auto",
    channels: int | None = None,
    max_group_size: int | None = None,
    node_limit: int | None = None,
) -> GroupingPlan:
    """Pack windows into equal-size groups without splitting a window.

    Args:
        counts: int array of visible tokens per window (any shape, flattened row-major, e.g.
            the output of :func:`grouping.window_counts`); zeros are empty windows, which
            belong to no group.
        group_size: an int capacity; None for the largest count (GreenMIM's choice); or
            ``"sweep"`` for the capacity minimising :func:`attention_cost` (needs ``channels``).
        strategy: ``"greenmim"``, ``"ffd"``, ``"bfd"``, ``"exact"`` or ``"auto"`` (module
            docstring).
        channels: ``C`` of the cost model; sets ``plan.cost``.
        max_group_size: upper limit for ``"sweep"``; with a fixed or inferred size it must
            not be exceeded.
        node_limit: node budget of the exact search for ``"auto"`` and ``"exact"``.

    Returns:
        A :class:`GroupingPlan`; an empty plan (no groups) for empty or all-zero counts.

    Raises:
        GroupingValueError: negative or non-integer counts, a count larger than the group
            size, a group size below 1, an unknown strategy, ``"sweep"`` without channels.

    Examples:
        >>> plan = solve([3, 0, 4, 2, 1], 5, strategy="exact")
        >>> [g.tolist() for g in plan.groups], plan.optimal
        ([[2, 4], [0, 3]], True)
    """
    flat = _as_counts(counts)
    strategy = _check_strategy(strategy)
    channels_ = _check_channels(channels)
    if node_limit is not None:
        node_limit = check_int("node_limit", node_limit, minimum=0)
    if max_group_size is not None:
        max_group_size = check_int("max_group_size", max_group_size, minimum=1)
    cheap = strategy in FAST_STRATEGIES or strategy == "auto"
    if (
        cheap
        and max_group_size is None
        and (
            group_size is None or (type(group_size) is int and 1 <= group_size <= INT64_MAX)  # noqa: E721 - bool excluded on purpose
        )
    ):
        # fast path: one kernel call validates, packs and bounds
        windows, offsets, bound, capacity, largest, smallest = fast_plan(
            flat, group_size or 0, "ffd" if strategy == "auto" else strategy
        )
        _negative_counts(smallest)
        _too_large(largest, capacity)
        if strategy != "auto" or offsets.shape[0] - 1 == bound:
            return _plan(windows, offsets, capacity, flat, counts, bound, strategy, channels_)
    positions, sizes, largest, smallest = split_counts(flat)
    _negative_counts(smallest)

    if isinstance(group_size, str):
        if group_size != "sweep":
            raise invalid("group_size", 'a positive int, None or "sweep"', group_size)
        if channels_ is None:
            raise invalid(
                "channels",
                'a positive int when group_size="sweep"',
                channels,
                "the sweep minimises attention_cost(num_groups, g, channels)",
            )
        if sizes.size == 0:
            capacity = max(1, max_group_size or 1)
        else:
            if max_group_size is not None and largest > max_group_size:
                raise invalid(
                    "max_group_size",
                    f"at least the largest window count {largest}",
                    max_group_size,
                )
            result = _sweep(sizes, channels_, strategy, max_group_size, node_limit)
            capacity = int(result.group_sizes[result.best])
    elif group_size is None:
        capacity = max(largest, 1)
    elif isinstance(group_size, numbers.Integral) and not isinstance(group_size, bool):
        capacity = int(group_size)
        if capacity < 1:
            raise invalid("group_size", 'a positive int, None or "sweep"', group_size)
        if capacity > INT64_MAX:
            raise invalid("group_size", "a positive int below 2**63", group_size)
    else:
        raise invalid("group_size", 'a positive int, None or "sweep"', group_size)

    _too_large(largest, capacity)
    if max_group_size is not None and capacity > max_group_size:
        raise invalid("group_size", f"at most max_group_size={max_group_size}", capacity)

    windows = offsets = None
    if strategy in FAST_STRATEGIES:
        windows, offsets, bound, *_ = fast_plan(flat, capacity, strategy)
    else:
        packing = _pack(sizes, capacity, strategy, node_limit)
        windows, offsets, bound = positions[packing.order], packing.offsets, packing.lower_bound
    return _plan(windows, offsets, capacity, flat, counts, bound, strategy, channels_)


def _too_large(largest: int, capacity: int) -> None:
    if largest > capacity:
        raise invalid(
            "group_size",
            f"at least the largest window count {largest}",
            capacity,
            "a window cannot be split across groups; use group_size=None or a larger size",
        )


def _plan(
    windows: NDArray[np.int64],
    offsets: NDArray[np.int64],
    capacity: int,
    flat: NDArray[np.int64],
    counts: Any,
    bound: int,
    strategy: str,
    channels: int | None,
) -> GroupingPlan:
    if flat.base is not None or flat is counts:
        flat = flat.copy()  # the plan keeps its own counts
    return GroupingPlan._trusted(
        windows=windows,
        offsets=offsets,
        group_size=int(capacity),
        counts=flat,
        lower_bound=int(bound),
        optimal=offsets.shape[0] - 1 == bound,
        strategy=strategy,
        channels=channels,
    )


def warmup() -> None:
    """Compile (or load from numba's on-disk cache) every solver kernel.

    Call once at start-up (before forking DataLoader workers) so that no training step pays
    for JIT compilation. The wrappers give every kernel exactly one signature of argument
    types (int64 C-contiguous writeable arrays, int64 scalars, whatever the dtype or flags of
    the counts), and this reaches each of them: both bitset kernels (``g < 64`` and
    ``g >= 64``), the bounds, the LP, the branch and bound, the tail repair and the helpers
    that only other kernels call, so nothing that :func:`solve`, :func:`sweep_group_sizes` or
    :func:`grouping.adapter.window_layout` runs later compiles again. With an empty cache it
    compiles for about 17 s (2-core CPU); with a warm cache it loads in about 0.6 s
    (docs/core.md, "Warm-up and the numba cache").
    """
    packing.warm_kernels()
    cutting.warm_kernels()
    # the public paths once, so that their Python glue has run too: every strategy at a fixed
    # size below and above 64, at the inferred size, and swept (with a size limit)
    counts = np.array([3, 5, 0, 2, 7, 1, 4, 4], dtype=np.int64)
    for strategy in STRATEGIES:
        for group_size in (8, 80, None):
            solve(counts, group_size, strategy=strategy, channels=8)
        solve(counts, "sweep", strategy=strategy, channels=8, max_group_size=12)
    # every step of "auto": dual-feasible bound, LP, published algorithm, repair, search
    solve(HARD_COUNTS, HARD_GROUP_SIZE, strategy="auto")
