"""Every docstring example in the package runs (a renamed function breaks CI, not a reader)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import grouping

_SKIP = {"grouping.__main__"}  # runs the command line on import
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(grouping.__path__, prefix="grouping.")
    if m.name not in _SKIP
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
