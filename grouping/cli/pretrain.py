"""``grouping pretrain``: the training loop from the command line (torch-free to build).

Runs :func:`grouping.train.train` for any model of :func:`grouping.models.list_models` (those
``grouping pretrain`` trains). ``python -m grouping pretrain ...`` is the same command, so::

    torchrun --standalone --nproc_per_node 2 -m grouping pretrain --model greenmim_swin_tiny \\
        --steps 100 --batch-size 8 --workers 2 --per-sample --checkpoint ckpt --metrics m.jsonl

runs it on two processes (``--batch-size`` is per process). Bad arguments give one line on
stderr and exit status 2.

The options are generated from :class:`grouping.train.config.TrainConfig`'s fields
(:func:`grouping.cli._config.add_config_options`): every field with ``cli=True`` metadata is an
option with the field's default, type and help, so a new field is a new option. Only the
options that fill ``overrides`` and ``solver`` (``--img-size``, ``--set``, ``--group-size``,
``--strategy``, ``--layout-mode``) and ``--json`` are written here.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._files import check_out, write_json
from ..core.errors import invalid
from ..models.registry import list_models, model_info
from ..train.config import TrainConfig
from ._args import group_size_arg, key_value_arg
from ._config import add_config_options, config_values

__all__ = ["add_parser", "config_from_args", "run"]

_SOLVER = ("group_size", "strategy", "layout_mode")  # the options that fill TrainConfig.solver


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
    add_config_options(p, TrainConfig, choices={"model": list_models(pretrain=True)})
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
    return TrainConfig(**config_values(args, TrainConfig), overrides=overrides, solver=solver)


def run(args: argparse.Namespace) -> int:
    """Run the ``pretrain`` subcommand; return the exit status."""
    if args.json:
        check_out("--json", args.json)
    if args.data is not None and not os.path.isdir(args.data):
        raise invalid("--data", "an existing folder of images", args.data)
    try:
        from ..train.loop import train
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise ImportError(f"grouping pretrain needs torch ({exc})") from exc
    summary = train(config_from_args(args))
    if args.json and summary["rank"] == 0:  # the rank comes from grouping.train.distributed
        write_json(args.json, summary, indent=2)
    return 0
