"""The pure-algorithm core: numpy + numba only, never torch.

Masking, mask-unit layout, window partition and counts, the grouping solver, the cost model,
the plan type and its checker, and HiP's groups (assignment, padding, ungroup, regroup).
"""

from .errors import GroupingValueError, PlanError
from .groups import (
    REGROUP_TYPES,
    GroupLayout,
    GroupLayoutError,
    GroupSlots,
    assign_groups,
    check_group_layout,
    group_array,
    group_layout,
    groupwise_slots,
    regroup_index,
    ungroup_array,
)
from .layout import (
    MaskUnitLayout,
    mask_unit_ids,
    mask_unit_layout,
    reroll_index,
    stage_grids,
    unroll_index,
)
from .masking import (
    CheckedMask,
    as_bool_mask,
    batch_mask,
    check_mask,
    groupwise_masks,
    keep_count,
    sample_masks,
    upsample_mask,
)
from .plan import GroupingPlan, attention_cost, check_plan, is_valid_plan
from .solve import STRATEGIES, SweepResult, solve, sweep_group_sizes, warmup
from .windows import visible_window_ids, window_counts, window_grid, window_index, window_shape

__all__ = [
    "REGROUP_TYPES",
    "CheckedMask",
    "as_bool_mask",
    "check_mask",
    "GroupLayout",
    "GroupLayoutError",
    "GroupSlots",
    "assign_groups",
    "check_group_layout",
    "group_array",
    "group_layout",
    "groupwise_slots",
    "regroup_index",
    "ungroup_array",
    "GroupingPlan",
    "GroupingValueError",
    "MaskUnitLayout",
    "PlanError",
    "STRATEGIES",
    "SweepResult",
    "attention_cost",
    "batch_mask",
    "check_plan",
    "groupwise_masks",
    "is_valid_plan",
    "solve",
    "sweep_group_sizes",
    "keep_count",
    "mask_unit_ids",
    "mask_unit_layout",
    "reroll_index",
    "sample_masks",
    "stage_grids",
    "unroll_index",
    "upsample_mask",
    "visible_window_ids",
    "window_counts",
    "window_grid",
    "window_index",
    "window_shape",
    "warmup",
]
