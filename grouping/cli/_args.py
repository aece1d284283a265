"""The parser and the argument types every ``grouping`` subcommand shares (torch-free).

An argument type is a function ``str -> value`` that raises ``argparse.ArgumentTypeError`` with
``expected ..., received ...``; the parser turns that into one line on stderr and exit status 2
(:func:`grouping.cli.main`). Each rule is written once here, so that ``--group-size 0`` is the
same error in ``plan`` and ``pretrain``.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = [
    "Parser",
    "UsageError",
    "group_size_arg",
    "key_value_arg",
    "positive_int_arg",
    "seconds_arg",
]


class UsageError(Exception):
    """A command-line argument argparse rejected (reported in one line, exit status 2)."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises :class:`UsageError` instead of exiting (subparsers
    made by ``add_subparsers`` are of this class too)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def _positive_int(text: str, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, received {value}")
    return value


def positive_int_arg(text: str) -> int:
    """An int of at least 1 (``--masks``, ``--max-group-size``)."""
    return _positive_int(text, "a positive int")


def group_size_arg(*, sweep: bool = True) -> Callable[[str], int | str | None]:
    """The type of ``--group-size``: a positive int, ``'max'`` or ``'none'`` (None: the
    largest window count, GreenMIM's choice) and, with ``sweep``, ``'sweep'`` (the cheapest
    size); case and surrounding spaces do not matter.
    """
    expected = "a positive int, 'sweep' or 'max'" if sweep else "a positive int or 'max'"

    def group_size(text: str) -> int | str | None:
        text = text.strip().lower()
        if sweep and text == "sweep":
            return "sweep"
        if text in ("max", "none"):
            return None
        return _positive_int(text, expected)

    return group_size


def seconds_arg(text: str) -> float:
    """A duration in seconds, at least 0 (``--reference-budget``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, received {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, received {value}")
    return value


def key_value_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with an identifier as key and a Python literal (else a plain string) as
    value (``--set window_size=14``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, received {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a plain string
    return key.strip(), parsed
