"""Apply a function to every tensor inside a nested structure (layouts, prepared steps).

Prepared steps and layouts are frozen dataclasses holding tensors, tuples of tensors and other
dataclasses; :func:`map_tensors` is what their ``.to(device)`` and ``.pin_memory()`` call, so
that a new field is moved without anyone remembering to move it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["first_tensor", "map_tensors"]

T = TypeVar("T")


def map_tensors(value: T, fn: Callable[[torch.Tensor], torch.Tensor]) -> T:
    """``value`` with ``fn`` applied to every tensor it holds.

    Recurses into tuples (named tuples included), lists, dicts and dataclass instances; any
    other value (numpy arrays, ints, plans) is kept as it is. A container in which nothing
    changed is returned as the same object.

    Args:
        value: the structure.
        fn: applied to every tensor, e.g. ``lambda t: t.to(device, non_blocking=True)``.

    Returns:
        The same kind of structure.
    """
    if isinstance(value, torch.Tensor):
        return fn(value)  # type: ignore[return-value]
    if isinstance(value, (tuple, list)):
        items = [map_tensors(v, fn) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*items)  # type: ignore[return-value]
        return type(value)(items)  # type: ignore[return-value]
    if isinstance(value, dict):
        mapped = {k: map_tensors(v, fn) for k, v in value.items()}
        if all(mapped[k] is value[k] for k in value):
            return value
        return type(value)(mapped)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            old = getattr(value, f.name)
            new = map_tensors(old, fn)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor found in ``value`` (same traversal as :func:`map_tensors`), or None."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        items: Any = value
    elif isinstance(value, dict):
        items = value.values()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = (getattr(value, f.name) for f in dataclasses.fields(value))
    else:
        return None
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None
