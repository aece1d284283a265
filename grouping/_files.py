"""Output files of the commands: checked before any work, written atomically.

A command checks every path it will write before it starts (:func:`check_out`), so that a
mistyped folder is found in a second, not after the run; and it writes each file through
:func:`write_atomic` (a temporary file in the same folder, flushed, then renamed over the
path), so that a failure never leaves half a file over an earlier result.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from .core.errors import invalid

__all__ = ["check_out", "check_out_folder", "write_atomic", "write_json"]


def _writable_ancestor(option: str, path: str, what: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder this process may write."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise invalid(option, what, path, f"{folder} is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise invalid(option, what, path, f"{folder} is not writable")


def check_out(
    option: str, path: str, suffixes: Sequence[str] = (), *, create_folders: bool = False
) -> str:
    """Check that ``path`` can be written as a file: it is no folder, its folder exists (or,
    with ``create_folders``, can be made) and may be written, and its name ends in one of
    ``suffixes`` (case-insensitive; any name when empty).

    Raises:
        GroupingValueError: naming ``option``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise invalid(option, "a file name, not a folder", path)
    if not create_folders and not os.path.isdir(folder):
        raise invalid(option, "a file in an existing folder", path, f"create {folder} first")
    _writable_ancestor(option, path, "a file in a writable folder")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise invalid(option, "a file this process may overwrite", path, "it is read-only")
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise invalid(option, f"a {' or '.join(suffixes)} file", path)
    return path


def check_out_folder(option: str, path: str) -> str:
    """Check that ``path`` can be a folder of outputs: an existing writable folder, or a path
    whose nearest existing ancestor is a writable folder (it is made when written).

    Raises:
        GroupingValueError: naming ``option``.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise invalid(option, "a folder (it holds several files)", path, "it is a file")
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise invalid(option, "a writable folder", path, "it is not writable")
        return path
    _writable_ancestor(option, os.path.join(path, "x"), "a folder that can be made")
    return path


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """``write(temporary)`` in ``path``'s folder, flushed to disk, then renamed to ``path``.

    The file gets the mode a new file gets (the umask's; some writers use 0600).
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb"):
            mode = os.stat(tmp).st_mode
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_json(path: str, data: Any, *, indent: int | None = None) -> None:
    """``data`` as JSON (one line, or indented), written atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=indent, default=str) + "\n")

    write_atomic(path, write)
