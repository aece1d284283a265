"""``grouping probe``: frozen-encoder evaluation from the command line (torch-free to build).

Runs :func:`grouping.train.probe.probe`: DINO's weighted k-NN (``--method knn``) or MAE's
linear probe (``--method linear``) on features of ``FOLDER/train`` and ``FOLDER/val`` computed
once by the encoder of ``--init``, in one process::

    grouping probe --init ckpt/ckpt_00000100.pt --data images --method knn --json knn.json
    grouping probe --init random --model swin_tiny_patch4_window7_224 --data images \\
        --method linear --json baseline.json

``--init random`` with ``--model NAME`` probes the randomly initialised encoder, the baseline
every probe is compared with. ``--json PATH`` writes one line: ``method``, ``top1``, ``top5``,
``num_train``, ``num_val``, ``num_classes``, ``feature_dim`` and ``settings``, replacing the
file only once the probe has succeeded. Bad arguments (a folder without ``train/`` and
``val/``, one class, an empty class folder, an image that does not decode, ``--init`` of
another family) give one line on stderr and exit status 2, and leave an earlier ``--json``
file as it was.

The options are generated from :class:`grouping.train.config.ProbeConfig`'s fields
(:func:`grouping.cli._config.add_config_options`); only ``--set`` (it fills ``overrides``) and
``--json`` are written here.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._files import check_out, write_json
from ..models.registry import list_models
from ..train.config import ProbeConfig
from ._args import key_value_arg
from ._config import add_config_options, config_values

__all__ = ["add_parser", "config_from_args", "run"]

_HELP = "k-NN or linear probe of a frozen encoder on an ImageFolder (train/ and val/)"
_DESCRIPTION = (
    "Compute the pooled features of FOLDER/train and FOLDER/val once with the frozen encoder "
    "of --init (or of --model at random initialisation, the baseline), then score DINO's "
    "weighted k-NN or train MAE's linear probe (batch norm without affine parameters and a "
    "linear layer; SGD or LARS, warm-up and half cosine) on them. One process; a CPU probes a "
    "small folder in minutes."
)


def add_parser(subparsers: Any) -> None:
    """Add the ``probe`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser("probe", help=_HELP, description=_DESCRIPTION)
    add_config_options(
        p,
        ProbeConfig,
        choices={
            "model": list_models(pretrain=False),
            "method": ProbeConfig.METHODS,
            "optimizer": ProbeConfig.OPTIMIZERS,
        },
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=key_value_arg,
        default=[],
        metavar="KEY=VALUE",
        help="architecture argument override (repeatable)",
    )
    p.add_argument("--json", metavar="PATH", help="write the result here (one JSON line)")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> ProbeConfig:
    """The :class:`~grouping.train.config.ProbeConfig` of parsed ``probe`` arguments
    (``--set`` makes ``overrides``)."""
    return ProbeConfig(**config_values(args, ProbeConfig), overrides=dict(args.overrides))


def run(args: argparse.Namespace) -> int:
    """Run the ``probe`` subcommand; return the exit status."""
    if args.json is not None:
        check_out("--json", args.json)
    cfg = config_from_args(args)
    try:
        from ..train.probe import probe
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise ImportError(f"grouping probe needs torch ({exc})") from exc
    result = probe(cfg)
    if args.json is not None:
        write_json(args.json, result)
    return 0
