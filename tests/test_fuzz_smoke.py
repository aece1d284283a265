"""The fuzz driver (``bench/fuzz.py``) in quick mode finds no escape, and every escape it found
before stays fixed.

Each row of ``FOUND`` is a call that once let a non-library exception out of the core (a
``MemoryError``, ``TypeError``, numpy's ``ValueError``, an ``AttributeError``) or returned
a wrong answer; each must now raise :class:`grouping.GroupingValueError` naming the argument.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import grouping as gp

REPO = Path(__file__).resolve().parent.parent

FOUND = [
    # (what, call, the argument the message must name)
    ("strategy as an array", lambda: gp.solve([1, 2], strategy=np.array(["a", "b"])), "strategy"),
    (
        "sweep strategy as an array",
        lambda: gp.sweep_group_sizes([1, 2], 8, strategy=np.array([1.5, 2.0])),
        "strategy",
    ),
    ("ragged counts", lambda: gp.solve([[1, 2], [3]]), "counts"),
    ("counts past 64 bits", lambda: gp.solve([2**70]), "counts"),
    ("uint64 counts past 2**63", lambda: gp.solve(np.array([2**64 - 1], np.uint64)), "counts"),
    ("counts summing past int64", lambda: gp.solve([2**62, 2**62, 2**62], 2**63 - 1), "counts"),
    ("0-d grid", lambda: gp.batch_mask(np.array(3), 0.5), "grid"),
    ("0-d window grid", lambda: gp.window_grid(np.array(3), 2), "grid"),
    ("huge mask grid", lambda: gp.batch_mask((10**6, 10**6), 0.5), "grid"),
    ("huge per-sample masks", lambda: gp.sample_masks(64, (2048, 2048), 0.5), "grid"),
    ("huge group-wise masks", lambda: gp.groupwise_masks(1, 10**7, 22, 0.9), "group_len"),
    ("huge upsampling", lambda: gp.upsample_mask(np.ones((8, 8), bool), 10**4), "factor"),
    ("ragged mask", lambda: gp.upsample_mask([[True], [False, True]], 2), "mask"),
    (
        "an empty mask upsampled past numpy's shape limit",
        lambda: gp.upsample_mask(np.zeros((5, 0, 6, 7), bool), 10**6, ndim=4),
        "factor",
    ),
    ("ragged token mask", lambda: gp.window_counts([[True], [False, True]], 2), "token_mask"),
    ("ndim as a string", lambda: gp.window_counts(np.ones((4, 4), bool), 2, ndim="2"), "ndim"),
    ("huge window index", lambda: gp.window_index((10**5, 10**5), 7), "grid"),
    (
        "0-d mask unit",
        lambda: gp.mask_unit_layout(
            (8, 8), patch_stride=1, q_stride=2, num_stages=1, mask_unit_size=np.array(0)
        ),
        "mask_unit_size",
    ),
    ("0-d schedule", lambda: gp.unroll_index((4, 4), np.array(0)), "schedule"),
    ("huge unroll", lambda: gp.unroll_index((10**5, 10**5), [2]), "grid"),
    (
        "a stage count that filled the memory",
        lambda: gp.mask_unit_layout(
            (8,), patch_stride=1, q_stride=1, num_stages=2**62, mask_unit_size=1
        ),
        "num_stages",
    ),
    (
        "stage grids past MAX_STAGES",
        lambda: gp.stage_grids((8, 8), patch_stride=1, q_stride=1, num_stages=65),
        "num_stages",
    ),
    ("huge group layout", lambda: gp.group_layout(2**20, [10**12, 3000]), "index_dims"),
    ("0-d index_dims", lambda: gp.group_layout(4, np.array(3)), "index_dims"),
    ("huge regroup map", lambda: gp.regroup_index(10**7, 10**7, 50), "group_len"),
    (
        "regroup type as an array",
        lambda: gp.regroup_index(4, 2, 2, np.array([1.5])),
        "regroup_type",
    ),
    ("attention_cost of None", lambda: gp.attention_cost(None, 4, 8), "num_groups"),
    ("attention_cost of bytes", lambda: gp.attention_cost(2, b"", 8), "group_size"),
    ("attention_cost of NaN", lambda: gp.attention_cost(2, 4, float("nan")), "channels"),
    ("check_plan of None", lambda: gp.check_plan(None), "plan"),
    ("check_plan of a list", lambda: gp.check_plan([[0, 1]]), "plan"),
    (
        "a plan with negative counts",
        lambda: gp.check_plan(gp.GroupingPlan.from_groups([], 1, [-1], optimal=True)),
        "counts",
    ),
    (
        "from_groups with lower_bound None",
        lambda: gp.GroupingPlan.from_groups([[0]], 4, [3], lower_bound=None),
        "lower_bound",
    ),
    ("group_array of a non-layout", lambda: gp.group_array(np.arange(3), None), "layout"),
]


@pytest.mark.parametrize(("what", "call", "name"), FOUND, ids=[row[0] for row in FOUND])
def test_found_escapes_stay_fixed(what, call, name):
    with pytest.raises(gp.GroupingValueError) as info:
        call()
    assert str(info.value).startswith(f"{name}:"), str(info.value)


def test_is_valid_plan_of_anything_is_a_bool():
    for value in (None, "plan", [[0]], np.zeros(3), object()):
        assert gp.is_valid_plan(value) is False


def test_quick_fuzz_finds_no_escape(tmp_path):
    out = tmp_path / "fuzz.json"
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "fuzz.py"),
            "--quick",
            "--calls",
            "400",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    totals = result["totals"]
    assert totals["calls"] >= 380
    assert totals["escape"] == 0 and totals["wrong"] == 0, result["failures"][:5]
    assert totals["ok"] > 0 and totals["error"] > 0  # valid and invalid inputs were both drawn


@given(
    noise=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=7),
        elements=st.sampled_from([0.0, 0.25, 0.5, 0.75]) | st.floats(0, 1),
    ),
    data=st.data(),
)
def test_masks_by_partition_equal_the_stable_argsort(noise, data):
    # the masks are drawn in linear time (so the largest accepted masks take about a second);
    # they must stay MAE's stable-argsort masks, ties included
    from grouping.core.masking import _masks_from_noise

    keep = data.draw(st.integers(0, noise.shape[-1]))
    order = np.argsort(noise, axis=-1, kind="stable")
    expected = np.zeros(noise.shape, dtype=bool)
    np.put_along_axis(expected, order[..., :keep], True, axis=-1)
    assert np.array_equal(_masks_from_noise(noise, keep), expected)


def test_the_watchdog_records_a_call_that_hangs():
    # a call that never returns is recorded as an escape (and slow), and the run goes on
    import importlib.util
    import signal

    spec = importlib.util.spec_from_file_location("fuzz_driver", REPO / "bench" / "fuzz.py")
    fuzz = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fuzz  # its dataclasses look their module up
    spec.loader.exec_module(fuzz)

    def spin() -> None:
        while True:
            pass

    previous = signal.signal(signal.SIGALRM, fuzz._alarm)
    try:
        recorder = fuzz.Recorder(bound=0.05, hang=0.2)
        recorder.run("spin", fuzz.Case("spin", (), {}, spin))
        recorder.run("fine", fuzz.Case("gp.keep_count", (10, 0.5), {}, gp.keep_count))
    finally:
        signal.signal(signal.SIGALRM, previous)
    spun = recorder.tallies["spin"]
    assert (spun.calls, spun.escape, spun.slow) == (1, 1, 1)
    assert "Hung" in recorder.failures[0]["detail"]
    assert recorder.tallies["fine"].ok == 1
