"""What ``grouping plan`` and ``grouping sweep`` share: the problem options, the masks of a
preset stage, the published algorithm as the baseline, the solve timers and their wording.

The published algorithm is the baseline of both commands: "saved" always means against its plan
(``strategy="greenmim"``, the same groups as GreenMIM's code), and its plain-Python version
(:func:`grouping.testing.reference.greenmim_reference`) is timed within a budget of seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .._files import check_out, check_out_folder
from ..core.errors import GroupingValueError, check_int
from ..core.plan import GroupingPlan
from ..core.solve import STRATEGIES, solve
from ..presets import Preset, get_preset, preset_counts, preset_names
from ._args import positive_int_arg, seconds_arg

__all__ = [
    "PUBLISHED",
    "Problem",
    "ReferenceTime",
    "ReferenceTimer",
    "add_problem_options",
    "add_problem_parser",
    "add_reference_option",
    "fewer",
    "mismatch_warning",
    "mmac",
    "ms",
    "optimal_text",
    "plot_path",
    "published",
    "published_optimal",
    "saved",
    "timed_solve",
    "times",
]

PUBLISHED = "published GreenMIM"
_REFERENCE_S_PER_CELL = 5e-7  # first guess at the plain-Python DP's speed (0.3-0.4 us measured)


def add_problem_parser(
    subparsers: Any,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *options: tuple[str, dict[str, Any]],
    help: str,
    description: str,
) -> None:
    """Add a subcommand of one grouping problem (``plan``, ``sweep``): the problem options,
    the command's own ``options`` (flag and ``add_argument`` keywords each),
    ``--reference-budget``, and ``run`` as its default."""
    parser = subparsers.add_parser(name, help=help, description=description)
    add_problem_options(parser)
    for flag, kwargs in options:
        parser.add_argument(flag, **kwargs)
    add_reference_option(parser)
    parser.set_defaults(run=run)


def add_problem_options(parser: argparse.ArgumentParser) -> None:
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
        help="solver strategy: " + ", ".join(STRATEGIES) + " (default auto)",
    )
    parser.add_argument(
        "--max-group-size",
        type=positive_int_arg,
        default=None,
        metavar="G",
        help="largest group size a sweep may choose (default: derived by the solver)",
    )
    parser.add_argument(
        "--out", default=".", metavar="DIR", help="directory for the PNG (default: .)"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")


def add_reference_option(parser: argparse.ArgumentParser) -> None:
    """``--reference-budget``: the seconds the plain-Python published algorithm may take."""
    parser.add_argument(
        "--reference-budget",
        type=seconds_arg,
        default=3.0,
        metavar="S",
        help="seconds the plain-Python published algorithm may take to be timed (a run "
        "expected to take longer is skipped; 0 skips it; default 3)",
    )


class Problem:
    """One preset stage with its mask and window counts, as the options describe it.

    Attributes:
        preset: the preset.
        stage: stage index from 0.
        seed: the mask's seed.
        mask_ratio: fraction of mask units removed.
        mask_unit_px: mask-unit side in pixels.
        token_mask: bool ``[H, W]`` at the stage, True = visible.
        window_grid: ``(Wh, Ww)`` windows.
        counts: int64 ``[Wh * Ww]`` visible tokens per window, row-major.
        window: window side in tokens; shift: partition offset in tokens.
        channels: ``C`` of the cost model.
    """

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
        self.counts: NDArray[np.int64] = counts.ravel()
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
        """The largest window count (GreenMIM's group size)."""
        return int(self.counts.max())

    def describe(self) -> dict[str, Any]:
        """The problem's numbers, as the JSON reports open with them."""
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


def check_outputs(args: argparse.Namespace) -> None:
    """``--out`` (a folder, made if missing) and ``--json`` (a file, its folders made) can be
    written: checked before any work."""
    check_out_folder("--out", args.out)
    if args.json:
        check_out("--json", args.json, create_folders=True)


def plot_path(args: argparse.Namespace, kind: str, problem: Problem) -> str:
    """``<--out>/<kind>_<preset>_s<stage>.png``."""
    return os.path.join(args.out, f"{kind}_{problem.preset.name}_s{problem.stage}.png")


def timed_solve(
    solve_once: Callable[[], GroupingPlan], *, repeats: int = 5, budget_s: float = 1.0
) -> tuple[GroupingPlan, float, int]:
    """Solve once as a warm-up (JIT compile or cache load), then time up to ``repeats`` runs.

    Returns:
        ``(plan, median seconds, runs timed)``.
    """
    plan = solve_once()
    times = []
    spent = 0.0
    while len(times) < repeats and spent < budget_s:
        start = time.perf_counter()
        plan = solve_once()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
    return plan, float(np.median(times)), len(times)


def published(problem: Problem, group_size: int | None = None) -> GroupingPlan:
    """The published algorithm's plan (``strategy="greenmim"``), by default at GreenMIM's g."""
    return solve(problem.counts, group_size, strategy="greenmim", channels=problem.channels)


def published_optimal(published: GroupingPlan, library: GroupingPlan) -> bool:
    """Whether the published plan is proven minimal, by its own bound or the library's.

    ``library`` must be a plan of the same windows at the same group size.
    """
    return published.num_groups <= max(published.lower_bound, library.lower_bound)


def _reference_cells(published: GroupingPlan) -> int:
    """Knapsack DP cells the plain-Python reference fills: windows left + 1, times g + 1, per group.

    ``published`` is the library's ``strategy="greenmim"`` plan, which has the reference's groups.
    """
    left = int(np.count_nonzero(published.counts))
    cells = 0
    for group in published.groups:
        cells += (left + 1) * (published.group_size + 1)
        left -= int(group.shape[0])
    return cells


class ReferenceTime(NamedTuple):
    """The plain-Python published algorithm (``greenmim_reference``) timed on one mask."""

    seconds: float | None  # median wall-clock seconds; None if skipped (over the budget)
    runs: int
    cells: int  # its work: knapsack DP cells filled (see _reference_cells)
    estimate_s: float  # what it was expected to take before it ran
    matches: bool | None  # same groups, in order, as gp.solve(..., strategy="greenmim")

    @property
    def ms(self) -> float | None:
        """``seconds`` in milliseconds (None if skipped)."""
        return None if self.seconds is None else 1e3 * self.seconds


class ReferenceTimer:
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

    def time(
        self, counts: NDArray[np.int64], published: GroupingPlan, *, repeats: int = 1
    ) -> ReferenceTime:
        """Time ``greenmim_reference`` on ``counts`` at the published plan's group size."""
        from ..testing.reference import greenmim_reference

        cells = _reference_cells(published)
        estimate = cells * self._rate()
        if estimate > self.left:
            return ReferenceTime(None, 0, cells, estimate, None)
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
        return ReferenceTime(float(np.median(times)), len(times), cells, estimate, matches)


# ----------------------------------------------------------------------------------------------
# Wording shared by both commands' text


def mmac(cost: float) -> str:
    """A cost in millions of multiply-accumulates, 2 decimals."""
    return "nan" if math.isnan(cost) else f"{cost / 1e6:.2f}"


def ms(seconds: float | None) -> str:
    """Seconds as ``1.234 ms``, or ``skipped``."""
    return "skipped" if seconds is None else f"{1e3 * seconds:.3f} ms"


def times(ratio: float) -> str:
    """A speed-up as ``12x`` or ``3.4x``."""
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def optimal_text(plan: GroupingPlan, other: GroupingPlan) -> str:
    """Whether ``plan`` is minimal, using ``other`` (same windows, same g) as a second witness."""
    if plan.num_groups <= plan.lower_bound:
        return "yes (proven)"
    if plan.num_groups <= other.lower_bound:
        return "yes (proven by the other's bound)"
    if other.optimal and other.num_groups < plan.num_groups:
        return f"no (the optimum is {other.num_groups})"
    return "not proven"


def mismatch_warning(matches: bool | None) -> None:
    """Print a warning if the plain-Python published algorithm disagreed with the library's."""
    if matches is False:  # a bug in one of the two; say so rather than hide it
        print(
            "warning: the plain-Python published algorithm's groups differ from strategy "
            "'greenmim' (please report this mask)"
        )


def fewer(published: int, library: int) -> str:
    """``1 group fewer`` / ``2 groups more``."""
    diff = published - library
    if diff >= 0:
        return f"{diff} group{'' if diff == 1 else 's'} fewer"
    return f"{-diff} group{'' if diff == -1 else 's'} more"


def saved(fraction: float) -> str:
    """A cost saving as text: ``saves 5.9%`` or ``costs 2.0% more``."""
    if fraction >= -1e-12:
        return f"saves {100 * max(fraction, 0.0):.1f}%"
    return f"costs {-100 * fraction:.1f}% more"
