"""A cutting-stock packing: the Gilmore-Gomory LP by column generation, rounded down.

Window counts are small integers with large multiplicities (a 2048 px image at 75 % masking
has ~3000 non-empty windows but fewer than ``g`` distinct counts), which is the cutting-stock
form of bin packing: ``min sum_j x_j`` subject to ``sum_j a_ij x_j >= d_i``, where a column
``a_j`` is a *pattern* (how many windows of each count fit one group) and ``d_i`` the number of
windows of count ``s_i``. Its LP relaxation is solved by a revised simplex whose entering
column is priced by a bounded knapsack (``max sum_i y_i a_i`` subject to
``sum_i s_i a_i <= g``, ``a_i <= d_i``) instead of being enumerated.

The LP optimum is then rounded down: every pattern used ``floor(x_j)`` times becomes that many
groups of concrete windows, and the few windows left over are packed by the other strategies.
This is only a heuristic (the LP and its rounding are floating point), but a safe one: the
groups are built from the actual windows and checked like any other packing, and the result is
kept only if it uses fewer groups.

Notes:
    For cutting-stock instances the rounded LP usually lands on ``ceil(LP)`` groups, and
    ``ceil(LP)`` equals the optimum on almost all of them (the "modified integer round-up
    property" observed by Scheithauer and Terno); our lower bounds (L2 and dual feasible
    functions) meet ``ceil(LP)`` on GreenMIM-realistic inputs, which is what lets "auto" prove
    optimality at 1024 and 2048 px.

References:
    Gilmore, P. C. and Gomory, R. E. "A linear programming approach to the cutting-stock
    problem." Operations Research 9 (1961).
    Scheithauer, G. and Terno, J. "The modified integer round-up property of the
    one-dimensional cutting stock problem." European Journal of Operational Research 84 (1995).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from ._jit import CACHE
from .packing import DENSE_CAPACITY, MAX_TABLE_WORDS, kernel_array

__all__: list[str] = []

_EPS = 1e-9

#: Most distinct counts the LP takes on (its basis is two dense ``[m, m]`` float64 matrices,
#: 8 MiB each at the limit); above it, or above ``DENSE_CAPACITY``, nothing is packed.
LP_MAX_DISTINCT = 1024
#: Simplex work (about ``3 m**2`` multiply-adds per iteration) one LP may spend.
LP_SIMPLEX_WORK = 1 << 28


@njit(cache=CACHE, nogil=True)
def _price(sizes, bounds, duals, capacity):  # pragma: no cover - jitted
    """Bounded knapsack: the pattern maximising ``sum duals * a`` (binary-split 0-1 DP)."""
    m = sizes.shape[0]
    max_chunks = 0
    for i in range(m):
        b = bounds[i]
        while b > 0:
            max_chunks += 1
            b >>= 1
    chunk_item = np.empty(max_chunks, dtype=np.int64)
    chunk_copies = np.empty(max_chunks, dtype=np.int64)
    k = 0
    for i in range(m):
        if duals[i] <= _EPS or bounds[i] == 0:
            continue
        left = bounds[i]
        step = 1
        while left > 0:
            take = step if step < left else left
            chunk_item[k] = i
            chunk_copies[k] = take
            k += 1
            left -= take
            step *= 2
    value = np.zeros(capacity + 1, dtype=np.float64)
    keep = np.zeros((k, capacity + 1), dtype=np.bool_)
    for c in range(k):
        w = sizes[chunk_item[c]] * chunk_copies[c]
        v = duals[chunk_item[c]] * chunk_copies[c]
        for cap in range(capacity, w - 1, -1):
            if value[cap - w] + v > value[cap] + 1e-12:
                value[cap] = value[cap - w] + v
                keep[c, cap] = True
    pattern = np.zeros(m, dtype=np.int64)
    cap = capacity
    for c in range(k - 1, -1, -1):
        if keep[c, cap]:
            pattern[chunk_item[c]] += chunk_copies[c]
            cap -= sizes[chunk_item[c]] * chunk_copies[c]
    return value[capacity], pattern


@njit(cache=CACHE, nogil=True)
def _column_generation(sizes, demand, capacity, max_iter):  # pragma: no cover - jitted
    """Revised simplex on the cutting-stock LP with knapsack pricing.

    ``sizes`` (distinct, int64 [m]) and ``demand`` (int64 [m]). Returns
    ``(patterns, x, farley, iterations)``: the basic columns (int64 [m, m], one pattern per
    row; all-zero rows are surplus columns), their values (float64 [m]), the best Farley
    bound seen and the simplex iterations run (at most ``max_iter``), where the Farley bound is
    ``max over iterations of sum_i d_i y_i / z(y)`` with ``y`` the duals clipped at 0 and
    ``z(y)`` the best pattern value: every group holds at most ``z(y)`` of the total value
    ``sum_i d_i y_i``, so at least that many groups are needed, whatever ``y``.
    """
    m = sizes.shape[0]
    patterns = np.zeros((m, m), dtype=np.int64)
    binv = np.zeros((m, m), dtype=np.float64)
    xb = np.zeros(m, dtype=np.float64)
    cost = np.ones(m, dtype=np.float64)
    surplus = np.full(m, -1, dtype=np.int64)  # basic surplus column of item i, else -1
    bounds = np.empty(m, dtype=np.int64)
    for i in range(m):
        bounds[i] = min(demand[i], capacity // sizes[i])
        patterns[i, i] = bounds[i]
        binv[i, i] = 1.0 / bounds[i]
        xb[i] = demand[i] / bounds[i]
    column = np.zeros(m, dtype=np.float64)
    farley = 0.0
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        duals = np.zeros(m, dtype=np.float64)
        for r in range(m):
            if cost[r] != 0.0:
                for j in range(m):
                    duals[j] += cost[r] * binv[r, j]
        # entering column: a surplus column -e_i (cost 0) if some dual is negative, else a
        # pattern with reduced cost 1 - duals . a < 0
        enter_surplus = -1
        for i in range(m):
            if duals[i] < -_EPS:
                enter_surplus = i
                break
        if enter_surplus >= 0:
            for j in range(m):
                column[j] = 0.0
            column[enter_surplus] = -1.0
            enter_cost = 0.0
            pattern = np.zeros(m, dtype=np.int64)
        else:
            value, pattern = _price(sizes, bounds, duals, capacity)
            if value > 0.0:
                total = 0.0
                for i in range(m):
                    if duals[i] > _EPS:
                        total += demand[i] * duals[i]
                if total / value > farley:
                    farley = total / value
            if value <= 1.0 + 1e-9:
                break
            for j in range(m):
                column[j] = pattern[j]
            enter_cost = 1.0
        direction = np.zeros(m, dtype=np.float64)
        for r in range(m):
            acc = 0.0
            for j in range(m):
                acc += binv[r, j] * column[j]
            direction[r] = acc
        leave = -1
        best = np.inf
        for r in range(m):
            if direction[r] > _EPS:
                ratio = xb[r] / direction[r]
                if ratio < best - 1e-12:
                    best = ratio
                    leave = r
        if leave < 0:
            break  # unbounded direction: cannot happen for a covering LP; stop safely
        for r in range(m):
            if r != leave:
                xb[r] -= best * direction[r]
                if xb[r] < 0.0:
                    xb[r] = 0.0
        xb[leave] = best
        pivot = direction[leave]
        for j in range(m):
            binv[leave, j] /= pivot
        for r in range(m):
            if r != leave and direction[r] != 0.0:
                factor = direction[r]
                for j in range(m):
                    binv[r, j] -= factor * binv[leave, j]
        for j in range(m):
            patterns[leave, j] = pattern[j]
        cost[leave] = enter_cost
        for i in range(m):
            if surplus[i] == leave:
                surplus[i] = -1
        if enter_surplus >= 0:
            surplus[enter_surplus] = leave
    return patterns, xb, farley, iterations


@njit(cache=CACHE, nogil=True)
def _round_down(item_sizes, sizes, patterns, xb, capacity):  # pragma: no cover - jitted
    """Groups from ``floor(x_j)`` copies of each pattern; leftover items get bin -1.

    Returns ``(bins, num_bins)`` over the items (positions into ``item_sizes``).
    """
    n = item_sizes.shape[0]
    m = sizes.shape[0]
    index_of = np.full(capacity + 1, -1, dtype=np.int64)
    for i in range(m):
        index_of[sizes[i]] = i
    # items of each distinct size, in increasing position
    count = np.zeros(m + 1, dtype=np.int64)
    for t in range(n):
        count[index_of[item_sizes[t]] + 1] += 1
    for i in range(m):
        count[i + 1] += count[i]
    bucket = np.empty(n, dtype=np.int64)
    fill = count[:m].copy()
    for t in range(n):
        i = index_of[item_sizes[t]]
        bucket[fill[i]] = t
        fill[i] += 1
    front = count[:m].copy()
    bins = np.full(n, -1, dtype=np.int64)
    num_bins = 0
    for r in range(m):
        copies = int(np.floor(xb[r] + 1e-7))
        used = False
        for j in range(m):
            if patterns[r, j] != 0:
                used = True
        if not used:
            continue
        for _ in range(copies):
            placed = 0
            for j in range(m):
                want = patterns[r, j]
                while want > 0 and front[j] < count[j + 1]:
                    bins[bucket[front[j]]] = num_bins
                    front[j] += 1
                    want -= 1
                    placed += 1
            if placed > 0:
                num_bins += 1
    return bins, num_bins


class LPPacking(NamedTuple):
    """What :func:`lp_packing` returns."""

    bins: NDArray[np.int64]  # the bin of every item, -1 for items left to other packers
    num_bins: int  # bins used
    bound: int  # a proven lower bound on the number of bins (0 if none)
    cells: int  # knapsack cells of the pricing plus simplex operations (what budgets charge)


def rounded_lp_packing(
    sizes: np.ndarray, capacity: int, *, effort: float = 1.0, max_cells: int | None = None
) -> tuple[np.ndarray, int, int]:
    """``(bins, num_bins, bound)`` of :func:`lp_packing` (same arguments)."""
    result = lp_packing(sizes, capacity, effort=effort, max_cells=max_cells)
    return result.bins, result.num_bins, result.bound


def lp_packing(
    sizes: np.ndarray, capacity: int, *, effort: float = 1.0, max_cells: int | None = None
) -> LPPacking:
    """Bins from the rounded-down cutting-stock LP; leftover items get bin -1; an LP bound.

    Args:
        sizes: int64 ``[n]`` item sizes in ``[1, capacity]``.
        capacity: the group size.
        effort: simplex iterations allowed per distinct size (at least 50 in all); a stopped
            simplex still gives a feasible, merely less good, LP point.
        max_cells: optional cap on the knapsack DP cells over all iterations (each pricing
            costs about ``chunks * capacity`` cells), which bounds the time. The simplex's own
            work is capped at ``LP_SIMPLEX_WORK``; above ``DENSE_CAPACITY``, with more than
            ``LP_MAX_DISTINCT`` distinct sizes or a pricing table over 32 MiB, nothing is
            packed (every bin -1, bound 0).

    Returns:
        ``(bins, num_bins, bound, cells)``: int64 ``[n]`` (``-1`` for items left to other
        packers), the number of bins used, a proven lower bound on the number of bins (the
        Farley bound, rounded up after a ``1e-6`` safety margin against floating-point error;
        0 if the simplex priced no pattern), and the work spent: knapsack cells plus simplex
        operations (about ``3 m**2`` per iteration).
    """
    sizes = kernel_array(sizes)
    if sizes.shape[0] == 0:
        return LPPacking(np.zeros(0, dtype=np.int64), 0, 0, 0)
    distinct, demand = np.unique(sizes, return_counts=True)
    m = int(distinct.shape[0])
    bounds = np.minimum(demand, int(capacity) // distinct)
    chunks = int(np.sum(np.floor(np.log2(bounds)) + 1))
    if (
        capacity > DENSE_CAPACITY
        or m > LP_MAX_DISTINCT
        or chunks * (int(capacity) + 1) > 8 * MAX_TABLE_WORDS  # the pricing table, in bytes
    ):
        return LPPacking(np.full(sizes.shape[0], -1, dtype=np.int64), 0, 0, 0)
    distinct = kernel_array(distinct[::-1])  # large sizes first
    demand = kernel_array(demand[::-1])
    max_iter = int(effort * m) + 50
    max_iter = min(max_iter, max(1, LP_SIMPLEX_WORK // (3 * m * m)))
    if max_cells is not None:
        max_iter = min(max_iter, max(1, max_cells // max(1, chunks * int(capacity))))
    patterns, xb, farley, iterations = _column_generation(distinct, demand, int(capacity), max_iter)
    bins, num = _round_down(sizes, distinct, patterns, xb, int(capacity))
    bound = max(0, math.ceil(farley - 1e-6))
    cells = int(iterations) * (chunks * int(capacity) + 3 * m * m)  # pricing and simplex
    return LPPacking(bins, int(num), int(bound), cells)


def warm_kernels() -> None:
    """Call every kernel of this file once, with the one signature the wrapper passes.

    See :func:`grouping.core.packing.warm_kernels`; ``_price`` (called only by the simplex)
    is called directly so that its dispatcher is loaded from the cache too.
    """
    rounded_lp_packing(np.array([3, 3, 2, 2, 2], dtype=np.int64), 5)
    sizes = np.array([3, 2], dtype=np.int64)
    _price(sizes, np.array([1, 2], dtype=np.int64), np.array([0.5, 0.3]), 5)
