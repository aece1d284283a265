"""Start-up time: ``import grouping`` and ``grouping.warmup()`` in fresh processes, with an
empty numba cache (cold) and with the cache the cold run left (warm), medians of 3.

Two installations are measured: the checkout with ``NUMBA_CACHE_DIR`` pointing at a fresh
directory, and a read-only copy of the package (``chmod -R a-w``; as root the interpreter runs
without the capabilities that override permission bits) whose cache goes to numba's
user-wide directory under a fresh ``HOME``. Nothing else runs in the measured processes; torch
is not imported (``import grouping`` is the numpy + numba core).

    flock /tmp/bench.lock python bench/startup.py        # -> docs/results/startup.json
    python bench/startup.py --repeats 1 --out /tmp/s.json

The warm-start numbers are what every training process (and every spawned DataLoader worker)
pays; the cold ones are paid once per cache directory and source version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, format_table, machine_info, machine_line, write_json  # noqa: E402

PROBE = """
import json, time
t0 = time.perf_counter()
import grouping
t1 = time.perf_counter()
grouping.warmup()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "warmup_s": t2 - t1, "file": grouping.__file__}))
"""


def _probe(env: dict[str, str], cwd: Path, unprivileged: bool) -> dict[str, Any]:
    command = [sys.executable, "-c", PROBE]
    if unprivileged:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    out = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _measure(label: str, setup: Any, repeats: int) -> dict[str, Any]:
    cold, warm = [], []
    for _ in range(repeats):
        env, cwd, unprivileged, cleanup = setup()
        try:
            cold.append(_probe(env, cwd, unprivileged))  # empty cache: compiles everything
            warm.append(_probe(env, cwd, unprivileged))  # loads what the cold run cached
        finally:
            cleanup()
    row: dict[str, Any] = {"installation": label, "file": cold[0]["file"]}
    for name, runs in (("cold", cold), ("warm", warm)):
        for key in ("import_s", "warmup_s"):
            values = [r[key] for r in runs]
            row[f"{name}_{key}"] = statistics.median(values)
            row[f"{name}_{key}_all"] = values
    return row


def _checkout() -> tuple[dict[str, str], Path, bool, Any]:
    cache = Path(tempfile.mkdtemp(prefix="startup-cache-"))
    env = _base_env() | {"NUMBA_CACHE_DIR": str(cache), "HOME": str(cache)}
    return env, REPO, False, lambda: shutil.rmtree(cache, ignore_errors=True)


def _read_only_copy() -> tuple[dict[str, str], Path, bool, Any]:
    root = Path(tempfile.mkdtemp(prefix="startup-ro-"))
    site, home = root / "site", root / "home"
    shutil.copytree(
        REPO / "grouping", site / "grouping", ignore=shutil.ignore_patterns("__pycache__")
    )
    home.mkdir()
    for path in [*site.rglob("*"), site]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    env = _base_env() | {"PYTHONPATH": str(site), "HOME": str(home), "TMPDIR": str(root)}

    def cleanup() -> None:
        for path in [site, *site.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(root, ignore_errors=True)

    unprivileged = hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv")
    return env, root, bool(unprivileged), cleanup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "startup.json"))
    args = parser.parse_args(argv)
    info = machine_info()
    print(machine_line(info))
    rows = [
        _measure("checkout, NUMBA_CACHE_DIR", _checkout, args.repeats),
        _measure("read-only copy, user-wide cache", _read_only_copy, args.repeats),
    ]
    print(
        format_table(
            ["installation", "cold import", "cold warmup()", "warm import", "warm warmup()"],
            [
                [
                    r["installation"],
                    f"{r['cold_import_s']:.2f} s",
                    f"{r['cold_warmup_s']:.1f} s",
                    f"{r['warm_import_s']:.2f} s",
                    f"{r['warm_warmup_s']:.2f} s",
                ]
                for r in rows
            ],
        )
    )
    write_json(
        args.out,
        {
            "benchmark": "startup",
            "machine": info,
            "parameters": {"repeats": args.repeats, "statistic": "median"},
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
