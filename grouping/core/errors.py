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
    "GroupingValueError",
    "PlanError",
    "as_int_tuple",
    "as_rng",
    "check_int",
    "check_mask_ratio",
    "invalid",
]


class GroupingValueError(ValueError):
    """An argument of a public function is invalid (a ``ValueError`` subclass)."""


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


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as a Python int, checking that it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        bound = "" if minimum is None else f" >= {minimum}"
        raise invalid(name, f"an int{bound}", value)
    value = int(value)
    if minimum is not None and value < minimum:
        raise invalid(name, f"an int >= {minimum}", value)
    return value


def as_int_tuple(name: str, value: Any, ndim: int, *, minimum: int | None = 1) -> tuple[int, ...]:
    """Broadcast an int or a sequence of ints to a tuple of ``ndim`` ints ``>= minimum``."""
    bound = "" if minimum is None else f" >= {minimum}"
    expected = f"an int{bound} or a sequence of {ndim} ints{bound}"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items: Sequence[Any] = (value,) * ndim
    elif isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
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
