"""The ``grouping`` console command.

Subcommands (one ``_add_<name>_parser`` function and one ``_run_<name>`` function each; to add a
subcommand, write both and append the former to ``_SUBCOMMANDS``):

* ``grouping plan --preset NAME``: draw one batch mask for a preset stage, solve the window
  grouping with the library (``--strategy``, default auto) and with the published GreenMIM
  algorithm (``strategy="greenmim"``) at the same group size, print both side by side (groups,
  padding, cost, proven optimality, lower bound, solve time, with the plain-Python published
  algorithm of :mod:`grouping.testing.reference` timed too) and write
  ``plan_<preset>_s<stage>.png`` (both plans, every window coloured by its group, a legend).
* ``grouping sweep --preset NAME``: attention cost against group size, from GreenMIM's choice
  (g = the largest window count) up to the size beyond which no grouping can be cheaper, every
  cost relative to the published GreenMIM plan at the mask's own largest count; report (a) the
  library's packing at that g and (b) its sweep over g against the published plan, with solve
  times; print a table and write ``sweep_<preset>_s<stage>.png`` with the optimum marked.

The published algorithm is the baseline of both: "saved" always means against its plan.

Bad arguments give a one-line message on stderr and exit status 2 (no traceback).

Examples:
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
from typing import Any, NamedTuple, NoReturn

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


def _seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, received {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, received {value}")
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
# The published algorithm as the baseline of both commands

_PUBLISHED = "published GreenMIM"
_REFERENCE_S_PER_CELL = 5e-7  # first guess at the plain-Python DP's speed (0.3-0.4 us measured)


def _published(problem: _Problem, group_size: int | None = None) -> Any:
    """The published algorithm's plan (``strategy="greenmim"``), by default at GreenMIM's g."""
    return gp.solve(problem.counts, group_size, strategy="greenmim", channels=problem.channels)


def _published_optimal(published: Any, library: Any) -> bool:
    """Whether the published plan is proven minimal, by its own bound or the library's.

    ``library`` must be a plan of the same windows at the same group size.
    """
    return published.num_groups <= max(published.lower_bound, library.lower_bound)


def _reference_cells(published: Any) -> int:
    """Knapsack DP cells the plain-Python reference fills: windows left + 1, times g + 1, per group.

    ``published`` is the library's ``strategy="greenmim"`` plan, which has the reference's groups.
    """
    left = int(np.count_nonzero(published.counts))
    cells = 0
    for group in published.groups:
        cells += (left + 1) * (published.group_size + 1)
        left -= int(group.shape[0])
    return cells


class _ReferenceTime(NamedTuple):
    """The plain-Python published algorithm (``greenmim_reference``) timed on one mask."""

    seconds: float | None  # median wall-clock seconds; None if skipped (over the budget)
    runs: int
    cells: int  # its work: knapsack DP cells filled (see _reference_cells)
    estimate_s: float  # what it was expected to take before it ran
    matches: bool | None  # same groups, in order, as gp.solve(..., strategy="greenmim")


class _ReferenceTimer:
    """Times the plain-Python reference against one budget of seconds shared by all masks.

    A run whose estimate (its DP cells times the seconds per cell measured so far) exceeds what
    is left of the budget is skipped: a 2048 px stage would take about a minute.
    """

    def __init__(self, budget_s: float) -> None:
        self.left = float(budget_s)
        self._seconds = 0.0
        self._cells = 0

    def _rate(self) -> float:
        return self._seconds / self._cells if self._cells else _REFERENCE_S_PER_CELL

    def time(self, counts: np.ndarray, published: Any, *, repeats: int = 1) -> _ReferenceTime:
        from .testing.reference import greenmim_reference

        cells = _reference_cells(published)
        estimate = cells * self._rate()
        if estimate > self.left:
            return _ReferenceTime(None, 0, cells, estimate, None)
        as_list = counts.tolist()  # set-up outside the timing
        times: list[float] = []
        while True:
            start = time.perf_counter()
            groups = greenmim_reference(as_list, published.group_size)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            self.left -= elapsed
            self._seconds += elapsed
            self._cells += cells
            if len(times) >= repeats or sum(times) >= 1.0 or cells * self._rate() > self.left:
                break
        matches = groups == [g.tolist() for g in published.groups]
        return _ReferenceTime(float(np.median(times)), len(times), cells, estimate, matches)


def _add_reference_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference-budget",
        type=_seconds_arg,
        default=3.0,
        metavar="S",
        help="seconds the plain-Python published algorithm may take to be timed (a run "
        "expected to take longer is skipped; 0 skips it; default 3)",
    )


def _ms(seconds: float | None) -> str:
    return "skipped" if seconds is None else f"{1e3 * seconds:.3f} ms"


def _speedup(slow: float | None, fast: float) -> float | None:
    return None if slow is None or fast <= 0 else slow / fast


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def _optimal_text(plan: Any, other: Any) -> str:
    """Whether ``plan`` is minimal, using ``other`` (same windows, same g) as a second witness."""
    if plan.num_groups <= plan.lower_bound:
        return "yes (proven)"
    if plan.num_groups <= other.lower_bound:
        return "yes (proven by the other's bound)"
    if other.optimal and other.num_groups < plan.num_groups:
        return f"no (the optimum is {other.num_groups})"
    return "not proven"


def _mismatch_warning(matches: bool | None) -> None:
    if matches is False:  # a bug in one of the two; say so rather than hide it
        print(
            "warning: the plain-Python published algorithm's groups differ from strategy "
            "'greenmim' (please report this mask)"
        )


def _fewer(published: int, library: int) -> str:
    diff = published - library
    if diff >= 0:
        return f"{diff} group{'' if diff == 1 else 's'} fewer"
    return f"{-diff} group{'' if diff == -1 else 's'} more"


def _saved(fraction: float) -> str:
    """A cost saving as text: ``saves 5.9%`` or ``costs 2.0% more``."""
    if fraction >= -1e-12:
        return f"saves {100 * max(fraction, 0.0):.1f}%"
    return f"costs {-100 * fraction:.1f}% more"


# ----------------------------------------------------------------------------------------------
# grouping plan


def _add_plan_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="solve the window grouping of one preset stage, compare it with the published "
        "algorithm and plot both",
        description="Draw one batch-shared mask for a preset stage, count visible tokens per "
        "window, solve the grouping with the library (--strategy) and with the published "
        "GreenMIM algorithm (strategy greenmim) at the same group size, print both side by side "
        "(with the plain-Python published algorithm's solve time) and write "
        "plan_<preset>_s<stage>.png.",
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
    _add_reference_option(parser)
    parser.set_defaults(run=_run_plan)


def _plan_numbers(plan: Any, seconds: float, optimal: bool) -> dict[str, Any]:
    return {
        "strategy": plan.strategy,
        "group_size": plan.group_size,
        "num_groups": plan.num_groups,
        "lower_bound": plan.lower_bound,
        "optimal": bool(optimal),
        "padding": plan.padding,
        "padding_fraction": plan.padding_fraction,
        "cost": plan.cost,
        "solve_time_ms": 1e3 * seconds,
    }


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
    published, pub_seconds, _ = _timed_solve(lambda: _published(problem, plan.group_size))
    reference = _ReferenceTimer(args.reference_budget).time(problem.counts, published, repeats=5)
    pub_optimal = _published_optimal(published, plan)
    groups_saved = published.num_groups - plan.num_groups
    cost_saved = 1.0 - plan.cost / published.cost
    speedup = _speedup(reference.seconds, seconds)

    info = problem.describe()
    h, w = info["grid"]
    unit = info["mask_unit_tokens"]
    if args.group_size is None:
        how = "the largest count, GreenMIM's choice"
    elif args.group_size == "sweep":
        how = "swept for the lowest cost; the published algorithm packs at the same g"
    else:
        how = "fixed"
    head = [
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
        ("group size", f"{plan.group_size} ({how})"),
        (
            "cost model",
            f"attention_cost(groups, g, C={problem.channels}), MMAC per attention layer",
        ),
    ]

    pub_optimal_text = _optimal_text(published, plan)
    lib_optimal_text = _optimal_text(plan, published)
    if reference.seconds is None:
        ref_text = (
            f"skipped (expected {reference.estimate_s:.1f} s > --reference-budget "
            f"{args.reference_budget:g} s)"
        )
    else:
        ref_text = f"{_ms(reference.seconds)} in plain Python (median of {reference.runs})"
    table = [
        ("", f"{_PUBLISHED}", f"library ({plan.strategy})"),
        ("strategy", published.strategy, plan.strategy),
        ("groups", str(published.num_groups), str(plan.num_groups)),
        (
            "padding",
            f"{100 * published.padding_fraction:.2f}% ({published.padding} slots)",
            f"{100 * plan.padding_fraction:.2f}% ({plan.padding} slots)",
        ),
        ("cost", f"{_mmac(published.cost)} MMAC", f"{_mmac(plan.cost)} MMAC"),
        ("optimal", pub_optimal_text, lib_optimal_text),
        ("lower bound", str(published.lower_bound), str(plan.lower_bound)),
        ("solve time", ref_text, f"{_ms(seconds)} (median of {runs} after a warm-up call)"),
        ("", f"{_ms(pub_seconds)} as the library's 'greenmim'", ""),
    ]
    verdict = f"{_fewer(published.num_groups, plan.num_groups)}, {_saved(cost_saved)} of the cost"
    if speedup is not None:
        verdict += f", solves {_times(speedup)} faster than the plain-Python published algorithm"
    png = _plot_path(args, "plan", problem)
    plot_plan(
        problem.token_mask,
        plan,
        problem.window,
        problem.shift,
        png,
        title=f"{problem.preset.name}, stage {problem.stage}, mask ratio {problem.mask_ratio}, "
        f"seed {problem.seed}: {_PUBLISHED} vs the library at g={plan.group_size}",
        baseline=published,
        labels=(
            f"{_PUBLISHED} (strategy greenmim), optimal: {pub_optimal_text}",
            f"library (strategy {plan.strategy}), optimal: {lib_optimal_text}",
        ),
    )
    tail = [("library vs published", verdict), ("plot", png)]
    if args.json:
        tail.append(("json", args.json))
    width = max(len(k) for k, *_ in head + table + tail)
    col = max(len(row[1]) for row in table)
    for key, value in head:
        print(f"{key:<{width}}  {value}")
    for key, left, right in table:
        print(f"{key:<{width}}  {left:<{col}}  {right}".rstrip())
    for key, value in tail:
        print(f"{key:<{width}}  {value}")
    _mismatch_warning(reference.matches)
    if args.json:
        _write_json(
            args.json,
            {
                **info,
                "seed": problem.seed,
                **_plan_numbers(plan, seconds, bool(plan.optimal)),
                "fills": plan.fills.tolist(),
                "groups": [g.tolist() for g in plan.groups],
                "counts": problem.counts.tolist(),
                "published": {
                    **_plan_numbers(published, pub_seconds, pub_optimal),
                    "reference_time_ms": None
                    if reference.seconds is None
                    else 1e3 * reference.seconds,
                    "reference_runs": reference.runs,
                    "reference_cells": reference.cells,
                    "reference_matches": reference.matches,
                    "groups": [g.tolist() for g in published.groups],
                },
                "library_vs_published": {
                    "groups_saved": groups_saved,
                    "cost_saved_fraction": cost_saved,
                    "speedup_vs_reference": speedup,
                },
                "png": png,
            },
        )
    return 0


# ----------------------------------------------------------------------------------------------
# grouping sweep


def _add_sweep_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="attention cost against group size for one preset stage, against the published "
        "algorithm",
        description="Solve a preset stage at every group size from the largest window count "
        "(GreenMIM's choice) up to the size beyond which no grouping can be cheaper than the "
        "best found, with every cost relative to the published GreenMIM plan (strategy "
        "greenmim at the mask's largest count); report the library's packing at that g and its "
        "sweep over g against it, with solve times (the published algorithm in plain Python); "
        "print a table and write sweep_<preset>_s<stage>.png, optimum marked.",
    )
    _add_problem_options(parser)
    parser.add_argument(
        "--masks",
        type=_positive_int_arg,
        default=1,
        metavar="N",
        help="number of masks (seeds seed, seed+1, ...); the table shows medians (default 1)",
    )
    _add_reference_option(parser)
    parser.set_defaults(run=_run_sweep)


def _cost_cap(best_cost: float, tokens: int, channels: int) -> int:
    """Largest g at which a grouping with no padding at all could still cost <= ``best_cost``.

    ``num_groups * g >= tokens``, so any plan at size ``g`` costs at least
    ``tokens * (4*C**2 + 2*g*C)``; sizes beyond the returned one can never beat ``best_cost``.
    """
    c = float(channels)
    return int(math.floor((best_cost / tokens - 4.0 * c * c) / (2.0 * c) + 1e-9))


class _MaskResult(NamedTuple):
    """One mask of a sweep: the published plan, the library's at the same g, and its sweep."""

    problem: _Problem
    published: Any  # strategy "greenmim" at g = the mask's largest count (the baseline)
    packing: Any  # the library's strategy at the same g
    swept: Any  # the library's strategy at the group size its sweep chose
    sweep_s: float  # median seconds of each solve
    packing_s: float
    published_s: float  # the library's "greenmim" (bitset kernel)
    reference: _ReferenceTime  # the plain-Python published algorithm

    @property
    def published_optimal(self) -> bool:
        return _published_optimal(self.published, self.packing)


def _sweep_rows(
    results: list[_MaskResult], sizes: range, strategy: str, channels: int
) -> list[dict[str, Any]]:
    """Solve every mask at every group size; one row of medians per size.

    ``relative_cost`` is the cost over the mask's published GreenMIM plan's. A mask whose
    largest count exceeds ``g`` cannot be grouped at ``g``; such rows use the masks that fit
    (``"masks"``) and are never chosen as the optimum.
    """
    rows: list[dict[str, Any]] = []
    for g in sizes:
        fits = [r for r in results if r.problem.max_count <= g]
        plans = [gp.solve(r.problem.counts, g, strategy=strategy, channels=channels) for r in fits]
        rel = np.array([q.cost / r.published.cost for q, r in zip(plans, fits, strict=True)])
        row: dict[str, Any] = {
            "group_size": g,
            "masks": len(plans),
            "groups": float(np.median([q.num_groups for q in plans])),
            "padding_fraction": float(np.median([q.padding_fraction for q in plans])),
            "cost": float(np.median([q.cost for q in plans])),
            "relative_cost": float(np.median(rel)),
            "optimal_fraction": float(np.mean([q.optimal for q in plans])),
        }
        if len(results) > 1:
            row["relative_cost_mean"] = float(np.mean(rel))
            row["relative_cost_lo"] = float(np.quantile(rel, 0.1))
            row["relative_cost_hi"] = float(np.quantile(rel, 0.9))
        rows.append(row)
    return rows


def _savings(library: Sequence[float], published: Sequence[float]) -> dict[str, Any]:
    """Cost saved against the published plans: per mask, and over the summed cost of all."""
    lib = np.asarray(library, dtype=np.float64)
    pub = np.asarray(published, dtype=np.float64)
    saved = 1.0 - lib / pub
    return {
        "cost_saved_total": float(1.0 - lib.sum() / pub.sum()),
        "cost_saved_mean": float(saved.mean()),
        "cost_saved_median": float(np.median(saved)),
        "cost_saved_max": float(saved.max()),
        "cost_saved_min": float(saved.min()),
        "masks_cheaper": int(np.sum(saved > 1e-12)),
        "masks_costlier": int(np.sum(saved < -1e-12)),
    }


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _savings_text(s: dict[str, Any], masks: int, *, count: bool = True) -> str:
    """The savings of :func:`_savings` in one line (``count``: say on how many masks)."""
    if masks == 1:
        return f"{_saved(s['cost_saved_total'])} of the cost"
    text = (
        f"cost saved: total {_pct(s['cost_saved_total'])}, mean {_pct(s['cost_saved_mean'])}, "
        f"median {_pct(s['cost_saved_median'])}, max {_pct(s['cost_saved_max'])}"
    )
    if count:
        text += f"; cheaper on {s['masks_cheaper']}/{masks} masks"
    if s["masks_costlier"]:
        text += f", costlier on {s['masks_costlier']}"
    return text


def _optimal_cell(fraction: float) -> str:
    return "yes" if fraction == 1.0 else ("no" if fraction == 0.0 else f"{fraction:.0%}")


def _median_ms(values: Sequence[float]) -> float:
    return 1e3 * float(np.median(values))


def _solve_times(results: list[_MaskResult], budget_s: float) -> dict[str, Any]:
    """Median solve times per mask (ms) and the speed-ups over the plain-Python reference."""
    timed = [r for r in results if r.reference.seconds is not None]
    out: dict[str, Any] = {
        "library_sweep_ms": _median_ms([r.sweep_s for r in results]),
        "library_packing_ms": _median_ms([r.packing_s for r in results]),
        "published_library_ms": _median_ms([r.published_s for r in results]),
        "published_reference_ms": None,
        "reference_masks": len(timed),
        "reference_budget_s": budget_s,
        "reference_matches": None,
        "speedup_sweep_vs_reference": None,
        "speedup_packing_vs_reference": None,
    }
    if timed:
        ref = [r.reference.seconds for r in timed]
        out["published_reference_ms"] = _median_ms(ref)
        out["reference_matches"] = all(r.reference.matches for r in timed)
        out["speedup_sweep_vs_reference"] = float(
            np.median([t / r.sweep_s for t, r in zip(ref, timed, strict=True)])
        )
        out["speedup_packing_vs_reference"] = float(
            np.median([t / r.packing_s for t, r in zip(ref, timed, strict=True)])
        )
    return out


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
    repeats, budget = (3, 0.1) if many else (5, 1.0)
    timer = _ReferenceTimer(args.reference_budget)
    results = []
    for p in problems:
        swept, sweep_s, _ = _timed_solve(
            lambda p=p: solve(p, "sweep"), repeats=repeats, budget_s=budget
        )
        packing, packing_s, _ = _timed_solve(
            lambda p=p: solve(p, None), repeats=repeats, budget_s=budget
        )
        published, published_s, _ = _timed_solve(
            lambda p=p: _published(p), repeats=repeats, budget_s=budget
        )
        results.append(
            _MaskResult(
                p,
                published,
                packing,
                swept,
                sweep_s,
                packing_s,
                published_s,
                timer.time(p.counts, published),
            )
        )
    low = min(p.max_count for p in problems)
    high = max(
        max(r.swept.group_size, _cost_cap(r.swept.cost, r.swept.num_tokens, channels))
        for r in results
    )
    if args.max_group_size is not None:
        high = min(high, args.max_group_size)
    high = max(high, largest)
    rows = _sweep_rows(results, range(low, high + 1), strategy, channels)
    complete = [r for r in rows if r["masks"] == len(problems)]
    best_row = min(complete, key=lambda r: (r["relative_cost"], r["group_size"]))
    best = int(best_row["group_size"])

    pub_g = float(np.median([r.published.group_size for r in results]))
    published_row = {
        "strategy": "greenmim",
        "group_size": pub_g,
        "groups": float(np.median([r.published.num_groups for r in results])),
        "padding_fraction": float(np.median([r.published.padding_fraction for r in results])),
        "cost": float(np.median([r.published.cost for r in results])),
        "optimal_fraction": float(np.mean([r.published_optimal for r in results])),
    }
    packing = _savings([r.packing.cost for r in results], [r.published.cost for r in results])
    packing.update(
        {
            "group_size_median": pub_g,
            "library_groups_total": sum(r.packing.num_groups for r in results),
            "published_groups_total": sum(r.published.num_groups for r in results),
            "library_groups_median": float(np.median([r.packing.num_groups for r in results])),
            "published_groups_median": published_row["groups"],
            "masks_fewer_groups": sum(
                r.packing.num_groups < r.published.num_groups for r in results
            ),
            "masks_more_groups": sum(
                r.packing.num_groups > r.published.num_groups for r in results
            ),
            "library_optimal_fraction": float(np.mean([r.packing.optimal for r in results])),
            "published_optimal_fraction": published_row["optimal_fraction"],
        }
    )
    packing["groups_saved_total"] = (
        packing["published_groups_total"] - packing["library_groups_total"]
    )
    sweep = _savings([r.swept.cost for r in results], [r.published.cost for r in results])
    sweep.update(
        {
            "group_size_median": float(np.median([r.swept.group_size for r in results])),
            "groups_median": float(np.median([r.swept.num_groups for r in results])),
            "optimal_fraction": float(np.mean([r.swept.optimal for r in results])),
        }
    )
    times = _solve_times(results, args.reference_budget)

    info = first.describe()
    print(first.preset.summary(first.stage))
    print(
        f"mask ratio {first.mask_ratio}, mask unit {first.mask_unit_px} px, "
        f"{'shifted' if first.shift else 'unshifted'} windows (shift {first.shift}), "
        f"{info['nonempty_windows']}/{info['windows']} non-empty windows, "
        f"{info['visible_tokens']} visible tokens, strategy {strategy}, C={channels}, "
        + (
            f"{args.masks} masks (seeds {args.seed}..{args.seed + args.masks - 1})"
            if many
            else f"seed {args.seed}"
        )
    )
    print(
        f"relative = cost / the {_PUBLISHED} plan's (strategy greenmim at the mask's own largest "
        "count)"
    )
    if many:
        print("the table: medians (and the mean of relative) over the masks that fit each g")
    header = f"{'g':>5}  {'groups':>7}  {'padding %':>9}  {'cost MMAC':>10}  {'relative':>8}"
    if many:
        header += f"  {'mean':>6}  {'p10-p90':>13}  {'masks':>5}"
    header += f"  {'optimal':>7}"
    print(header)

    def table_line(row: dict[str, Any], rel: str, mean: str, band: str) -> str:
        line = (
            f"{row['group_size']:>5g}  {row['groups']:>7g}  "
            f"{100 * row['padding_fraction']:>9.1f}  {_mmac(row['cost']):>10}  {rel:>8}"
        )
        if many:
            line += f"  {mean:>6}  {band:>13}  {row.get('masks', len(results)):>5}"
        return line + f"  {_optimal_cell(row['optimal_fraction']):>7}"

    print(table_line(published_row, "1.000", "1.000", "1.000-1.000") + f"  {_PUBLISHED} (baseline)")
    print("-" * len(header))
    for row in rows:
        line = table_line(
            row,
            f"{row['relative_cost']:.3f}",
            f"{row.get('relative_cost_mean', 0.0):.3f}",
            f"{row.get('relative_cost_lo', 0.0):.3f}-{row.get('relative_cost_hi', 0.0):.3f}",
        )
        notes = []
        if not many and row["group_size"] == low:
            notes.append("library at GreenMIM's g")
        if row["group_size"] == best:
            notes.append("<- optimum")
        if notes:
            line += "  " + ", ".join(notes)
        print(line)

    n = len(results)
    if many:
        print(
            f"library ({strategy}) vs {_PUBLISHED} (strategy greenmim at each mask's largest "
            f"count), {n} masks:"
        )
        print(
            f"  (a) packing at GreenMIM's g:  fewer groups on {packing['masks_fewer_groups']}/{n} "
            f"masks"
            + (f", more on {packing['masks_more_groups']}" if packing["masks_more_groups"] else "")
            + f" ({packing['library_groups_total']} vs {packing['published_groups_total']} "
            f"groups in all); {_savings_text(packing, n, count=False)}"
        )
        print(
            f"  (b) sweep over group sizes:   median g={sweep['group_size_median']:g}; "
            f"{_savings_text(sweep, n)}"
        )
        print(
            f"  best single g for all masks:  g={best}, relative cost median "
            f"{best_row['relative_cost']:.3f}, mean {best_row['relative_cost_mean']:.3f}"
        )
        print("  (total = over the summed cost of all masks, i.e. what a run of such steps saves)")
    else:
        r = results[0]
        print(
            f"{_PUBLISHED} at g={r.published.group_size}: {r.published.num_groups} groups, "
            f"{_mmac(r.published.cost)} MMAC, optimal: {_optimal_text(r.published, r.packing)}"
        )
        print(
            f"  (a) library packing at the same g:  {r.packing.num_groups} groups"
            f"{' (proven optimal)' if r.packing.optimal else ''}, "
            f"{_fewer(r.published.num_groups, r.packing.num_groups)}, {_savings_text(packing, 1)}"
        )
        print(
            f"  (b) library sweep over g:           g={r.swept.group_size}, "
            f"{r.swept.num_groups} groups, {_savings_text(sweep, 1)}"
        )
        if not math.isclose(r.swept.cost, best_row["cost"], rel_tol=1e-12):
            print(
                f"note: the solver's sweep (g={r.swept.group_size}, {_mmac(r.swept.cost)} MMAC) "
                f"and the table's best (g={best}, {_mmac(best_row['cost'])} MMAC) differ"
            )
    per = "per mask, medians" if many else "median of repeats"
    line = (
        f"solve time ({per}): library sweep over g {times['library_sweep_ms']:.3f} ms, library "
        f"packing {times['library_packing_ms']:.3f} ms; {_PUBLISHED} "
    )
    if times["published_reference_ms"] is None:
        line += f"in plain Python skipped (over --reference-budget {args.reference_budget:g} s)"
    else:
        line += (
            f"in plain Python {times['published_reference_ms']:.3f} ms"
            + (f" ({times['reference_masks']}/{n} masks timed)" if many else "")
            + f": the library's whole sweep is {_times(times['speedup_sweep_vs_reference'])} "
            f"faster than the published algorithm at its one g, its packing "
            f"{_times(times['speedup_packing_vs_reference'])}"
        )
    print(line)
    _mismatch_warning(times["reference_matches"])

    png = _plot_path(args, "sweep", first)
    packing_rel = [r.packing.cost / r.published.cost for r in results]
    plot_sweep(
        complete if many else rows,
        png,
        best,
        title=f"{first.preset.name}, stage {first.stage}, mask ratio {first.mask_ratio}, "
        f"C={channels}, {strategy}" + (f", {args.masks} masks" if many else ""),
        label=f"library ({strategy}), best packing at each g",
        baseline_label=f"{_PUBLISHED} (g = max count)",
        baseline_group_size=pub_g,
        packing_relative=float(np.mean(packing_rel)),
    )
    print(f"plot: {png}")
    if args.json:
        payload = {
            **info,
            "strategy": strategy,
            "masks": args.masks,
            "seeds": [p.seed for p in problems],
            "baseline": "the published GreenMIM plan (strategy greenmim) at the mask's largest "
            "count: relative_cost = cost / its cost",
            "rows": rows,
            "best_group_size": best,
            "best_relative_cost": best_row["relative_cost"],
            "published": published_row,
            "packing_vs_published": packing,
            "sweep_vs_published": sweep,
            "solve_times": times,
            "solver_sweep": [
                {
                    "seed": r.problem.seed,
                    "max_count": r.problem.max_count,
                    "group_size": r.swept.group_size,
                    "num_groups": r.swept.num_groups,
                    "optimal": bool(r.swept.optimal),
                    "cost": r.swept.cost,
                    "baseline_cost": r.published.cost,
                    "relative_cost": r.swept.cost / r.published.cost,
                    "published_groups": r.published.num_groups,
                    "published_optimal": r.published_optimal,
                    "packing_groups": r.packing.num_groups,
                    "packing_optimal": bool(r.packing.optimal),
                    "packing_cost": r.packing.cost,
                    "sweep_time_ms": 1e3 * r.sweep_s,
                    "packing_time_ms": 1e3 * r.packing_s,
                    "published_time_ms": 1e3 * r.published_s,
                    "reference_time_ms": None
                    if r.reference.seconds is None
                    else 1e3 * r.reference.seconds,
                    "reference_matches": r.reference.matches,
                }
                for r in results
            ],
            "png": png,
        }
        if many:  # per mask in solver_sweep; the first mask's alone would mislead
            payload["best_mean_relative_cost"] = best_row["relative_cost_mean"]
            for key in ("max_count", "visible_tokens", "nonempty_windows"):
                del payload[key]
        _write_json(args.json, payload)
        print(f"json: {args.json}")
    return 0


# ----------------------------------------------------------------------------------------------
# Entry point

_SUBCOMMANDS: list[Callable[[Any], None]] = [_add_plan_parser, _add_sweep_parser]
from .train.cli import add_pretrain_parser  # noqa: E402  (torch is imported lazily)

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
