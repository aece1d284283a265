"""Group-size benchmark (the GreenMIM figure): attention cost against group size.

For many random masks (Swin-B, 32 px mask units, 75 % masking, one mask per batch) the windows of
one stage are packed at every group size g from the mask's largest count m to m + extra, and the
attention cost ``gp.attention_cost(num_groups, g, C)`` is divided by the cost of GreenMIM's
choice: the published algorithm (``strategy="greenmim"``) at g = m. The x axis is g - m, so that
every mask has a value everywhere. The plot shows the median and the 10-90 % band of that ratio
over the masks (packing by ``"auto"``), the median for the published algorithm at every size, the
optimum of the median curve, and the floor no size can beat: since ``num_groups * g >= S``
(visible tokens), the cost at any g >= m is at least ``S * (4C^2 + 2mC)``, so the saving over
GreenMIM's choice is at most its padding fraction. Per mask the script also runs
``solve(counts, "sweep", channels=C)`` and reports its saving over GreenMIM's choice, counts the
masks where the sweep costs more (must be 0), and finds the best single group size for all masks.

Run::

    python bench/group_size.py          # full run: writes docs/results/group_size.json and
                                        # docs/figures/group_size.png
    python bench/group_size.py --quick  # a smoke run (few masks); writes files only if asked
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, format_table, machine_info, machine_line, median_time, write_json

import grouping as gp
from grouping.plotting import plot_group_size_cases
from grouping.presets import get_preset, preset_counts
from grouping.report import CostTable, cost_table

TARGET_SAVING = 0.05


@dataclass(frozen=True)
class Case:
    """One panel: a preset stage, a number of masks, a range of group sizes."""

    label: str
    preset: str
    stage: int
    shift: bool
    masks: int
    quick_masks: int
    extra: int  # group sizes from the largest count m to m + extra
    timing_repeats: int


CASES = (
    Case("224 w7 s1", "swin-b-224-w7", 0, False, 200, 20, 100, 5),
    Case("224 w7 s1 sh", "swin-b-224-w7", 0, True, 200, 20, 100, 5),
    Case("224 w14 s1", "swin-b-224-w14", 0, False, 200, 20, 250, 5),
    Case("1024 w7 s1", "swin-b-1024-w7", 0, False, 50, 4, 70, 1),
)


def run_case(case: Case, quick: bool) -> dict[str, Any]:
    """Cost against group size for every mask of one case, plus the sweep per mask."""
    preset = get_preset(case.preset)
    channels = preset.channels(case.stage)
    masks = case.quick_masks if quick else case.masks
    counts = [
        np.ascontiguousarray(
            preset_counts(preset, stage=case.stage, shift=case.shift, seed=seed)[1].ravel()
        )
        for seed in range(masks)
    ]
    largest = np.array([int(c.max()) for c in counts])
    # x axis: extra tokens per group over each mask's own largest count (GreenMIM's choice), so
    # that every mask has a value at every point of the axis
    offsets = np.arange(case.extra + 1)
    baseline = np.empty(masks)
    padding = np.empty(masks)
    sweep_cost = np.empty(masks)
    sweep_size = np.empty(masks, dtype=np.int64)
    sweep_time = np.empty(masks)
    for i, c in enumerate(counts):
        base = gp.solve(c, strategy="greenmim", channels=channels)  # g = largest count
        baseline[i] = base.cost
        padding[i] = 1.0 - c.sum() / (base.num_groups * base.group_size)
        sweep = gp.solve(c, "sweep", channels=channels)
        sweep_cost[i] = sweep.cost
        sweep_size[i] = sweep.group_size
        sweep_time[i] = median_time(
            lambda c=c: gp.solve(c, "sweep", channels=channels),
            repeats=case.timing_repeats,
            warmup=0,
        )
    # every mask at every size up to the largest m + extra, packed by each strategy (the table
    # of grouping sweep), then read at m + offsets per mask
    high = int(largest.max()) + case.extra
    rel_auto, rel_greenmim = (
        _relative(cost_table(counts, channels, high, strategy=s), offsets, baseline)
        for s in ("auto", "greenmim")
    )

    saving = 1.0 - sweep_cost / baseline
    violations = int(np.sum(sweep_cost > baseline))
    # the sweep against the best size of the range (same solver): it should never be worse
    range_best = rel_auto.min(axis=1) * baseline
    sweep_worse_than_range = int(np.sum(sweep_cost > range_best * (1 + 1e-12)))

    median = np.median(rel_auto, axis=0)
    p10 = np.percentile(rel_auto, 10, axis=0)
    p90 = np.percentile(rel_auto, 90, axis=0)
    median_gm = np.median(rel_greenmim, axis=0)
    opt = int(np.argmin(median))

    # the best single (absolute) size for all masks: g >= every largest count
    fixed_sizes = np.arange(int(largest.max()), int(largest.min()) + case.extra + 1)
    fixed_rel = np.stack([rel_auto[i, fixed_sizes - largest[i]] for i in range(masks)])
    fixed = int(np.argmin(fixed_rel.mean(axis=0)))
    fixed_saving = 1.0 - fixed_rel[:, fixed]

    return {
        "label": case.label,
        "preset": case.preset,
        "stage": case.stage + 1,
        "shift": case.shift,
        "channels": channels,
        "masks": masks,
        "windows": int(counts[0].shape[0]),
        "nonempty_median": float(np.median([np.count_nonzero(c) for c in counts])),
        "largest_count_median": float(np.median(largest)),
        "largest_count_range": [int(largest.min()), int(largest.max())],
        "offsets": offsets,
        "greenmim_padding_median": float(np.median(padding)),
        "greenmim_padding_mean": float(np.mean(padding)),
        "relative_cost_auto_median": median,
        "relative_cost_auto_p10": p10,
        "relative_cost_auto_p90": p90,
        "relative_cost_greenmim_median": median_gm,
        "median_curve_optimum": {"offset": int(offsets[opt]), "relative_cost": median[opt]},
        "best_fixed": {
            "group_size": int(fixed_sizes[fixed]),
            "mean_relative_cost": float(fixed_rel[:, fixed].mean()),
            "median_saving": float(np.median(fixed_saving)),
            "masks_worse_than_greenmim": int(np.sum(fixed_saving < 0)),
        },
        "sweep": {
            "median_saving": float(np.median(saving)),
            "p10_saving": float(np.percentile(saving, 10)),
            "p90_saving": float(np.percentile(saving, 90)),
            "min_saving": float(saving.min()),
            "masks_with_saving": float(np.mean(saving > 0)),
            "median_saving_auto_at_largest": float(np.median(1.0 - rel_auto[:, 0])),
            # where the saving comes from: a better packing at g = m, or a larger g
            "masks_saving_at_largest": float(np.mean((saving > 0) & (sweep_size == largest))),
            "masks_saving_larger_size": float(np.mean((saving > 0) & (sweep_size > largest))),
            "max_saving": float(saving.max()),
            "violations": violations,
            "worse_than_best_in_range": sweep_worse_than_range,
            "group_size_median": float(np.median(sweep_size)),
            "group_size_p10": float(np.percentile(sweep_size, 10)),
            "group_size_p90": float(np.percentile(sweep_size, 90)),
            "time_us_median": float(np.median(sweep_time) * 1e6),
            "group_sizes": sweep_size,
            "offsets": sweep_size - largest,
            "savings": saving,
        },
    }


def _relative(table: CostTable, offsets: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Cost over GreenMIM's choice, ``[masks, offsets]``, at each mask's ``m + offsets``."""
    return table.at_offsets(table.costs, offsets) / baseline[:, None]


def print_tables(results: list[dict[str, Any]]) -> None:
    print("\nSweep (solve(counts, 'sweep', channels=C)) against GreenMIM's choice, per mask:")
    headers = ["case", "masks", "nz", "m med", "gm pad", "saving med", "p10", "p90", "min"]
    headers += [
        "saved>0",
        "auto@m",
        "viol",
        "sweep g med",
        "best fixed g",
        "fixed saving",
        "median opt",
        "sweep us",
    ]
    rows = []
    for r in results:
        s, f = r["sweep"], r["best_fixed"]
        rows.append(
            [
                r["label"],
                r["masks"],
                f"{r['nonempty_median']:.0f}",
                f"{r['largest_count_median']:.0f}",
                f"{100 * r['greenmim_padding_median']:.2f}%",
                f"{100 * s['median_saving']:.2f}%",
                f"{100 * s['p10_saving']:.2f}%",
                f"{100 * s['p90_saving']:.2f}%",
                f"{100 * s['min_saving']:.2f}%",
                f"{100 * s['masks_with_saving']:.0f}%",
                f"{100 * s['median_saving_auto_at_largest']:.2f}%",
                s["violations"],
                f"{s['group_size_median']:.0f}",
                f["group_size"],
                f"{100 * f['median_saving']:.2f}%",
                f"m+{r['median_curve_optimum']['offset']}",
                f"{s['time_us_median']:.0f}",
            ]
        )
    print(format_table(headers, rows))
    first = results[0]
    print(f"\nRelative cost against group size, {first['label']} (auto; published algorithm):")
    x = np.asarray(first["offsets"])
    step = max(1, x.size // 20)
    rows = []
    for j in range(0, x.size, step):
        rows.append(
            [
                int(x[j]),
                f"{first['relative_cost_auto_median'][j]:.3f}",
                f"{first['relative_cost_auto_p10'][j]:.3f}",
                f"{first['relative_cost_auto_p90'][j]:.3f}",
                f"{first['relative_cost_greenmim_median'][j]:.3f}",
            ]
        )
    print(format_table(["g - m", "auto median", "p10", "p90", "greenmim median"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few masks per case")
    parser.add_argument("--json", type=Path, help="JSON output (default for a full run: docs/)")
    parser.add_argument("--png", type=Path, help="PNG output (default for a full run: docs/)")
    args = parser.parse_args(argv)
    json_path = args.json or (None if args.quick else REPO / "docs/results/group_size.json")
    png_path = args.png or (None if args.quick else REPO / "docs/figures/group_size.png")

    info = machine_info()
    print(machine_line(info))
    start = time.perf_counter()
    gp.warmup()
    results = []
    for case in CASES:
        t0 = time.perf_counter()
        results.append(run_case(case, args.quick))
        print(f"  {case.label:<14} {time.perf_counter() - t0:6.1f} s", flush=True)
    print_tables(results)

    primary = [r for r in results if r["label"] in ("224 w7 s1", "224 w7 s1 sh")]
    checks = []
    for r in primary:
        value = r["sweep"]["median_saving"]
        checks.append(
            {
                "name": f"sweep saves >= 5 % (median) at {r['label']}, C={r['channels']}",
                "value": f"{100 * value:.2f}%",
                "met": bool(value >= TARGET_SAVING),
                "measured": value,
            }
        )
    total_violations = sum(r["sweep"]["violations"] for r in results)
    checks.append(
        {
            "name": "sweep never costs more than GreenMIM's choice (violations, all cases)",
            "value": f"{total_violations} of {sum(r['masks'] for r in results)} masks",
            "met": total_violations == 0,
            "measured": total_violations,
        }
    )
    worse = sum(r["sweep"]["worse_than_best_in_range"] for r in results)
    print(f"\nsweep worse than the best size of the plotted range (same solver): {worse} masks")
    print("\nTargets:")
    for t in checks:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['name']}: {t['value']}")

    result = {
        "benchmark": "group_size",
        "machine": info,
        "parameters": {
            "quick": args.quick,
            "mask_ratio": 0.75,
            "mask_unit_px": 32,
            "baseline": "strategy='greenmim' at g = largest count",
            "curve_strategy": "auto",
            "cases": [c.__dict__ for c in CASES],
            "elapsed_s": time.perf_counter() - start,
        },
        "targets": checks,
        "cases": results,
    }
    if json_path:
        print(f"wrote {write_json(json_path, result)}")
    if png_path:
        plot_group_size_cases(results, png_path)
        print(f"wrote {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
