"""Tools for property tests of code built on ``grouping``.

* Hypothesis strategies (:mod:`grouping.testing.strategies`, re-exported here): ``grids``,
  ``mask_ratios``, ``masks``, ``window_problems``, ``window_counts_arrays``,
  ``solve_problems`` and their named tuples ``WindowProblem``, ``SolveProblem``.
* The plan checkers ``check_plan`` / ``is_valid_plan`` (from the core).

The strategies need ``hypothesis`` (the ``test`` extra); they are imported on first use, so
``grouping.testing`` and its other modules import without it.

Examples:
    >>> from hypothesis import given
    >>> import grouping as gp
    >>> from grouping.testing import masks
    >>> @given(masks((8, 8), mask_ratio=0.75))
    ... def test_keep_count(mask):
    ...     assert mask.sum() == 16
"""

from __future__ import annotations

from typing import Any

from grouping.core.plan import check_plan, is_valid_plan

_STRATEGIES = (
    "SolveProblem",
    "WindowProblem",
    "grids",
    "mask_ratios",
    "masks",
    "solve_problems",
    "window_counts_arrays",
    "window_problems",
)

__all__ = [*_STRATEGIES, "check_plan", "is_valid_plan"]


def __getattr__(name: str) -> Any:
    if name in _STRATEGIES:
        from grouping.testing import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'grouping.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
