"""The ``grouping`` console command: one module per subcommand, the argument types once.

* ``grouping plan --preset NAME`` (:mod:`grouping.cli.plan`): one mask's grouping, the library's
  plan beside the published GreenMIM algorithm's, printed and plotted.
* ``grouping sweep --preset NAME`` (:mod:`grouping.cli.sweep`): attention cost against group
  size over one or more masks, against the published plan, printed and plotted.
* ``grouping pretrain --model NAME`` (:mod:`grouping.cli.pretrain`): the training loop, its
  options generated from :class:`grouping.train.config.TrainConfig`.
* ``grouping finetune --init PATH --data FOLDER`` (:mod:`grouping.cli.finetune`): supervised
  fine-tuning, its options generated from :class:`grouping.train.config.FinetuneConfig`.
* ``grouping probe --init PATH --data FOLDER --method knn|linear`` (:mod:`grouping.cli.probe`):
  frozen-encoder evaluation, its options generated from
  :class:`grouping.train.config.ProbeConfig`.
* ``grouping export --checkpoint PATH --to timm|official|safetensors --out FILE``
  (:mod:`grouping.cli.export`): a checkpoint's weights in another library's names.
* ``grouping reconstruct --checkpoint PATH --out FILE.png`` (:mod:`grouping.cli.reconstruct`):
  the reconstruction grid of a pretraining checkpoint, with its loss and PSNR.
* ``grouping plot METRICS.jsonl ... --out FILE.png`` (:mod:`grouping.cli.plot`): the curves of
  ``pretrain`` and ``finetune`` metrics files.

A subcommand is a module of this package with ``add_parser(subparsers)``, which adds its
parser and sets ``run`` (``args -> exit status``) as its default; to add one, write the module
and add its name to :data:`COMMANDS`. The argument types every command shares (group size,
positive int, seconds, ``KEY=VALUE``) live in :mod:`grouping.cli._args`. Building the parser
imports neither torch nor matplotlib.

Bad arguments give a one-line message on stderr and exit status 2 (no traceback).

Examples:
    $ grouping sweep --preset swin-b-224-w7 --out results
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import GroupingValueError, RunInterrupted
from ._args import Parser, UsageError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[str, ...] = (
    "plan",
    "sweep",
    "pretrain",
    "finetune",
    "export",
    "probe",
    "reconstruct",
    "plot",
)
"""The subcommands, in the order ``grouping --help`` lists them (modules of this package)."""


def build_parser() -> argparse.ArgumentParser:
    """The ``grouping`` argument parser, one subparser per subcommand."""
    parser = Parser(
        prog="grouping",
        description="Window grouping for masked image modeling on hierarchical vision "
        "transformers: solve and plot presets.",
    )
    parser.add_argument("--version", action="version", version=f"grouping {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``grouping`` command with ``argv`` (default ``sys.argv[1:]``); return its status.

    Returns 0 on success, 2 for invalid arguments (one line on stderr, no traceback) and 1 when
    an optional dependency (matplotlib) is missing.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
        return int(args.run(args))
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except RunInterrupted as exc:
        print(f"grouping: {exc}", file=sys.stderr)
        return exc.exit_code
    except (UsageError, GroupingValueError) as exc:
        message = str(exc)
        if not message.startswith("grouping"):
            message = f"grouping: error: {message}"
        print(message.replace("\n", " "), file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `grouping sweep ... | head`: stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
            pass
        return 1
    except ImportError as exc:
        if "grouping[bench]" not in str(exc):
            raise
        print(f"grouping: error: {exc}", file=sys.stderr)
        return 1
