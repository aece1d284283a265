"""``grouping pretrain``: the training loop from the command line (torch-free to build).

Runs :func:`grouping.train.train` for any model of :func:`grouping.models.list_models` (those
``grouping pretrain`` trains). ``python -m grouping pretrain ...`` is the same command, so::

    torchrun --standalone --nproc_per_node 2 -m grouping pretrain --model greenmim_swin_tiny \\
        --steps 100 --batch-size 8 --workers 2 --per-sample --checkpoint ckpt --metrics m.jsonl

runs it on two processes (``--batch-size`` is per process). Bad arguments give one line on
stderr and exit status 2.

The options are generated from :class:`grouping.train.config.TrainConfig` (:func:`add_parser`):
every field with ``cli=True`` metadata is an option ``--field-name`` (or the metadata's
``flag``) with the field's default, type and help, so a new field is a new option. Only the
options that fill ``overrides`` and ``solver`` (``--img-size``, ``--set``, ``--group-size``,
``--strategy``, ``--layout-mode``) and ``--json`` are written here.
"""

from __future__ import annotations

import argparse
import json
import os
import types
import typing
from dataclasses import Field, fields
from typing import Any

from ..core.errors import invalid
from ..models.registry import list_models, model_info
from ..train.config import TrainConfig
from ._args import group_size_arg, key_value_arg

__all__ = ["add_parser", "config_from_args", "option_fields", "run"]

_SOLVER = ("group_size", "strategy", "layout_mode")  # the options that fill TrainConfig.solver


def option_fields() -> list[Field[Any]]:
    """The fields of :class:`~grouping.train.config.TrainConfig` that are options."""
    return [f for f in fields(TrainConfig) if f.metadata.get("cli", False)]


def _value_type(annotation: Any) -> Any:
    """``int``, ``float``, ``str`` or ``bool`` of an annotation (``X | None`` gives ``X``)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if annotation not in (int, float, str, bool):
        raise TypeError(f"TrainConfig: no command-line type for {annotation!r}")
    return annotation


def _default_text(default: Any) -> str:
    if default is None or isinstance(default, bool):
        return ""
    return f" (default {default:g})" if isinstance(default, float) else f" (default {default})"


def _add_field(parser: argparse.ArgumentParser, f: Field[Any], kind: Any) -> None:
    """One option of a :class:`TrainConfig` field (its name, type, default, help, metavar)."""
    meta = f.metadata
    flag = meta["flag"] or "--" + f.name.replace("_", "-")
    help_ = meta["help"]
    if kind is bool:  # False: --flag sets it; True: its --no-... flag clears it
        action = "store_false" if f.default else "store_true"
        parser.add_argument(flag, dest=f.name, action=action, default=f.default, help=help_)
        return
    extra: dict[str, Any] = {}
    if f.name == "model":  # the registry's names, torch-free
        extra["choices"] = names = list_models(pretrain=True)
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


def add_parser(subparsers: Any) -> None:
    """Add the ``pretrain`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "pretrain",
        help="masked-modelling pretraining of a registered model (DataLoader workers, torchrun)",
        description="Run --steps optimizer steps of MAE-style pretraining of a registered "
        "model on synthetic images or an image folder. Masks are drawn and steps (grouping "
        "plans, index tensors) prepared in DataLoader workers; under torchrun every process "
        "trains with --batch-size samples (DDP). Checkpoints resume exactly.",
    )
    hints = typing.get_type_hints(TrainConfig)
    for f in option_fields():
        _add_field(p, f, _value_type(hints[f.name]))
    p.add_argument(
        "--img-size",
        type=int,
        default=None,
        metavar="PX",
        help="input size (the model's default otherwise)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        type=key_value_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture argument override, e.g. --set window_size=14 (repeatable)",
    )
    p.add_argument(  # the solver options are left out of the namespace unless given
        "--group-size",
        type=group_size_arg(),
        default=argparse.SUPPRESS,
        metavar="G|sweep|max",
        help="solver group size (Swin; default max)",
    )
    p.add_argument(
        "--strategy",
        default=argparse.SUPPRESS,
        metavar="S",
        help="solver strategy (Swin; default auto)",
    )
    p.add_argument(
        "--layout-mode",
        default=argparse.SUPPRESS,
        metavar="MODE",
        help="auto, grouped or mask (Swin; default auto)",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="write a summary here")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`~grouping.train.config.TrainConfig` of parsed ``pretrain`` arguments.

    Every option field is copied by name; ``--set`` and ``--img-size`` make ``overrides``,
    the solver options that were given make ``solver``.
    """
    overrides = dict(args.overrides)
    if args.img_size is not None:
        overrides[model_info(args.model).size_arg] = args.img_size
    solver = {key: getattr(args, key) for key in _SOLVER if hasattr(args, key)}
    values = {f.name: getattr(args, f.name) for f in option_fields()}
    return TrainConfig(**values, overrides=overrides, solver=solver)


def run(args: argparse.Namespace) -> int:
    """Run the ``pretrain`` subcommand; return the exit status."""
    if args.data is not None and not os.path.isdir(args.data):
        raise invalid("--data", "an existing folder of images", args.data)
    try:
        from ..train.loop import train
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise ImportError(f"grouping pretrain needs torch ({exc})") from exc
    summary = train(config_from_args(args))
    if args.json and summary["rank"] == 0:  # the rank comes from grouping.train.distributed
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, default=str)
    return 0
