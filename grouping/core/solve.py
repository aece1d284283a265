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

Limits (every input the solver accepts runs in bounded memory and time):

* Counts must sum to at most ``MAX_TOTAL`` (2**62); when the group size is at least the sum,
  every strategy returns the one group holding every window (the published knapsack's best
  sum is then the total) without running a kernel.
* Above ``DENSE_CAPACITY`` (4096) the kernels that index arrays by size or residual (the
  dual-feasible bound, the knapsack over decreasing sizes, the LP, the tail repair and the
  branch and bound) are skipped, so "auto" and "exact" fall back to the best of FFD, BFD and
  the published algorithm with the L2 bound (``optimal`` only when it meets the bound), all
  in O(n log n) memory and time.
* The published algorithm may process at most ``GREENMIM_MAX_WORK`` (2**27) bitset words
  and allocate a table of at most ``MAX_TABLE_WORDS`` (2**22 words, 32 MiB) per call:
  ``strategy="greenmim"`` raises :class:`~grouping.core.errors.GroupingValueError` beyond
  them; in "auto" and "exact" the same word budget is shared by the published algorithm, the
  knapsack over decreasing sizes and the dual-feasible bound (``g`` x distinct counts), and
  a step that would exceed it is skipped.
* The LP spends at most ``AUTO_LP_CELLS`` (5e6) / ``EXACT_LP_CELLS`` (2**28) knapsack cells
  and ``LP_SIMPLEX_WORK`` (2**28) simplex operations on at most ``LP_MAX_DISTINCT`` (1024)
  distinct counts; the branch and bound scans at most ``SEARCH_CELLS_PER_NODE`` (256)
  residuals per node of its budget.
* A sweep tries at most ``SWEEP_MAX_SIZES`` (1024) sizes, and its sizes share the nodes
  and LP cells of ``SWEEP_BUDGET`` (8) "auto" calls (or 8 x ``node_limit`` nodes) and one
  call's bitset words, whatever the strategy (each size also within its own call's
  budget); sizes after that is spent get the greedy packings and the L2 bound only.
  :func:`solve` then packs the chosen size with the strategy's full budget.

Per-call cost: a training loop calls :func:`solve` every step, on a few dozen windows
(Swin-B at 224 px: 64 windows at stage 1), where the Python around the kernel is most of the
cost. For an integer ndarray of counts (any shape), ``group_size`` None or an int, strategy
"auto", "ffd", "bfd" or "greenmim", ``channels`` None or an int and neither
``max_group_size`` nor ``node_limit``, :func:`solve` checks the types inline and makes one
kernel call (``packing._fast_plan``) that validates, packs, bounds and writes the plan's
counts, windows and offsets into one preallocated buffer; the plan holds read-only views of
it. Every other input, every input that call rejects, and "auto" when FFD leaves the bound
unmet take the general path, with the same results and the same errors
(``tests/test_solve_fastpath.py``; ``bench/solver.py`` measures the per-call time).

Notes:
    ``optimal`` is True exactly when ``num_groups == lower_bound``. For "greenmim", "ffd" and
    "bfd" the lower bound is L2 (at least ``ceil(sum / g)``); "auto" and "exact" add the
    stronger bounds when L2 is not met and raise the bound past every group count the exact
    search proves infeasible. The heuristics are not necessarily minimal.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import cutting, packing
from .cutting import lp_packing
from .errors import GroupingValueError, check_int, invalid
from .packing import (
    DENSE_CAPACITY,
    FAST_STRATEGIES,
    GREENMIM_MAX_WORK,
    INT64_MAX,
    MAX_TABLE_WORDS,
    MAX_TOTAL,
    _fast_plan,
    best_fit_decreasing,
    decreasing_run,
    dff_bound,
    dff_cost,
    fast_plan,
    first_fit_decreasing,
    greenmim_knapsack,
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
EXACT_LP_CELLS = 1 << 28  # ... and in "exact" (about 0.3 s)
SWEEP_MAX_SIZES = 1024  # group sizes one sweep may try
SWEEP_BUDGET = 8  # a sweep shares this many "auto" calls' nodes and LP cells across its sizes

# An input on which "auto" runs every step (found by a random search; used by the warm-up and
# its test): FFD, BFD, the knapsack, the LP and the published algorithm all need 9 groups of
# 118, the bound is 8, and the tail repair's search first proves a re-packing impossible,
# then finds one with more donor groups (8 groups, optimal).
HARD_GROUP_SIZE = 118
HARD_COUNTS = (
    *(39, 40, 48, 35, 29, 34, 28, 47, 38, 48, 40, 30),
    *(36, 52, 49, 33, 48, 46, 37, 49, 35, 31, 30, 32),
)


_COUNTS = "an array of non-negative integers (visible tokens per window)"
_FAST_CODES = {"auto": 1, **FAST_STRATEGIES}  # "auto" packs with FFD first
_INT64 = np.dtype(np.int64)
_empty = np.empty
_readonly_plan = GroupingPlan._from_readonly


def _as_counts(counts: ArrayLike) -> NDArray[np.int64]:
    """``counts`` as a 1-D :func:`~grouping.core.packing.kernel_array` (int64, C-contiguous,
    writeable: one kernel signature whatever the input); not yet checked for negative values.
    """
    if type(counts) is np.ndarray:
        array = counts
    else:
        try:
            array = np.asarray(counts)
        except (TypeError, ValueError, OverflowError):  # ragged, or ints past 64 bits
            raise invalid("counts", _COUNTS, counts) from None
    if array.dtype.kind not in "iu" and array.size:
        raise invalid("counts", _COUNTS, array, "cast integral float counts with .astype(int)")
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and array.size:
        largest = int(array.max())
        if largest > INT64_MAX:
            raise invalid("counts", "counts below 2**63", f"a count of {largest}")
    return kernel_array(array.reshape(-1))


def _negative_counts(smallest: int) -> None:
    if smallest < 0:
        raise invalid("counts", "non-negative counts", f"a count of {smallest}", "check the mask")


def _check_total(total: int) -> None:
    """Reject a sum of counts past ``MAX_TOTAL`` (``-1``: it overflowed int64)."""
    if total < 0 or total > MAX_TOTAL:
        shown = "more than 2**63 - 1" if total < 0 else str(total)
        raise invalid("counts", "counts summing to at most 2**62", f"a sum of {shown}")


def _knapsack_limit(status: int, windows: int, capacity: int, max_work: int) -> GroupingValueError:
    """The error of ``strategy="greenmim"`` past one of the published algorithm's limits."""
    if status == 2:
        what = "a bitset table over MAX_TABLE_WORDS = 2**22 words (32 MiB)"
    else:
        what = f"more than {max_work} bitset words of work (GREENMIM_MAX_WORK = 2**28)"
    return invalid(
        "strategy",
        f'a strategy that fits the input ("greenmim" would need {what})',
        "greenmim",
        f'{windows} non-empty windows at group_size={capacity}; use strategy="auto" (never '
        'more groups than the published algorithm where it runs) or "ffd"',
    )


def _check_strategy(strategy: Any) -> str:
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
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


@dataclass
class _Budget:
    """What the expensive steps of one packing may still spend (a sweep shares one).

    Attributes:
        nodes: branch-and-bound nodes (tail repair and proof).
        lp_cells: knapsack DP cells of the LP's pricing.
        work: bitset words of the knapsack heuristics (the published algorithm and the
            knapsack over decreasing sizes).
    """

    nodes: int
    lp_cells: int
    work: int

    @classmethod
    def of(cls, strategy: str, node_limit: int | None) -> _Budget:
        """One call's budget for ``strategy`` (``node_limit`` None: the default)."""
        auto = strategy == "auto"
        if node_limit is None:
            node_limit = AUTO_NODE_LIMIT if auto else EXACT_NODE_LIMIT
        return cls(node_limit, AUTO_LP_CELLS if auto else EXACT_LP_CELLS, GREENMIM_MAX_WORK)

    def within(self, limit: _Budget) -> _Budget:
        """A fresh budget: the smaller of this one and ``limit``, field by field."""
        return _Budget(
            min(self.nodes, limit.nodes),
            min(self.lp_cells, limit.lp_cells),
            min(self.work, limit.work),
        )

    def charge(self, given: _Budget, left: _Budget) -> None:
        """Spend what a packing used: ``given`` minus what it had ``left``."""
        self.nodes -= given.nodes - left.nodes
        self.lp_cells -= given.lp_cells - left.lp_cells
        self.work -= given.work - left.work


def _decreasing(
    sizes: NDArray[np.int64], capacity: int, budget: _Budget
) -> tuple[NDArray[np.int64], int] | None:
    """The knapsack over decreasing sizes within the budget, or None (skipped)."""
    bins, num, work = decreasing_run(sizes, capacity, max(budget.work, 0))
    budget.work -= work
    return None if num < 0 else (bins, num)


def _lp_packing(
    sizes: NDArray[np.int64], capacity: int, effort: float, budget: _Budget
) -> tuple[NDArray[np.int64], int, int]:
    """The rounded cutting-stock LP, its leftovers packed by the better of FFD and knapsack.

    Returns ``(bins, num_bins, lp_bound)``.
    """
    lp = lp_packing(sizes, capacity, effort=effort, max_cells=max(budget.lp_cells, 0))
    budget.lp_cells -= lp.cells
    bins, num = lp.bins, lp.num_bins
    left = bins < 0
    if left.any():
        rest = np.ascontiguousarray(sizes[left])
        rest_bins, rest_num = first_fit_decreasing(rest, capacity)
        knapsack = _decreasing(rest, capacity, budget)
        if knapsack is not None and knapsack[1] < rest_num:
            rest_bins, rest_num = knapsack
        bins = bins.copy()
        bins[left] = rest_bins + num
        num += rest_num
    return bins, num, lp.bound


def _greenmim_bins(
    sizes: NDArray[np.int64], capacity: int, budget: _Budget
) -> tuple[NDArray[np.int64], int] | None:
    """The published algorithm's packing as a bin per item (so "auto" is never worse), or
    None when it would exceed the budget or the table limit."""
    run = greenmim_knapsack(sizes, capacity, max(budget.work, 0))
    budget.work -= run.work
    if run.status:
        return None
    bins = np.empty(sizes.shape[0], dtype=np.int64)
    bins[run.order] = np.repeat(np.arange(run.offsets.shape[0] - 1), np.diff(run.offsets))
    return bins, int(run.offsets.shape[0] - 1)


def _pack(sizes: NDArray[np.int64], capacity: int, strategy: str, budget: _Budget) -> _Packing:
    """Pack positive ``sizes`` (each <= capacity, summing to at most ``MAX_TOTAL``) into bins.

    ``budget`` is spent by the steps of "auto" and "exact" and by the published algorithm
    (``strategy="greenmim"`` raises when it would exceed it).
    """
    n = sizes.shape[0]
    if n == 0:
        return _Packing(np.zeros(0, np.int64), np.zeros(1, np.int64), 0)
    if int(sizes.sum()) <= capacity:  # one group holds everything, whatever the strategy
        return _Packing(np.arange(n, dtype=np.int64), np.array([0, n], dtype=np.int64), 1)
    bound = lower_bound(sizes, capacity)
    if strategy == "greenmim":
        max_work = max(budget.work, 0)
        run = greenmim_knapsack(sizes, capacity, max_work)
        budget.work -= run.work
        if run.status:
            raise _knapsack_limit(run.status, n, capacity, max_work)
        return _Packing(run.order, run.offsets, bound)
    if strategy == "bfd":
        bins, num = best_fit_decreasing(sizes, capacity)
        return _Packing(*group_by_bin(bins, num), bound)
    bins, num = first_fit_decreasing(sizes, capacity)
    if strategy == "ffd":
        return _Packing(*group_by_bin(bins, num), bound)
    # auto / exact: the other heuristics, a stronger bound, the rounded LP, a repair of the
    # tail, then a proof by branch and bound; each step only runs while the bound is unmet,
    # and the steps that index arrays by size only up to DENSE_CAPACITY
    dense = capacity <= DENSE_CAPACITY
    if num > bound:
        bins_h, num_h = best_fit_decreasing(sizes, capacity)
        if num_h < num:
            bins, num = bins_h, num_h
    if num > bound and dense:
        knapsack = _decreasing(sizes, capacity, budget)
        if knapsack is not None and knapsack[1] < num:
            bins, num = knapsack
    if num > bound and dense and dff_cost(sizes, capacity) <= budget.work:
        budget.work -= dff_cost(sizes, capacity)
        bound = max(bound, dff_bound(sizes, capacity))
    if num > bound and dense and budget.lp_cells > 0:
        bins_lp, num_lp, lp_bound = _lp_packing(sizes, capacity, 30.0, budget)
        bound = max(bound, lp_bound)
        if num_lp < num:
            bins, num = bins_lp, num_lp
    if num > bound:  # never worse than the published algorithm (rarely better than the above)
        published = _greenmim_bins(sizes, capacity, budget)
        if published is not None and published[1] < num:
            bins, num = published
    if num > bound and dense:
        bins, num, used = _repair(sizes, capacity, bins, num, bound, budget.nodes // 2)
        budget.nodes -= used
    while num > bound and budget.nodes > 0 and dense:
        status, found, nodes = search(sizes, capacity, bound, budget.nodes)
        budget.nodes -= nodes
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
            :func:`sweep_group_sizes`); the last size tried when ``complete`` is False.
        complete: False when the sweep stopped at ``SWEEP_MAX_SIZES`` sizes before its cap
            (a larger size might then cost less than the best one found).
        lower_bounds: int64 ``[S]``, the proven lower bound on the groups at each size.
    """

    group_sizes: NDArray[np.int64]
    num_groups: NDArray[np.int64]
    costs: NDArray[np.float64]
    best: int
    cap: int
    complete: bool = True
    lower_bounds: NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    @property
    def optimal(self) -> NDArray[np.bool_]:
        """bool ``[S]``: the groups at each size are proven minimal (``num_groups`` meets
        ``lower_bounds``)."""
        return self.num_groups == self.lower_bounds


def _sweep(
    sizes: NDArray[np.int64],
    channels: int,
    strategy: str,
    max_group_size: int | None,
    node_limit: int | None,
    extra: int = 0,
    budget: str = "shared",
) -> SweepResult:
    total = int(sizes.sum())
    start = int(sizes.max()) if sizes.size else 1
    c = float(channels)
    limit = max(start, total)  # from `total` on, one group holds everything
    if max_group_size is not None:
        limit = min(limit, max_group_size)
    per_size = _Budget.of(strategy, node_limit)
    # what all sizes together may spend: SWEEP_BUDGET "auto" calls' nodes and LP cells (or
    # node_limit's nodes), one call's bitset words, whatever the strategy
    auto = _Budget.of("auto", node_limit)
    shared = _Budget(auto.nodes * SWEEP_BUDGET, auto.lp_cells * SWEEP_BUDGET, auto.work)

    def groups_at(g: int) -> int:
        if budget == "per_size":  # a fresh budget: what solve(counts, g) spends
            packing = _pack(sizes, g, strategy, _Budget.of(strategy, node_limit))
        else:
            given = shared.within(per_size)
            left = _Budget(given.nodes, given.lp_cells, given.work)
            packing = _pack(sizes, g, strategy, left)
            shared.charge(given, left)
        rows_b.append(packing.lower_bound)
        return packing.offsets.shape[0] - 1

    rows_g: list[int] = []
    rows_n: list[int] = []
    rows_c: list[float] = []
    rows_b: list[int] = []
    best_cost = math.inf
    best = 0
    cap = limit
    complete = True
    g = start
    while g <= limit:
        # no size >= g can cost less than total * (4C^2 + 2gC): stop there
        if total * (4.0 * c * c + 2.0 * g * c) > best_cost:
            cap = g - 1
            break
        if len(rows_g) >= SWEEP_MAX_SIZES:
            cap, complete = g - 1, False
            break
        num = groups_at(g)
        cost = attention_cost(num, g, channels)
        rows_g.append(g)
        rows_n.append(num)
        rows_c.append(cost)
        if cost < best_cost:
            best_cost, best = cost, len(rows_g) - 1
        g += 1
    for _ in range(min(extra, SWEEP_MAX_SIZES)):  # optional extra sizes past the cap, for plots
        if g > limit:
            break
        num = groups_at(g)
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
        complete,
        np.array(rows_b, dtype=np.int64),
    )


def sweep_group_sizes(
    counts: ArrayLike,
    channels: int,
    *,
    strategy: Strategy = "auto",
    max_group_size: int | None = None,
    node_limit: int | None = None,
    extra: int = 0,
    budget: Literal["shared", "per_size"] = "shared",
) -> SweepResult:
    """Attention cost of the best packing at every group size worth trying.

    Sizes run from the largest count ``m`` upwards and stop at the cap: the first size ``g``
    with ``S * (4C^2 + 2gC) > best cost so far`` (``S`` = total visible tokens). Since
    ``num_groups(g) * g >= S``, ``attention_cost(num_groups(g), g, C) >= S * (4C^2 + 2gC)``,
    which grows with ``g``: no size past the cap can beat the best one. Sizes never exceed
    ``max(m, S)`` (one group holds everything) nor ``max_group_size``, and at most
    ``SWEEP_MAX_SIZES`` (1024) are tried (``complete`` is False if that stopped the sweep).

    Args:
        counts: int ``[num_windows]`` visible tokens per window (any shape, flattened).
        channels: ``C`` of the cost model.
        strategy: packing strategy used at every size.
        max_group_size: optional upper limit on the sizes tried.
        node_limit: node budget of the exact search ("auto"/"exact") per size; all sizes of
            one sweep share ``SWEEP_BUDGET`` (8) times it (default: 8 x 5,000), with the LP
            cells of 8 "auto" calls and one call's bitset words; the sizes after that is spent
            get the greedy packings and the L2 bound only.
        extra: also evaluate this many sizes past the cap (for plots; at most
            ``SWEEP_MAX_SIZES``). With ``max_group_size=hi`` and ``extra >= hi - m`` the
            sweep evaluates every size from ``m`` to ``hi`` (up to ``max(m, S)``).
        budget: ``"shared"`` (the default, what ``solve(counts, "sweep")`` does): the sizes
            share the budget described under ``node_limit``; ``"per_size"``: every size
            gets one call's budget, so that each row is what ``solve(counts, g,
            strategy=strategy)`` finds at that size (a table of sizes rather than a search;
            up to ``SWEEP_MAX_SIZES`` times one call's time).

    Returns:
        A :class:`SweepResult`; empty arrays for all-zero counts.

    Raises:
        GroupingValueError: as :func:`solve`, and for ``strategy="greenmim"`` when the sizes
            together would exceed the published algorithm's shared work budget.
    """
    _, sizes, largest, smallest, total = split_counts(_as_counts(counts))
    _negative_counts(smallest)
    _check_total(total)
    channels_ = _check_channels(channels)
    if channels_ is None:
        raise invalid("channels", "a positive int (the sweep needs the cost model)", channels)
    strategy = _check_strategy(strategy)
    if max_group_size is not None:
        max_group_size = check_int("max_group_size", max_group_size, minimum=1)
    if node_limit is not None:
        node_limit = check_int("node_limit", node_limit, minimum=0)
    extra = check_int("extra", extra, minimum=0)
    if budget not in ("shared", "per_size"):
        raise invalid("budget", "'shared' or 'per_size'", budget)
    if sizes.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return SweepResult(empty, empty, np.zeros(0), 0, 0, True, empty)
    if max_group_size is not None and largest > max_group_size:
        raise invalid(
            "max_group_size",
            f"at least the largest window count {largest}",
            max_group_size,
            "a window cannot be split across groups",
        )
    return _sweep(sizes, channels_, strategy, max_group_size, node_limit, extra, budget)


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

    Memory and time are bounded for every input accepted (module docstring, "Limits"): past
    the limits of a step "auto" and "exact" skip it (``optimal`` is then False unless the
    bound is met), ``strategy="greenmim"`` raises.

    Args:
        counts: int array of visible tokens per window (any shape, flattened row-major, e.g.
            the output of :func:`grouping.window_counts`); zeros are empty windows, which
            belong to no group. They must sum to at most 2**62.
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
        GroupingValueError: negative or non-integer counts, counts summing past 2**62, a count
            larger than the group size, a group size below 1, an unknown strategy,
            ``"sweep"`` without channels, and ``strategy="greenmim"`` past the published
            algorithm's work or table limit.

    Examples:
        >>> plan = solve([3, 0, 4, 2, 1], 5, strategy="exact")
        >>> [g.tolist() for g in plan.groups], plan.optimal
        ([[2, 4], [0, 3]], True)
    """
    # The fast path (module docstring, "Per-call cost"): an integer ndarray, a cheap strategy,
    # group_size None or an int, no limits: one kernel call into one buffer. Everything else,
    # and every input that the kernel rejects, goes to _solve (the same checks and errors).
    if (
        type(counts) is np.ndarray
        and max_group_size is None
        and node_limit is None
        and type(strategy) is str
        and (group_size is None or (type(group_size) is int and 1 <= group_size <= INT64_MAX))
        and (channels is None or (type(channels) is int and channels >= 1))
    ):
        code = _FAST_CODES.get(strategy)
        dtype = counts.dtype
        if code is not None and (
            dtype is _INT64 or dtype.kind == "i" or (dtype.kind == "u" and dtype.itemsize < 8)
        ):
            flat = counts if counts.ndim == 1 else counts.reshape(-1)
            if dtype is not _INT64 or not flat.flags.carray:  # C-contiguous, aligned, writeable
                flat = np.array(flat, dtype=np.int64, order="C")  # kernel_array's copy
            n = len(flat)
            out = _empty(3 * n + 9, _INT64)  # packing.fast_buffer_size(n)
            status, capacity, bound, k, groups = _fast_plan(
                flat, group_size or 0, code, GREENMIM_MAX_WORK, MAX_TABLE_WORDS, out
            )
            if not status:
                if groups == bound or strategy != "auto":
                    out.setflags(False)  # write=False: the plan's arrays are views of it
                    base = 8 + n
                    return _readonly_plan(
                        out[base : base + k],
                        out[base + k : base + k + groups + 1],
                        capacity,
                        out[8:base],
                        bound,
                        groups == bound,
                        strategy,
                        channels,
                    )
                # "auto" with FFD above the bound: the full pipeline, without packing again
                return _solve(counts, group_size, strategy, channels, None, None, packed=True)
    return _solve(counts, group_size, strategy, channels, max_group_size, node_limit)


def _solve(
    counts: Any,
    group_size: Any,
    strategy: Any,
    channels: Any,
    max_group_size: Any,
    node_limit: Any,
    *,
    packed: bool = False,
) -> GroupingPlan:
    """:func:`solve` for every input: the checks, the one-call path for the cheap strategies
    (skipped when ``packed``: :func:`solve`'s fast path already ran it, valid input and "auto"
    above the bound), the sweep and the general path."""
    flat = _as_counts(counts)
    strategy = _check_strategy(strategy)
    channels_ = _check_channels(channels)
    if node_limit is not None:
        node_limit = check_int("node_limit", node_limit, minimum=0)
    if max_group_size is not None:
        max_group_size = check_int("max_group_size", max_group_size, minimum=1)
    cheap = strategy in FAST_STRATEGIES or strategy == "auto"
    if (
        not packed
        and cheap
        and max_group_size is None
        and (
            group_size is None or (type(group_size) is int and 1 <= group_size <= INT64_MAX)  # noqa: E721 - bool excluded on purpose
        )
    ):
        # fast path: one kernel call validates, packs and bounds
        fast = fast_plan(
            flat, group_size or 0, "ffd" if strategy == "auto" else strategy, GREENMIM_MAX_WORK
        )
        if fast.status:
            _fast_failure(fast, flat)
        if strategy != "auto" or fast.offsets.shape[0] - 1 == fast.lower_bound:
            return _plan(
                fast.windows,
                fast.offsets,
                fast.capacity,
                flat,
                counts,
                fast.lower_bound,
                strategy,
                channels_,
            )
    positions, sizes, largest, smallest, total = split_counts(flat)
    _negative_counts(smallest)
    _check_total(total)

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

    if strategy in FAST_STRATEGIES:
        fast = fast_plan(flat, capacity, strategy, GREENMIM_MAX_WORK)
        if fast.status:
            _fast_failure(fast, flat)
        windows, offsets, bound = fast.windows, fast.offsets, fast.lower_bound
    else:
        packing_ = _pack(sizes, capacity, strategy, _Budget.of(strategy, node_limit))
        windows, offsets, bound = positions[packing_.order], packing_.offsets, packing_.lower_bound
    return _plan(windows, offsets, capacity, flat, counts, bound, strategy, channels_)


def _fast_failure(fast: packing.FastPlan, flat: NDArray[np.int64]) -> None:
    """Raise for what ``fast_plan`` refused to pack (status -1) or could not (1, 2)."""
    _negative_counts(fast.smallest)
    _too_large(fast.largest, fast.capacity)
    _check_total(fast.total)
    windows = int(np.count_nonzero(flat > 0))
    raise _knapsack_limit(fast.status, windows, fast.capacity, GREENMIM_MAX_WORK)


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
