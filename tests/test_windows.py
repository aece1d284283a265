"""Window partition: ids, shapes and counts against plain loops over DESIGN.md's definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from naive_layout import (
    naive_visible_window_ids,
    naive_window_counts,
    naive_window_grid,
    naive_window_index,
)

import grouping as gp
from grouping.core.errors import GroupingValueError


@st.composite
def partitions(draw, ndim=None):
    """(grid, window, shift) with 2 or 3 axes, non-divisible grids and every shift."""
    if ndim is None:
        ndim = draw(st.sampled_from([2, 3]))
    top = 10 if ndim == 2 else 6
    grid = draw(st.tuples(*([st.integers(1, top)] * ndim)))
    window = tuple(draw(st.integers(1, g)) for g in grid)
    shift = tuple(draw(st.integers(0, w - 1)) for w in window)
    return grid, window, shift


def as_given(values, data):
    """Pass per-axis values as a tuple, or as an int when they are all equal (both forms)."""
    if len(set(values)) == 1 and data.draw(st.booleans()):
        return values[0]
    return values


@given(partitions(), st.data())
def test_window_grid_index_shape_match_loops(case, data):
    grid, window, shift = case
    win, sh = as_given(window, data), as_given(shift, data)
    assert gp.window_grid(grid, win, shift=sh) == naive_window_grid(grid, window, shift)
    ids = gp.window_index(grid, win, shift=sh)
    assert ids.dtype == np.int64
    assert np.array_equal(ids, naive_window_index(grid, window, shift))
    shape = gp.window_shape(grid, win, shift=sh)
    assert shape.dtype == np.int64
    assert np.array_equal(shape, naive_window_counts(np.ones(grid, dtype=bool), window, shift))


@given(partitions(), st.data())
def test_window_counts_single_mask(case, data):
    grid, window, shift = case
    mask = data.draw(hnp.arrays(np.bool_, grid))
    counts = gp.window_counts(mask, window, shift=shift)
    assert counts.dtype == np.int64
    assert counts.shape == naive_window_grid(grid, window, shift)
    assert np.array_equal(counts, naive_window_counts(mask, window, shift))
    assert int(counts.sum()) == int(mask.sum())
    assert np.all(counts <= gp.window_shape(grid, window, shift=shift))


@given(partitions(), st.integers(1, 3), st.data())
def test_window_counts_batch(case, batch, data):
    grid, window, shift = case
    masks = data.draw(hnp.arrays(np.bool_, (batch, *grid)))
    counts = gp.window_counts(masks, window, shift=shift)
    assert counts.shape == (batch, *naive_window_grid(grid, window, shift))
    assert np.array_equal(counts, naive_window_counts(masks, window, shift))
    assert (
        counts.reshape(batch, -1).sum(axis=1).tolist()
        == masks.reshape(batch, -1).sum(axis=1).tolist()
    )
    for b in range(batch):
        assert np.array_equal(counts[b], gp.window_counts(masks[b], window, shift=shift))


@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.data())
def test_window_counts_int_window_on_video(t, h, w, data):
    # An int window defaults to the last 2 axes; ndim=3 makes it 3-D.
    masks = data.draw(hnp.arrays(np.bool_, (t, h, w)))
    win = data.draw(st.integers(1, min(t, h, w)))
    assert np.array_equal(
        gp.window_counts(masks, win), naive_window_counts(masks, (win, win), (0, 0))
    )
    assert np.array_equal(
        gp.window_counts(masks, win, ndim=3), naive_window_counts(masks, (win,) * 3, (0,) * 3)
    )


@given(partitions(), st.data())
def test_visible_window_ids_single(case, data):
    grid, window, shift = case
    mask = data.draw(hnp.arrays(np.bool_, grid))
    ids = gp.visible_window_ids(mask, window, shift=shift)
    assert ids.dtype == np.int64
    assert ids.tolist() == naive_visible_window_ids(mask, window, shift)[0]
    num_windows = math.prod(naive_window_grid(grid, window, shift))
    counts = gp.window_counts(mask, window, shift=shift).ravel()
    assert np.array_equal(np.bincount(ids, minlength=num_windows), counts)


@given(partitions(), st.integers(1, 3), st.floats(0.0, 0.9), st.integers(0, 2**32 - 1))
def test_visible_window_ids_batch_collision_free(case, batch, ratio, seed):
    grid, window, shift = case
    masks = gp.sample_masks(batch, grid, ratio, rng=seed)
    ids = gp.visible_window_ids(masks, window, shift=shift)
    keep = gp.keep_count(math.prod(grid), ratio)
    assert ids.shape == (batch, keep)
    assert ids.tolist() == naive_visible_window_ids(masks, window, shift)
    num_windows = math.prod(naive_window_grid(grid, window, shift))
    # one id per (sample, window): sample b only uses [b * num_windows, (b + 1) * num_windows)
    for b in range(batch):
        assert np.all((ids[b] >= b * num_windows) & (ids[b] < (b + 1) * num_windows))
    counts = gp.window_counts(masks, window, shift=shift).ravel()
    assert np.array_equal(np.bincount(ids.ravel(), minlength=batch * num_windows), counts)


@given(st.sampled_from([(4, 1), (6, 2), (6, 3), (8, 3), (12, 5)]), st.integers(1, 3), st.data())
def test_partition_is_swin_cyclic_shift_with_attention_mask(ws, n, data):
    # Swin: roll by -shift, partition the rolled grid into w x w windows and split each window
    # by the regions slice(0, -w), slice(-w, -s), slice(-s, None) of its attention mask. Two
    # tokens attend to each other iff they share a window and a region; that must be the same
    # partition as window_index with this shift (grid divisible by w, as Swin pads to it).
    w, s = ws
    grid = (w * n, w * data.draw(st.integers(1, 3)))
    H, W = grid
    region = np.zeros(grid, dtype=np.int64)
    cnt = 0
    for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
        for wsl in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            region[hs, wsl] = cnt
            cnt += 1
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    # rolled position (r, c) holds the original token ((r + s) % H, (c + s) % W)
    orig = ((rows + s) % H) * W + (cols + s) % W
    swin_key = ((rows // w) * (W // w) + cols // w) * cnt + region
    key_of_token = np.empty(H * W, dtype=np.int64)
    key_of_token[orig.ravel()] = swin_key.ravel()
    ids = gp.window_index(grid, w, shift=s).ravel()
    # same partition: the map id -> key and key -> id are both functions
    pairs = set(zip(ids.tolist(), key_of_token.tolist(), strict=True))
    assert len(pairs) == len(set(ids.tolist())) == len(set(key_of_token.tolist()))


def test_shift_example():
    # 8 tokens, window 4, shift 2: windows [0, 2), [2, 6), [6, 8)
    assert gp.window_index((1, 8), (1, 4), shift=(0, 2)).tolist() == [[0, 0, 1, 1, 1, 1, 2, 2]]
    assert gp.window_grid((8, 8), 4, shift=2) == (3, 3)
    assert gp.window_shape((8, 8), 4, shift=2)[:, 0].tolist() == [4, 8, 4]


def test_empty_windows_are_counted():
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    assert gp.window_counts(mask, 2).tolist() == [[1, 0], [0, 0]]


BOOL_MASK = np.ones((6, 6), dtype=bool)
UNEQUAL_MASKS = np.stack([BOOL_MASK, ~np.eye(6, dtype=bool)])  # 36 and 30 visible

BAD_CALLS = [
    ("window", lambda: gp.window_counts(BOOL_MASK, 7)),
    ("window", lambda: gp.window_counts(BOOL_MASK, (3, 7))),
    ("window", lambda: gp.window_counts(BOOL_MASK, 0)),
    ("window", lambda: gp.window_index((6, 6), -3)),
    ("window", lambda: gp.window_grid((6, 6), (2, 2, 2))),
    ("shift", lambda: gp.window_counts(BOOL_MASK, 3, shift=3)),
    ("shift", lambda: gp.window_counts(BOOL_MASK, 3, shift=(0, 4))),
    ("shift", lambda: gp.window_index((6, 6), 3, shift=-1)),
    ("shift", lambda: gp.window_shape((6, 6), 1, shift=1)),
    ("token_mask", lambda: gp.window_counts(np.ones((6, 6), dtype=np.int64), 3)),
    ("token_mask", lambda: gp.visible_window_ids(UNEQUAL_MASKS, 3)),
    ("ndim", lambda: gp.window_counts(BOOL_MASK, 3, ndim=3)),
    ("grid", lambda: gp.window_index(6, 3)),
    ("grid", lambda: gp.window_index((6, 0), 3)),
]


@pytest.mark.parametrize(("name", "call"), BAD_CALLS)
def test_bad_arguments_raise(name, call):
    with pytest.raises(GroupingValueError, match=f"^{name}: expected"):
        call()


def test_empty_batch():
    masks = np.ones((0, 4, 4), dtype=bool)
    assert gp.window_counts(masks, 2).shape == (0, 2, 2)
    assert gp.visible_window_ids(masks, 2).shape == (0, 0)
