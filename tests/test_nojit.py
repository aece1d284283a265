"""The solver kernels run as plain Python (NUMBA_DISABLE_JIT=1) and agree with the JIT."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grouping as gp

SCRIPT = """
import json, sys
import numpy as np
import grouping as gp
rng = np.random.default_rng(5)
out = []
for g in (7, 49, 70):
    counts = rng.integers(0, g + 1, size=25)
    for strategy in gp.STRATEGIES:
        plan = gp.solve(counts, g, strategy=strategy)
        out.append([plan.windows.tolist(), plan.offsets.tolist(), plan.lower_bound])
json.dump(out, sys.stdout)
"""


def _run(disable_jit: bool) -> list:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1" if disable_jit else "0")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_kernels_agree_with_and_without_jit():
    plain, jitted = _run(True), _run(False)
    assert len(plain) == 3 * len(gp.STRATEGIES)
    assert plain == jitted
