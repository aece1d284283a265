"""Errors and argument validation shared by the whole library.

Every public function validates its input and raises :class:`GroupingValueError` (a
``ValueError`` subclass) whose message names the argument, what was expected and what was
received. The helpers here build such messages so that they read the same everywhere::

    window: expected a positive int or a tuple of 2 positive ints, received -3

Only internal invariants use ``assert``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "MAX_ELEMENTS",
    "GroupingValueError",
    "PlanError",
    "RunInterrupted",
    "as_array",
    "as_int_tuple",
    "as_rng",
    "check_heads",
    "check_int",
    "check_mask_ratio",
    "check_size",
    "invalid",
]

#: Most elements an array built from sizes given as arguments may have (masks, window and
#: mask-unit indices, group layouts, regroup maps): 2**25 (33.5 million; a batch of 32 masks
#: of 1024 x 1024 tokens), so that a call needs at most about 1 GiB (a mask's random noise is
#: float64) and about a second. Larger requests raise a clear error instead of a MemoryError
#: or minutes of work.
MAX_ELEMENTS = 1 << 25


class GroupingValueError(ValueError):
    """An argument of a public function is invalid (a ``ValueError`` subclass)."""


class RunInterrupted(Exception):
    """A run stopped by a signal (Ctrl-C, SIGTERM) after finishing its current step.

    Attributes:
        signum: the signal.
        step: the last step done.
        checkpoint: the checkpoint written at that step, or None.
    """

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        import signal

        self.signum, self.step, self.checkpoint = int(signum), int(step), checkpoint
        name = signal.Signals(signum).name
        saved = (
            f"checkpoint {checkpoint} written; --resume continues the run"
            if checkpoint
            else "no --checkpoint, nothing saved"
        )
        super().__init__(f"stopped by {name} after step {step}: {saved}")

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signum


class PlanError(GroupingValueError):
    """A grouping plan violates one of its invariants (see :func:`grouping.check_plan`)."""


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return f"array({value.tolist()}, dtype={value.dtype})"
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def invalid(name: str, expected: str, received: Any, hint: str = "") -> GroupingValueError:
    """Build (not raise) the error for argument ``name``.

    Args:
        name: the argument's name as the caller wrote it.
        expected: what a valid value looks like, in words.
        received: the value received (shown with ``repr``, arrays by shape and dtype).
        hint: an optional sentence on how to fix it.
    """
    message = f"{name}: expected {expected}, received {_show(received)}"
    if hint:
        message += f". {hint}"
    return GroupingValueError(message)


def as_array(name: str, value: Any, expected: str) -> np.ndarray:
    """``numpy.asarray(value)``, raising the library's error where numpy cannot convert it.

    Ragged nested lists and ints past 64 bits make numpy raise ``ValueError``,
    ``TypeError`` or ``OverflowError``; they become :class:`GroupingValueError` for ``name``.
    """
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        raise invalid(name, expected, value) from None


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as a Python int, checking that it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        bound = "" if minimum is None else f" >= {minimum}"
        raise invalid(name, f"an int{bound}", value)
    value = int(value)
    if minimum is not None and value < minimum:
        raise invalid(name, f"an int >= {minimum}", value)
    return value


def check_grid(grid: Any, name: str = "grid") -> tuple[int, ...]:
    """Return a token grid as a tuple of positive ints, one per spatial axis (at least one)."""
    expected = "a non-empty tuple of positive ints, one per spatial axis"
    try:
        ndim = 0 if isinstance(grid, (str, bytes, dict)) else len(grid)
    except TypeError:  # no len(): an int, a 0-d array, an object
        ndim = 0
    if ndim == 0:
        raise invalid(name, expected, grid, f"e.g. {name}=(14, 14) or {name}=(8, 14, 14)")
    return as_int_tuple(name, grid, ndim)


def as_int_tuple(name: str, value: Any, ndim: int, *, minimum: int | None = 1) -> tuple[int, ...]:
    """Broadcast an int or a sequence of ints to a tuple of ``ndim`` ints ``>= minimum``."""
    bound = "" if minimum is None else f" >= {minimum}"
    expected = f"an int{bound} or a sequence of {ndim} ints{bound}"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items: Sequence[Any] = (value,) * ndim
    elif (isinstance(value, Sequence) and not isinstance(value, (str, bytes))) or (
        isinstance(value, np.ndarray) and value.ndim == 1
    ):
        items = list(value)
        if len(items) != ndim:
            raise invalid(name, expected, value)
    else:
        raise invalid(name, expected, value)
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise invalid(name, expected, value)
        if minimum is not None and int(item) < minimum:
            raise invalid(name, expected, value)
        out.append(int(item))
    return tuple(out)


def check_size(name: str, value: Any, size: int, what: str = "elements") -> None:
    """Raise if an array of ``size`` elements, built from argument ``name``, is too large.

    Args:
        name: the argument the size comes from.
        value: its value (shown in the message).
        size: the number of elements the call would allocate.
        what: what the elements are, for the message (e.g. ``"tokens"``).
    """
    if size > MAX_ELEMENTS:
        raise invalid(
            name,
            f"at most MAX_ELEMENTS = 2**25 {what} in all",
            value,
            f"It would make {size} {what}",
        )


def check_mask_ratio(mask_ratio: Any, name: str = "mask_ratio") -> float:
    """Return ``mask_ratio`` as a float in ``[0, 1)``."""
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, numbers.Real):
        raise invalid(name, "a float in [0, 1)", mask_ratio)
    ratio = float(mask_ratio)
    if not 0.0 <= ratio < 1.0:
        raise invalid(name, "a float in [0, 1)", mask_ratio, "1.0 would mask every token")
    return ratio


def as_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    """Turn ``rng`` (a ``numpy.random.Generator``, an int seed or None) into a Generator.

    The same int seed gives the same stream on every machine (PCG64).
    """
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and int(rng) >= 0:
        return np.random.default_rng(int(rng))
    raise invalid(name, "a numpy.random.Generator, a non-negative int seed or None", rng)


def check_heads(dim: Any, num_heads: Any) -> tuple[int, int]:
    """An attention layer's width and heads: positive ints, ``num_heads`` dividing ``dim``.

    Returns:
        ``(dim, num_heads)`` as ints.

    Raises:
        GroupingValueError: naming ``dim`` or ``num_heads``.
    """
    dim = check_int("dim", dim, minimum=1)
    num_heads = check_int("num_heads", num_heads, minimum=1)
    if dim % num_heads:
        raise invalid("num_heads", f"a divisor of dim={dim}", num_heads)
    return dim, num_heads
