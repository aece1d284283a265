"""The ``grouping`` console command.

Subcommands (one ``_add_<name>_parser`` function and one ``_run_<name>`` function each; to add a
subcommand, write both and append the former to ``_SUBCOMMANDS``):

* ``grouping plan --preset NAME``: draw one batch mask for a preset stage, solve the window
  grouping, print its numbers and write ``plan_<preset>_s<stage>.png`` (the mask with every
  window coloured by its group).
* ``grouping sweep --preset NAME``: attention cost against group size, from GreenMIM's choice
  (g = the largest window count) up to the size beyond which no grouping can be cheaper; print a
  table and write ``sweep_<preset>_s<stage>.png`` with the optimum marked.

Bad arguments give a one-line message on stderr and exit status 2 (no traceback).

Example:
    $ grouping sweep --preset swin-b-224-w7 --out results
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

import grouping as gp

from .core.errors import GroupingValueError, check_int, invalid
from .presets import Preset, get_preset, preset_counts, preset_names

__all__ = ["build_parser", "main"]

_STRATEGIES: tuple[str, ...] = tuple(gp.STRATEGIES)


class _UsageError(Exception):
    """A command-line argument argparse rejected (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


# ----------------------------------------------------------------------------------------------
# Argument types and shared options


def _group_size_arg(text: str) -> int | str | None:
    text = text.strip().lower()
    if text == "sweep":
        return "sweep"
    if text in ("max", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive int, 'sweep' or 'max', received {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, received {value}")
    return value


def _positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, received {value}")
    return value


def _add_problem_options(parser: argparse.ArgumentParser) -> None:
    """The options that define one grouping problem (shared by ``plan`` and ``sweep``)."""
    parser.add_argument(
        "--preset",
        required=True,
        metavar="NAME",
        help="model/input preset: " + ", ".join(preset_names()),
    )
    parser.add_argument(
        "--stage", type=int, default=0, help="stage index from 0 (the first Swin stage; default 0)"
    )
    parser.add_argument(
        "--mask-ratio",
        type=float,
        default=0.75,
        metavar="R",
        help="fraction of mask units removed, in [0, 1) (default 0.75)",
    )
    parser.add_argument(
        "--mask-unit",
        type=int,
        default=None,
        metavar="PX",
        help="mask-unit side in pixels (default: the preset's, 32)",
    )
    parser.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    parser.add_argument(
        "--shift", action="store_true", help="use the shifted-window partition (shift window//2)"
    )
    parser.add_argument(
        "--channels",
        type=int,
        default=None,
        metavar="C",
        help="channels of the cost model (default: the preset's at this stage)",
    )
    parser.add_argument(
        "--strategy",
        default="auto",
        metavar="S",
        help="solver strategy: " + ", ".join(_STRATEGIES) + " (default auto)",
    )
    parser.add_argument(
        "--max-group-size",
        type=_positive_int_arg,
        default=None,
        metavar="G",
        help="largest group size a sweep may choose (default: derived by the solver)",
    )
    parser.add_argument(
        "--out", default=".", metavar="DIR", help="directory for the PNG (default: .)"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")


class _Problem:
    """One preset stage with its mask(s) and window counts, as the options describe it."""

    def __init__(self, args: argparse.Namespace, seed: int) -> None:
        self.preset: Preset = get_preset(args.preset)
        self.stage = check_int("stage", args.stage, minimum=0)
        self.seed = seed
        self.mask_ratio = args.mask_ratio
        self.mask_unit_px = self.preset.mask_unit_px if args.mask_unit is None else args.mask_unit
        self.token_mask, counts = preset_counts(
            self.preset,
            stage=self.stage,
            mask_ratio=args.mask_ratio,
            mask_unit_px=self.mask_unit_px,
            shift=args.shift,
            seed=seed,
        )
        self.window_grid = tuple(int(n) for n in counts.shape)
        self.counts = counts.ravel()
        self.window = self.preset.window(self.stage)
        self.shift = self.preset.shift(self.stage, args.shift)
        if args.channels is None:
            self.channels = self.preset.channels(self.stage)
        else:
            self.channels = check_int("channels", args.channels, minimum=1)
        if self.counts.sum() == 0:
            raise GroupingValueError(
                f"mask_ratio: expected a ratio that keeps at least one visible token, received "
                f"{args.mask_ratio} (nothing visible at stage {self.stage})"
            )

    @property
    def max_count(self) -> int:
        return int(self.counts.max())

    def describe(self) -> dict[str, Any]:
        h, w = self.token_mask.shape
        unit = self.preset.mask_unit_tokens(self.stage, self.mask_unit_px)
        return {
            "preset": self.preset.name,
            "stage": self.stage,
            "image_size": self.preset.image_size,
            "grid": [h, w],
            "window": self.window,
            "shift": self.shift,
            "mask_ratio": self.mask_ratio,
            "mask_unit_px": self.mask_unit_px,
            "mask_unit_tokens": unit,
            "channels": self.channels,
            "visible_tokens": int(self.token_mask.sum()),
            "total_tokens": h * w,
            "windows": int(self.counts.size),
            "nonempty_windows": int(np.count_nonzero(self.counts)),
            "max_count": self.max_count,
        }


def _timed_solve(solve: Callable[[], Any], *, repeats: int = 5, budget_s: float = 1.0) -> Any:
    """Solve once as a warm-up (JIT compile or cache load), then time up to ``repeats`` runs."""
    plan = solve()
    times = []
    spent = 0.0
    while len(times) < repeats and spent < budget_s:
        start = time.perf_counter()
        plan = solve()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
    return plan, float(np.median(times)), len(times)


def _mmac(cost: float) -> str:
    return "nan" if math.isnan(cost) else f"{cost / 1e6:.2f}"


def _write_json(path: str, payload: dict[str, Any]) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")


def _plot_path(args: argparse.Namespace, kind: str, problem: _Problem) -> str:
    return os.path.join(args.out, f"{kind}_{problem.preset.name}_s{problem.stage}.png")


# ----------------------------------------------------------------------------------------------
# grouping plan


def _add_plan_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="solve the window grouping of one preset stage and plot it",
        description="Draw one batch-shared mask for a preset stage, count visible tokens per "
        "window, solve the grouping, print it and write plan_<preset>_s<stage>.png.",
    )
    _add_problem_options(parser)
    parser.add_argument(
        "--group-size",
        type=_group_size_arg,
        default=None,
        metavar="G|sweep",
        help="group capacity in tokens, 'sweep' (the cheapest) or 'max' (default: the largest "
        "window count, GreenMIM's choice)",
    )
    parser.set_defaults(run=_run_plan)


def _run_plan(args: argparse.Namespace) -> int:
    from .plotting import plot_plan

    problem = _Problem(args, args.seed)
    plan, seconds, runs = _timed_solve(
        lambda: gp.solve(
            problem.counts,
            args.group_size,
            strategy=args.strategy,
            channels=problem.channels,
            max_group_size=args.max_group_size,
        )
    )
    info = problem.describe()
    h, w = info["grid"]
    unit = info["mask_unit_tokens"]
    if args.group_size is None:
        how = "the largest count, GreenMIM's choice"
    elif args.group_size == "sweep":
        how = "swept for the lowest cost"
    else:
        how = "fixed"
    lines = [
        ("preset", problem.preset.summary(problem.stage)),
        (
            "mask",
            f"{h}x{w} tokens, {info['visible_tokens']} visible "
            f"({100 * info['visible_tokens'] / (h * w):.1f}%), mask ratio {problem.mask_ratio}, "
            f"mask unit {problem.mask_unit_px} px = {unit}x{unit} tokens, seed {problem.seed}",
        ),
        (
            "windows",
            f"{info['nonempty_windows']}/{info['windows']} non-empty "
            f"(window {problem.window}, shift {problem.shift}, grid "
            f"{problem.window_grid[0]}x{problem.window_grid[1]}), largest count "
            f"{problem.max_count}",
        ),
        ("strategy", plan.strategy),
        ("group size", f"{plan.group_size} ({how})"),
        ("groups", str(plan.num_groups)),
        ("lower bound", str(plan.lower_bound)),
        ("optimal", "yes (proven)" if plan.optimal else "not proven"),
        ("padding", f"{100 * plan.padding_fraction:.2f}% ({plan.padding} slots)"),
        ("cost", f"{_mmac(plan.cost)} MMAC per attention layer (C={problem.channels})"),
        ("solve time", f"{1e3 * seconds:.3f} ms (median of {runs} after a warm-up call)"),
    ]
    png = _plot_path(args, "plan", problem)
    plot_plan(
        problem.token_mask,
        plan,
        problem.window,
        problem.shift,
        png,
        title=f"{problem.preset.name}, stage {problem.stage}, mask ratio {problem.mask_ratio}, "
        f"seed {problem.seed}, {plan.strategy}",
    )
    lines.append(("plot", png))
    if args.json:
        lines.append(("json", args.json))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    if args.json:
        _write_json(
            args.json,
            {
                **info,
                "seed": problem.seed,
                "strategy": plan.strategy,
                "group_size": plan.group_size,
                "num_groups": plan.num_groups,
                "lower_bound": plan.lower_bound,
                "optimal": bool(plan.optimal),
                "padding": plan.padding,
                "padding_fraction": plan.padding_fraction,
                "cost": plan.cost,
                "solve_time_ms": 1e3 * seconds,
                "fills": plan.fills.tolist(),
                "groups": [g.tolist() for g in plan.groups],
                "counts": problem.counts.tolist(),
                "png": png,
            },
        )
    return 0


# ----------------------------------------------------------------------------------------------
# grouping sweep


def _add_sweep_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="attention cost against group size for one preset stage",
        description="Solve a preset stage at every group size from the largest window count "
        "(GreenMIM's choice) up to the size beyond which no grouping can be cheaper than the "
        "best found; print a table and write sweep_<preset>_s<stage>.png, optimum marked.",
    )
    _add_problem_options(parser)
    parser.add_argument(
        "--masks",
        type=_positive_int_arg,
        default=1,
        metavar="N",
        help="number of masks (seeds seed, seed+1, ...); the table shows medians (default 1)",
    )
    parser.set_defaults(run=_run_sweep)


def _cost_cap(best_cost: float, tokens: int, channels: int) -> int:
    """Largest g at which a grouping with no padding at all could still cost <= ``best_cost``.

    ``num_groups * g >= tokens``, so any plan at size ``g`` costs at least
    ``tokens * (4*C**2 + 2*g*C)``; sizes beyond the returned one can never beat ``best_cost``.
    """
    c = float(channels)
    return int(math.floor((best_cost / tokens - 4.0 * c * c) / (2.0 * c) + 1e-9))


def _sweep_rows(
    problems: list[_Problem],
    baselines: list[Any],
    sizes: range,
    strategy: str,
    channels: int,
) -> list[dict[str, Any]]:
    """Solve every mask at every group size; one row of medians per size.

    A mask whose largest count exceeds ``g`` cannot be grouped at ``g``; such rows use the masks
    that fit (``"masks"``) and are never chosen as the optimum.
    """
    rows: list[dict[str, Any]] = []
    for g in sizes:
        fits = [(p, b) for p, b in zip(problems, baselines, strict=True) if p.max_count <= g]
        plans = [gp.solve(p.counts, g, strategy=strategy, channels=channels) for p, _ in fits]
        rel = np.array([q.cost / b.cost for q, (_, b) in zip(plans, fits, strict=True)])
        row: dict[str, Any] = {
            "group_size": g,
            "masks": len(plans),
            "groups": float(np.median([q.num_groups for q in plans])),
            "padding_fraction": float(np.median([q.padding_fraction for q in plans])),
            "cost": float(np.median([q.cost for q in plans])),
            "relative_cost": float(np.median(rel)),
            "optimal_fraction": float(np.mean([q.optimal for q in plans])),
        }
        if len(problems) > 1:
            row["relative_cost_lo"] = float(np.quantile(rel, 0.1))
            row["relative_cost_hi"] = float(np.quantile(rel, 0.9))
        rows.append(row)
    return rows


def _saving(relative: float) -> str:
    if relative <= 1.0:
        return f"saves {100 * (1 - relative):.1f}%"
    return f"costs {100 * (relative - 1):.1f}% more"


def _run_sweep(args: argparse.Namespace) -> int:
    from .plotting import plot_sweep

    problems = [_Problem(args, args.seed + i) for i in range(args.masks)]
    first = problems[0]
    channels = first.channels
    many = len(problems) > 1
    strategy = args.strategy

    def solve(p: _Problem, g: int | str | None) -> Any:
        return gp.solve(
            p.counts, g, strategy=strategy, channels=channels, max_group_size=args.max_group_size
        )

    largest = max(p.max_count for p in problems)
    if args.max_group_size is not None and args.max_group_size < largest:
        raise invalid(
            "max_group_size",
            f"at least the largest window count {largest} (no window is split)",
            args.max_group_size,
        )
    swept = [solve(p, "sweep") for p in problems]
    baselines = [solve(p, None) for p in problems]  # GreenMIM's g = the largest count
    low = min(p.max_count for p in problems)
    high = max(max(s.group_size, _cost_cap(s.cost, s.num_tokens, channels)) for s in swept)
    if args.max_group_size is not None:
        high = min(high, args.max_group_size)
    high = max(high, largest)
    rows = _sweep_rows(problems, baselines, range(low, high + 1), strategy, channels)
    complete = [r for r in rows if r["masks"] == len(problems)]
    best_row = min(complete, key=lambda r: (r["relative_cost"], r["group_size"]))
    best = int(best_row["group_size"])

    info = first.describe()
    print(first.preset.summary(first.stage))
    print(
        f"mask ratio {first.mask_ratio}, mask unit {first.mask_unit_px} px, "
        f"{'shifted' if first.shift else 'unshifted'} windows (shift {first.shift}), "
        f"{info['nonempty_windows']}/{info['windows']} non-empty windows, "
        f"{info['visible_tokens']} visible tokens, strategy {strategy}, C={channels}, "
        + (f"{args.masks} masks (seeds {args.seed}..)" if many else f"seed {args.seed}")
    )
    if many:
        print("medians over the masks that fit each g; relative = cost / cost at the mask's own")
        print("largest count (GreenMIM's choice)")
    header = f"{'g':>5}  {'groups':>7}  {'padding %':>9}  {'cost MMAC':>10}  {'relative':>8}"
    if many:
        header += f"  {'p10-p90':>13}  {'masks':>5}"
    print(header + f"  {'optimal':>7}")
    for row in rows:
        line = (
            f"{row['group_size']:>5}  {row['groups']:>7g}  "
            f"{100 * row['padding_fraction']:>9.1f}  {_mmac(row['cost']):>10}  "
            f"{row['relative_cost']:>8.3f}"
        )
        if many:
            band = f"{row['relative_cost_lo']:.3f}-{row['relative_cost_hi']:.3f}"
            line += f"  {band:>13}  {row['masks']:>5}"
        frac = row["optimal_fraction"]
        line += f"  {'yes' if frac == 1.0 else ('no' if frac == 0.0 else f'{frac:.0%}'):>7}"
        notes = []
        if not many and row["group_size"] == low:
            notes.append("GreenMIM (g = max count)")
        if row["group_size"] == best:
            notes.append("<- optimum")
        if notes:
            line += "  " + ", ".join(notes)
        print(line)

    solver_rel = [s.cost / b.cost for s, b in zip(swept, baselines, strict=True)]
    if many:
        print(
            f"best fixed g for all {len(problems)} masks: g={best}, median relative cost "
            f"{best_row['relative_cost']:.3f} ({_saving(best_row['relative_cost'])})"
        )
        print(
            f"solver sweep, per mask: median g={np.median([s.group_size for s in swept]):g}, "
            f"median relative cost {np.median(solver_rel):.3f} "
            f"({_saving(float(np.median(solver_rel)))})"
        )
    else:
        s = swept[0]
        print(
            f"optimum: g={best}, relative cost {best_row['relative_cost']:.3f} "
            f"({_saving(best_row['relative_cost'])} against GreenMIM's g={low}); "
            f"solver sweep: g={s.group_size}, {s.num_groups} groups"
        )
        if not math.isclose(s.cost, best_row["cost"], rel_tol=1e-12):
            print(
                f"note: the solver's sweep (g={s.group_size}, {_mmac(s.cost)} MMAC) and the "
                f"table's best (g={best}, {_mmac(best_row['cost'])} MMAC) differ"
            )

    png = _plot_path(args, "sweep", first)
    plot_sweep(
        complete if many else rows,
        png,
        best,
        title=f"{first.preset.name}, stage {first.stage}, mask ratio {first.mask_ratio}, "
        f"C={channels}, {strategy}" + (f", {args.masks} masks" if many else ""),
    )
    print(f"plot: {png}")
    if args.json:
        payload = {
            **info,
            "strategy": strategy,
            "masks": args.masks,
            "seeds": [p.seed for p in problems],
            "rows": rows,
            "best_group_size": best,
            "best_relative_cost": best_row["relative_cost"],
            "solver_sweep": [
                {
                    "seed": p.seed,
                    "max_count": p.max_count,
                    "group_size": s.group_size,
                    "num_groups": s.num_groups,
                    "optimal": bool(s.optimal),
                    "cost": s.cost,
                    "baseline_cost": b.cost,
                    "relative_cost": s.cost / b.cost,
                }
                for p, s, b in zip(problems, swept, baselines, strict=True)
            ],
            "png": png,
        }
        if many:  # per mask in solver_sweep; the first mask's alone would mislead
            for key in ("max_count", "visible_tokens", "nonempty_windows"):
                del payload[key]
        _write_json(args.json, payload)
        print(f"json: {args.json}")
    return 0


# ----------------------------------------------------------------------------------------------
# Entry point

_SUBCOMMANDS: list[Callable[[Any], None]] = [_add_plan_parser, _add_sweep_parser]
from .models.pretrain import add_pretrain_parser  # noqa: E402  (torch is imported lazily)

_SUBCOMMANDS.append(add_pretrain_parser)


def build_parser() -> argparse.ArgumentParser:
    """The ``grouping`` argument parser, one subparser per subcommand."""
    parser = _Parser(
        prog="grouping",
        description="Window grouping for masked image modeling on hierarchical vision "
        "transformers: solve and plot presets.",
    )
    parser.add_argument("--version", action="version", version=f"grouping {gp.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
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
    except (_UsageError, GroupingValueError) as exc:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
