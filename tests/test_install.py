"""The package works installed read-only, with and without ``NUMBA_CACHE_DIR``.

A copy of the package is made read-only (``chmod -R a-w``), as in a system site-packages or a
container image, and imported by a fresh interpreter that cannot write there: numba cannot put
its cache in ``__pycache__`` next to the kernels. As root (which ignores permission bits) the
interpreter runs without the capabilities that override them (``setpriv``). Each case checks
where the compiled kernels landed (numba's ``.nbi`` index files); see docs/core.md, "Warm-up and
the numba cache".
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import grouping

PACKAGE = Path(grouping.__file__).resolve().parent
SETPRIV = shutil.which("setpriv")
UNPRIVILEGED = ["--bounding-set=-dac_override,-dac_read_search,-fowner"]

pytestmark = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0 and SETPRIV is None,
    reason="running as root without setpriv: permission bits cannot be enforced",
)

WARM_AND_SOLVE = """
import grouping as gp
gp.warmup()
plan = gp.solve([3, 5, 0, 2, 7, 1, 4, 4], 8, strategy="auto", channels=8)
gp.check_plan(plan)
print(gp.__file__, plan.num_groups, plan.optimal)
"""

ONE_KERNEL = """
import numpy as np
import grouping as gp
from grouping.core import _jit, packing
packing.split_counts(np.array([1, 0, 2]))  # one small kernel: compiles in a second
print(gp.__file__, _jit.CACHE, _jit.CACHE_DIR)
"""


def _read_only(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable_again(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def site(tmp_path):
    """A read-only copy of the package (no compiled files), and writable homes and temps."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "grouping", ignore=shutil.ignore_patterns("__pycache__"))
    _read_only(site)
    yield site
    _writable_again(site)  # so that pytest can remove it


def _run(code: str, site: Path, **env: str | Path) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(site),
        "PYTHONDONTWRITEBYTECODE": "1",
        **{k: str(v) for k, v in env.items()},
    }
    command = [sys.executable, "-c", code]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command = [SETPRIV, *UNPRIVILEGED, *command]
    result = subprocess.run(  # not run from the checkout: "-c" puts the cwd on sys.path
        command,
        env=environment,
        cwd=site.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(site) in result.stdout  # the read-only copy was imported, not the checkout
    return result


def _indexes(path: Path) -> list[Path]:
    return sorted(path.rglob("*.nbi"))


def _read_only_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    return path


def test_read_only_package_warms_up_and_solves(site, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    first = _run(WARM_AND_SOLVE, site, HOME=home, TMPDIR=tmp_path)
    assert not _indexes(site)  # nothing could be written next to the kernels
    cached = _indexes(home / ".cache" / "numba")  # numba's user-wide cache
    assert any("packing._fast_plan" in p.name for p in cached)
    assert any("cutting._column_generation" in p.name for p in cached)
    again = _run(WARM_AND_SOLVE, site, HOME=home, TMPDIR=tmp_path)  # loads from that cache
    assert again.stdout == first.stdout


def test_numba_cache_dir_receives_the_cache(site, tmp_path):
    cache = tmp_path / "numba-cache"
    out = _run(ONE_KERNEL, site, HOME=_read_only_dir(tmp_path / "home"), NUMBA_CACHE_DIR=cache)
    assert out.stdout.split()[1:] == ["True", str(cache)]
    assert any("packing._split_counts" in p.name for p in _indexes(cache))
    assert not _indexes(site)


def test_read_only_home_falls_back_to_a_private_temporary_dir(site, tmp_path):
    # numba alone raises "cannot cache function ...: no locator available" at import here
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = _run(ONE_KERNEL, site, HOME=_read_only_dir(tmp_path / "home"), TMPDIR=temp)
    cache, where = out.stdout.split()[1:]
    assert cache == "True" and Path(where).parent == temp
    assert Path(where).name.startswith("grouping-numba-")
    assert stat.S_IMODE(Path(where).stat().st_mode) == 0o700
    assert any("packing._split_counts" in p.name for p in _indexes(Path(where)))


def test_cache_setup_without_any_writable_place(monkeypatch, tmp_path):
    from grouping.core import _jit

    monkeypatch.setattr(_jit.config, "CACHE_DIR", "")
    monkeypatch.setattr(_jit, "_writable", lambda path: False)
    assert _jit._setup() == (False, None)  # the kernels then compile in every process
    # a fallback directory that others may write to is never used (numba's cache is pickles)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setattr(_jit, "_writable", lambda path: True)
    assert not _jit._private_dir(str(shared))
    private = tmp_path / "private"
    assert _jit._private_dir(str(private))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
