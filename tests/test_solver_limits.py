"""The solver's memory and time stay bounded for every input it accepts (solve.py, "Limits").

Group sizes above ``DENSE_CAPACITY`` run on the O(n log n) kernels only, which must give the
same packings and bounds as the histogram kernels; the knapsack kernels stop at their work and
table limits (``strategy="greenmim"`` then raises, "auto" and "exact" skip them); sums past
``MAX_TOTAL`` are refused; sweeps try at most ``SWEEP_MAX_SIZES`` sizes. No wall-clock time is
measured: the limits are counted in work units, so these tests only check the outcomes.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import grouping as gp
from grouping.core import cutting, packing
from grouping.testing import solve_problems
from grouping.testing.reference import greenmim_reference

solve_module = sys.modules["grouping.core.solve"]


def _hard_counts(seed: int = 0, n: int = 100, g: int = 10**6) -> np.ndarray:
    """Counts in (g/5, g/2]: FFD needs more groups than the lower bound (the issue's case)."""
    return np.random.default_rng(seed).integers(g // 5, g // 2, size=n)


@pytest.mark.parametrize("strategy", gp.STRATEGIES)
def test_group_size_of_a_million_under_every_strategy(strategy):
    # used to raise MemoryError (the knapsack over decreasing sizes allocated g log g rows)
    counts = _hard_counts()
    plan = gp.solve(counts, 10**6, strategy=strategy)
    gp.check_plan(plan, counts)
    assert plan.group_size == 10**6
    ffd = gp.solve(counts, 10**6, strategy="ffd")
    assert plan.num_groups <= ffd.num_groups or strategy in ("greenmim", "bfd")


@pytest.mark.parametrize("strategy", gp.STRATEGIES)
@pytest.mark.parametrize("group_size", [10**6, 2**62, 2**63 - 1])
def test_small_counts_in_a_huge_group_are_one_group(strategy, group_size):
    counts = np.random.default_rng(1).integers(0, 50, size=100)
    plan = gp.solve(counts, group_size, strategy=strategy, channels=8)
    gp.check_plan(plan, counts)
    assert plan.num_groups == 1 and plan.optimal
    assert plan.groups[0].tolist() == np.flatnonzero(counts).tolist()
    sweep = gp.solve(counts, "sweep", strategy=strategy, channels=8, max_group_size=group_size)
    gp.check_plan(sweep, counts)


@pytest.mark.parametrize("strategy", gp.STRATEGIES)
def test_huge_counts(strategy):
    counts = np.array([6 * 10**17, 6 * 10**17, 5 * 10**17, 0, 10**17], dtype=np.int64)
    g = 10**18
    if strategy == "greenmim":  # a bitset of 10**18 bits: a clear error naming the limit
        with pytest.raises(gp.GroupingValueError, match="strategy.*MAX_TABLE_WORDS"):
            gp.solve(counts, g, strategy=strategy)
        return
    plan = gp.solve(counts, g, strategy=strategy)
    gp.check_plan(plan, counts)
    assert plan.num_groups == 3 == plan.lower_bound  # the two 6e17 and the 5e17 pairwise clash


@pytest.mark.parametrize(
    "counts",
    [
        np.array([2**62, 2**62], dtype=np.int64),
        np.array([2**63 - 1, 2**63 - 1, 5], dtype=np.int64),
        [2**62, 1],
    ],
)
@pytest.mark.parametrize("strategy", ["auto", "exact", "greenmim"])
def test_sums_past_the_limit_are_refused(counts, strategy):
    with pytest.raises(gp.GroupingValueError, match="counts: expected counts summing"):
        gp.solve(counts, 2**63 - 1, strategy=strategy)
    with pytest.raises(gp.GroupingValueError, match="counts: expected counts summing"):
        gp.sweep_group_sizes(counts, 8)


def test_uint64_counts_past_int64_are_refused():
    with pytest.raises(gp.GroupingValueError, match="counts: expected counts below 2\\*\\*63"):
        gp.solve(np.array([1, 2**63 + 5], dtype=np.uint64))


def test_ragged_and_oversized_counts_raise_the_library_error():
    for bad in ([[1, 2], [3]], [2**70], [object()]):
        with pytest.raises(gp.GroupingValueError, match="counts"):
            gp.solve(bad)


# --- the sparse kernels equal the dense ones --------------------------------------------------


@given(solve_problems(max_windows=80, max_group_size=300, allow_empty=False))
def test_sparse_kernels_equal_dense_ones(problem):
    sizes, g = packing.kernel_array(problem.counts), problem.group_size
    dense_bins = packing._best_fit_decreasing(sizes, g)
    heap_bins = packing._best_fit_heaps(sizes, g)
    assert np.array_equal(dense_bins[0], heap_bins[0]) and dense_bins[1] == heap_bins[1]
    assert packing._lower_bound(sizes, g) == packing._lower_bound_sorted(sizes, g)
    counting = packing._sort_decreasing(sizes, g)
    assert np.array_equal(counting, np.argsort(-sizes, kind="stable"))


@given(
    st.lists(st.integers(1, 10**12), min_size=1, max_size=60),
    st.integers(0, 10**12),
)
def test_large_group_sizes_give_valid_plans_with_l2(values, extra):
    counts = np.array(values, dtype=np.int64)
    g = int(counts.max()) + extra
    for strategy in ("auto", "exact", "ffd", "bfd"):
        plan = gp.solve(counts, g, strategy=strategy)
        gp.check_plan(plan, counts)
        if g > packing.DENSE_CAPACITY:
            assert plan.lower_bound >= packing._lower_bound_sorted(counts, g)


# --- the knapsack kernels' limits -------------------------------------------------------------


def test_published_algorithm_stops_at_its_work_limit():
    weights = np.full(40, 1000, dtype=np.int64)  # 4 per group of 4095: every pass walks all
    full = packing.greenmim_knapsack(weights, 4095)
    assert full.status == 0 and full.work > 100
    stopped = packing.greenmim_knapsack(weights, 4095, max_work=100)
    assert stopped.status == 1 and stopped.order.size == 0
    table = packing.greenmim_knapsack(weights, 4095, max_words=64)
    assert table.status == 2
    word = packing.greenmim_knapsack(np.full(40, 2, dtype=np.int64), 49, max_work=10)
    assert word.status == 1
    assert packing.decreasing_knapsack(weights, 4095, max_work=10) is None
    assert packing.decreasing_knapsack(weights, 4095, max_words=8) is None


def test_greenmim_strategy_raises_past_the_work_limit(monkeypatch):
    monkeypatch.setattr(solve_module, "GREENMIM_MAX_WORK", 50)
    counts = np.full(40, 1000, dtype=np.int64)
    for group_size in (4095, "sweep"):
        with pytest.raises(gp.GroupingValueError, match='strategy: .*"greenmim" would need'):
            gp.solve(counts, group_size, strategy="greenmim", channels=8)
    # "auto" and "exact" skip the published algorithm instead, and still return valid plans
    for strategy in ("auto", "exact"):
        gp.check_plan(gp.solve(counts, 4095, strategy=strategy), counts)


def test_published_algorithm_equals_reference_above_the_dense_capacity():
    counts = _hard_counts(seed=4, n=14, g=6000)  # the reference's table is 14 x 6001 cells
    plan = gp.solve(counts, 6000, strategy="greenmim")
    assert [g.tolist() for g in plan.groups] == greenmim_reference(counts.tolist(), 6000)


def test_published_algorithm_equals_reference_when_the_rest_fits_one_group():
    # the last pass takes every window left without a knapsack (its best sum is the total)
    rng = np.random.default_rng(3)
    for _ in range(50):
        g = int(rng.integers(1, 200))
        counts = rng.integers(0, g + 1, size=int(rng.integers(1, 30)))
        plan = gp.solve(counts, g, strategy="greenmim")
        assert [x.tolist() for x in plan.groups] == greenmim_reference(counts.tolist(), g)


def test_lp_refuses_tables_past_its_limits():
    sizes = np.arange(1, cutting.LP_MAX_DISTINCT + 2, dtype=np.int64)
    result = cutting.lp_packing(sizes, 4096)
    assert result.num_bins == 0 and (result.bins == -1).all() and result.cells == 0
    assert cutting.lp_packing(np.array([5000, 6000]), 10_000).num_bins == 0  # > DENSE_CAPACITY


def test_search_reports_exhaustion_above_the_dense_capacity():
    assert packing.search(np.array([5000, 5000]), 9000, 1, 100) == (-1, None, 0)


# --- sweeps -----------------------------------------------------------------------------------


def test_a_sweep_stops_at_its_size_limit():
    # padding at every size until the sum: without the limit, 500,000 sizes would be tried
    counts = np.array([600_000, 500_000])
    result = gp.sweep_group_sizes(counts, 10**7)
    assert not result.complete
    assert result.group_sizes.size == solve_module.SWEEP_MAX_SIZES
    assert result.cap == result.group_sizes[-1]
    plan = gp.solve(counts, "sweep", channels=10**7)
    gp.check_plan(plan, counts)
    assert plan.group_size == result.group_sizes[result.best]
    assert gp.sweep_group_sizes([3, 4, 2], 8).complete


@pytest.mark.parametrize("strategy", gp.STRATEGIES)
def test_sweeps_over_large_counts_give_valid_plans(strategy):
    counts = _hard_counts(seed=2, n=40, g=5000)
    plan = gp.solve(counts, "sweep", strategy=strategy, channels=96)
    gp.check_plan(plan, counts)
    result = gp.sweep_group_sizes(counts, 96, strategy=strategy, extra=3)
    assert result.group_sizes[0] == counts.max()
