"""``grouping pretrain``: the training loop from the command line (torch-free to build).

Runs :func:`grouping.train.train` for any model of :func:`grouping.models.list_models` (those
``grouping pretrain`` trains). ``python -m grouping pretrain ...`` is the same command, so::

    torchrun --standalone --nproc_per_node 2 -m grouping pretrain --model greenmim_swin_tiny \\
        --steps 100 --batch-size 8 --workers 2 --per-sample --checkpoint ckpt --metrics m.jsonl

runs it on two processes (``--batch-size`` is per process). Bad arguments give one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
from typing import Any

from ..core.errors import invalid
from ..models.registry import list_models, model_info

__all__ = ["add_pretrain_parser", "config_from_args", "run_pretrain"]


def _set_arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, received {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a plain string
    return key.strip(), parsed


def _group_size_arg(text: str) -> int | str | None:
    text = text.strip().lower()
    if text in ("sweep",):
        return "sweep"
    if text in ("max", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive int, 'sweep' or 'max', received {text!r}"
        ) from None


def add_pretrain_parser(subparsers: Any) -> None:
    """Add the ``pretrain`` subcommand to an ``argparse`` subparsers object."""
    names = list_models(pretrain=True)
    p = subparsers.add_parser(
        "pretrain",
        help="masked-modelling pretraining of a registered model (DataLoader workers, torchrun)",
        description="Run --steps optimizer steps of MAE-style pretraining of a registered "
        "model on synthetic images or an image folder. Masks are drawn and steps (grouping "
        "plans, index tensors) prepared in DataLoader workers; under torchrun every process "
        "trains with --batch-size samples (DDP). Checkpoints resume exactly.",
    )
    p.add_argument(
        "--model",
        default="greenmim_swin_tiny",
        choices=names,
        metavar="NAME",
        help="one of: " + ", ".join(names) + " (default greenmim_swin_tiny)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=10,
        metavar="N",
        help="total optimizer steps; with --resume, continue up to N (default 10)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=8,
        metavar="B",
        help="samples per step per process (default 8)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="W",
        help="DataLoader workers; 0 = masks and plans made in-process (default 0)",
    )
    p.add_argument(
        "--per-sample",
        action="store_true",
        help="one mask per sample (default: one mask per batch, GreenMIM's choice)",
    )
    p.add_argument(
        "--mask-ratio",
        type=float,
        default=None,
        metavar="R",
        help="fraction of mask units masked (default: the model's, 0.75 for GreenMIM, 0.6 for "
        "MAE-Hiera, 0.9 for its video models)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    p.add_argument(
        "--data",
        default=None,
        metavar="FOLDER",
        help="image folder, searched recursively (Pillow); default synthetic images",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="MAE's random resized crop and flip on --data images (else centre crop)",
    )
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
        type=_set_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture argument override, e.g. --set window_size=14 (repeatable)",
    )
    p.add_argument(
        "--group-size",
        type=_group_size_arg,
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
    p.add_argument("--lr", type=float, default=1.5e-4, help="peak learning rate (1.5e-4)")
    p.add_argument("--min-lr", type=float, default=0.0, help="final learning rate (0)")
    p.add_argument(
        "--warmup-steps", type=int, default=0, metavar="K", help="linear warm-up steps (default 0)"
    )
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (0.05)")
    p.add_argument(
        "--clip-grad",
        type=float,
        default=None,
        metavar="NORM",
        help="clip the gradient norm (default: no clipping)",
    )
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="T",
        help="torch threads of each training process (0: torch's default)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if any)")
    p.add_argument("--checkpoint", default=None, metavar="DIR", help="checkpoint folder")
    p.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="K",
        help="checkpoint every K steps (default: after the last step only)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest checkpoint in --checkpoint DIR",
    )
    p.add_argument(
        "--metrics",
        default=None,
        metavar="PATH",
        help="JSON lines, one object per optimizer step (rank 0)",
    )
    p.add_argument("--save", default=None, metavar="PATH", help="save the encoder's weights")
    p.add_argument("--json", default=None, metavar="PATH", help="write a summary here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_pretrain)


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`grouping.train.TrainConfig` of parsed arguments (imports torch)."""
    from .loop import TrainConfig

    info = model_info(args.model)
    overrides = dict(args.overrides)
    if args.img_size is not None:
        overrides[info.size_arg] = args.img_size
    solver = {
        key: getattr(args, key)
        for key in ("group_size", "strategy", "layout_mode")
        if hasattr(args, key)
    }
    return TrainConfig(
        model=args.model,
        overrides=overrides,
        solver=solver,
        steps=args.steps,
        batch_size=args.batch_size,
        workers=args.workers,
        per_sample=args.per_sample,
        mask_ratio=args.mask_ratio,
        seed=args.seed,
        data=args.data,
        augment=args.augment,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        clip_grad=args.clip_grad,
        bf16=args.bf16,
        threads=args.threads,
        device=args.device,
        checkpoint=args.checkpoint,
        save_every=args.save_every,
        resume=args.resume,
        metrics=args.metrics,
        save=args.save,
        progress=not args.no_progress,
    )


def run_pretrain(args: argparse.Namespace) -> int:
    """Run the ``pretrain`` subcommand; return the exit status."""
    if args.data is not None and not os.path.isdir(args.data):
        raise invalid("--data", "an existing folder of images", args.data)
    try:
        from .loop import train
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise ImportError(f"grouping pretrain needs torch ({exc})") from exc
    summary = train(config_from_args(args))
    if args.json and (summary["world_size"] == 1 or os.environ.get("RANK", "0") == "0"):
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, default=str)
    return 0
