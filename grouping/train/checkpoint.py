"""Checkpoints: plain dicts of tensors and literals, written atomically, loaded safely.

A checkpoint holds everything that makes a resumed run continue on exactly the loss curve of an
uninterrupted one: model and optimizer state, the step (which is also the sampler's position:
the data stream is a function of the step, see :mod:`grouping.train.data`), the schedule, the
random state of every process, and the run's identity (model name, architecture overrides and
the settings that define the data and mask streams), which :func:`check_compatible` compares on
resume.

Writing is atomic: the state goes to a temporary file in the same folder, is flushed to disk,
then renamed over the final name; a crash mid-write leaves the previous checkpoint loadable
(and a stray temporary file, which is ignored and removed by the next save). Loading uses
``torch.load(..., weights_only=True)``: a file that carries a pickled object (which could run
code when unpickled) is refused with :class:`CheckpointError`, never executed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import shutil
from collections.abc import Mapping
from typing import Any

import torch

from ..core.errors import GroupingValueError

__all__ = [
    "CheckpointError",
    "SCHEDULE_OPTIONS",
    "check_compatible",
    "check_schedule",
    "checkpoint_files",
    "checkpoint_path",
    "latest_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
]

FORMAT = 1
_NAME = re.compile(r"^ckpt_(\d{8})\.pt$")


class CheckpointError(GroupingValueError):
    """A checkpoint is missing, unreadable, unsafe, or of another model or run."""


def checkpoint_path(directory: str, step: int) -> str:
    """The file of the checkpoint after ``step`` steps: ``DIR/ckpt_00000042.pt``."""
    return os.path.join(directory, f"ckpt_{int(step):08d}.pt")


def checkpoint_files(directory: str) -> list[str]:
    """The checkpoints in ``directory`` (``ckpt_*.pt``; temporary files ignored), oldest
    first; empty for a missing folder."""
    if not os.path.isdir(directory):
        return []
    found = sorted((int(m.group(1)), n) for n in os.listdir(directory) if (m := _NAME.match(n)))
    return [os.path.join(directory, name) for _, name in found]


def latest_checkpoint(directory: str) -> str | None:
    """The checkpoint with the most steps in ``directory`` (temporary files ignored), or None."""
    found = checkpoint_files(directory)
    return found[-1] if found else None


def resolve_checkpoint(path: str, option: str = "--checkpoint") -> str:
    """A checkpoint file as given, or a folder's latest checkpoint.

    Raises:
        CheckpointError: naming ``option`` for a folder without ``ckpt_*.pt``.
    """
    if not os.path.isdir(path):
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise CheckpointError(
            f"{option}: expected a checkpoint file or a folder with ckpt_*.pt, received {path!r}"
        )
    return found


def save_checkpoint(path: str, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename).

    Args:
        path: the final file name.
        state: plain dicts, lists and tuples of tensors, numbers, strings, bools and None
            (what ``weights_only`` loading accepts).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):  # leftovers of an interrupted save
        if name.startswith(".ckpt-tmp-"):
            os.remove(os.path.join(directory, name))
    tmp = os.path.join(directory, f".ckpt-tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        with open(tmp, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError) as exc:  # torch's writer reports a full disk as RuntimeError
        with contextlib.suppress(OSError):
            os.remove(tmp)
        text = str(exc).lower()
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        # torch's writer: "file write failed", or "unexpected pos" from inline_container.cc
        if not (full or any(w in text for w in ("write failed", "unexpected pos", "space"))):
            raise
        need = _tensor_bytes(state)
        free = shutil.disk_usage(directory).free
        raise CheckpointError(
            f"--checkpoint: expected room for a checkpoint in {directory!r}, received a disk "
            f"that took no more: it needs about {need:,} bytes, {free:,} are free. The "
            "previous checkpoint is intact; free space (or lower --keep-last) and --resume"
        ) from None
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself reaches the disk
    finally:
        os.close(fd)


def _tensor_bytes(state: Any) -> int:
    """The bytes of every tensor in a nested state (what a checkpoint of it needs, about)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, Mapping):
        return sum(_tensor_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_tensor_bytes(v) for v in state)
    return 0


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: if the file is missing or unreadable, carries pickled objects (refused,
            not executed), or is not a checkpoint of this package's format.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint: expected an existing file, received {path!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint: expected tensors and plain values only, received {path!r}, which "
            f"carries pickled objects; refused without running them ({first})"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint: expected a readable checkpoint, received {path!r} ({exc})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint: expected a grouping training checkpoint (format {FORMAT}), received "
            f"{path!r}"
        )
    return state


def check_compatible(saved: Mapping[str, Any], current: Mapping[str, Any], path: str) -> None:
    """Refuse to resume a run from a checkpoint of another model, config or data stream.

    Args:
        saved: the checkpoint's ``"run"`` entry.
        current: this run's.
        path: the checkpoint's file, for the message.

    Raises:
        CheckpointError: naming every field that differs, with both values.
    """
    keys = sorted(set(saved) | set(current))
    diffs = [k for k in keys if _plain(saved.get(k)) != _plain(current.get(k))]
    if diffs:
        detail = "; ".join(
            f"{k}: checkpoint {saved.get(k)!r}, this run {current.get(k)!r}" for k in diffs
        )
        raise CheckpointError(
            f"checkpoint: expected a checkpoint of this run, received {path!r}, which differs in "
            f"{', '.join(diffs)} ({detail}). Resume with the same settings or pick another "
            "--checkpoint folder"
        )


# the schedule's fields in a checkpoint, and the options that set them
SCHEDULE_OPTIONS = {
    "total_steps": "--steps",
    "lr": "--lr",
    "min_lr": "--min-lr",
    "warmup_steps": "--warmup-steps",
}


def check_schedule(
    saved: Mapping[str, Any], current: Mapping[str, Any], path: str, *, new_schedule: bool
) -> list[str]:
    """Refuse to resume with another learning-rate schedule unless it is asked for.

    Another ``--steps``, ``--lr``, ``--min-lr`` or ``--warmup-steps`` than the checkpoint's
    bends the learning-rate curve from the resumed step on; it is refused unless
    ``new_schedule`` (``--new-schedule``).

    Args:
        saved: the checkpoint's ``"schedule"`` entry (:meth:`TrainConfig.schedule`).
        current: this run's.
        path: the checkpoint's file, for the message.
        new_schedule: accept a changed schedule.

    Returns:
        One ``"--lr 0.0001 -> 0.001"`` entry per changed option (empty if none changed).

    Raises:
        CheckpointError: for a changed schedule without ``new_schedule``, naming the options
            with both values.
    """
    changes = [
        f"{flag} {saved.get(key)!r} -> {current.get(key)!r}"
        for key, flag in SCHEDULE_OPTIONS.items()
        if saved.get(key) != current.get(key)
    ]
    if changes and not new_schedule:
        raise CheckpointError(
            f"checkpoint: expected the learning-rate schedule of {path!r}, received other "
            f"{', '.join(c.split(' ')[0] for c in changes)} ({'; '.join(changes)}). Resume with "
            "the checkpoint's settings, or pass --new-schedule to follow the new schedule from "
            "the checkpoint's step"
        )
    return changes


def _plain(value: Any) -> Any:
    """Tuples and lists compare alike (a checkpoint may hold either)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
