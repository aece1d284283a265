"""Shared helpers of the benchmark scripts: machine info, median timing, presets, tables, JSON,
and the activation-memory helpers of ``_memory`` (stdlib only, re-exported here).

``swin_preset`` is :func:`grouping.presets.swin_preset` and ``write_json`` writes through
:func:`grouping.report.write_json`, so the benchmarks and the ``grouping`` command share them.

The scripts in ``bench/`` are plain commands (``python bench/solver.py``); they import this
module as ``_common`` (Python puts the script's folder first on ``sys.path``).
"""

from __future__ import annotations

import datetime
import importlib
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _memory import PeakRSS, activation_peaks, rss_bytes, trim

from grouping import report
from grouping.presets import swin_preset

__all__ = [
    "REPO",
    "PeakRSS",
    "activation_peaks",
    "format_table",
    "machine_info",
    "median_time",
    "rss_bytes",
    "swin_preset",
    "trim",
    "uncommitted_files",
    "versions",
    "write_json",
]

REPO = Path(__file__).resolve().parent.parent
"""The repository root (default outputs go to ``docs/results`` and ``docs/figures``)."""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    """The output of ``git ARGS`` in the repository, or None where git does not answer."""
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _git_commit() -> str | None:
    return (_git("rev-parse", "--short", "HEAD") or "").strip() or None


def uncommitted_files(under: str = "grouping") -> list[str]:
    """Files under ``under`` that differ from the commit (what was measured is the tree)."""
    return (_git("diff", "--name-only", "HEAD", "--", under) or "").split()


def versions(*names: str) -> dict[str, str]:
    """The version of each of ``names``, in that order: ``"python"`` or a module's
    ``__version__`` (imported here, so ``versions("torch")`` imports torch)."""
    return {
        name: platform.python_version()
        if name == "python"
        else importlib.import_module(name).__version__
        for name in names
    }


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine and versions, printed above every benchmark table."""
    return (
        f"machine: {info['cpu']}, {info['usable_cores']} usable cores "
        f"(load average {info['load_average_at_start']}); python {info['python']}, "
        f"numpy {info['numpy']}, numba {info['numba']}; {info['date']}"
    )


def machine_info() -> dict[str, Any]:
    """The machine and the versions a result was measured with (goes into every JSON file).

    A script adds what else it ran with (``info.update(versions("torch"), threads=...)``).
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_at_start": load,
        "platform": platform.platform(),
        **versions("python", "numpy", "numba", "grouping"),
        "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def median_time(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls.

    Setup belongs outside ``fn`` (build the inputs first, time only the call).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned columns (the first column left-aligned)."""
    if any(len(row) != len(headers) for row in rows):
        raise ValueError(f"every row needs {len(headers)} cells, one per header")
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON (numpy scalars and arrays converted, nan as null, 6
    significant digits): :func:`grouping.report.write_json`, as every benchmark writes it."""
    return report.write_json(path, data, indent=1, digits=6)
