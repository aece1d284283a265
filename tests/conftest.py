"""Shared test configuration: Hypothesis profiles and a JIT warm-up."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# JIT compilation makes the first call of every kernel slow: no deadlines anywhere.
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def _warm_jit() -> dict[str, frozenset[str]]:
    """Compile (or load from numba's cache) every kernel once before the tests run.

    Returns the signatures every core kernel has right after the warm-up, before any test ran
    (``test_warmup.py`` checks that no later call adds one).
    """
    from jit_signatures import kernel_signatures

    import grouping

    warmup = getattr(grouping, "warmup", None)
    if warmup is not None:
        warmup()
    return kernel_signatures()
