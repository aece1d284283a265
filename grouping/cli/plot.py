"""``grouping plot``: the curves of ``pretrain`` and ``finetune`` metrics files.

::

    grouping plot run.jsonl --out run.png
    grouping plot a.jsonl b.jsonl --out compare.png     # two runs overlaid

One panel per quantity present in any file: the training loss, the learning rate, the
throughput (samples / s), and, for fine-tuning, the validation accuracy (top-1 solid, top-5
dashed) and loss; every file is one colour, labelled by its name. A file that is not JSON
lines of metrics records is one line naming it (exit status 2), and nothing is written.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._files import check_out
from ..plotting import plot_metrics_files

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add the ``plot`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "plot",
        help="the curves of pretrain / finetune metrics files (several overlaid)",
        description="Draw the loss, learning rate, throughput and validation accuracy of one "
        "or more --metrics files of grouping pretrain or finetune.",
    )
    p.add_argument("metrics", nargs="+", metavar="METRICS.jsonl", help="metrics files")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the figure (PNG)")
    p.add_argument("--title", default="", help="the figure's title")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``plot`` subcommand; return the exit status."""
    check_out("--out", args.out, (".png",))
    panels = plot_metrics_files(args.metrics, args.out, title=args.title)
    print(f"grouping plot: wrote {args.out} ({', '.join(panels)})")
    return 0
