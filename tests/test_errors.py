"""One table of bad inputs (DESIGN.md, Errors): each raises a ValueError subclass at once."""

from __future__ import annotations

import numpy as np
import pytest

import grouping as gp

MASK = np.ones((8, 8), dtype=bool)

BAD_CALLS = [
    # (id, call, words the message must contain)
    ("window larger than group size", lambda: gp.solve([3, 9, 2], 8), ["group_size", "9"]),
    ("group size zero", lambda: gp.solve([1, 2], 0), ["group_size", "0"]),
    ("group size negative", lambda: gp.solve([1, 2], -4), ["group_size", "-4"]),
    ("group size float", lambda: gp.solve([1, 2], 4.0), ["group_size", "4.0"]),
    ("group size bool", lambda: gp.solve([1, 2], True), ["group_size"]),
    ("negative counts", lambda: gp.solve([3, -1, 2], 4), ["counts", "-1"]),
    ("float counts", lambda: gp.solve(np.array([1.5, 2.0]), 4), ["counts", "float"]),
    ("bool counts", lambda: gp.solve(np.array([True, False]), 4), ["counts", "bool"]),
    ("string counts", lambda: gp.solve(["a"], 4), ["counts"]),
    ("unknown strategy", lambda: gp.solve([1, 2], 4, strategy="magic"), ["strategy", "magic"]),
    ("unknown group size word", lambda: gp.solve([1, 2], "best"), ["group_size", "best"]),
    ("sweep without channels", lambda: gp.solve([1, 2], "sweep"), ["channels", "sweep"]),
    ("channels zero", lambda: gp.solve([1, 2], 4, channels=0), ["channels", "0"]),
    ("negative node limit", lambda: gp.solve([1, 2], 4, node_limit=-1), ["node_limit"]),
    (
        "max group size too small",
        lambda: gp.solve([5, 2], "sweep", channels=8, max_group_size=3),
        ["max_group_size", "5"],
    ),
    ("group size above max", lambda: gp.solve([5, 2], 9, max_group_size=6), ["group_size", "9"]),
    ("sweep table without channels", lambda: gp.sweep_group_sizes([1, 2], None), ["channels"]),
    ("mask ratio 1", lambda: gp.batch_mask((4, 4), 1.0), ["mask_ratio", "1.0"]),
    ("mask ratio negative", lambda: gp.batch_mask((4, 4), -0.1), ["mask_ratio", "-0.1"]),
    ("mask ratio string", lambda: gp.sample_masks(2, (4, 4), "0.5"), ["mask_ratio"]),
    ("grid with zero", lambda: gp.batch_mask((0, 4), 0.5), ["grid"]),
    ("bad rng", lambda: gp.batch_mask((4, 4), 0.5, rng="seed"), ["rng"]),
    ("batch zero", lambda: gp.sample_masks(0, (4, 4), 0.5), ["batch"]),
    ("groupwise ratio", lambda: gp.groupwise_masks(2, 3, 4, 1.5), ["mask_ratio"]),
    ("window larger than grid", lambda: gp.window_counts(MASK, 9), ["window", "9"]),
    ("window zero", lambda: gp.window_counts(MASK, 0), ["window", "0"]),
    ("shift not below window", lambda: gp.window_counts(MASK, 4, shift=4), ["shift", "4"]),
    ("non-bool mask", lambda: gp.window_counts(MASK.astype(int), 4), ["token_mask"]),
    ("window dims", lambda: gp.window_counts(MASK, (2, 2, 2)), ["ndim"]),
    ("upsample non-bool", lambda: gp.upsample_mask(np.ones((2, 2)), 2), ["mask"]),
    ("upsample factor zero", lambda: gp.upsample_mask(MASK, 0), ["factor"]),
    (
        "mask unit does not divide grid",
        lambda: gp.stage_grids(
            (224, 224), patch_stride=4, q_stride=2, num_stages=4, mask_unit_size=(5, 5)
        ),
        ["mask_unit_size"],
    ),
    (
        "mask unit not a multiple of the pooling",
        lambda: gp.stage_grids(
            (224, 224), patch_stride=4, q_stride=2, num_stages=4, mask_unit_size=(4, 4)
        ),
        ["mask_unit_size"],
    ),
    (
        "patch stride does not divide",
        lambda: gp.stage_grids((225, 224), patch_stride=4, q_stride=2, num_stages=4),
        ["patch_stride"],
    ),
]


@pytest.mark.parametrize(
    ("call", "words"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_bad_input_raises_clear_value_error(call, words):
    with pytest.raises(gp.GroupingValueError) as info:
        call()
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "expected" in message
    for word in words:
        assert word in message, message
