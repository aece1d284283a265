"""Activation memory of a step: peak resident memory minus resident memory just before it.

Stdlib only, so that a benchmark worker running in another environment (the official Hiera's
venv, which has no ``grouping``) measures memory exactly as ours does. ``bench/_common.py``
re-exports these names.

:func:`spawn_worker` runs one measuring process and reads the JSON it prints last (every
benchmark measures each implementation in its own process).

Memory is read from ``/proc/self/status``: before every measured step the freed heap is given
back to the system (:func:`trim`: ``gc.collect`` and ``malloc_trim``) and the peak (``VmHWM``)
is reset by writing ``5`` to ``/proc/self/clear_refs``; where that is not allowed, a thread
samples ``VmRSS`` every millisecond instead. Trimming makes the next step fault its pages in
again, so measured steps must be separate from timed ones.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "PeakRSS",
    "Timing",
    "activation_peaks",
    "machine_busy_s",
    "rss_bytes",
    "spawn_worker",
    "timed_call",
    "trim",
]


class Timing(NamedTuple):
    """One timed call: wall seconds, CPU seconds of this process (all threads), and CPU seconds
    that the rest of the machine used meanwhile (``/proc/stat``; nan where unreadable)."""

    wall: float
    cpu: float
    other: float


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (not idle, not waiting), ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return math.nan
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def timed_call(fn: Callable[[], Any]) -> Timing:
    """Run ``fn`` once and time it (:class:`Timing`)."""
    busy, start, cpu = machine_busy_s(), time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Timing(wall, cpu, max(0.0, machine_busy_s() - busy - cpu))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_bytes() -> int:
    """The resident memory of this process now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory over a block: ``VmHWM`` after a reset, or a sampling thread.

    Example::

        with PeakRSS() as peak:
            step()
        peak.peak  # bytes; peak.method is "VmHWM" or "sampling"
    """

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.method = "VmHWM"
        except OSError:
            self.method = "sampling"
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRSS:
        if self.method == "VmHWM":
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        else:
            self.peak = rss_bytes()
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.method == "VmHWM":
            self.peak = _status_kib("VmHWM") * 1024
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self.peak = max(self.peak, rss_bytes())


def trim() -> None:
    """Free what Python and malloc hold but do not use, so RSS is the live memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def activation_peaks(step: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Run ``step`` ``repeats`` times, each after :func:`trim`, and measure its memory.

    Returns:
        ``peak_bytes`` (median of peak RSS minus RSS just before), ``peak_bytes_all``,
        ``total_peak_bytes`` (median peak RSS of the process) and ``memory_method``.
    """
    activation, total, method = [], [], ""
    for _ in range(max(1, repeats)):
        trim()
        before = rss_bytes()
        with PeakRSS() as peak:
            step()
        activation.append(peak.peak - before)
        total.append(peak.peak)
        method = peak.method
    return {
        "peak_bytes": int(statistics.median(activation)),
        "peak_bytes_all": activation,
        "total_peak_bytes": int(statistics.median(total)),
        "memory_method": method,
    }


def spawn_worker(cmd: list[str], which: str, env: dict[str, str] | None = None) -> dict:
    """Run a benchmark worker; return the JSON object on the last line of its stdout.

    A failing worker's stderr is shown and the benchmark stops (``SystemExit``).
    """
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"the {which} worker failed (exit status {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])
