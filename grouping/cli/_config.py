"""Command-line options generated from a run configuration's fields (torch-free).

Every field of a :mod:`grouping.train.config` dataclass declared with ``option(...)`` metadata
and ``cli=True`` is an option ``--field-name`` (or the metadata's ``flag``) with the field's
default, type and help, so the default and the help are written once, in the dataclass. The
fields a configuration declares itself come first, then the ones it shares
(:class:`~grouping.train.config.RunConfig`'s), so ``--help`` opens with what is particular to
the command.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import Field, fields
from typing import Any

from ..train.config import RunConfig

__all__ = ["add_config_options", "config_values", "option_fields"]


def option_fields(cls: type) -> list[Field[Any]]:
    """The fields of ``cls`` that are options: its own first, then :class:`RunConfig`'s."""
    shared = {f.name for f in fields(RunConfig)} if cls is not RunConfig else set()
    options = [f for f in fields(cls) if f.metadata.get("cli", False)]
    return [f for f in options if f.name not in shared] + [f for f in options if f.name in shared]


def _value_type(cls: type, annotation: Any) -> Any:
    """``int``, ``float``, ``str`` or ``bool`` of an annotation (``X | None`` gives ``X``)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if annotation not in (int, float, str, bool):
        raise TypeError(f"{cls.__name__}: no command-line type for {annotation!r}")
    return annotation


def _default_text(default: Any) -> str:
    if default is None or isinstance(default, bool):
        return ""
    return f" (default {default:g})" if isinstance(default, float) else f" (default {default})"


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    choices: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Add one option per option field of ``cls`` to ``parser``.

    Args:
        parser: the subcommand's parser.
        cls: a configuration dataclass (:class:`~grouping.train.config.TrainConfig`, ...).
        choices: allowed values of some fields (``{"model": names}``); their help lists them.
    """
    hints = typing.get_type_hints(cls)
    for f in option_fields(cls):
        kind = _value_type(cls, hints[f.name])
        meta = f.metadata
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        help_ = meta["help"]
        if kind is bool:  # False: --flag sets it; True: its --no-... flag clears it
            action = "store_false" if f.default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, default=f.default, help=help_)
            continue
        extra: dict[str, Any] = {}
        if choices and f.name in choices:
            extra["choices"] = names = list(choices[f.name])
            help_ += ", one of: " + ", ".join(names)
        parser.add_argument(
            flag,
            dest=f.name,
            type=kind,
            default=f.default,
            metavar=meta["metavar"],
            help=help_ + _default_text(f.default),
            **extra,
        )


def config_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The option fields of ``cls`` read back from parsed arguments, by name."""
    return {f.name: getattr(args, f.name) for f in option_fields(cls)}
