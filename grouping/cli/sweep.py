"""``grouping sweep --preset NAME``: attention cost against group size, against the published plan.

From GreenMIM's choice (g = the largest window count) up to the size beyond which no grouping
can be cheaper, every cost relative to the published GreenMIM plan at the mask's own largest
count; reports (a) the library's packing at that g and (b) its sweep over g against the
published plan, with solve times; prints a table and writes ``sweep_<preset>_s<stage>.png``
with the optimum marked. With ``--masks N`` every number is over N masks (medians, means and
the 10-90 % band).

:func:`compute` returns a :class:`SweepReport` (the table over group sizes comes from
:func:`grouping.report.cost_table`); :func:`text`, :func:`plot` and :func:`to_json` report it.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..core.errors import invalid
from ..core.plan import GroupingPlan
from ..core.solve import solve
from ..report import CostTable, cost_table, write_json
from . import _problem as pb
from ._args import positive_int_arg, seconds_arg

__all__ = ["MaskResult", "SweepReport", "add_parser", "compute", "plot", "run", "text", "to_json"]


def add_parser(subparsers: Any) -> None:
    """Add the ``sweep`` subcommand to an ``argparse`` subparsers object."""
    masks = {
        "type": positive_int_arg,
        "default": 1,
        "metavar": "N",
        "help": "number of masks (seeds seed, seed+1, ...); the table shows medians (default 1)",
    }
    budget = {
        "type": seconds_arg,
        "default": 3600.0,
        "metavar": "SECONDS",
        "help": "refuse a sweep whose estimate (the first mask's time x --masks) is longer "
        "(default 3600)",
    }
    pb.add_problem_parser(
        subparsers,
        "sweep",
        run,
        ("--masks", masks),
        ("--time-budget", budget),
        help="attention cost against group size for one preset stage, against the published "
        "algorithm",
        description="Solve a preset stage at every group size from the largest window count "
        "(GreenMIM's choice) up to the size beyond which no grouping can be cheaper than the "
        "best found, with every cost relative to the published GreenMIM plan (strategy "
        "greenmim at the mask's largest count); report the library's packing at that g and its "
        "sweep over g against it, with solve times (the published algorithm in plain Python); "
        "print a table and write sweep_<preset>_s<stage>.png, optimum marked.",
    )


class MaskResult(NamedTuple):
    """One mask of a sweep: the published plan, the library's at the same g, and its sweep."""

    problem: pb.Problem
    published: GroupingPlan  # strategy "greenmim" at g = the mask's largest count (the baseline)
    packing: GroupingPlan  # the library's strategy at the same g
    swept: GroupingPlan  # the library's strategy at the group size its sweep chose
    sweep_s: float  # median seconds of each solve
    packing_s: float
    published_s: float  # the library's "greenmim" (bitset kernel)
    reference: pb.ReferenceTime  # the plain-Python published algorithm

    @property
    def published_optimal(self) -> bool:
        """The published plan is proven minimal (by its bound or the library's packing's)."""
        return pb.published_optimal(self.published, self.packing)


@dataclass(frozen=True)
class SweepReport:
    """A sweep over group sizes of one or more masks, against the published plans.

    Attributes:
        problems: the masks (seeds ``--seed`` upwards).
        strategy: the library's strategy; channels: ``C`` of the cost model.
        results: per mask, its plans and solve times.
        table: every mask's cost at every size (:func:`grouping.report.cost_table`).
        rows: one mapping per size (:func:`size_rows`).
        best: the size whose row has the lowest relative cost among the sizes every mask fits.
        published_row, packing, sweep, times: the summaries the text and the JSON show.
        reference_budget_s: ``--reference-budget``.
    """

    problems: list[pb.Problem]
    strategy: str
    channels: int
    results: list[MaskResult]
    table: CostTable
    rows: list[dict[str, Any]]
    best: int
    published_row: dict[str, Any]
    packing: dict[str, Any]
    sweep: dict[str, Any]
    times: dict[str, Any]
    reference_budget_s: float

    @property
    def many(self) -> bool:
        """More than one mask."""
        return len(self.problems) > 1

    @property
    def complete(self) -> list[dict[str, Any]]:
        """The rows of the sizes every mask fits."""
        return [r for r in self.rows if r["masks"] == len(self.problems)]

    @property
    def best_row(self) -> dict[str, Any]:
        """The row of ``best``."""
        return next(r for r in self.rows if r["group_size"] == self.best)


def _cost_cap(best_cost: float, tokens: int, channels: int) -> int:
    """Largest g at which a grouping with no padding at all could still cost <= ``best_cost``.

    ``num_groups * g >= tokens``, so any plan at size ``g`` costs at least
    ``tokens * (4*C**2 + 2*g*C)``; sizes beyond the returned one can never beat ``best_cost``.
    """
    c = float(channels)
    return int(math.floor((best_cost / tokens - 4.0 * c * c) / (2.0 * c) + 1e-9))


def size_rows(table: CostTable, baseline: Sequence[float]) -> list[dict[str, Any]]:
    """One row of medians per group size of ``table``, over the masks that fit it.

    ``relative_cost`` is the cost over the mask's ``baseline`` cost (its published GreenMIM
    plan's). A mask whose largest count exceeds ``g`` cannot be grouped at ``g``; such rows use
    the masks that fit (``"masks"``). With more than one mask, a row also has the mean and the
    10 % and 90 % quantiles of the relative cost.
    """
    fits, optimal, padding = table.fits, table.optimal, table.padding_fraction
    relative = table.costs / np.asarray(baseline, dtype=np.float64)[:, None]
    rows: list[dict[str, Any]] = []
    for j, g in enumerate(table.group_sizes.tolist()):
        on = fits[:, j]
        rel = relative[on, j]
        row: dict[str, Any] = {
            "group_size": g,
            "masks": int(on.sum()),
            "groups": float(np.median(table.num_groups[on, j])),
            "padding_fraction": float(np.median(padding[on, j])),
            "cost": float(np.median(table.costs[on, j])),
            "relative_cost": float(np.median(rel)),
            "optimal_fraction": float(np.mean(optimal[on, j])),
        }
        if fits.shape[0] > 1:
            row["relative_cost_mean"] = float(np.mean(rel))
            row["relative_cost_lo"] = float(np.quantile(rel, 0.1))
            row["relative_cost_hi"] = float(np.quantile(rel, 0.9))
        rows.append(row)
    return rows


def _savings(library: Sequence[float], published: Sequence[float]) -> dict[str, Any]:
    """Cost saved against the published plans: per mask, and over the summed cost of all."""
    lib = np.asarray(library, dtype=np.float64)
    pub = np.asarray(published, dtype=np.float64)
    saved_ = 1.0 - lib / pub
    return {
        "cost_saved_total": float(1.0 - lib.sum() / pub.sum()),
        "cost_saved_mean": float(saved_.mean()),
        "cost_saved_median": float(np.median(saved_)),
        "cost_saved_max": float(saved_.max()),
        "cost_saved_min": float(saved_.min()),
        "masks_cheaper": int(np.sum(saved_ > 1e-12)),
        "masks_costlier": int(np.sum(saved_ < -1e-12)),
    }


def _median_ms(values: Sequence[float]) -> float:
    return 1e3 * float(np.median(values))


def _solve_times(results: list[MaskResult], budget_s: float) -> dict[str, Any]:
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


def _summaries(
    results: list[MaskResult],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The published plans' medians, and the library's packing and sweep against them."""
    pub_costs = [r.published.cost for r in results]
    pub_g = float(np.median([r.published.group_size for r in results]))
    published_row = {
        "strategy": "greenmim",
        "group_size": pub_g,
        "groups": float(np.median([r.published.num_groups for r in results])),
        "padding_fraction": float(np.median([r.published.padding_fraction for r in results])),
        "cost": float(np.median(pub_costs)),
        "optimal_fraction": float(np.mean([r.published_optimal for r in results])),
    }
    packing = _savings([r.packing.cost for r in results], pub_costs)
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
    sweep = _savings([r.swept.cost for r in results], pub_costs)
    sweep.update(
        {
            "group_size_median": float(np.median([r.swept.group_size for r in results])),
            "groups_median": float(np.median([r.swept.num_groups for r in results])),
            "optimal_fraction": float(np.mean([r.swept.optimal for r in results])),
        }
    )
    return published_row, packing, sweep


def compute(args: argparse.Namespace) -> SweepReport:
    """Draw the masks, solve and time each, and tabulate every size of the sweep."""
    problems = [pb.Problem(args, args.seed)]  # the others are drawn after the estimate
    channels = problems[0].channels
    strategy = args.strategy

    def solve_at(p: pb.Problem, g: int | str | None) -> GroupingPlan:
        return solve(
            p.counts, g, strategy=strategy, channels=channels, max_group_size=args.max_group_size
        )

    largest = problems[0].max_count
    if args.max_group_size is not None and args.max_group_size < largest:
        raise invalid(
            "max_group_size",
            f"at least the largest window count {largest} (no window is split)",
            args.max_group_size,
        )
    repeats, budget = (3, 0.1) if args.masks > 1 else (5, 1.0)
    timer = pb.ReferenceTimer(args.reference_budget)
    results: list[MaskResult] = []
    started = time.perf_counter()
    for i in range(args.masks):
        if i == 1:  # one mask done: the whole sweep's time, before any more is drawn
            estimate = (time.perf_counter() - started) * args.masks
            if estimate > args.time_budget:
                raise invalid(
                    "--masks",
                    f"a sweep within --time-budget {args.time_budget:g} s: {args.masks} masks "
                    f"take about {estimate:,.0f} s at {estimate / args.masks:.3f} s a mask",
                    args.masks,
                )
        p = problems[0] if i == 0 else pb.Problem(args, args.seed + i)
        if i:
            problems.append(p)
            if args.max_group_size is not None and args.max_group_size < p.max_count:
                raise invalid(
                    "max_group_size",
                    f"at least the largest window count {p.max_count} (no window is split)",
                    args.max_group_size,
                )
        swept, sweep_s, _ = pb.timed_solve(
            lambda p=p: solve_at(p, "sweep"), repeats=repeats, budget_s=budget
        )
        packing, packing_s, _ = pb.timed_solve(
            lambda p=p: solve_at(p, None), repeats=repeats, budget_s=budget
        )
        pub, published_s, _ = pb.timed_solve(
            lambda p=p: pb.published(p), repeats=repeats, budget_s=budget
        )
        reference = timer.time(p.counts, pub)
        results.append(
            MaskResult(p, pub, packing, swept, sweep_s, packing_s, published_s, reference)
        )
    high = max(
        max(r.swept.group_size, _cost_cap(r.swept.cost, r.swept.num_tokens, channels))
        for r in results
    )
    largest = max(p.max_count for p in problems)
    if args.max_group_size is not None:
        high = min(high, args.max_group_size)
    high = max(high, largest)
    table = cost_table([p.counts for p in problems], channels, high, strategy=strategy)
    rows = size_rows(table, [r.published.cost for r in results])
    complete = [r for r in rows if r["masks"] == len(problems)]
    best = int(min(complete, key=lambda r: (r["relative_cost"], r["group_size"]))["group_size"])
    published_row, packing_, sweep = _summaries(results)
    return SweepReport(
        problems,
        strategy,
        channels,
        results,
        table,
        rows,
        best,
        published_row,
        packing_,
        sweep,
        _solve_times(results, args.reference_budget),
        args.reference_budget,
    )


# ----------------------------------------------------------------------------------------------
# Reporting


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _savings_text(s: dict[str, Any], masks: int, *, count: bool = True) -> str:
    """The savings of :func:`_savings` in one line (``count``: say on how many masks)."""
    if masks == 1:
        return f"{pb.saved(s['cost_saved_total'])} of the cost"
    out = (
        f"cost saved: total {_pct(s['cost_saved_total'])}, mean {_pct(s['cost_saved_mean'])}, "
        f"median {_pct(s['cost_saved_median'])}, max {_pct(s['cost_saved_max'])}"
    )
    if count:
        out += f"; cheaper on {s['masks_cheaper']}/{masks} masks"
    if s["masks_costlier"]:
        out += f", costlier on {s['masks_costlier']}"
    return out


def _optimal_cell(fraction: float) -> str:
    return "yes" if fraction == 1.0 else ("no" if fraction == 0.0 else f"{fraction:.0%}")


def _seeds(report: SweepReport) -> str:
    first, n = report.problems[0].seed, len(report.problems)
    return f"{n} masks (seeds {first}..{first + n - 1})" if report.many else f"seed {first}"


def _table(report: SweepReport) -> list[str]:
    """The table over group sizes, the published plan as its first line."""
    many, n, low = report.many, len(report.results), report.table.group_sizes[0]
    header = f"{'g':>5}  {'groups':>7}  {'padding %':>9}  {'cost MMAC':>10}  {'relative':>8}"
    if many:
        header += f"  {'mean':>6}  {'p10-p90':>13}  {'masks':>5}"
    header += f"  {'optimal':>7}"

    def line(row: dict[str, Any], rel: str, mean: str, band: str) -> str:
        out = (
            f"{row['group_size']:>5g}  {row['groups']:>7g}  "
            f"{100 * row['padding_fraction']:>9.1f}  {pb.mmac(row['cost']):>10}  {rel:>8}"
        )
        if many:
            out += f"  {mean:>6}  {band:>13}  {row.get('masks', n):>5}"
        return out + f"  {_optimal_cell(row['optimal_fraction']):>7}"

    lines = [header]
    lines.append(line(report.published_row, "1.000", "1.000", "1.000-1.000"))
    lines[-1] += f"  {pb.PUBLISHED} (baseline)"
    lines.append("-" * len(header))
    for row in report.rows:
        out = line(
            row,
            f"{row['relative_cost']:.3f}",
            f"{row.get('relative_cost_mean', 0.0):.3f}",
            f"{row.get('relative_cost_lo', 0.0):.3f}-{row.get('relative_cost_hi', 0.0):.3f}",
        )
        notes = []
        if not many and row["group_size"] == low:
            notes.append("library at GreenMIM's g")
        if row["group_size"] == report.best:
            notes.append("<- optimum")
        if notes:
            out += "  " + ", ".join(notes)
        lines.append(out)
    return lines


def _verdict(report: SweepReport) -> list[str]:
    """(a) the packing at GreenMIM's g and (b) the sweep, against the published plans."""
    strategy, n = report.strategy, len(report.results)
    packing, sweep, best_row = report.packing, report.sweep, report.best_row
    if report.many:
        return [
            f"library ({strategy}) vs {pb.PUBLISHED} (strategy greenmim at each mask's largest "
            f"count), {n} masks:",
            f"  (a) packing at GreenMIM's g:  fewer groups on {packing['masks_fewer_groups']}/{n} "
            f"masks"
            + (f", more on {packing['masks_more_groups']}" if packing["masks_more_groups"] else "")
            + f" ({packing['library_groups_total']} vs {packing['published_groups_total']} "
            f"groups in all); {_savings_text(packing, n, count=False)}",
            f"  (b) sweep over group sizes:   median g={sweep['group_size_median']:g}; "
            f"{_savings_text(sweep, n)}",
            f"  best single g for all masks:  g={report.best}, relative cost median "
            f"{best_row['relative_cost']:.3f}, mean {best_row['relative_cost_mean']:.3f}",
            "  (total = over the summed cost of all masks, i.e. what a run of such steps saves)",
        ]
    r = report.results[0]
    lines = [
        f"{pb.PUBLISHED} at g={r.published.group_size}: {r.published.num_groups} groups, "
        f"{pb.mmac(r.published.cost)} MMAC, optimal: {pb.optimal_text(r.published, r.packing)}",
        f"  (a) library packing at the same g:  {r.packing.num_groups} groups"
        f"{' (proven optimal)' if r.packing.optimal else ''}, "
        f"{pb.fewer(r.published.num_groups, r.packing.num_groups)}, {_savings_text(packing, 1)}",
        f"  (b) library sweep over g:           g={r.swept.group_size}, "
        f"{r.swept.num_groups} groups, {_savings_text(sweep, 1)}",
    ]
    if not math.isclose(r.swept.cost, best_row["cost"], rel_tol=1e-12):
        lines.append(
            f"note: the solver's sweep (g={r.swept.group_size}, {pb.mmac(r.swept.cost)} MMAC) "
            f"and the table's best (g={report.best}, {pb.mmac(best_row['cost'])} MMAC) differ"
        )
    return lines


def _times_line(report: SweepReport) -> str:
    t, n = report.times, len(report.results)
    per = "per mask, medians" if report.many else "median of repeats"
    out = (
        f"solve time ({per}): library sweep over g {t['library_sweep_ms']:.3f} ms, library "
        f"packing {t['library_packing_ms']:.3f} ms; {pb.PUBLISHED} "
    )
    if t["published_reference_ms"] is None:
        out += f"in plain Python skipped (over --reference-budget {report.reference_budget_s:g} s)"
    else:
        out += (
            f"in plain Python {t['published_reference_ms']:.3f} ms"
            + (f" ({t['reference_masks']}/{n} masks timed)" if report.many else "")
            + f": the library's whole sweep is {pb.times(t['speedup_sweep_vs_reference'])} "
            f"faster than the published algorithm at its one g, its packing "
            f"{pb.times(t['speedup_packing_vs_reference'])}"
        )
    return out


def text(report: SweepReport) -> str:
    """The report: the problem, the table over group sizes, the verdict, the solve times."""
    first = report.problems[0]
    info = first.describe()
    lines = [
        first.preset.summary(first.stage),
        f"mask ratio {first.mask_ratio}, mask unit {first.mask_unit_px} px, "
        f"{'shifted' if first.shift else 'unshifted'} windows (shift {first.shift}), "
        f"{info['nonempty_windows']}/{info['windows']} non-empty windows, "
        f"{info['visible_tokens']} visible tokens, strategy {report.strategy}, "
        f"C={report.channels}, {_seeds(report)}",
        f"relative = cost / the {pb.PUBLISHED} plan's (strategy greenmim at the mask's own largest "
        "count)",
    ]
    if report.many:
        lines.append("the table: medians (and the mean of relative) over the masks that fit each g")
    lines += _table(report)
    lines += _verdict(report)
    lines.append(_times_line(report))
    return "\n".join(lines)


def plot(report: SweepReport, png: str) -> None:
    """Relative cost against group size, the optimum marked
    (:func:`grouping.plotting.plot_sweep`)."""
    from ..plotting import plot_sweep

    first, strategy = report.problems[0], report.strategy
    many = f", {len(report.problems)} masks" if report.many else ""
    plot_sweep(
        report.complete if report.many else report.rows,
        png,
        report.best,
        title=f"{first.preset.name}, stage {first.stage}, mask ratio {first.mask_ratio}, "
        f"C={report.channels}, {strategy}{many}",
        label=f"library ({strategy}), best packing at each g",
        baseline_label=f"{pb.PUBLISHED} (g = max count)",
        baseline_group_size=report.published_row["group_size"],
        packing_relative=float(
            np.mean([r.packing.cost / r.published.cost for r in report.results])
        ),
    )


def _per_mask(r: MaskResult) -> dict[str, Any]:
    return {
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
        "reference_time_ms": r.reference.ms,
        "reference_matches": r.reference.matches,
    }


def to_json(report: SweepReport, png: str) -> dict[str, Any]:
    """The report as the JSON object ``--json`` writes."""
    best_row = report.best_row
    payload = {
        **report.problems[0].describe(),
        "strategy": report.strategy,
        "masks": len(report.problems),
        "seeds": [p.seed for p in report.problems],
        "baseline": "the published GreenMIM plan (strategy greenmim) at the mask's largest "
        "count: relative_cost = cost / its cost",
        "rows": report.rows,
        "best_group_size": report.best,
        "best_relative_cost": best_row["relative_cost"],
        "published": report.published_row,
        "packing_vs_published": report.packing,
        "sweep_vs_published": report.sweep,
        "solve_times": report.times,
        "solver_sweep": [_per_mask(r) for r in report.results],
        "png": png,
    }
    if report.many:  # per mask in solver_sweep; the first mask's alone would mislead
        payload["best_mean_relative_cost"] = best_row["relative_cost_mean"]
        for key in ("max_count", "visible_tokens", "nonempty_windows"):
            del payload[key]
    return payload


def run(args: argparse.Namespace) -> int:
    """Run ``grouping sweep``: compute, print, plot, write the JSON; return the exit status."""
    pb.check_outputs(args)
    report = compute(args)
    print(text(report))
    pb.mismatch_warning(report.times["reference_matches"])
    png = pb.plot_path(args, "sweep", report.problems[0])
    plot(report, png)
    print(f"plot: {png}")
    if args.json:
        write_json(args.json, to_json(report, png))
        print(f"json: {args.json}")
    return 0
