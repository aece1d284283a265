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
import json
import os
from collections.abc import Sequence
from typing import Any

from ..core.errors import invalid
from ._files import check_out, write_atomic

__all__ = ["add_parser", "plot_files", "read_metrics", "run"]


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


def read_metrics(path: str, option: str = "METRICS.jsonl") -> list[dict[str, Any]]:
    """The records of a metrics file: one JSON object with a ``step`` per line (blank lines
    skipped).

    Raises:
        GroupingValueError: naming ``option`` and the file (and the line) for a missing file,
            a line that is no JSON object with a step, or a file without records.
    """
    if not os.path.isfile(path):
        raise invalid(option, "a metrics file (JSON lines)", path, "no such file")
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise invalid(
                    option,
                    "JSON lines of metrics records (objects with a step)",
                    f"{path}, line {number}: {line.strip()[:60]!r}",
                )
            records.append(record)
    if not records:
        raise invalid(option, "a metrics file with at least one record", f"{path} (empty)")
    return records


def plot_files(paths: Sequence[str], out: str, *, title: str = "") -> list[str]:
    """Read ``paths`` and draw them into ``out`` (written atomically); return the panels."""
    from ..plotting import plot_metrics

    runs: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        label = os.path.basename(path)
        while label in runs:  # two files of one name in different folders
            label = os.path.join(os.path.basename(os.path.dirname(path)), label)
        runs[label] = read_metrics(path)
    panels: list[str] = []

    def write(tmp: str) -> None:
        panels.extend(plot_metrics(runs, tmp, title=title))

    write_atomic(out, write)
    return panels


def run(args: argparse.Namespace) -> int:
    """Run the ``plot`` subcommand; return the exit status."""
    check_out("--out", args.out, (".png",))
    panels = plot_files(args.metrics, args.out, title=args.title)
    print(f"grouping plot: wrote {args.out} ({', '.join(panels)})")
    return 0
