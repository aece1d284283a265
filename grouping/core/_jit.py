"""Where numba keeps the compiled kernels, decided once before the kernel modules load.

numba caches a kernel (``@njit(cache=True)``) in the first writable place among
``NUMBA_CACHE_DIR``, ``__pycache__`` next to the source, and the user-wide cache directory
(``~/.cache/numba``, or ``$XDG_CACHE_HOME/numba``); when none is writable it raises
``RuntimeError("cannot cache function ...")`` at *import*. A read-only installation
(site-packages of a system Python, a container image) with a read-only home directory is
exactly that case, so before the kernels are defined this module checks those places and,
when none is writable, points numba at ``$TMPDIR/grouping-numba-<user>`` (created private, and
used only if it is owned by the user and writable by nobody else: numba's cache files are
pickles). When even that fails, :data:`CACHE` is False and the kernels are compiled in every
process (``warmup()`` then takes its cold time at every start). ``NUMBA_CACHE_DIR``, when it
is set and writable, always wins, as in numba.
"""

from __future__ import annotations

import getpass
import os
import stat
import tempfile

from numba.core import config
from numba.misc.appdirs import AppDirs

__all__ = ["CACHE", "CACHE_DIR"]


def _writable(path: str) -> bool:
    """Whether numba could cache into ``path`` (it creates it and writes a temporary file)."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _private_dir(path: str) -> bool:
    """Create ``path`` for this user only, or accept it if it already is so."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return False
    owner = getattr(os, "getuid", lambda: info.st_uid)()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner or info.st_mode & 0o022:
        return False
    return _writable(path)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (some containers): fall back to the uid
        return str(getattr(os, "getuid", lambda: "user")())


def _setup() -> tuple[bool, str | None]:
    """``(cache, directory)``: whether kernels can be cached, and where (None: numba's choice)."""
    if config.CACHE_DIR and _writable(config.CACHE_DIR):
        return True, config.CACHE_DIR
    if _writable(os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")):
        return True, None
    if _writable(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        return True, None
    fallback = os.path.join(tempfile.gettempdir(), f"grouping-numba-{_user()}")
    if _private_dir(fallback):
        config.CACHE_DIR = fallback  # read by numba when each kernel is defined
        return True, fallback
    return False, None


#: Whether the kernels are cached on disk (``@njit(cache=CACHE)`` in the kernel modules).
#: CACHE_DIR: the directory chosen when it is not numba's default choice.
CACHE, CACHE_DIR = _setup()
