"""The exported Hypothesis strategies: draws are valid, bad options raise at call time."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import grouping as gp
from grouping.core.errors import GroupingValueError
from grouping.testing import (
    SolveProblem,
    WindowProblem,
    grids,
    mask_ratios,
    masks,
    solve_problems,
    window_counts_arrays,
    window_problems,
)


@given(grids())
def test_grids_default(grid):
    assert isinstance(grid, tuple) and len(grid) == 2
    assert all(isinstance(g, int) and 1 <= g <= 16 for g in grid)


@given(grids(ndim=3, min_side=2, max_side=5))
def test_grids_options(grid):
    assert len(grid) == 3 and all(2 <= g <= 5 for g in grid)


@given(mask_ratios())
def test_mask_ratios_default(ratio):
    assert 0.0 <= ratio <= 0.9


@given(mask_ratios(min_value=0.7, max_value=0.8))
def test_mask_ratios_range(ratio):
    assert 0.7 <= ratio <= 0.8


@given(masks((5, 7), mask_ratio=0.75))
def test_masks_fixed(mask):
    assert mask.dtype == np.bool_ and mask.shape == (5, 7)
    assert int(mask.sum()) == int(35 * 0.25)


RATIO = st.shared(mask_ratios(), key="ratio")
GRID = st.shared(grids(ndim=3, max_side=5), key="grid")


@given(masks(GRID, mask_ratio=RATIO, batch=3), GRID, RATIO)
def test_masks_batch_exact_keep(mask, grid, ratio):
    assert mask.shape == (3, *grid)
    keep = int(math.prod(grid) * (1 - ratio))
    assert mask.reshape(3, -1).sum(axis=1).tolist() == [keep] * 3


@given(masks())
def test_masks_default(mask):
    assert mask.dtype == np.bool_ and mask.ndim == 2
    assert mask.sum() >= int(mask.size * (1 - 0.9))


@given(window_problems())
def test_window_problems_default(problem):
    assert isinstance(problem, WindowProblem)
    mask, window, shift, counts = problem
    assert mask.ndim == len(window) == len(shift) == 2
    assert all(1 <= w <= g for w, g in zip(window, mask.shape, strict=True))
    assert all(0 <= s < w for s, w in zip(shift, window, strict=True))
    assert counts.dtype == np.int64
    assert np.array_equal(counts, gp.window_counts(mask, window, shift=shift))
    assert counts.sum() == mask.sum()


@given(window_problems(ndim=3, batch=2, mask_ratio=0.5))
def test_window_problems_batch_video(problem):
    mask, window, shift, counts = problem
    assert mask.ndim == 4 and mask.shape[0] == 2 and len(window) == 3
    assert counts.shape[0] == 2
    assert counts.reshape(2, -1).sum(axis=1).tolist() == mask.reshape(2, -1).sum(axis=1).tolist()
    assert np.array_equal(counts, gp.window_counts(mask, window, shift=shift))


@given(window_problems(grid=(9, 14), window=7, shift=3))
def test_window_problems_fixed_options(problem):
    assert problem.mask.shape == (9, 14)
    assert problem.window == (7, 7) and problem.shift == (3, 3)
    assert problem.counts.shape == (2, 3)


@given(window_problems(shift=(1, 2)))
def test_window_problems_fixed_shift_draws_fitting_windows(problem):
    assert problem.shift == (1, 2)
    assert problem.window[0] >= 2 and problem.window[1] >= 3


@given(window_problems(window=20))
def test_window_problems_grid_grows_to_the_window(problem):
    assert all(g >= 20 for g in problem.mask.shape)


@given(window_counts_arrays(window=(2, 3)))
def test_window_counts_arrays(counts):
    assert counts.dtype == np.int64 and counts.ndim == 2
    assert np.all(counts >= 0) and np.all(counts <= 6)


@given(solve_problems())
def test_solve_problems_default(problem):
    assert isinstance(problem, SolveProblem)
    counts, group_size = problem
    assert counts.dtype == np.int64 and counts.ndim == 1
    assert isinstance(group_size, int) and group_size >= 1
    assert np.all((counts >= 0) & (counts <= group_size))


@given(
    solve_problems(
        min_windows=3, max_windows=5, min_group_size=4, max_group_size=6, allow_empty=False
    )
)
def test_solve_problems_options(problem):
    counts, group_size = problem
    assert 3 <= counts.size <= 5 and 4 <= group_size <= 6
    assert np.all((counts >= 1) & (counts <= group_size))


@given(solve_problems(allow_empty=False))
def test_solve_problems_no_empty_window_and_no_empty_input(problem):
    assert problem.counts.size >= 1 and np.all(problem.counts >= 1)


BAD_OPTIONS = [
    ("ndim", lambda: grids(ndim=0)),
    ("ndim", lambda: grids(ndim=2.0)),
    ("min_side", lambda: grids(min_side=0)),
    ("max_side", lambda: grids(min_side=5, max_side=4)),
    ("min_value", lambda: mask_ratios(min_value=-0.1)),
    ("max_value", lambda: mask_ratios(max_value=1.0)),
    ("max_value", lambda: mask_ratios(min_value=0.5, max_value=0.4)),
    ("grid", lambda: masks((4, 0))),
    ("grid", lambda: masks(4)),
    ("mask_ratio", lambda: masks((4, 4), mask_ratio=1.0)),
    ("batch", lambda: masks((4, 4), batch=0)),
    ("window", lambda: window_problems(grid=(4, 4), window=5)),
    ("window", lambda: window_problems(window=0)),
    ("shift", lambda: window_problems(window=3, shift=3)),
    ("shift", lambda: window_problems(grid=(4, 4), shift=4)),
    ("shift", lambda: window_counts_arrays(shift=-1)),
    ("grid", lambda: window_problems(grid=(4, 4), ndim=3)),
    ("max_side", lambda: window_problems(window=20, max_side=16)),
    ("max_side", lambda: window_problems(max_side=0)),
    ("mask_ratio", lambda: window_problems(mask_ratio=-0.5)),
    ("batch", lambda: window_problems(batch=0)),
    ("max_windows", lambda: solve_problems(max_windows=-1)),
    ("max_windows", lambda: solve_problems(min_windows=5, max_windows=4)),
    ("min_windows", lambda: solve_problems(min_windows=-1)),
    ("min_group_size", lambda: solve_problems(min_group_size=0)),
    ("max_group_size", lambda: solve_problems(min_group_size=9, max_group_size=8)),
    ("allow_empty", lambda: solve_problems(allow_empty=1)),
]


@pytest.mark.parametrize(("name", "make"), BAD_OPTIONS)
def test_bad_options_raise_at_call_time(name, make):
    # Creating the strategy raises at once; nothing is drawn.
    with pytest.raises(GroupingValueError, match=f"^{name}: expected"):
        make()
