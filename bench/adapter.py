"""Benchmark of the torch adapter: layout building and grouped vs dense window attention.

For Swin-B stage sizes (224 px input, patch 4), batch 8, 75 % masking with 32 px mask units
(one mask for the batch, as GreenMIM), window 7 and 14, it times:

* layout building: ``window_layout`` for one partition (solver + index tensors), in ms;
* grouped window attention forward + backward on the visible tokens
  (:class:`grouping.adapter.GroupedWindowAttention`), with the SDPA and the explicit path;
* dense window attention forward + backward over all tokens, SimMIM style (masked tokens
  replaced by a mask token, then ordinary shifted-window attention: cyclic shift, window
  partition, region mask), with the same weights and the same two paths;

and reports layout building as a percentage of the grouped forward + backward (target < 5 %),
the speed-up of grouped over dense (best path of each), and which path won. A second table
times the two layout modes (grouped vs one masked group per sample) at the small stages and
shows what the cost model chose.

Every time is the median of ``--repeat`` runs after ``--warmup`` runs; the variants of one row
are run interleaved, so ratios come from the same conditions.

Usage::

    python bench/adapter.py                      # table on stdout
    python bench/adapter.py --json out.json --png out.png --repeat 9
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from _common import machine_info, versions

import grouping as gp
from grouping.adapter import GroupedWindowAttention, dense_window_attention, window_layout
from grouping.core.geometry import StageGeometry
from grouping.presets import get_preset

PRESET = get_preset("swin-b-224-w7")  # Swin-B at 224 px, patch 4: the GreenMIM setting
STAGES = {f"stage{i + 1}": i for i in range(PRESET.num_stages)}
UNIT_PX = PRESET.mask_unit_px


def stage_geometry(stage: str, window: int) -> StageGeometry:
    """Grid, width, heads, window and shift of a stage at a window size (one home for them:
    :func:`grouping.core.geometry.swin_stages`)."""
    return dataclasses.replace(PRESET, window_size=window).stages[STAGES[stage]]


def stage_mask(stage: str, mask_ratio: float, seed: int, batch: int | None = None) -> np.ndarray:
    """Mask of a stage: 32 px mask units upsampled to the stage's tokens.

    One mask ``[H, W]`` for the batch (``batch=None``) or one per sample ``[B, H, W]``.
    """
    index = STAGES[stage]
    grid = PRESET.grid(index)
    factor = max(UNIT_PX // (PRESET.patch_size * 2**index), 1)  # tokens per unit side
    units = (grid[0] // factor, grid[1] // factor)
    if batch is None:
        mask = gp.batch_mask(units, mask_ratio, rng=seed)
    else:
        mask = gp.sample_masks(batch, units, mask_ratio, rng=seed)
    return gp.upsample_mask(mask, factor) if factor > 1 else mask


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(
    fns: dict[str, Callable[[], object]], warmup: int, repeat: int, device: torch.device
) -> dict[str, list[float]]:
    """Run every function ``warmup`` times, then ``repeat`` rounds of all, round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return times


def fwd_bwd(module: torch.nn.Module, call: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    def run() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        out = call(x)
        out.backward(torch.ones_like(out))

    return run


def bench_row(stage: str, window: int, args, device: torch.device) -> dict:
    geometry = stage_geometry(stage, window)
    grid, dim, heads = geometry.grid, geometry.dim, geometry.heads
    window, shift = geometry.window[0], geometry.shift[0]
    per_sample = args.masks == "sample"
    mask = stage_mask(stage, args.mask_ratio, args.seed, args.batch if per_sample else None)
    keep = int(mask.sum()) // (args.batch if per_sample else 1)
    torch.manual_seed(args.seed)
    attn = GroupedWindowAttention(dim, heads, window).to(device)

    def build() -> object:
        return window_layout(mask, window, shift=shift, channels=dim, device=device)

    build_times = [timed(build, device) for _ in range(args.build_repeat)]
    layout = build()
    mask_token = torch.zeros(dim, device=device)
    x_vis = torch.randn(args.batch, keep, dim, device=device, requires_grad=True)
    x_full = torch.randn(args.batch, grid[0], grid[1], dim, device=device)
    flat_mask = torch.from_numpy(np.broadcast_to(mask, (args.batch, *grid)).copy()).to(device)
    x_full[~flat_mask] = mask_token  # SimMIM: masked tokens replaced by the mask token
    x_full.requires_grad_(True)

    def grouped(impl: str):
        def call(x: torch.Tensor) -> torch.Tensor:
            attn.attn_impl = impl
            return attn(x, layout)

        return fwd_bwd(attn, call, x_vis)

    def dense(impl: str):
        def call(x: torch.Tensor) -> torch.Tensor:
            attn.attn_impl = impl  # the adapter's dense baseline follows the module's path
            return dense_window_attention(x, attn, shift)

        return fwd_bwd(attn, call, x_full)

    fns = {
        "grouped_sdpa": grouped("sdpa"),
        "grouped_explicit": grouped("explicit"),
        "dense_sdpa": dense("sdpa"),
        "dense_explicit": dense("explicit"),
    }
    times = interleaved(fns, args.warmup, args.repeat, device)
    med = {name: statistics.median(t) for name, t in times.items()}
    grouped_best = min(("sdpa", "explicit"), key=lambda i: med[f"grouped_{i}"])
    dense_best = min(("sdpa", "explicit"), key=lambda i: med[f"dense_{i}"])
    # ratios per round (same conditions), then the median
    speedups = [
        d / g
        for g, d in zip(times[f"grouped_{grouped_best}"], times[f"dense_{dense_best}"], strict=True)
    ]
    build_ms = statistics.median(build_times) * 1e3
    grouped_ms = med[f"grouped_{grouped_best}"] * 1e3
    return {
        "stage": stage,
        "grid": list(grid),
        "channels": dim,
        "heads": heads,
        "window": window,
        "shift": shift,
        "batch": args.batch,
        "visible": keep,
        "masks": args.masks,
        "mode": layout.mode,
        "num_groups": layout.num_groups,
        "group_size": layout.group_size,
        "padding_fraction": layout.plan.padding_fraction,
        "layout_ms": build_ms,
        "ms": {name: value * 1e3 for name, value in med.items()},
        "grouped_path": grouped_best,
        "dense_path": dense_best,
        "layout_pct_of_grouped": 100.0 * build_ms / grouped_ms,
        "speedup": statistics.median(speedups),
        "grouped_explicit_over_sdpa": med["grouped_explicit"]
        / med["grouped_sdpa"],  # < 1: explicit faster
    }


def bench_modes(stage: str, window: int, args, device: torch.device) -> dict:
    """Grouped vs masking mode at one stage (same weights, same input)."""
    geometry = stage_geometry(stage, window)
    grid, dim, heads = geometry.grid, geometry.dim, geometry.heads
    window, shift = geometry.window[0], geometry.shift[0]
    mask = stage_mask(stage, args.mask_ratio, args.seed)
    keep = int(mask.sum())
    torch.manual_seed(args.seed)
    attn = GroupedWindowAttention(dim, heads, window).to(device)
    layouts = {
        mode: window_layout(mask, window, shift=shift, channels=dim, device=device, mode=mode)
        for mode in ("grouped", "mask")
    }
    auto = window_layout(mask, window, shift=shift, channels=dim, device=device)
    x = torch.randn(args.batch, keep, dim, device=device, requires_grad=True)
    fns = {mode: fwd_bwd(attn, lambda t, lay=lay: attn(t, lay), x) for mode, lay in layouts.items()}
    times = interleaved(fns, args.warmup, args.repeat, device)
    med = {mode: statistics.median(t) * 1e3 for mode, t in times.items()}
    return {
        "stage": stage,
        "grid": list(grid),
        "channels": dim,
        "window": window,
        "visible": keep,
        "num_groups": layouts["grouped"].num_groups,
        "group_size": layouts["grouped"].group_size,
        "grouped_cost": auto.grouped_cost,
        "mask_cost": auto.mask_cost,
        "auto_mode": auto.mode,
        "ms": med,
        "faster_mode": min(med, key=med.get),
    }


def environment(device: torch.device) -> dict:
    env = {
        **machine_info(),
        **versions("torch"),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument(
        "--masks",
        choices=["batch", "sample"],
        default="batch",
        help="one mask for the batch (GreenMIM) or one per sample (windows packed jointly)",
    )
    parser.add_argument("--windows", type=int, nargs="+", default=[7, 14])
    parser.add_argument("--stages", nargs="+", default=["stage1", "stage2"], choices=STAGES)
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--build-repeat", type=int, default=30, help="layout builds timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default torch's; 1 on a shared machine)"
    )
    parser.add_argument("--no-modes", action="store_true", help="skip the mode table")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--png", help="write a bar chart here (needs matplotlib)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    gp.warmup()

    env = environment(device)
    print("# " + ", ".join(f"{k}={v}" for k, v in env.items()))
    rows = []
    header = (
        f"{'stage':7} {'w':>3} {'vis':>5} {'mode':8} {'G x g':>9} {'layout':>8} "
        f"{'grp sdpa':>9} {'grp expl':>9} {'dns sdpa':>9} {'dns expl':>9} "
        f"{'layout%':>8} {'speedup':>8} {'path':>8}"
    )
    print("\nforward + backward, ms (median)\n" + header)
    for stage in args.stages:
        for window in args.windows:
            row = bench_row(stage, window, args, device)
            rows.append(row)
            ms = row["ms"]
            print(
                f"{stage:7} {window:>3} {row['visible']:>5} {row['mode']:8} "
                f"{row['num_groups']:>4}x{row['group_size']:<4} {row['layout_ms']:>8.2f} "
                f"{ms['grouped_sdpa']:>9.1f} {ms['grouped_explicit']:>9.1f} "
                f"{ms['dense_sdpa']:>9.1f} {ms['dense_explicit']:>9.1f} "
                f"{row['layout_pct_of_grouped']:>7.2f}% {row['speedup']:>7.2f}x "
                f"{row['grouped_path']:>8}",
                flush=True,
            )
    modes = []
    if not args.no_modes:
        print("\nlayout modes, forward + backward ms (median)")
        print(
            f"{'stage':7} {'w':>3} {'vis':>5} {'G x g':>9} {'grouped':>9} {'mask':>9} "
            f"{'faster':>8} {'auto':>8} {'cost g/m':>9}"
        )
        for stage in ("stage2", "stage3", "stage4"):
            for window in args.windows:
                grid = PRESET.grid(STAGES[stage])
                if window > grid[0] and any(m["stage"] == stage for m in modes):
                    continue
                m = bench_modes(stage, window, args, device)
                modes.append(m)
                print(
                    f"{stage:7} {m['window']:>3} {m['visible']:>5} "
                    f"{m['num_groups']:>4}x{m['group_size']:<4} {m['ms']['grouped']:>9.2f} "
                    f"{m['ms']['mask']:>9.2f} {m['faster_mode']:>8} {m['auto_mode']:>8} "
                    f"{m['grouped_cost'] / m['mask_cost']:>9.3f}",
                    flush=True,
                )
    result = {"environment": env, "args": vars(args), "attention": rows, "modes": modes}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
        print(f"\nwrote {args.json}")
    if args.png:
        plot(rows, args.png)
        print(f"wrote {args.png}")
    return 0


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['stage']}\nw{r['window']}" for r in rows]
    series = ["grouped_sdpa", "grouped_explicit", "dense_sdpa", "dense_explicit"]
    fig, ax = plt.subplots(figsize=(1.8 * len(rows) + 2, 3.5))
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        xs = [j + i * width for j in range(len(rows))]
        ax.bar(xs, [r["ms"][name] for r in rows], width, label=name.replace("_", " "))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))], labels)
    ax.set_ylabel("forward + backward (ms)")
    ax.set_title("grouped window attention vs dense (Swin-B sizes, batch 8, 75 % masked)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
