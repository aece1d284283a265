"""Mask-unit layout: unroll / reroll against Hiera's literal steps, contiguity, pooling, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from naive_layout import naive_mask_unit_ids, naive_reroll_index, naive_unroll_index

import grouping as gp
from grouping.core.errors import GroupingValueError


@st.composite
def grids_and_schedules(draw):
    """A grid and a schedule whose product divides it (1-3 axes, <= ~1000 tokens)."""
    ndim = draw(st.integers(1, 3))
    steps = draw(st.integers(0, 3))
    schedule = [draw(st.tuples(*([st.integers(1, 3)] * ndim))) for _ in range(steps)]
    total = [math.prod(s[a] for s in schedule) for a in range(ndim)]
    rest = draw(st.tuples(*([st.integers(1, 3)] * ndim)))
    grid = tuple(t * r for t, r in zip(total, rest, strict=True))
    if math.prod(grid) > 1024:
        grid, schedule = rest, []
    return grid, schedule


@st.composite
def layouts(draw):
    """A Hiera-like configuration: 1-3 axes, q_pool <= num_stages - 1, small grids."""
    ndim = draw(st.integers(1, 3))
    q_stride = draw(st.tuples(*([st.integers(1, 3)] * ndim)))
    num_stages = draw(st.integers(1, 4))
    q_pool = draw(st.integers(0, num_stages - 1))
    extra = draw(st.tuples(*([st.sampled_from([1, 2, 3, 4])] * ndim)))
    mask_unit = tuple(s**q_pool * e for s, e in zip(q_stride, extra, strict=True))
    unit_grid = draw(st.tuples(*([st.integers(1, 3)] * ndim)))
    patch = draw(st.tuples(*([st.integers(1, 2)] * ndim)))
    tokens = tuple(u * n for u, n in zip(mask_unit, unit_grid, strict=True))
    if math.prod(tokens) > 2048:
        q_pool, mask_unit, tokens = (
            0,
            extra,
            tuple(e * n for e, n in zip(extra, unit_grid, strict=True)),
        )
    input_size = tuple(t * p for t, p in zip(tokens, patch, strict=True))
    use_int = ndim == 2 and q_stride[0] == q_stride[1] and draw(st.booleans())
    return gp.mask_unit_layout(
        input_size,
        patch_stride=patch,
        q_stride=q_stride[0] if use_int else q_stride,
        num_stages=num_stages,
        mask_unit_size=mask_unit,
        q_pool=q_pool,
    )


@given(grids_and_schedules())
def test_unroll_matches_hiera_steps(case):
    grid, schedule = case
    perm = gp.unroll_index(grid, schedule)
    assert perm.dtype == np.int64
    assert np.array_equal(perm, naive_unroll_index(grid, schedule))


@given(grids_and_schedules())
def test_reroll_matches_hiera_steps(case):
    grid, schedule = case
    inv = gp.reroll_index(grid, schedule)
    assert inv.dtype == np.int64
    assert np.array_equal(inv, naive_reroll_index(grid, schedule))


@given(grids_and_schedules())
def test_unroll_then_reroll_is_identity(case):
    grid, schedule = case
    perm = gp.unroll_index(grid, schedule)
    inv = gp.reroll_index(grid, schedule)
    x = np.arange(math.prod(grid)) * 7 + 3
    assert np.array_equal(x[perm][inv], x)
    assert np.array_equal(x[inv][perm], x)
    assert np.array_equal(np.sort(perm), np.arange(perm.size))


def test_unroll_small_example():
    # Stride 2 on a 4x4 grid: the four 2x2-pooling offsets in front, each a 2x2 grid.
    perm = gp.unroll_index((4, 4), [2])
    assert perm.reshape(4, 4).tolist() == [
        [0, 2, 8, 10],  # offset (0, 0)
        [1, 3, 9, 11],  # offset (0, 1)
        [4, 6, 12, 14],  # offset (1, 0)
        [5, 7, 13, 15],  # offset (1, 1)
    ]


@given(layouts())
def test_layout_fields(lay):
    k_pool = lay.q_pool
    assert len(lay.grids) == lay.num_stages == len(lay.mask_units)
    assert lay.schedule == (lay.q_stride,) * k_pool
    assert lay.unroll_schedule[:k_pool] == lay.schedule
    product = tuple(math.prod(s[a] for s in lay.unroll_schedule) for a in range(lay.ndim))
    assert product == lay.mask_unit_size
    for k, (grid, unit) in enumerate(zip(lay.grids, lay.mask_units, strict=True)):
        pooled = min(k, k_pool)
        assert grid == tuple(
            i // p // s**pooled
            for i, p, s in zip(lay.input_size, lay.patch_stride, lay.q_stride, strict=True)
        )
        assert unit == tuple(
            u // s**pooled for u, s in zip(lay.mask_unit_size, lay.q_stride, strict=True)
        )
        assert tuple(g // u for g, u in zip(grid, unit, strict=True)) == lay.mask_unit_grid
    assert lay.grids == tuple(
        gp.stage_grids(
            lay.input_size,
            patch_stride=lay.patch_stride,
            q_stride=lay.q_stride,
            num_stages=lay.num_stages,
            q_pool=lay.q_pool,
            mask_unit_size=lay.mask_unit_size,
        )
    )


@given(layouts())
def test_layout_unroll_matches_hiera_at_every_stage(lay):
    for k in range(lay.num_stages):
        schedule = list(lay.unroll_schedule[min(k, lay.q_pool) :])
        assert np.array_equal(lay.unroll_index(k), naive_unroll_index(lay.grids[k], schedule))
        assert np.array_equal(lay.reroll_index(k), naive_reroll_index(lay.grids[k], schedule))


@given(layouts())
def test_mask_units_contiguous_after_unroll(lay):
    # Position p of the unrolled order holds a token of mask unit p % num_mask_units, at every
    # stage, so Hiera's x.view(B, -1, num_mask_units, C) groups tokens by mask unit.
    num_units = lay.num_mask_units
    for k in range(lay.num_stages):
        perm = lay.unroll_index(k)
        ids = lay.mask_unit_ids(k).ravel()[perm]
        assert np.array_equal(ids, np.arange(perm.size) % num_units)


@given(layouts())
def test_pooling_consumes_the_leading_stride_block(lay):
    # Max-pooling x.view(B, s_k, -1, C) over the stage-(k-1) order gathers exactly the tokens
    # of one pooling window in each column and leaves the stage-k order.
    flat_stride = math.prod(lay.q_stride)
    for k in range(1, lay.q_pool + 1):
        prev = np.stack(np.unravel_index(lay.unroll_index(k - 1), lay.grids[k - 1]), axis=-1)
        cur = np.stack(np.unravel_index(lay.unroll_index(k), lay.grids[k]), axis=-1)
        pooled = prev.reshape(flat_stride, -1, lay.ndim) // np.array(lay.q_stride)
        assert np.all(pooled == cur[None])
    for k in range(lay.q_pool + 1, lay.num_stages):
        assert np.array_equal(lay.unroll_index(k), lay.unroll_index(lay.q_pool))


@given(layouts(), st.integers(0, 2**32 - 1))
def test_hiera_mask_tiling_selects_the_visible_units(lay, seed):
    # Hiera keeps x_unrolled[mask[p % num_mask_units]]; that must be the visible tokens of
    # upsample_mask(mask) (the token mask of the same mask units).
    unit_mask = gp.batch_mask(lay.mask_unit_grid, 0.5, rng=seed)
    token_mask = gp.upsample_mask(unit_mask, lay.mask_unit_size)
    perm = lay.unroll_index(0)
    tiled = unit_mask.ravel()[np.arange(perm.size) % lay.num_mask_units]
    assert np.array_equal(token_mask.ravel()[perm], tiled)


@given(layouts())
def test_mask_unit_ids_match_loop(lay):
    for k in range(lay.num_stages):
        ids = lay.mask_unit_ids(k)
        assert ids.dtype == np.int64
        assert ids.shape == lay.grids[k]
        assert np.array_equal(ids, naive_mask_unit_ids(lay.grids[k], lay.mask_units[k]))


def test_hiera_defaults():
    lay = gp.mask_unit_layout(
        (224, 224), patch_stride=4, q_stride=2, num_stages=4, mask_unit_size=8
    )
    assert lay.grids == ((56, 56), (28, 28), (14, 14), (7, 7))
    assert lay.mask_units == ((8, 8), (4, 4), (2, 2), (1, 1))
    assert lay.mask_unit_grid == (7, 7)
    assert lay.unroll_schedule == lay.schedule == ((2, 2),) * 3
    # q_pool=2: Hiera still unrolls num_stages - 1 = 3 times (mask unit 8 = 2**3)
    lay2 = gp.mask_unit_layout(
        (224, 224), patch_stride=4, q_stride=2, num_stages=4, mask_unit_size=8, q_pool=2
    )
    assert lay2.schedule == ((2, 2),) * 2
    assert lay2.unroll_schedule == ((2, 2),) * 3
    assert lay2.grids[-1] == lay2.grids[-2] == (14, 14)
    # Hiera video: q_stride (1, 2, 2), mask unit (1, 8, 8)
    video = gp.mask_unit_layout(
        (16, 224, 224),
        patch_stride=(2, 4, 4),
        q_stride=(1, 2, 2),
        num_stages=4,
        mask_unit_size=(1, 8, 8),
    )
    assert video.grids[0] == (8, 56, 56) and video.grids[-1] == (8, 7, 7)
    assert video.num_mask_units == 8 * 7 * 7


def test_stage_grids():
    assert gp.stage_grids((224, 224), patch_stride=4, q_stride=2, num_stages=4) == [
        (56, 56),
        (28, 28),
        (14, 14),
        (7, 7),
    ]
    assert gp.stage_grids((192, 256), patch_stride=4, q_stride=2, num_stages=3, q_pool=1) == [
        (48, 64),
        (24, 32),
        (24, 32),
    ]
    assert gp.stage_grids((12,), patch_stride=1, q_stride=3, num_stages=1) == [(12,)]


LAYOUT_KW = dict(patch_stride=4, q_stride=2, num_stages=4)

BAD_CALLS = [
    ("input_size", lambda: gp.stage_grids(224, **LAYOUT_KW)),
    ("input_size", lambda: gp.stage_grids((), **LAYOUT_KW)),
    ("patch_stride", lambda: gp.stage_grids((226, 224), **LAYOUT_KW)),
    ("patch_stride", lambda: gp.stage_grids((224, 224), patch_stride=0, q_stride=2, num_stages=4)),
    ("q_stride", lambda: gp.stage_grids((200, 224), **LAYOUT_KW)),  # 50 -> 25 -> 12.5
    ("q_stride", lambda: gp.stage_grids((224, 224), patch_stride=4, q_stride=(2,), num_stages=4)),
    ("num_stages", lambda: gp.stage_grids((224, 224), patch_stride=4, q_stride=2, num_stages=0)),
    ("q_pool", lambda: gp.stage_grids((224, 224), **LAYOUT_KW, q_pool=4)),
    ("q_pool", lambda: gp.stage_grids((224, 224), **LAYOUT_KW, q_pool=-1)),
    ("mask_unit_size", lambda: gp.stage_grids((224, 224), **LAYOUT_KW, mask_unit_size=16)),
    ("mask_unit_size", lambda: gp.stage_grids((224, 224), **LAYOUT_KW, mask_unit_size=4)),
    ("mask_unit_size", lambda: gp.mask_unit_layout((224, 224), **LAYOUT_KW, mask_unit_size=None)),
    ("mask_unit_size", lambda: gp.mask_unit_layout((224, 224), **LAYOUT_KW, mask_unit_size=(8,))),
    ("schedule", lambda: gp.unroll_index((4, 6), [4])),
    ("schedule", lambda: gp.unroll_index((4, 4), [(2, 2, 2)])),
    ("schedule", lambda: gp.reroll_index((4, 4), 2)),
    ("grid", lambda: gp.unroll_index((4, 0), [])),
    ("mask_unit", lambda: gp.mask_unit_ids((4, 6), 4)),
    ("mask_unit", lambda: gp.mask_unit_ids((4, 6), 0)),
]


@pytest.mark.parametrize(("name", "call"), BAD_CALLS)
def test_bad_arguments_raise(name, call):
    with pytest.raises(GroupingValueError, match=f"^{name}: expected"):
        call()


def test_mask_unit_error_names_the_pooling_constraint():
    with pytest.raises(GroupingValueError, match=r"multiple of q_stride\*\*q_pool = \(8, 8\)"):
        gp.stage_grids((256, 256), **LAYOUT_KW, mask_unit_size=4)


def test_bad_stage_raises():
    lay = gp.mask_unit_layout((64, 64), patch_stride=4, q_stride=2, num_stages=2, mask_unit_size=4)
    for stage in (-1, 2, 1.0):
        with pytest.raises(GroupingValueError, match="^stage: expected"):
            lay.unroll_index(stage)
