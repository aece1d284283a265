"""``grouping plan --preset NAME``: one mask, the library's plan beside the published one.

Draws one batch mask for a preset stage, solves the window grouping with the library
(``--strategy``, default auto) and with the published GreenMIM algorithm
(``strategy="greenmim"``) at the same group size, prints both side by side (groups, padding,
cost, proven optimality, lower bound, solve time, with the plain-Python published algorithm of
:mod:`grouping.testing.reference` timed too) and writes ``plan_<preset>_s<stage>.png`` (both
plans, every window coloured by its group, a legend).

:func:`compute` returns a :class:`PlanResult`; :func:`text`, :func:`plot` and
:func:`to_json` report it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ..core.plan import GroupingPlan
from ..core.solve import solve
from ..report import write_json
from . import _problem as pb
from ._args import group_size_arg

__all__ = ["PlanResult", "add_parser", "compute", "plot", "run", "text", "to_json"]


def add_parser(subparsers: Any) -> None:
    """Add the ``plan`` subcommand to an ``argparse`` subparsers object."""
    group_size = {
        "type": group_size_arg(),
        "default": None,
        "metavar": "G|sweep",
        "help": "group capacity in tokens, 'sweep' (the cheapest) or 'max' (default: the "
        "largest window count, GreenMIM's choice)",
    }
    pb.add_problem_parser(
        subparsers,
        "plan",
        run,
        ("--group-size", group_size),
        help="solve the window grouping of one preset stage, compare it with the published "
        "algorithm and plot both",
        description="Draw one batch-shared mask for a preset stage, count visible tokens per "
        "window, solve the grouping with the library (--strategy) and with the published "
        "GreenMIM algorithm (strategy greenmim) at the same group size, print both side by side "
        "(with the plain-Python published algorithm's solve time) and write "
        "plan_<preset>_s<stage>.png.",
    )


@dataclass(frozen=True)
class PlanResult:
    """One mask's plans: the library's and the published algorithm's at the same size.

    Attributes:
        problem: the preset stage and its mask.
        requested: the ``--group-size`` asked for (int, ``"sweep"`` or None).
        plan: the library's plan; seconds, runs: its median solve time and how many runs.
        published: the published algorithm's plan at ``plan.group_size``;
            published_seconds: the library's ``"greenmim"`` solve time.
        reference: the plain-Python published algorithm's time.
        reference_budget_s: ``--reference-budget``.
    """

    problem: pb.Problem
    requested: int | str | None
    plan: GroupingPlan
    seconds: float
    runs: int
    published: GroupingPlan
    published_seconds: float
    reference: pb.ReferenceTime
    reference_budget_s: float

    @property
    def published_optimal(self) -> bool:
        """The published plan is proven minimal (by its bound or the library's)."""
        return pb.published_optimal(self.published, self.plan)

    @property
    def groups_saved(self) -> int:
        """Groups of the published plan minus the library's."""
        return self.published.num_groups - self.plan.num_groups

    @property
    def cost_saved(self) -> float:
        """Fraction of the published plan's cost that the library's saves."""
        return 1.0 - self.plan.cost / self.published.cost

    @property
    def speedup(self) -> float | None:
        """The plain-Python published algorithm's time over the library's (None if skipped)."""
        slow = self.reference.seconds
        return None if slow is None or self.seconds <= 0 else slow / self.seconds


def compute(args: argparse.Namespace) -> PlanResult:
    """Draw the mask, solve it both ways and time the solves."""
    problem = pb.Problem(args, args.seed)
    plan, seconds, runs = pb.timed_solve(
        lambda: solve(
            problem.counts,
            args.group_size,
            strategy=args.strategy,
            channels=problem.channels,
            max_group_size=args.max_group_size,
        )
    )
    pub, pub_seconds, _ = pb.timed_solve(lambda: pb.published(problem, plan.group_size))
    reference = pb.ReferenceTimer(args.reference_budget).time(problem.counts, pub, repeats=5)
    return PlanResult(
        problem,
        args.group_size,
        plan,
        seconds,
        runs,
        pub,
        pub_seconds,
        reference,
        args.reference_budget,
    )


def text(result: PlanResult, png: str, json_path: str | None = None) -> str:
    """The report: the problem, the two plans side by side, the verdict and the files."""
    problem, plan, pub, reference = result.problem, result.plan, result.published, result.reference
    info = problem.describe()
    h, w = info["grid"]
    unit = info["mask_unit_tokens"]
    if result.requested is None:
        how = "the largest count, GreenMIM's choice"
    elif result.requested == "sweep":
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
    if reference.seconds is None:
        ref_text = (
            f"skipped (expected {reference.estimate_s:.1f} s > --reference-budget "
            f"{result.reference_budget_s:g} s)"
        )
    else:
        ref_text = f"{pb.ms(reference.seconds)} in plain Python (median of {reference.runs})"
    table = [
        ("", f"{pb.PUBLISHED}", f"library ({plan.strategy})"),
        ("strategy", pub.strategy, plan.strategy),
        ("groups", str(pub.num_groups), str(plan.num_groups)),
        (
            "padding",
            f"{100 * pub.padding_fraction:.2f}% ({pub.padding} slots)",
            f"{100 * plan.padding_fraction:.2f}% ({plan.padding} slots)",
        ),
        ("cost", f"{pb.mmac(pub.cost)} MMAC", f"{pb.mmac(plan.cost)} MMAC"),
        ("optimal", pb.optimal_text(pub, plan), pb.optimal_text(plan, pub)),
        ("lower bound", str(pub.lower_bound), str(plan.lower_bound)),
        (
            "solve time",
            ref_text,
            f"{pb.ms(result.seconds)} (median of {result.runs} after a warm-up call)",
        ),
        ("", f"{pb.ms(result.published_seconds)} as the library's 'greenmim'", ""),
    ]
    verdict = (
        f"{pb.fewer(pub.num_groups, plan.num_groups)}, {pb.saved(result.cost_saved)} of the cost"
    )
    if result.speedup is not None:
        verdict += (
            f", solves {pb.times(result.speedup)} faster than the plain-Python published algorithm"
        )
    tail = [("library vs published", verdict), ("plot", png)]
    if json_path:
        tail.append(("json", json_path))
    width = max(len(k) for k, *_ in head + table + tail)
    col = max(len(row[1]) for row in table)
    lines = [f"{key:<{width}}  {value}" for key, value in head]
    lines += [f"{key:<{width}}  {left:<{col}}  {right}".rstrip() for key, left, right in table]
    lines += [f"{key:<{width}}  {value}" for key, value in tail]
    return "\n".join(lines)


def plot(result: PlanResult, png: str) -> None:
    """Both plans side by side, the published one on the left
    (:func:`grouping.plotting.plot_plan`)."""
    from ..plotting import plot_plan

    problem, plan, pub = result.problem, result.plan, result.published
    plot_plan(
        problem.token_mask,
        plan,
        problem.window,
        problem.shift,
        png,
        title=f"{problem.preset.name}, stage {problem.stage}, mask ratio {problem.mask_ratio}, "
        f"seed {problem.seed}: {pb.PUBLISHED} vs the library at g={plan.group_size}",
        baseline=pub,
        labels=(
            f"{pb.PUBLISHED} (strategy greenmim), optimal: {pb.optimal_text(pub, plan)}",
            f"library (strategy {plan.strategy}), optimal: {pb.optimal_text(plan, pub)}",
        ),
    )


def _plan_numbers(plan: GroupingPlan, seconds: float, optimal: bool) -> dict[str, Any]:
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


def to_json(result: PlanResult, png: str) -> dict[str, Any]:
    """The result as the JSON object ``--json`` writes."""
    problem, plan, pub, reference = result.problem, result.plan, result.published, result.reference
    return {
        **problem.describe(),
        "seed": problem.seed,
        **_plan_numbers(plan, result.seconds, bool(plan.optimal)),
        "fills": plan.fills.tolist(),
        "groups": [g.tolist() for g in plan.groups],
        "counts": problem.counts.tolist(),
        "published": {
            **_plan_numbers(pub, result.published_seconds, result.published_optimal),
            "reference_time_ms": reference.ms,
            "reference_runs": reference.runs,
            "reference_cells": reference.cells,
            "reference_matches": reference.matches,
            "groups": [g.tolist() for g in pub.groups],
        },
        "library_vs_published": {
            "groups_saved": result.groups_saved,
            "cost_saved_fraction": result.cost_saved,
            "speedup_vs_reference": result.speedup,
        },
        "png": png,
    }


def run(args: argparse.Namespace) -> int:
    """Run ``grouping plan``: compute, plot, print, write the JSON; return the exit status."""
    pb.check_outputs(args)
    result = compute(args)
    png = pb.plot_path(args, "plan", result.problem)
    plot(result, png)
    print(text(result, png, args.json))
    pb.mismatch_warning(result.reference.matches)
    if args.json:
        write_json(args.json, to_json(result, png))
    return 0
