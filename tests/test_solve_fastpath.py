"""``solve``'s fast path (one kernel call into one buffer) against its general path.

``solve`` takes integer ndarrays with a cheap strategy, ``group_size`` None or an int and no
limits straight to ``packing._fast_plan`` and hands everything else to ``_solve`` (the checks,
the older one-call path, the sweep and the full pipeline). Here every input goes both ways,
``solve(...)`` and ``_solve(...)`` directly, and must give the same plan (every field, the
array dtypes, shapes and read-only flags, the scalar types) or the same error (type and
message); the nested-list form of the same counts, which never takes the fast path, must give
the same plan too. No wall-clock time is measured (``bench/solver.py`` does that).
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import grouping as gp

solve_module = sys.modules["grouping.core.solve"]

CHEAP = ("auto", "ffd", "bfd", "greenmim")
FIELDS = ("group_size", "lower_bound", "optimal", "strategy", "channels")
DTYPES = ("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", ">i8")


def _general(counts: Any, group_size: Any = None, **options: Any) -> gp.GroupingPlan:
    """What ``solve`` did before its fast path: ``_solve`` with the same arguments."""
    return solve_module._solve(
        counts,
        group_size,
        options.get("strategy", "auto"),
        options.get("channels"),
        options.get("max_group_size"),
        options.get("node_limit"),
    )


def _outcome(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - compared by type and message below
        return type(error), str(error)


def assert_same_plan(a: gp.GroupingPlan, b: gp.GroupingPlan, *, readonly: bool = True) -> None:
    for name in ("windows", "offsets", "counts"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.int64, name
        assert x.shape == y.shape and x.ndim == 1, name
        assert np.array_equal(x, y), name
        assert not readonly or not (x.flags.writeable or y.flags.writeable), name
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x == y and type(x) is type(y), (name, x, y)
    assert [g.tolist() for g in a.groups] == [g.tolist() for g in b.groups]


def assert_same_outcome(counts: Any, group_size: Any = None, **options: Any) -> Any:
    fast = _outcome(gp.solve, counts, group_size, **options)
    general = _outcome(_general, counts, group_size, **options)
    if isinstance(fast, gp.GroupingPlan) and isinstance(general, gp.GroupingPlan):
        assert_same_plan(fast, general)
        gp.check_plan(fast, counts)
    else:
        assert fast == general
    return fast


@st.composite
def count_arrays(draw: Any) -> np.ndarray:
    """Counts of every layout the fast path meets: dtypes, shapes, strides, read-only."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    high = min(draw(st.sampled_from((1, 7, 49, 63, 64, 130, 5000))), np.iinfo(dtype).max)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12))
    values = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, high)))
    zeros = draw(hnp.arrays(np.bool_, shape))  # empty windows, as masking leaves them
    values = np.where(zeros, 0, values)
    if values.size and np.dtype(dtype).kind == "i" and draw(st.integers(0, 15)) == 0:
        values.flat[draw(st.integers(0, values.size - 1))] = -draw(st.integers(1, 3))
    array = values.astype(dtype)
    layout = draw(st.sampled_from(("c", "c", "fortran", "strided", "readonly")))
    if layout == "fortran":
        array = np.asfortranarray(array)
    elif layout == "strided" and array.ndim:
        array = np.repeat(array, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        array = array.copy()
        array.setflags(write=False)
    return array


group_sizes = st.one_of(
    st.none(), st.integers(1, 140), st.sampled_from((4096, 4097, 10**6, 2**62, 2**63 - 1))
)


@given(
    count_arrays(),
    group_sizes,
    st.sampled_from(CHEAP),
    st.one_of(st.none(), st.integers(1, 256)),
)
def test_fast_path_equals_general_path(counts, group_size, strategy, channels):
    fast = assert_same_outcome(counts, group_size, strategy=strategy, channels=channels)
    if isinstance(fast, gp.GroupingPlan) and counts.dtype != np.uint64:
        # the nested-list form never takes the fast path (the plan's counts are flattened)
        assert_same_plan(
            fast, gp.solve(counts.tolist(), group_size, strategy=strategy, channels=channels)
        )


@given(hnp.arrays(np.int64, st.integers(0, 130), elements=st.integers(0, 49)))
def test_fast_path_equals_general_path_on_int64_windows(counts):
    # the common case (int64, C-contiguous, the largest count) at every strategy
    for strategy in CHEAP:
        assert_same_outcome(counts, strategy=strategy)


def test_fast_path_on_a_swin_stage_1_mask():
    units = gp.batch_mask((7, 7), 0.75, rng=0)  # Swin-B 224 px: 32 px units, stage-1 tokens
    counts = gp.window_counts(gp.upsample_mask(units, 8), 7)
    assert counts.size == 64
    for strategy in CHEAP:
        plan = assert_same_outcome(counts, strategy=strategy)
        assert plan.num_windows == 64 and plan.counts.tolist() == counts.ravel().tolist()


def test_plan_owns_read_only_arrays():
    counts = np.array([3, 0, 4, 2, 1, 5, 5], dtype=np.int64)
    plan = gp.solve(counts, 5)
    counts[:] = 0  # the caller reuses its buffer: the plan kept its own counts
    assert plan.counts.tolist() == [3, 0, 4, 2, 1, 5, 5]
    for array in (plan.windows, plan.offsets, plan.counts):
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array.setflags(write=True)  # views of a read-only buffer: read-only for good
    again = pickle.loads(pickle.dumps(plan))  # (numpy unpickles arrays writeable)
    assert_same_plan(again, plan, readonly=False)
    gp.check_plan(again)


def test_auto_above_the_bound_takes_the_full_pipeline():
    counts = np.array(solve_module.HARD_COUNTS, dtype=np.int64)  # FFD: 9 groups, bound 8
    plan = assert_same_outcome(counts, solve_module.HARD_GROUP_SIZE)
    assert plan.num_groups == 8 and plan.optimal
    assert gp.solve(counts, solve_module.HARD_GROUP_SIZE, strategy="ffd").num_groups == 9


BAD = [
    (np.array([3, -1, 2]), None, {}, "counts: expected non-negative counts"),
    (np.array([[3, 0], [-2, 1]], dtype=np.int8), 4, {}, "'a count of -2'"),
    (np.array([3, 9, 2]), 5, {}, "at least the largest window count 9"),
    (np.array([3, 9, 2], dtype=np.uint16), 5, {"strategy": "greenmim"}, "largest window"),
    (np.array([2**62, 2**62]), None, {}, "counts summing to at most 2**62"),
    (np.array([2**63 - 1, 2**63 - 1]), None, {"strategy": "ffd"}, "more than 2**63 - 1"),
    (np.array([2**63], dtype=np.uint64), None, {}, "counts below 2**63"),
    (np.array([1.0, 2.0]), None, {}, "cast integral float counts"),
    (np.array([3, 2]), 0, {}, "group_size: expected a positive int"),
    (np.array([3, 2]), True, {}, "group_size: expected a positive int"),
    (np.array([3, 2]), 2**63, {}, "a positive int below 2**63"),
    (np.array([3, 2]), "big", {}, "group_size: expected a positive int"),
    (np.array([3, 2]), None, {"strategy": "fast"}, "strategy: expected one of"),
    (np.array([3, 2]), None, {"strategy": b"auto"}, "strategy: expected one of"),
    (np.array([3, 2]), None, {"channels": 0}, "channels: expected an int >= 1"),
    (np.array([3, 2]), None, {"channels": 2.5}, "channels: expected an int"),
    (np.array([3, 2]), None, {"node_limit": -1}, "node_limit: expected an int >= 0"),
    (np.array([3, 2]), 4, {"max_group_size": 3}, "group_size: expected at most"),
]


@pytest.mark.parametrize(("counts", "group_size", "options", "words"), BAD)
def test_bad_input_gives_the_same_error(counts, group_size, options, words):
    fast = _outcome(gp.solve, counts, group_size, **options)
    assert fast == _outcome(_general, counts, group_size, **options)
    kind, message = fast
    assert issubclass(kind, gp.GroupingValueError) and words in message


def test_published_algorithm_past_its_work_limit_gives_the_same_error(monkeypatch):
    monkeypatch.setattr(solve_module, "GREENMIM_MAX_WORK", 50)  # read at every call
    counts = np.full(40, 1000, dtype=np.int64)
    fast = _outcome(gp.solve, counts, 4095, strategy="greenmim")
    assert fast == _outcome(_general, counts, 4095, strategy="greenmim")
    assert fast[0] is gp.GroupingValueError and '"greenmim" would need' in fast[1]
    gp.check_plan(gp.solve(counts, 4095), counts)  # "auto" skips it instead
