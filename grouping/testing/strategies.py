"""Hypothesis strategies for property tests of code built on ``grouping``.

In the style of ``hypothesis.extra.numpy``: every strategy takes keyword-only options, ``None``
means "draw it" (or infer it from the other options), options are validated when the strategy
is *created* (a bad option raises :class:`~grouping.core.errors.GroupingValueError` at once,
not at draw time), and compound draws are named tuples.

Conventions (DESIGN.md): masks are bool, **True = visible**; grids are row-major; a mask of
``L`` tokens at ratio ``r`` keeps exactly ``int(L * (1 - r))`` tokens (MAE); window partitions
with a shift have partial border windows; counts are int64, empty windows included.

Examples:
    >>> from hypothesis import given
    >>> from grouping.testing import solve_problems
    >>> import grouping as gp
    >>> @given(solve_problems(max_windows=20, max_group_size=32))
    ... def test_plans_are_valid(problem):
    ...     plan = gp.solve(problem.counts, problem.group_size)
    ...     gp.check_plan(plan, problem.counts)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

from grouping.core.errors import as_int_tuple, check_int, check_mask_ratio, invalid
from grouping.core.windows import window_counts

__all__ = [
    "SolveProblem",
    "WindowProblem",
    "grids",
    "mask_ratios",
    "masks",
    "solve_problems",
    "window_counts_arrays",
    "window_problems",
]

#: Mask ratios used in practice (MAE, SimMIM, GreenMIM, Hiera), mixed into ``mask_ratios``.
COMMON_MASK_RATIOS = (0.0, 0.4, 0.5, 0.6, 0.75, 0.9)


class WindowProblem(NamedTuple):
    """A mask, a window partition and its counts (drawn by :func:`window_problems`).

    Attributes:
        mask: bool ``[*grid]`` or ``[B, *grid]``, True = visible.
        window: window size per spatial axis.
        shift: partition offset per spatial axis, ``0 <= shift < window``.
        counts: int64 ``[*window_grid]`` (or ``[B, *window_grid]``):
            ``window_counts(mask, window, shift=shift)``.
    """

    mask: NDArray[np.bool_]
    window: tuple[int, ...]
    shift: tuple[int, ...]
    counts: NDArray[np.int64]


class SolveProblem(NamedTuple):
    """An input of :func:`grouping.solve` (drawn by :func:`solve_problems`).

    Attributes:
        counts: int64 ``[N]``, visible tokens per window, each in ``[0, group_size]``.
        group_size: the group capacity, >= 1.
    """

    counts: NDArray[np.int64]
    group_size: int


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(name, "True or False", value)
    return bool(value)


def _check_range(lo_name: str, lo: int, hi_name: str, hi: int) -> None:
    if hi < lo:
        raise invalid(hi_name, f"an int >= {lo_name} = {lo}", hi)


def _fixed_grid(grid: Any) -> tuple[int, ...]:
    expected = "None, a SearchStrategy or a non-empty tuple of positive ints"
    if isinstance(grid, (str, bytes)) or not hasattr(grid, "__len__") or len(grid) == 0:
        raise invalid("grid", expected, grid)
    return as_int_tuple("grid", grid, len(grid))


def grids(
    *, ndim: int = 2, min_side: int = 1, max_side: int = 16
) -> st.SearchStrategy[tuple[int, ...]]:
    """Token grids: tuples of ``ndim`` sides in ``[min_side, max_side]`` (non-square too).

    Args:
        ndim: number of spatial axes (2 for images, 3 for video), >= 1.
        min_side: smallest side, >= 1.
        max_side: largest side, >= ``min_side``.

    Returns:
        A strategy of tuples of ints, e.g. ``(7, 12)``.

    Examples:
        >>> grids(ndim=3, max_side=4).example()  # doctest: +SKIP
        (2, 4, 1)
    """
    ndim = check_int("ndim", ndim, minimum=1)
    min_side = check_int("min_side", min_side, minimum=1)
    max_side = check_int("max_side", max_side, minimum=1)
    _check_range("min_side", min_side, "max_side", max_side)
    return st.tuples(*([st.integers(min_side, max_side)] * ndim))


def mask_ratios(*, min_value: float = 0.0, max_value: float = 0.9) -> st.SearchStrategy[float]:
    """Mask ratios in ``[min_value, max_value]``, a subset of ``[0, 1)``.

    Common ratios (0.4, 0.5, 0.6, 0.75, 0.9, ...) in range are drawn more often than others.

    Args:
        min_value: smallest ratio, in ``[0, 1)``.
        max_value: largest ratio, in ``[min_value, 1)``.

    Returns:
        A strategy of floats.
    """
    lo = check_mask_ratio(min_value, "min_value")
    hi = check_mask_ratio(max_value, "max_value")
    if hi < lo:
        raise invalid("max_value", f"a float >= min_value = {lo}", max_value)
    common = [r for r in COMMON_MASK_RATIOS if lo <= r <= hi]
    floats = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return st.sampled_from(common) | floats if common else floats


def _as_strategy(value: Any, fixed: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, st.SearchStrategy):
        return value
    return st.just(fixed(value))


def _draw_mask(
    draw: Any, grid: tuple[int, ...], ratio: float, batch: int | None
) -> NDArray[np.bool_]:
    num_tokens = math.prod(grid)
    keep = int(num_tokens * (1 - ratio))
    rows = []
    for _ in range(1 if batch is None else batch):
        order = draw(st.permutations(range(num_tokens)))
        row = np.zeros(num_tokens, dtype=np.bool_)
        row[np.asarray(order[:keep], dtype=np.int64)] = True
        rows.append(row)
    mask = np.stack(rows)
    return mask.reshape(grid) if batch is None else mask.reshape(batch, *grid)


def masks(
    grid: tuple[int, ...] | st.SearchStrategy[tuple[int, ...]] | None = None,
    *,
    mask_ratio: float | st.SearchStrategy[float] | None = None,
    batch: int | None = None,
) -> st.SearchStrategy[NDArray[np.bool_]]:
    """Random masks with MAE's exact keep count.

    Args:
        grid: the grid, a strategy of grids, or None for ``grids()``.
        mask_ratio: the ratio in ``[0, 1)``, a strategy of ratios, or None for
            ``mask_ratios()``.
        batch: None for one mask ``[*grid]``, or ``B >= 1`` for ``B`` independent masks
            ``[B, *grid]`` with equal keep counts.

    Returns:
        A strategy of bool arrays (True = visible) with exactly ``int(L * (1 - mask_ratio))``
        True entries per mask, ``L = prod(grid)``. Masks shrink towards keeping the first
        tokens in row-major order.

    Examples:
        >>> masks((4, 4), mask_ratio=0.75).example().sum()  # doctest: +SKIP
        np.int64(4)
    """
    grid_st = grids() if grid is None else _as_strategy(grid, _fixed_grid)
    ratio_st = mask_ratios() if mask_ratio is None else _as_strategy(mask_ratio, check_mask_ratio)
    if batch is not None:
        batch = check_int("batch", batch, minimum=1)

    @st.composite
    def _masks(draw: Any) -> NDArray[np.bool_]:
        g = _fixed_grid(draw(grid_st))
        ratio = check_mask_ratio(draw(ratio_st))
        return _draw_mask(draw, g, ratio, batch)

    return _masks()


def _fixed_axes(name: str, value: Any, ndim: int, minimum: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    return as_int_tuple(name, value, ndim, minimum=minimum)


def window_problems(
    *,
    grid: tuple[int, ...] | None = None,
    window: int | tuple[int, ...] | None = None,
    shift: int | tuple[int, ...] | None = None,
    mask_ratio: float | st.SearchStrategy[float] | None = None,
    batch: int | None = None,
    ndim: int | None = None,
    max_side: int | None = None,
) -> st.SearchStrategy[WindowProblem]:
    """A mask, a window partition (window and shift) and its window counts.

    Args:
        grid: a fixed grid, or None to draw one (sides up to ``max_side``, at least the window).
        window: a fixed window (int or per axis), or None to draw one per axis in
            ``[1, side]`` (in ``[shift + 1, side]`` for a fixed shift).
        shift: a fixed shift (int or per axis, ``0 <= shift < window``), or None to draw one in
            ``[0, window)`` per axis.
        mask_ratio: a ratio in ``[0, 1)``, a strategy of ratios, or None for ``mask_ratios()``.
        batch: None for one mask, or ``B >= 1`` for ``B`` masks with equal keep counts.
        ndim: number of spatial axes; default ``len(grid)``, else the length of a tuple
            ``window`` or ``shift``, else 2.
        max_side: largest side of a drawn grid; default 16 for up to 2 axes, else 8 (at least
            the window). Ignored for a fixed grid.

    Returns:
        A strategy of :class:`WindowProblem` whose ``counts`` equal
        ``window_counts(mask, window, shift=shift)``.

    Raises:
        GroupingValueError: at call time, for inconsistent options (a window larger than a
            fixed grid, a shift not below the window, ...).
    """
    fixed_grid = None if grid is None else _fixed_grid(grid)
    if ndim is None:
        if fixed_grid is not None:
            ndim = len(fixed_grid)
        elif isinstance(window, (tuple, list)):
            ndim = len(window)
        elif isinstance(shift, (tuple, list)):
            ndim = len(shift)
        else:
            ndim = 2
    ndim = check_int("ndim", ndim, minimum=1)
    if fixed_grid is not None and len(fixed_grid) != ndim:
        raise invalid("grid", f"a grid with ndim = {ndim} axes", grid)
    win = _fixed_axes("window", window, ndim, 1)
    sh = _fixed_axes("shift", shift, ndim, 0)
    if win is not None and sh is not None and any(s >= w for s, w in zip(sh, win, strict=True)):
        raise invalid("shift", f"0 <= shift < window {win} on every axis", shift)
    # smallest window (and so side) each axis needs
    need = win if win is not None else tuple(s + 1 for s in sh) if sh is not None else (1,) * ndim
    if fixed_grid is not None:
        if any(n > g for n, g in zip(need, fixed_grid, strict=True)):
            what = "window" if win is not None else "shift"
            raise invalid(
                what,
                f"a {what} that fits the grid {fixed_grid} (window <= grid, shift < window)",
                window if win is not None else shift,
            )
        grid_st: st.SearchStrategy[tuple[int, ...]] = st.just(fixed_grid)
    else:
        if max_side is None:
            max_side = max(16 if ndim <= 2 else 8, *need)
        max_side = check_int("max_side", max_side, minimum=1)
        if max(need) > max_side:
            raise invalid("max_side", f"an int >= the window {max(need)}", max_side)
        grid_st = st.tuples(*(st.integers(n, max_side) for n in need))
    ratio_st = mask_ratios() if mask_ratio is None else _as_strategy(mask_ratio, check_mask_ratio)
    if batch is not None:
        batch = check_int("batch", batch, minimum=1)

    @st.composite
    def _problems(draw: Any) -> WindowProblem:
        g = draw(grid_st)
        if win is None:
            lows = (1,) * ndim if sh is None else tuple(s + 1 for s in sh)
            w = tuple(draw(st.integers(lo, side)) for lo, side in zip(lows, g, strict=True))
        else:
            w = win
        s = sh if sh is not None else tuple(draw(st.integers(0, n - 1)) for n in w)
        mask = _draw_mask(draw, g, check_mask_ratio(draw(ratio_st)), batch)
        counts = window_counts(mask, w, shift=s, ndim=ndim)
        return WindowProblem(mask=mask, window=w, shift=s, counts=counts)

    return _problems()


def window_counts_arrays(
    *,
    grid: tuple[int, ...] | None = None,
    window: int | tuple[int, ...] | None = None,
    shift: int | tuple[int, ...] | None = None,
    mask_ratio: float | st.SearchStrategy[float] | None = None,
    batch: int | None = None,
    ndim: int | None = None,
    max_side: int | None = None,
) -> st.SearchStrategy[NDArray[np.int64]]:
    """The ``counts`` of :func:`window_problems` alone (same options).

    Returns:
        A strategy of int64 arrays ``[*window_grid]`` (or ``[B, *window_grid]``): visible
        tokens per window of a random MAE mask, empty windows included.
    """
    return window_problems(
        grid=grid,
        window=window,
        shift=shift,
        mask_ratio=mask_ratio,
        batch=batch,
        ndim=ndim,
        max_side=max_side,
    ).map(lambda problem: problem.counts)


def solve_problems(
    *,
    min_windows: int | None = None,
    max_windows: int = 48,
    min_group_size: int = 1,
    max_group_size: int = 64,
    allow_empty: bool = True,
) -> st.SearchStrategy[SolveProblem]:
    """Inputs of the grouping solver: counts per window and a group size they all fit.

    Args:
        min_windows: fewest windows; default 0 if ``allow_empty`` (so the empty input is
            drawn too), else 1.
        max_windows: most windows, >= ``min_windows``.
        min_group_size: smallest group size, >= 1.
        max_group_size: largest group size, >= ``min_group_size``.
        allow_empty: whether empty windows (count 0) and, with the default ``min_windows``, the
            empty input may be drawn.

    Returns:
        A strategy of :class:`SolveProblem` ``(counts, group_size)`` with int64 ``counts`` of
        shape ``[N]`` and every count in ``[0, group_size]`` (``[1, group_size]`` if not
        ``allow_empty``).
    """
    allow_empty = _check_bool("allow_empty", allow_empty)
    if min_windows is None:
        min_windows = 0 if allow_empty else 1
    min_windows = check_int("min_windows", min_windows, minimum=0)
    max_windows = check_int("max_windows", max_windows, minimum=0)
    _check_range("min_windows", min_windows, "max_windows", max_windows)
    min_group_size = check_int("min_group_size", min_group_size, minimum=1)
    max_group_size = check_int("max_group_size", max_group_size, minimum=1)
    _check_range("min_group_size", min_group_size, "max_group_size", max_group_size)
    low = 0 if allow_empty else 1

    @st.composite
    def _problems(draw: Any) -> SolveProblem:
        g = draw(st.integers(min_group_size, max_group_size))
        counts = draw(st.lists(st.integers(low, g), min_size=min_windows, max_size=max_windows))
        return SolveProblem(counts=np.array(counts, dtype=np.int64), group_size=g)

    return _problems()
