"""``grouping finetune``: supervised fine-tuning of an encoder from the command line.

Runs :func:`grouping.train.finetune.finetune` (MAE's and Hiera's recipe) on an ImageFolder
layout (``FOLDER/train/<class>/*.png``, ``FOLDER/val/<class>/*``). The options are generated
from :class:`grouping.train.config.FinetuneConfig`'s fields; ``--set KEY=VALUE`` changes an
architecture argument and ``--json`` writes the run's summary (rank 0). Under ``torchrun`` every
process trains with ``--batch-size`` samples::

    grouping finetune --init ckpt/ckpt_00000100.pt --data images --steps 200 --eval-every 50 \\
        --checkpoint ft --metrics ft.jsonl

Bad arguments give one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._files import check_out, write_json
from ..models.registry import list_models
from ..train.config import FinetuneConfig
from ._args import key_value_arg
from ._config import add_config_options, config_values

__all__ = ["add_parser", "config_from_args", "run"]


def add_parser(subparsers: Any) -> None:
    """Add the ``finetune`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "finetune",
        help="supervised fine-tuning of a (pretrained) encoder with a classification head",
        description="Fine-tune the classifier built around --init's encoder (or --model from "
        "random initialisation) on FOLDER/train, evaluating on FOLDER/val: MAE's recipe "
        "(AdamW with layer-wise decay, drop path, label smoothing, optional mixup/cutmix, "
        "warm-up and cosine by step). DataLoader workers, torchrun and exact resume as "
        "grouping pretrain.",
    )
    add_config_options(p, FinetuneConfig, choices={"model": list_models(pretrain=False)})
    p.add_argument(
        "--set",
        dest="overrides",
        type=key_value_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture argument override, e.g. --set depths=(2,2,6,2) (repeatable)",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="write a summary here")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The :class:`~grouping.train.config.FinetuneConfig` of parsed ``finetune`` arguments."""
    return FinetuneConfig(**config_values(args, FinetuneConfig), overrides=dict(args.overrides))


def run(args: argparse.Namespace) -> int:
    """Run the ``finetune`` subcommand; return the exit status."""
    if args.json:
        check_out("--json", args.json)
    from ..train.finetune import finetune

    summary = finetune(config_from_args(args))
    if args.json and summary["rank"] == 0:
        write_json(args.json, summary, indent=2)
    return 0
