"""The pure-algorithm core: numpy + numba only, never torch.

Masking, mask-unit layout, window partition and counts, the grouping solver, the cost model,
the plan type and its checker.
"""

from .errors import GroupingValueError, PlanError
from .plan import GroupingPlan, attention_cost, check_plan, is_valid_plan
from .windows import visible_window_ids, window_counts, window_grid, window_index, window_shape

__all__ = [
    "GroupingPlan",
    "GroupingValueError",
    "PlanError",
    "attention_cost",
    "check_plan",
    "is_valid_plan",
    "visible_window_ids",
    "window_counts",
    "window_grid",
    "window_index",
    "window_shape",
]
