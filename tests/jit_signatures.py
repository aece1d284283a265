"""The numba dispatchers of ``grouping.core`` and the signatures each has compiled.

Used by the session warm-up fixture (``conftest.py``), which records them right after
``grouping.warmup()``, and by ``test_warmup.py``, which checks that nothing compiles later.
"""

from __future__ import annotations

import importlib
import pkgutil

from numba.core.dispatcher import Dispatcher

import grouping.core


def core_dispatchers() -> dict[str, Dispatcher]:
    """Every jitted function defined in a module of ``grouping.core``, by ``module.name``.

    Empty under ``NUMBA_DISABLE_JIT=1`` (the kernels are then plain functions).
    """
    found: dict[str, Dispatcher] = {}
    for info in pkgutil.iter_modules(grouping.core.__path__):
        module = importlib.import_module(f"grouping.core.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__:
                found[f"{info.name}.{name}"] = value
    return found


def kernel_signatures() -> dict[str, frozenset[str]]:
    """The compiled signatures (argument types, as text) of every core dispatcher."""
    return {
        name: frozenset(str(signature) for signature in dispatcher.signatures)
        for name, dispatcher in core_dispatchers().items()
    }


def gained_since(before: dict[str, frozenset[str]]) -> dict[str, list[str]]:
    """Signatures compiled (or loaded from the cache) since ``before``, by dispatcher."""
    gained = {}
    for name, signatures in kernel_signatures().items():
        new = signatures - before.get(name, frozenset())
        if new:
            gained[name] = sorted(new)
    return gained
