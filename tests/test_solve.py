"""The grouping solver against plain-Python oracles, through the plan checker."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grouping as gp
from grouping.testing.reference import (
    bfd_reference,
    ffd_reference,
    greenmim_reference,
    l2_reference,
    min_groups_reference,
)
from grouping.testing.strategies import solve_problems, window_counts_arrays

packing = sys.modules["grouping.core.packing"]
knapsack = sys.modules["grouping.core.packing"]

HEURISTICS = ("greenmim", "ffd", "bfd")


def as_lists(plan: gp.GroupingPlan) -> list[list[int]]:
    return [g.tolist() for g in plan.groups]


# --- the published algorithm, window for window ------------------------------------------


@given(solve_problems(max_windows=40, max_group_size=140))
def test_greenmim_equals_published_algorithm(problem):
    plan = gp.solve(problem.counts, problem.group_size, strategy="greenmim")
    assert as_lists(plan) == greenmim_reference(problem.counts.tolist(), problem.group_size)
    gp.check_plan(plan, problem.counts)


@given(window_counts_arrays())
def test_greenmim_on_masks_equals_published_algorithm(counts):
    plan = gp.solve(counts, strategy="greenmim")
    assert as_lists(plan) == greenmim_reference(counts.ravel().tolist(), plan.group_size)


def test_greenmim_known_example():
    # K-table read back from the last window: among equal sums the earlier windows are kept.
    counts = [4, 3, 1, 4, 2, 3]
    plan = gp.solve(counts, 7, strategy="greenmim")
    assert as_lists(plan) == [[0, 1], [2, 3, 4], [5]]
    assert plan.fills.tolist() == [7, 7, 3]


def test_greenmim_multiword_bitset():
    # group sizes above 63 use several 64-bit words per reachable-sum bitset
    rng = np.random.default_rng(3)
    for g in (63, 64, 65, 127, 128, 200):
        counts = rng.integers(0, g + 1, size=30)
        plan = gp.solve(counts, g, strategy="greenmim")
        assert as_lists(plan) == greenmim_reference(counts.tolist(), g)


@given(solve_problems(max_windows=40, max_group_size=100, allow_empty=False))
def test_decreasing_knapsack_equals_knapsack_on_sorted_windows(problem):
    sizes, g = problem.counts, problem.group_size
    bins, num = knapsack.decreasing_knapsack(sizes, g)
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    expected = [sorted(order[i] for i in grp) for grp in greenmim_reference(sizes[order], g)]
    assert [sorted(np.flatnonzero(bins == b).tolist()) for b in range(num)] == expected


# --- heuristics, bounds and the exact search ---------------------------------------------


@given(solve_problems(max_windows=40, max_group_size=80))
def test_ffd_and_bfd_match_references(problem):
    counts, g = problem.counts, problem.group_size
    ffd = gp.solve(counts, g, strategy="ffd")
    assert as_lists(ffd) == ffd_reference(counts.tolist(), g)
    bfd = gp.solve(counts, g, strategy="bfd")
    # bins of equal residual are interchangeable, so only the count is tie-independent
    assert bfd.num_groups == len(bfd_reference(counts.tolist(), g))
    gp.check_plan(ffd, counts)
    gp.check_plan(bfd, counts)


@given(solve_problems(max_windows=40, max_group_size=80))
def test_lower_bound_is_l2_for_heuristics(problem):
    counts, g = problem.counts, problem.group_size
    for strategy in HEURISTICS:
        plan = gp.solve(counts, g, strategy=strategy)
        assert plan.lower_bound == l2_reference(counts.tolist(), g)
        assert plan.optimal == (plan.num_groups == plan.lower_bound)


@given(solve_problems(max_windows=9, max_group_size=30))
def test_exact_is_minimal_and_auto_proves_it(problem):
    counts, g = problem.counts, problem.group_size
    best = min_groups_reference(counts.tolist(), g)
    exact = gp.solve(counts, g, strategy="exact")
    gp.check_plan(exact, counts)
    assert exact.optimal and exact.num_groups == best
    auto = gp.solve(counts, g)
    gp.check_plan(auto, counts)
    assert auto.num_groups == best  # tiny inputs: the budget always suffices
    assert auto.lower_bound <= best


@given(solve_problems(max_windows=60, max_group_size=64))
def test_exact_and_auto_never_worse_than_heuristics(problem):
    counts, g = problem.counts, problem.group_size
    exact = gp.solve(counts, g, strategy="exact")
    auto = gp.solve(counts, g, strategy="auto")
    for strategy in HEURISTICS:
        assert exact.num_groups <= gp.solve(counts, g, strategy=strategy).num_groups
    for strategy in HEURISTICS:
        assert auto.num_groups <= gp.solve(counts, g, strategy=strategy).num_groups
    for plan in (exact, auto):
        gp.check_plan(plan, counts)
        assert plan.lower_bound >= l2_reference(counts.tolist(), g)


@given(solve_problems(max_windows=12, max_group_size=24))
def test_optimal_claims_are_true(problem):
    counts, g = problem.counts, problem.group_size
    best = min_groups_reference(counts.tolist(), g)
    for strategy in (*HEURISTICS, "auto", "exact"):
        plan = gp.solve(counts, g, strategy=strategy)
        assert plan.lower_bound <= best  # the bound is a true bound
        if plan.optimal:
            assert plan.num_groups == best


@given(solve_problems(max_windows=14, max_group_size=20, allow_empty=False))
def test_search_status_is_truthful(problem):
    sizes, g = problem.counts, problem.group_size
    best = min_groups_reference(sizes.tolist(), g)
    for bins in range(max(1, best - 2), best + 2):
        status, found, _ = packing.search(sizes, g, bins, 10**6)
        assert status == (1 if bins >= best else 0)
        if status == 1:
            assert found is not None and found.max() < bins
            assert np.all(np.bincount(found, weights=sizes) <= g)


def test_dff_bound_beats_l2_on_a_known_input():
    # six items of 2 with capacity 5: L1 = L2 = 3, but pairs fit at most twice per bin -> 3;
    # with 7 items of 2: L2 = 3, optimum 4 (each bin holds two), the DFF bound proves 4.
    sizes = np.full(7, 2, dtype=np.int64)
    assert packing.lower_bound(sizes, 5) == 3
    assert packing.dff_bound(sizes, 5) == 4
    plan = gp.solve(sizes, 5)
    assert plan.num_groups == 4 and plan.optimal


def test_node_budget_is_respected_and_reported():
    # a hard instance for a tiny budget: no optimality claim without proof
    rng = np.random.default_rng(11)
    counts = rng.integers(1, 50, size=400)
    plan = gp.solve(counts, 49, strategy="exact", node_limit=0)
    gp.check_plan(plan, counts)
    assert plan.optimal == (plan.num_groups == plan.lower_bound)


# --- sweep and cost ------------------------------------------------------------------------


def test_attention_cost_formula():
    assert gp.attention_cost(3, 49, 128) == 3 * (4 * 49 * 128**2 + 2 * 49**2 * 128)
    assert gp.attention_cost(0, 49, 128) == 0.0


@settings(max_examples=30)
@given(solve_problems(min_windows=1, max_windows=30, max_group_size=40), st.integers(1, 256))
def test_sweep_minimises_cost(problem, channels):
    counts = problem.counts
    if counts.max() == 0:
        return
    plan = gp.solve(counts, "sweep", channels=channels, strategy="exact")
    gp.check_plan(plan, counts)
    largest = int(counts.max())
    base = gp.solve(counts, None, channels=channels, strategy="exact")
    assert plan.cost <= base.cost
    # brute force over every size up to the total (past it one group holds everything)
    brute = min(
        gp.solve(counts, g, channels=channels, strategy="exact").cost
        for g in range(largest, max(largest, int(counts.sum())) + 1)
    )
    assert math.isclose(plan.cost, brute)


def test_sweep_result_table():
    counts = np.array([49, 30, 20, 19, 7, 7, 3, 0])
    result = gp.sweep_group_sizes(counts, 128)
    assert result.group_sizes[0] == 49
    assert np.all(np.diff(result.group_sizes) == 1)
    assert result.costs[result.best] == result.costs.min()
    total = counts.sum()
    # past the cap even zero padding costs more than the best size
    assert total * (4 * 128**2 + 2 * (result.cap + 1) * 128) > result.costs[result.best]
    plan = gp.solve(counts, "sweep", channels=128)
    assert plan.group_size == result.group_sizes[result.best]


def test_sweep_respects_max_group_size():
    counts = np.array([10, 9, 9, 2])
    plan = gp.solve(counts, "sweep", channels=4, max_group_size=12)
    assert plan.group_size <= 12


# --- plans and the checker -------------------------------------------------------------------


def test_empty_inputs_give_empty_plans():
    for counts in ([], np.zeros(5, dtype=np.int64), np.zeros((2, 3), dtype=np.int32)):
        for strategy in gp.STRATEGIES:
            plan = gp.solve(counts, strategy=strategy)
            assert plan.num_groups == 0 and plan.groups == () and plan.optimal
            gp.check_plan(plan)


def test_plan_properties():
    counts = np.array([[3, 0], [4, 2]])
    plan = gp.solve(counts, 5, channels=8)
    assert plan.num_windows == 4 and plan.num_tokens == 9
    assert plan.padding == plan.num_groups * 5 - 9
    assert plan.group_of[1] == -1
    assert sorted(plan.fills.tolist()) == [4, 5]
    assert plan.cost == gp.attention_cost(2, 5, 8)
    assert math.isnan(gp.solve(counts, 5).cost)
    windows, offsets = plan.flat()
    assert offsets[-1] == windows.size == 3
    with pytest.raises(ValueError):
        plan.windows[0] = 1  # read-only
    assert "GroupingPlan" in repr(plan)


def _plan(groups, g, counts, **kw):
    return gp.GroupingPlan.from_groups(groups, g, counts, **kw)


@pytest.mark.parametrize(
    ("groups", "kw", "message"),
    [
        ([[0, 1], [2]], {}, "exceeds the group size"),
        ([[0], [2]], {}, "exactly one group"),
        ([[0], [1], [2], [1]], {}, "exactly one group"),
        ([[0], [1], [2, 3]], {}, "empty window"),
        ([[0], [1], [2], []], {}, "non-empty"),
        ([[0], [1], [2]], {"lower_bound": 1}, "ceil"),
        ([[0], [1], [2]], {"lower_bound": 4}, "below the claimed"),
        ([[0], [1, 2]], {"lower_bound": 1, "optimal": True}, "ceil"),
    ],
)
def test_check_plan_rejects(groups, kw, message):
    counts = np.array([4, 3, 1, 0])
    kw.setdefault("lower_bound", 2)
    plan = _plan(groups, 5, counts, **kw)
    with pytest.raises(gp.PlanError, match=message):
        gp.check_plan(plan)
    assert not gp.is_valid_plan(plan)


def test_check_plan_accepts_and_compares_counts():
    counts = np.array([4, 3, 1, 0])
    plan = _plan([[0, 2], [1]], 5, counts, lower_bound=2, optimal=True)
    gp.check_plan(plan, counts)
    assert gp.is_valid_plan(plan)
    with pytest.raises(gp.PlanError, match="other counts"):
        gp.check_plan(plan, [4, 3, 1, 1])


def test_same_input_same_plan():
    counts = np.random.default_rng(0).integers(0, 50, size=500)
    a, b = gp.solve(counts, 49), gp.solve(counts.copy(), 49)
    assert np.array_equal(a.windows, b.windows) and np.array_equal(a.offsets, b.offsets)


# --- the cutting-stock LP packing ------------------------------------------------------------

cutting = sys.modules["grouping.core.cutting"]


@given(solve_problems(min_windows=1, max_windows=60, max_group_size=64, allow_empty=False))
def test_rounded_lp_packing_is_a_partial_packing(problem):
    sizes, g = problem.counts, problem.group_size
    bins, num, _ = cutting.rounded_lp_packing(sizes, g)
    placed = bins >= 0
    assert bins.shape == sizes.shape
    if placed.any():
        assert bins[placed].max() < num
        fills = np.bincount(bins[placed], weights=sizes[placed], minlength=num)
        assert np.all(fills <= g) and np.all(fills > 0)


@given(solve_problems(min_windows=1, max_windows=9, max_group_size=30, allow_empty=False))
def test_farley_lp_bound_is_a_true_bound(problem):
    sizes, g = problem.counts, problem.group_size
    _, _, bound = cutting.rounded_lp_packing(sizes, g, effort=30.0)
    assert 0 < bound <= min_groups_reference(sizes.tolist(), g)


def test_rounded_lp_packing_meets_the_bound_on_a_cutting_stock_input():
    # 3 sizes with large multiplicities: 2x20 + 1x9 = 49 and 7x7 = 49 fill groups exactly
    sizes = np.array([20] * 40 + [9] * 20 + [7] * 70, dtype=np.int64)
    bins, num, bound = cutting.rounded_lp_packing(sizes, 49)
    assert np.all(bins >= 0)
    assert num == 30 == packing.lower_bound(sizes, 49) == bound


def test_auto_is_optimal_on_a_realistic_large_mask():
    units = gp.batch_mask((32, 32), 0.75, rng=7)  # 1024 px, 32 px mask units
    counts = gp.window_counts(gp.upsample_mask(units, 8), 7, shift=3)
    plan = gp.solve(counts)
    gp.check_plan(plan, counts)
    assert plan.optimal
    assert plan.num_groups <= gp.solve(counts, strategy="ffd").num_groups
