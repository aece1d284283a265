"""HiP's groups in the core: assignment (minimax by brute force), padding, ungroup, regroup."""

from __future__ import annotations

import dataclasses
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import grouping as gp
from grouping.core.errors import GroupingValueError

dims_st = st.lists(st.integers(1, 40), min_size=1, max_size=4)


@st.composite
def dims_and_groups(draw, max_extra: int = 8):
    dims = draw(dims_st)
    return dims, len(dims) + draw(st.integers(0, max_extra))


def compositions(total: int, parts: int):
    """Every tuple of ``parts`` ints >= 1 summing to ``total``."""
    for cuts in itertools.combinations(range(1, total), parts - 1):
        bounds = (0, *cuts, total)
        yield tuple(b - a for a, b in zip(bounds, bounds[1:], strict=False))


def greedy_as_published(num_groups, dims):
    """The assignment as the HiP code states it: argmax of current N/g, floats, first on ties."""
    groups = [1] * len(dims)
    per_group = list(dims)
    for _ in range(num_groups - len(dims)):
        m = int(np.argmax(per_group))
        groups[m] += 1
        per_group[m] = dims[m] / groups[m]
    return tuple(groups), math.ceil(max(per_group))


def padded_like_published(x, num_groups, dims):
    """Grouping as ConstNumGrouper states it: pad each modality, split, pad each group."""
    groups, group_len = greedy_as_published(num_groups, dims)
    out, start = [], 0
    for n, g in zip(dims, groups, strict=True):
        value = x[start : start + n]
        start += n
        final = g * math.ceil(n / g) - n
        value = np.concatenate([value, np.zeros((final,) + value.shape[1:], value.dtype)])
        value = value.reshape((g, -1) + value.shape[1:])
        pad = group_len - value.shape[1]
        out.append(np.concatenate([value, np.zeros((g, pad) + value.shape[2:], value.dtype)], 1))
    return np.concatenate(out, axis=0)


@given(dims_and_groups(max_extra=6))
def test_assignment_is_minimax_by_brute_force(case):
    dims, num_groups = case
    groups, group_len = gp.assign_groups(num_groups, dims)
    assert sum(groups) == num_groups and min(groups) >= 1
    best_ratio = min(
        max(Fraction(n, g) for n, g in zip(dims, c, strict=True))
        for c in compositions(num_groups, len(dims))
    )
    best_len = min(
        max(math.ceil(n / g) for n, g in zip(dims, c, strict=True))
        for c in compositions(num_groups, len(dims))
    )
    assert max(Fraction(n, g) for n, g in zip(dims, groups, strict=True)) == best_ratio
    assert group_len == best_len == max(math.ceil(n / g) for n, g in zip(dims, groups, strict=True))


@given(dims_and_groups(max_extra=40))
def test_assignment_equals_the_published_greedy(case):
    dims, num_groups = case
    assert gp.assign_groups(num_groups, dims) == greedy_as_published(num_groups, dims)


def test_assignment_of_the_official_mock_datasets():
    # HiP-16's first level over imagenet (image 1024 tokens, label 32) and audioset.
    assert gp.assign_groups(16, [1024, 32]) == ((15, 1), 69)
    assert gp.assign_groups(16, [128, 16]) == ((14, 2), 10)
    assert gp.assign_groups(256, [50176]) == ((256,), 196)


@given(dims_and_groups(max_extra=12), st.integers(1, 3))
def test_grouping_equals_the_published_padding(case, channels):
    dims, num_groups = case
    layout = gp.group_layout(num_groups, dims)
    gp.check_group_layout(layout)
    x = np.arange(1, sum(dims) * channels + 1, dtype=np.float32).reshape(sum(dims), channels)
    grouped = gp.group_array(x, layout)
    np.testing.assert_array_equal(grouped, padded_like_published(x, num_groups, dims))
    assert grouped.shape == (num_groups, layout.group_len, channels)
    np.testing.assert_array_equal(gp.ungroup_array(grouped, layout), x)
    np.testing.assert_array_equal(grouped[..., 0] == 0, layout.padding)


@given(dims_and_groups(max_extra=12))
def test_layout_fields_agree(case):
    dims, num_groups = case
    layout = gp.group_layout(num_groups, dims)
    assert layout.num_groups == num_groups and layout.num_tokens == sum(dims)
    assert layout.index.dtype == layout.inverse.dtype == np.int64
    np.testing.assert_array_equal(layout.index.ravel()[layout.inverse], np.arange(sum(dims)))
    owner = np.searchsorted(np.cumsum(dims), layout.index, side="right")
    for g, m in enumerate(layout.modality_of_group):
        real = layout.index[g] >= 0
        assert np.all(owner[g][real] == m)
    assert layout.offsets == tuple(np.cumsum([0, *dims[:-1]]).tolist())
    assert layout.group_start == tuple(np.cumsum([0, *layout.groups_per_modality[:-1]]).tolist())


def test_grouping_with_leading_batch_axes():
    layout = gp.group_layout(5, [7, 3])
    x = np.random.default_rng(0).normal(size=(2, 3, 10, 4))
    y = gp.group_array(x, layout, fill=np.nan)
    assert y.shape == (2, 3, 5, layout.group_len, 4)
    assert np.isnan(y[:, :, layout.padding]).all()
    np.testing.assert_array_equal(gp.ungroup_array(y, layout), x)
    np.testing.assert_array_equal(gp.group_array(np.arange(10), layout)[~layout.padding], range(10))


def naive_regroup(g, n, g_out, kind):
    a = np.arange(g * n).reshape(g, n)
    if kind == "transpose_reshape":
        a = np.swapaxes(a, 0, 1)
    return a.reshape(g_out, -1)


@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_regroup_against_plain_reshape(g, n, data):
    divisors = [d for d in range(1, g * n + 1) if (g * n) % d == 0]
    g_out = data.draw(st.sampled_from(divisors))
    for kind in gp.REGROUP_TYPES:
        index = gp.regroup_index(g, n, g_out, kind)
        np.testing.assert_array_equal(index, naive_regroup(g, n, g_out, kind))
        assert index.dtype == np.int64 and np.array_equal(np.sort(index.ravel()), np.arange(g * n))


def test_regroup_merges_neighbours_or_interleaves():
    # HiP-16: 16 groups of 128 latents -> 4 groups of 512: groups 0-3 merge into group 0.
    index = gp.regroup_index(16, 128, 4)
    assert set((index[0] // 128).tolist()) == {0, 1, 2, 3}
    index = gp.regroup_index(16, 128, 4, "transpose_reshape")
    assert set((index[0] // 128).tolist()) == set(range(16))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: gp.assign_groups(2, [4, 4, 4]), "num_groups: expected at least one group"),
        (lambda: gp.assign_groups(0, [4]), "num_groups: expected an int >= 1"),
        (lambda: gp.assign_groups(gp.core.groups.MAX_GROUPS + 1, [4]), "num_groups"),
        (lambda: gp.assign_groups(4, []), "index_dims: expected a non-empty sequence"),
        (lambda: gp.assign_groups(4, [3, 0]), "index_dims: expected a non-empty"),
        (lambda: gp.assign_groups(4, [3.5]), "index_dims"),
        (lambda: gp.group_layout(4, "abc"), "index_dims"),
        (lambda: gp.regroup_index(4, 3, 5), "num_output_groups: expected a divisor of"),
        (lambda: gp.regroup_index(4, 3, 2, "shuffle"), "regroup_type: expected one of"),
        (lambda: gp.regroup_index(0, 3, 1), "num_groups"),
        (lambda: gp.group_array(np.zeros((9, 2)), gp.group_layout(2, [10])), "x: expected"),
        (lambda: gp.ungroup_array(np.zeros((3, 5, 2)), gp.group_layout(2, [10])), "y: expected"),
    ],
)
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(GroupingValueError, match=match):
        call()


def test_checker_rejects_corrupted_layouts():
    layout = gp.group_layout(4, [5, 2])
    gp.check_group_layout(layout)
    swapped = layout.index.copy()
    swapped[0, [0, 1]] = swapped[0, [1, 0]]
    moved = layout.index.copy()
    moved[2, 1], moved[3, 0] = moved[3, 0], -1  # a label token into an image group
    bad = [
        dataclasses.replace(layout, index=swapped),
        dataclasses.replace(layout, index=moved),
        dataclasses.replace(layout, inverse=layout.inverse[::-1].copy()),
        dataclasses.replace(layout, group_len=3),
        dataclasses.replace(layout, groups_per_modality=(4, 0)),
        dataclasses.replace(layout, final_padding=(0, 0)),
        dataclasses.replace(layout, group_padding=(1, 0)),
    ]
    for corrupted in bad:
        with pytest.raises(gp.GroupLayoutError):
            gp.check_group_layout(corrupted)
    with pytest.raises(gp.GroupLayoutError, match="expected a GroupLayout"):
        gp.check_group_layout("layout")
