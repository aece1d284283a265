"""``grouping.warmup()`` compiles every numba path that the solver and the layouts can take.

A path that the warm-up misses compiles (seconds, with an empty numba cache) in the middle of
training. The session fixture ``_warm_jit`` (conftest.py) records the signatures of every core
kernel right after the warm-up; these tests run a broad set of solver, sweep and layout calls
(every strategy, group sizes below and above 64, inferred and swept sizes, channels, size
limits, inputs of every integer dtype, read-only and strided, instances that reach the LP, the
tail repair and the branch and bound, batch-shared and per-sample masks) and check that none
of them adds a signature. No wall-clock time is measured.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jit_signatures import core_dispatchers, gained_since, kernel_signatures

import grouping as gp
from grouping.testing import solve_problems, window_problems

solve_module = sys.modules["grouping.core.solve"]
HARD = np.array(solve_module.HARD_COUNTS, dtype=np.int64)
HARD_G = solve_module.HARD_GROUP_SIZE

pytestmark = pytest.mark.skipif(
    not core_dispatchers(), reason="NUMBA_DISABLE_JIT: there is nothing to compile"
)


@pytest.fixture
def warm(_warm_jit: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """The signatures right after the session's warm-up (conftest.py)."""
    return _warm_jit


@pytest.fixture
def before() -> dict[str, frozenset[str]]:
    """The signatures when the test starts (each test reports what it compiled itself)."""
    return kernel_signatures()


def _assert_nothing_compiled(before: dict[str, frozenset[str]], what: str) -> None:
    gained = gained_since(before)
    assert not gained, f"{what} compiled kernels that warmup() did not: {gained}"


def test_warmup_leaves_no_kernel_uncompiled(warm):
    assert set(warm) == set(core_dispatchers())
    empty = sorted(name for name, signatures in warm.items() if not signatures)
    assert not empty, f"warmup() left these kernels without a compiled signature: {empty}"


def test_warmup_is_idempotent(before):
    gp.warmup()
    _assert_nothing_compiled(before, "a second warmup()")


def _readonly(values: Any) -> np.ndarray:
    array = np.array(values, dtype=np.int64)
    array.setflags(write=False)
    return array


def _counts_variants() -> dict[str, Any]:
    base = [3, 5, 0, 2, 7, 1, 4, 4, 6, 0, 2]
    variants: dict[str, Any] = {"list": base, "readonly": _readonly(base)}
    for dtype in (np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32, np.uint64):
        variants[np.dtype(dtype).name] = np.array(base, dtype=dtype)
    variants["big-endian"] = np.array(base, dtype=">i8")
    variants["strided"] = np.repeat(np.array(base, dtype=np.int64), 2)[::2]
    variants["2-d"] = np.array(base + [1], dtype=np.int64).reshape(3, 4)
    variants["fortran"] = np.asfortranarray(np.array(base + [1], dtype=np.int64).reshape(3, 4))
    variants["plan.counts"] = gp.solve(base, 8).counts  # read-only
    return variants


def _solver_cases() -> dict[str, Callable[[], Any]]:
    cases: dict[str, Callable[[], Any]] = {}
    for label, counts in _counts_variants().items():
        for strategy in gp.STRATEGIES:
            cases[f"{label}-{strategy}"] = lambda c=counts, s=strategy: (
                gp.solve(c, 8, strategy=s),
                gp.solve(c, None, strategy=s, channels=16),
                gp.solve(c, "sweep", strategy=s, channels=16, max_group_size=20),
                gp.sweep_group_sizes(c, 16, strategy=s, extra=2),
            )
    rng = np.random.default_rng(0)
    for g in (1, 7, 63, 64, 65, 130, 300):  # one-word and multi-word bitsets
        counts = rng.integers(0, g + 1, size=150)
        for strategy in gp.STRATEGIES:
            cases[f"random-g{g}-{strategy}"] = lambda c=counts, g=g, s=strategy: (
                gp.solve(c, g, strategy=s, node_limit=2_000),
                gp.solve(c, None, strategy=s, node_limit=2_000),
            )
    for strategy in ("auto", "exact"):  # the LP, the repair and the search all run
        cases[f"hard-{strategy}"] = lambda s=strategy: (
            gp.solve(HARD, HARD_G, strategy=s),
            gp.solve(_readonly(HARD), None, strategy=s, channels=32),
            gp.solve(HARD.astype(np.int32), "sweep", strategy=s, channels=4, node_limit=500),
        )
    # 7 items of 2 in bins of 5: only the dual-feasible bound proves 4 groups
    cases["dff"] = lambda: gp.solve(np.full(7, 2, dtype=np.uint8), 5)
    cases["node-limits"] = lambda: (
        gp.solve(HARD, HARD_G, strategy="exact", node_limit=0),
        gp.solve(HARD, HARD_G, strategy="exact", node_limit=2**70),  # past int64: no limit
        gp.solve(HARD, HARD_G, strategy="auto", node_limit=np.uint64(300)),
        gp.sweep_group_sizes(HARD, 8, node_limit=2**70),
    )
    cases["numpy-scalars"] = lambda: (
        gp.solve(HARD, np.int32(HARD_G)),
        gp.solve(HARD, np.uint64(HARD_G), strategy="greenmim"),
        gp.solve(HARD, "sweep", channels=np.int16(8), max_group_size=np.uint8(200)),
    )
    cases["empty"] = lambda: (
        gp.solve([], 4),
        gp.solve(np.zeros(5, dtype=np.uint16), "sweep", channels=8),
        gp.solve(np.zeros(0, dtype=np.float64)),
    )
    return cases


SOLVER_CASES = _solver_cases()


@pytest.mark.parametrize("case", sorted(SOLVER_CASES))
def test_solver_compiles_nothing_after_warmup(before, case):
    SOLVER_CASES[case]()
    _assert_nothing_compiled(before, case)


INT_DTYPES = [np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@given(
    problem=solve_problems(max_windows=60, max_group_size=150),
    strategy=st.sampled_from(gp.STRATEGIES),
    dtype=st.sampled_from(INT_DTYPES),
    readonly=st.booleans(),
    channels=st.sampled_from([None, 1, 96]),
)
def test_drawn_solver_inputs_compile_nothing(problem, strategy, dtype, readonly, channels):
    before = kernel_signatures()
    counts = problem.counts.astype(dtype)
    counts.setflags(write=not readonly)
    gp.solve(counts, problem.group_size, strategy=strategy, channels=channels, node_limit=500)
    gp.solve(counts, None, strategy=strategy, channels=channels, node_limit=500)
    if counts.any():
        largest = int(counts.max())
        gp.solve(counts, "sweep", strategy=strategy, channels=channels or 8, node_limit=500)
        gp.solve(counts, "sweep", strategy=strategy, channels=8, max_group_size=largest + 3)
    _assert_nothing_compiled(before, f"solve({counts!r}, {problem.group_size}, {strategy})")


# --- layouts (torch) --------------------------------------------------------------------------


def _layout_kwargs(window: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    full = window * window  # an int size every window fits
    for mode in ("auto", "grouped", "mask"):
        for group_size, channels in ((None, None), (None, 32), (full, 96), ("sweep", 32)):
            for strategy in ("auto", "greenmim", "exact"):
                out.append(
                    dict(mode=mode, group_size=group_size, channels=channels, strategy=strategy)
                )
    return out


@pytest.mark.parametrize("per_sample", [False, True], ids=["shared", "per-sample"])
def test_window_layouts_compile_nothing_after_warmup(before, per_sample):
    torch = pytest.importorskip("torch")
    from grouping.adapter import window_layout

    for seed, (grid, window, shift) in enumerate((((16, 16), 4, 2), ((28, 28), 7, 3))):
        if per_sample:
            mask = gp.sample_masks(3, grid, 0.75, rng=seed)  # [B, H, W]
        else:
            mask = gp.batch_mask(grid, 0.6, rng=seed)  # [H, W]
        mask.setflags(write=False)
        for kwargs in _layout_kwargs(window):
            for token_mask in (mask, torch.from_numpy(mask.copy())):
                for sh in (0, shift):
                    window_layout(token_mask, window, shift=sh, **kwargs)
        # a large grid whose swept group sizes pass 64 (multi-word bitsets)
        big = gp.sample_masks(2, (64, 64), 0.5, rng=1) if per_sample else mask
        window_layout(big, 12, shift=6, group_size="sweep", channels=64, max_group_size=200)
    # Swin-T's first stage: 7x7 mask units of 8x8 tokens, windows of 7 (shifted by 3)
    for seed in range(4):
        if per_sample:
            units = gp.sample_masks(8, (7, 7), 0.5, rng=seed)
        else:
            units = gp.batch_mask((7, 7), 0.5, rng=seed)
        tokens = gp.upsample_mask(units, 8)
        for sh in (0, 3):
            window_layout(tokens, 7, shift=sh, channels=96)
    _assert_nothing_compiled(before, f"window_layout(per_sample={per_sample})")


@given(
    problem=st.one_of(
        window_problems(ndim=2, max_side=16), window_problems(ndim=2, batch=3, max_side=16)
    ),
    mode=st.sampled_from(["auto", "grouped", "mask"]),
    group_size=st.sampled_from([None, "sweep"]),
)
def test_drawn_window_layouts_compile_nothing(problem, mode, group_size):
    pytest.importorskip("torch")
    from grouping.adapter import window_layout

    before = kernel_signatures()
    window_layout(
        problem.mask,
        problem.window,
        shift=problem.shift,
        group_size=group_size,
        channels=48,
        mode=mode,
    )
    _assert_nothing_compiled(before, f"window_layout(window={problem.window}, {mode})")


def test_nothing_compiled_since_the_session_warmup(warm):
    # last in this module: also catches a path that an earlier test (of any module) reached
    _assert_nothing_compiled(warm, "the tests run so far")
