"""Masking: exact MAE keep counts, reproducible draws, upsampling against a plain loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from naive_layout import naive_upsample

import grouping as gp
from grouping.core.errors import GroupingValueError

grids = st.integers(1, 3).flatmap(lambda n: st.tuples(*([st.integers(1, 9)] * n)))
ratios = st.floats(0.0, 0.99, allow_nan=False) | st.sampled_from([0.0, 0.5, 0.6, 0.75, 0.9])
seeds = st.integers(0, 2**32 - 1)


def mae_keep(num_tokens: int, ratio: float) -> int:
    return int(num_tokens * (1 - ratio))


@given(grid=grids, ratio=ratios, seed=seeds)
def test_batch_mask_keep_count(grid, ratio, seed):
    mask = gp.batch_mask(grid, ratio, rng=seed)
    assert mask.dtype == np.bool_
    assert mask.shape == grid
    assert (
        int(mask.sum()) == mae_keep(math.prod(grid), ratio) == gp.keep_count(math.prod(grid), ratio)
    )


@given(batch=st.integers(1, 4), grid=grids, ratio=ratios, seed=seeds)
def test_sample_masks_keep_count_per_sample(batch, grid, ratio, seed):
    masks = gp.sample_masks(batch, grid, ratio, rng=seed)
    assert masks.dtype == np.bool_
    assert masks.shape == (batch, *grid)
    keep = mae_keep(math.prod(grid), ratio)
    assert masks.reshape(batch, -1).sum(axis=1).tolist() == [keep] * batch


@given(grid=grids, ratio=ratios, seed=seeds)
def test_batch_mask_is_the_first_sample_mask(grid, ratio, seed):
    # One mask for the whole batch is drawn exactly as a single per-sample mask.
    assert np.array_equal(
        gp.batch_mask(grid, ratio, rng=seed), gp.sample_masks(1, grid, ratio, rng=seed)[0]
    )


@given(grid=grids, ratio=ratios, seed=seeds)
def test_batch_mask_is_mae_noise_argsort(grid, ratio, seed):
    # The documented drawing: uniform noise, stable argsort, keep the smallest.
    num_tokens = math.prod(grid)
    noise = np.random.default_rng(seed).random(num_tokens)
    expected = np.zeros(num_tokens, dtype=bool)
    expected[np.argsort(noise, kind="stable")[: mae_keep(num_tokens, ratio)]] = True
    assert np.array_equal(gp.batch_mask(grid, ratio, rng=seed).ravel(), expected)


@given(batch=st.integers(1, 3), grid=grids, ratio=ratios, seed=seeds)
def test_same_seed_same_mask(batch, grid, ratio, seed):
    assert np.array_equal(
        gp.batch_mask(grid, ratio, rng=seed), gp.batch_mask(grid, ratio, rng=seed)
    )
    a = gp.sample_masks(batch, grid, ratio, rng=seed)
    b = gp.sample_masks(batch, grid, ratio, rng=np.random.default_rng(seed))
    assert np.array_equal(a, b)
    c = gp.groupwise_masks(batch, 2, 5, ratio, rng=seed)
    assert np.array_equal(c, gp.groupwise_masks(batch, 2, 5, ratio, rng=seed))


def test_fixed_seed_regression():
    # A change of the drawing (noise, sort, keep rule) changes these values on purpose.
    assert np.flatnonzero(gp.batch_mask((4, 4), 0.75, rng=0)).tolist() == [2, 3, 11, 13]
    assert np.flatnonzero(gp.batch_mask((2, 3, 4), 0.5, rng=2024)).tolist() == [
        1, 2, 5, 6, 7, 8, 9, 12, 14, 19, 20, 22,
    ]  # fmt: skip
    masks = gp.sample_masks(2, (3, 5), 0.6, rng=123)
    assert [np.flatnonzero(m).tolist() for m in masks] == [
        [1, 2, 3, 4, 11, 13],
        [2, 5, 6, 9, 10, 11],
    ]
    assert gp.groupwise_masks(1, 2, 6, 0.5, rng=7).astype(int).tolist() == [
        [[1, 0, 0, 1, 1, 0], [1, 0, 0, 0, 1, 1]]
    ]


def test_generator_is_advanced():
    rng = np.random.default_rng(0)
    first = gp.batch_mask((8, 8), 0.5, rng=rng)
    second = gp.batch_mask((8, 8), 0.5, rng=rng)
    assert not np.array_equal(first, second)


def test_sample_masks_differ_across_the_batch():
    masks = gp.sample_masks(4, (14, 14), 0.75, rng=0)
    assert len({m.tobytes() for m in masks}) == 4


@given(
    batch=st.integers(1, 3),
    num_groups=st.integers(1, 4),
    group_len=st.integers(1, 12),
    ratio=ratios,
    seed=seeds,
)
def test_groupwise_keep_count_per_group(batch, num_groups, group_len, ratio, seed):
    masks = gp.groupwise_masks(batch, num_groups, group_len, ratio, rng=seed)
    assert masks.dtype == np.bool_
    assert masks.shape == (batch, num_groups, group_len)
    assert np.all(masks.sum(axis=-1) == mae_keep(group_len, ratio))


@given(
    lead=st.lists(st.integers(1, 2), max_size=2),
    data=st.data(),
)
def test_upsample_matches_loop(lead, data):
    ndim = data.draw(st.integers(1, 3))
    grid = data.draw(st.tuples(*([st.integers(1, 4)] * ndim)))
    factor = data.draw(st.tuples(*([st.integers(1, 3)] * ndim)))
    mask = data.draw(hnp.arrays(np.bool_, (*lead, *grid)))
    out = gp.upsample_mask(mask, factor)
    assert out.dtype == np.bool_
    assert out.shape == (*lead, *(g * f for g, f in zip(grid, factor, strict=True)))
    assert out.flags.c_contiguous
    assert np.array_equal(out, naive_upsample(mask, factor))
    assert int(out.sum()) == int(mask.sum()) * math.prod(factor)


@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), f=st.integers(1, 3))
def test_upsample_int_factor_default_axes(shape, f):
    mask = np.random.default_rng(0).random(shape) < 0.5
    ndim = min(2, mask.ndim)
    out = gp.upsample_mask(mask, f)
    assert np.array_equal(out, naive_upsample(mask, (f,) * ndim))
    # ndim=... overrides the default (e.g. video with an int factor)
    out_all = gp.upsample_mask(mask, f, ndim=mask.ndim)
    assert np.array_equal(out_all, naive_upsample(mask, (f,) * mask.ndim))


def test_upsample_mask_unit_example():
    units = gp.batch_mask((7, 7), 0.75, rng=0)
    tokens = gp.upsample_mask(units, 8)
    assert tokens.shape == (56, 56)
    assert tokens.sum() == units.sum() * 64
    assert np.array_equal(tokens[::8, ::8], units)


BAD_CALLS = [
    ("grid", lambda: gp.batch_mask(4, 0.5)),
    ("grid", lambda: gp.batch_mask((), 0.5)),
    ("grid", lambda: gp.batch_mask((4, 0), 0.5)),
    ("grid", lambda: gp.batch_mask((4, -2), 0.5)),
    ("grid", lambda: gp.batch_mask((4, 2.5), 0.5)),
    ("grid", lambda: gp.batch_mask("44", 0.5)),
    ("mask_ratio", lambda: gp.batch_mask((4, 4), 1.0)),
    ("mask_ratio", lambda: gp.batch_mask((4, 4), -0.1)),
    ("mask_ratio", lambda: gp.batch_mask((4, 4), float("nan"))),
    ("mask_ratio", lambda: gp.batch_mask((4, 4), "0.5")),
    ("mask_ratio", lambda: gp.sample_masks(2, (4, 4), 75)),
    ("rng", lambda: gp.batch_mask((4, 4), 0.5, rng=-1)),
    ("rng", lambda: gp.batch_mask((4, 4), 0.5, rng="seed")),
    ("rng", lambda: gp.batch_mask((4, 4), 0.5, rng=1.5)),
    ("batch", lambda: gp.sample_masks(0, (4, 4), 0.5)),
    ("batch", lambda: gp.sample_masks(2.0, (4, 4), 0.5)),
    ("batch", lambda: gp.groupwise_masks(-1, 2, 4, 0.5)),
    ("num_groups", lambda: gp.groupwise_masks(1, 0, 4, 0.5)),
    ("group_len", lambda: gp.groupwise_masks(1, 2, 0, 0.5)),
    ("mask_ratio", lambda: gp.groupwise_masks(1, 2, 4, 1.5)),
    ("mask", lambda: gp.upsample_mask(np.ones((2, 2), dtype=np.int64), 2)),
    ("mask", lambda: gp.upsample_mask(np.array(True), 2)),
    ("factor", lambda: gp.upsample_mask(np.ones((2, 2), dtype=bool), 0)),
    ("factor", lambda: gp.upsample_mask(np.ones((2, 2), dtype=bool), (2, 2), ndim=1)),
    ("ndim", lambda: gp.upsample_mask(np.ones((2, 2), dtype=bool), (2, 2, 2))),
    ("ndim", lambda: gp.upsample_mask(np.ones((2, 2), dtype=bool), 2, ndim=0)),
    ("num_tokens", lambda: gp.keep_count(-1, 0.5)),
]


@pytest.mark.parametrize(("name", "call"), BAD_CALLS)
def test_bad_arguments_raise(name, call):
    with pytest.raises(GroupingValueError, match=f"^{name}: expected") as info:
        call()
    assert isinstance(info.value, ValueError)
    assert "received" in str(info.value)


# -- check_mask: the one mask check every family calls -------------------------------------------


def _naive_check(arr, grid, batch, count_axes):
    """Plain-Python statement of check_mask's rule: (mask, shared, visible) or None."""
    arr = np.asarray(arr)
    if arr.dtype != np.bool_:
        return None
    if arr.shape == grid:
        rows, shared = [arr], True
    elif arr.ndim == len(grid) + 1 and arr.shape[1:] == grid:
        rows, shared = list(arr), False
        if batch is not None and len(rows) != batch:
            return None
    else:
        return None
    axes = len(grid) if count_axes is None else count_axes
    size = math.prod(grid[len(grid) - axes :])
    counts = [int(v) for row in rows for v in row.reshape(-1, size).sum(axis=1)]
    if len(set(counts)) != 1 or not 1 <= counts[0] <= size:
        return None
    return arr, shared, counts[0]


@given(
    grid=st.integers(1, 2).flatmap(lambda n: st.tuples(*([st.integers(1, 4)] * n))),
    lead=st.sampled_from([(), (1,), (2,), (3,)]),
    batch=st.sampled_from([None, 2]),
    per_row=st.booleans(),
    data=st.data(),
)
def test_check_mask_against_a_plain_statement(grid, lead, batch, per_row, data):
    arr = data.draw(hnp.arrays(np.bool_, (*lead, *grid)))
    count_axes = 1 if per_row and len(grid) == 2 else None
    expected = _naive_check(arr, grid, batch, count_axes)
    if expected is None:
        with pytest.raises(GroupingValueError, match="^mask: expected"):
            gp.core.check_mask(arr, grid, batch=batch, count_axes=count_axes)
        return
    checked = gp.core.check_mask(arr, grid, batch=batch, count_axes=count_axes)
    assert np.array_equal(checked.mask, expected[0])
    assert (checked.shared, checked.visible) == expected[1:]
    assert checked.mask.flags.c_contiguous and not checked.mask.flags.writeable
    assert not np.shares_memory(checked.mask, arr)


def test_check_mask_flat_masks_torch_and_messages():
    torch = pytest.importorskip("torch")
    grid = (2, 3)
    flat = np.array([True, False, True, False, True, False])
    assert gp.core.check_mask(flat, grid, flat_ok=True).mask.shape == grid
    rows = np.stack([flat, ~flat])
    checked = gp.core.check_mask(torch.from_numpy(rows), grid, flat_ok=True, batch=2)
    assert checked.mask.shape == (2, *grid) and not checked.shared and checked.visible == 3
    with pytest.raises(GroupingValueError, match="mask: expected a bool"):
        gp.core.check_mask(flat, grid)  # flat only with flat_ok
    with pytest.raises(GroupingValueError, match="2 per-sample masks"):
        gp.core.check_mask(np.ones((3, *grid), bool), grid, batch=2)
    with pytest.raises(GroupingValueError, match="equal keep counts"):
        gp.core.check_mask(np.stack([flat, ~flat | flat]), grid, flat_ok=True, word="keep")
    with pytest.raises(GroupingValueError, match="at least one visible slot and at most 2"):
        gp.core.check_mask(np.ones(grid, bool), grid, count_axes=1, max_visible=2, unit="slot")
    with pytest.raises(GroupingValueError, match="unit_mask: expected"):
        gp.core.check_mask(torch.ones(grid), grid, name="unit_mask")
