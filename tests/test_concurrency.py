"""The solver, the layouts and the models' ``prepare`` give the same results from several threads
at once and from DataLoader worker processes as from serial calls.

The kernels are ``nogil`` numba functions with no global state (every buffer is allocated per
call), the Python wrappers keep their state in locals (the solver's budgets included), and the
layouts are pure functions of their inputs, so concurrent calls must not interact. These tests
run each function on the same inputs serially, then from four threads at once (many repeats,
interleaved), then in two DataLoader workers, and compare everything they return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import grouping as gp

torch = pytest.importorskip("torch")

from tiny_configs import HIERA_TINY, SWIN_TINY  # noqa: E402

from grouping.adapter import window_layout  # noqa: E402
from grouping.models import create_model  # noqa: E402

THREADS = 4
REPEATS = 6


def flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every leaf of a nested result (dataclasses, tuples, dicts, plans, tensors, arrays)."""
    if isinstance(value, torch.Tensor):
        return [(path, ("tensor", value.dtype, tuple(value.shape), value.cpu().numpy().tolist()))]
    if isinstance(value, np.ndarray):
        return [(path, ("array", value.dtype.str, value.shape, value.tolist()))]
    if isinstance(value, gp.GroupingPlan):
        return flatten((value.windows, value.offsets, value.group_size, value.lower_bound), path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = []
        for f in dataclasses.fields(value):
            out += flatten(getattr(value, f.name), f"{path}.{f.name}")
        return out
    if isinstance(value, dict):
        out = []
        for key in sorted(value, key=str):
            out += flatten(value[key], f"{path}[{key!r}]")
        return out
    if isinstance(value, (tuple, list)):
        out = []
        for i, item in enumerate(value):
            out += flatten(item, f"{path}[{i}]")
        return out
    if isinstance(value, (int, float, str, bool, type(None), np.generic)):
        return [(path, value)]
    if hasattr(value, "__dict__"):
        return flatten(vars(value), f"{path}<{type(value).__name__}>")
    return [(path, repr(value))]


def _solve_cases() -> list[Callable[[], Any]]:
    rng = np.random.default_rng(0)
    cases: list[Callable[[], Any]] = []
    for seed in range(3):
        unit = gp.batch_mask((7, 7), 0.75, rng=seed)
        counts = gp.window_counts(gp.upsample_mask(unit, 8), 7, shift=3 * (seed % 2)).ravel()
        for strategy in gp.STRATEGIES:
            cases.append(lambda c=counts, s=strategy: gp.solve(c, None, strategy=s, channels=96))
            cases.append(lambda c=counts, s=strategy: gp.solve(c, "sweep", strategy=s, channels=96))
    for g in (49, 130):
        counts = rng.integers(0, g + 1, size=120)
        for strategy in ("auto", "exact"):
            cases.append(lambda c=counts, g=g, s=strategy: gp.solve(c, g, strategy=s))
    return cases


def _layout_cases() -> list[Callable[[], Any]]:
    cases: list[Callable[[], Any]] = []
    for seed in range(3):
        shared = gp.upsample_mask(gp.batch_mask((4, 4), 0.75, rng=seed), 4)  # [16, 16]
        per_sample = gp.upsample_mask(gp.sample_masks(3, (4, 4), 0.5, rng=seed), 4)
        for mask in (shared, per_sample):
            for kw in (dict(), dict(shift=2, group_size="sweep", channels=32, mode="grouped")):
                cases.append(lambda m=mask, kw=kw: window_layout(m, 4, **kw))
    cases.append(
        lambda: [
            (lay.unroll_index(k), lay.reroll_index(k), lay.mask_unit_ids(k))
            for lay in [
                gp.mask_unit_layout(
                    (224, 224), patch_stride=4, q_stride=2, num_stages=4, mask_unit_size=8
                )
            ]
            for k in range(4)
        ]
    )
    cases.append(lambda: [gp.group_layout(g, [1024, 37, 500]) for g in (3, 16, 64)])
    return cases


def _prepare_cases() -> list[Callable[[], Any]]:
    swin = create_model("greenmim_swin_tiny", **SWIN_TINY)
    hiera = create_model("mae_hiera_tiny_224", **HIERA_TINY)
    cases: list[Callable[[], Any]] = []
    for seed in range(3):
        shared = swin.sample_mask(2, 0.75, rng=seed)
        per_sample = swin.sample_mask(2, 0.75, rng=seed, per_sample=True)
        cases.append(lambda m=shared: swin.prepare(m))
        cases.append(lambda m=per_sample: swin.prepare(m, batch=2))
        units = hiera.sample_mask(2, 0.6, rng=seed)
        cases.append(lambda m=units: hiera.prepare(m, batch=2))
    return cases


def _assert_threads_equal_serial(cases: list[Callable[[], Any]]) -> None:
    serial = [flatten(case()) for case in cases]
    jobs = [i for _ in range(REPEATS) for i in range(len(cases))]
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda i: (i, flatten(cases[i]())), jobs))
    for i, result in results:
        assert result == serial[i], f"case {i} differs when run from {THREADS} threads"


def test_solve_from_threads_equals_serial():
    _assert_threads_equal_serial(_solve_cases())


def test_layouts_from_threads_equal_serial():
    _assert_threads_equal_serial(_layout_cases())


def test_prepare_from_threads_equals_serial():
    _assert_threads_equal_serial(_prepare_cases())


# --- DataLoader workers -----------------------------------------------------------------------


class _Calls(torch.utils.data.Dataset):
    """Item ``i`` runs the ``i``-th call of a picklable list of (function, args, kwargs)."""

    def __init__(self, calls: list[tuple[Callable[..., Any], tuple, dict]]) -> None:
        self.calls = calls

    def __len__(self) -> int:
        return len(self.calls)

    def __getitem__(self, i: int) -> list[tuple[str, Any]]:
        fn, args, kwargs = self.calls[i]
        return flatten(fn(*args, **kwargs))


def _worker_calls() -> list[tuple[Callable[..., Any], tuple, dict]]:
    swin = create_model("greenmim_swin_tiny", **SWIN_TINY)
    hiera = create_model("mae_hiera_tiny_224", **HIERA_TINY)
    swin_prep, hiera_prep = swin.preparer(), hiera.preparer()  # picklable, no weights
    calls: list[tuple[Callable[..., Any], tuple, dict]] = []
    for seed in range(4):
        unit = gp.batch_mask((7, 7), 0.75, rng=seed)
        counts = gp.window_counts(gp.upsample_mask(unit, 8), 7).ravel()
        for strategy in gp.STRATEGIES:
            calls.append((gp.solve, (counts, "sweep"), dict(strategy=strategy, channels=96)))
        mask = gp.upsample_mask(gp.sample_masks(2, (4, 4), 0.5, rng=seed), 4)
        calls.append((window_layout, (mask, 4), dict(shift=2, channels=32)))
        calls.append(
            (
                gp.mask_unit_layout,
                ((224, 224),),
                dict(patch_stride=4, q_stride=2, num_stages=4, mask_unit_size=8),
            )
        )
        calls.append((gp.group_layout, (16 + seed, [1024, 37]), {}))
        calls.append(
            (swin_prep, (swin.sample_mask(2, 0.75, rng=seed, per_sample=True),), {"batch": 2})
        )
        calls.append((swin_prep, (swin.sample_mask(2, 0.75, rng=seed),), {}))
        calls.append((hiera_prep, (hiera.sample_mask(2, 0.6, rng=seed),), {"batch": 2}))
    return calls


def _identity(item: Any) -> Any:
    return item


def test_dataloader_workers_equal_serial():
    dataset = _Calls(_worker_calls())
    serial = [dataset[i] for i in range(len(dataset))]
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=2, collate_fn=_identity
    )
    from_workers = list(loader)
    assert len(from_workers) == len(serial)
    for i, (a, b) in enumerate(zip(from_workers, serial, strict=True)):
        assert a == b, f"item {i} differs in a DataLoader worker"
