"""One MIM pretraining step: GreenMIM's grouped Swin against the dense SimMIM-style baseline.

Times one step (mask drawn, layouts built, forward, backward, AdamW) of the grouped model
(:class:`grouping.models.GreenMIMSwin`: encoder on visible tokens only) and of the dense
baseline (:class:`grouping.models.SimMIMSwin`: every token encoded, masked ones replaced by a
mask token, ordinary shifted-window attention; same weights, decoder and loss), and measures the
activation memory of each: the peak resident memory during a step minus the resident memory just
before it, with model, gradients and optimizer state already allocated. Each model runs in its
own process (``--worker``), so neither sees the other's allocations.

Memory is read from ``/proc/self/status`` by ``bench/_memory.py`` (``VmHWM`` after a reset, the
heap trimmed first; timed steps and memory steps are separate).

Usage::

    python bench/mim_step.py --model greenmim_swin_tiny --batch-size 8 --json results.json

Each model runs ``--rounds`` times, the processes alternating, and the reported numbers are
medians over rounds of each round's medians (the machine this was written on is shared, and
bursts of load elsewhere are the main noise). The CPU time of a step (all threads) is reported
beside its wall time: it is much less sensitive to other load.

Writes the JSON keys ``grouped_step_s``, ``dense_step_s`` (medians), ``grouped_peak_bytes``,
``dense_peak_bytes`` (activation peaks, medians), ``grouped_total_peak_bytes``,
``dense_total_peak_bytes`` (peak resident memory of the process during a step), the ratios,
the machine and versions, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

from _memory import activation_peaks, spawn_worker


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one model in this process; return its numbers."""
    import numpy as np
    import torch

    from grouping.models import SimMIMSwin, create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    overrides = {"img_size": args.img_size} if args.img_size else {}
    mae = create_model(args.model, **overrides)
    model = mae if args.worker == "grouped" else SimMIMSwin(mae)
    model.train()
    config = mae.config
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch_size, config.in_chans, *config.img_size, generator=gen)
    rng = np.random.default_rng(args.seed)
    # fused AdamW: 4x faster than the default on CPU, for both models alike
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=True)
    grouping_s: list[float] = []

    cpu_times: list[float] = []

    def step() -> float:
        start = time.perf_counter()
        cpu_start = time.process_time()
        mask = mae.sample_mask(
            args.batch_size, args.mask_ratio, rng=rng, per_sample=args.per_sample
        )
        if args.worker == "grouped":
            t = time.perf_counter()  # timing is the caller's business (no field in the step)
            mask = mae.prepare(mask, batch=args.batch_size, device=images.device)
            grouping_s.append(time.perf_counter() - t)
        loss, _, _ = model(images, mask)
        loss.backward()
        optimizer.step()
        # keep the gradients allocated (zeroed, not freed): they are state, not activations
        optimizer.zero_grad(set_to_none=False)
        cpu_times.append(time.process_time() - cpu_start)
        return time.perf_counter() - start

    for _ in range(args.warmup):
        step()
    grouping_s.clear()
    cpu_times.clear()
    times = [step() for _ in range(args.steps)]
    cpu = list(cpu_times)

    memory = activation_peaks(step, args.memory_steps)
    return {
        "model": args.worker,
        "step_s": statistics.median(times),
        "step_s_all": times,
        "step_cpu_s": statistics.median(cpu),
        "grouping_s": statistics.median(grouping_s) if grouping_s else 0.0,
        **memory,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
    }


def _spawn(args: argparse.Namespace, which: str) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", which]
    for key in ("model", "batch_size", "mask_ratio", "steps", "warmup", "memory_steps", "seed"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.img_size:
        cmd += ["--img-size", str(args.img_size)]
    if args.per_sample:
        cmd += ["--per-sample"]
    return spawn_worker(cmd, which)


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over rounds of each round's medians (all rounds kept under ``rounds``)."""
    out = dict(runs[0])
    for key in ("step_s", "step_cpu_s", "grouping_s", "peak_bytes", "total_peak_bytes"):
        out[key] = statistics.median(r[key] for r in runs)
    out["peak_bytes"] = int(out["peak_bytes"])
    out["total_peak_bytes"] = int(out["total_peak_bytes"])
    out["rounds"] = runs
    return out


def _mib(n: float) -> str:
    return f"{n / 2**20:8.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="greenmim_swin_tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--img-size", type=int, default=None, help="override the preset's")
    parser.add_argument("--per-sample", action="store_true", help="one mask per sample")
    parser.add_argument("--steps", type=int, default=7, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--memory-steps", type=int, default=3, help="steps measured for memory")
    parser.add_argument("--rounds", type=int, default=3, help="processes per model, alternated")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--worker", choices=("grouped", "dense"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0

    import torch
    from _common import machine_info, versions

    machine = machine_info()  # load average before the workers start
    machine.update(versions("torch"))
    # alternate the two models' processes, so that a burst of load elsewhere on the machine
    # hits one round of both rather than all of one model
    rounds: dict[str, list[dict[str, Any]]] = {"grouped": [], "dense": []}
    for _ in range(args.rounds):
        for which in ("grouped", "dense"):
            rounds[which].append(_spawn(args, which))
    grouped, dense = (_combine(rounds[w]) for w in ("grouped", "dense"))
    result = {
        "model": args.model,
        "batch_size": args.batch_size,
        "mask_ratio": args.mask_ratio,
        "per_sample": args.per_sample,
        "grouped_step_s": grouped["step_s"],
        "dense_step_s": dense["step_s"],
        "grouped_peak_bytes": grouped["peak_bytes"],
        "dense_peak_bytes": dense["peak_bytes"],
        "grouped_total_peak_bytes": grouped["total_peak_bytes"],
        "dense_total_peak_bytes": dense["total_peak_bytes"],
        "grouped_step_cpu_s": grouped["step_cpu_s"],
        "dense_step_cpu_s": dense["step_cpu_s"],
        "speedup": dense["step_s"] / grouped["step_s"],
        "speedup_cpu_time": dense["step_cpu_s"] / grouped["step_cpu_s"],
        "activation_memory_ratio": dense["peak_bytes"] / max(grouped["peak_bytes"], 1),
        "grouped_grouping_s": grouped["grouping_s"],
        "grouped": grouped,
        "dense": dense,
        "machine": {**machine, "cpu_count": machine["cores"], "threads": grouped["threads"]},
        "settings": {
            "steps": args.steps,
            "warmup": args.warmup,
            "memory_steps": args.memory_steps,
            "rounds": args.rounds,
            "seed": args.seed,
            "memory_method": grouped["memory_method"],
        },
    }
    rows = [
        ("step time (median)", f"{grouped['step_s']:8.3f} s", f"{dense['step_s']:8.3f} s"),
        ("step CPU time", f"{grouped['step_cpu_s']:8.3f} s", f"{dense['step_cpu_s']:8.3f} s"),
        ("activation peak", _mib(grouped["peak_bytes"]), _mib(dense["peak_bytes"])),
        ("total peak RSS", _mib(grouped["total_peak_bytes"]), _mib(dense["total_peak_bytes"])),
        ("grouping (layouts)", f"{grouped['grouping_s'] * 1e3:8.1f} ms", "       -"),
    ]
    print(
        f"{args.model}, batch {args.batch_size}, mask ratio {args.mask_ratio}, "
        f"{grouped['threads']} threads, torch {torch.__version__}"
    )
    print(f"{'':22s}{'grouped':>14s}{'dense':>14s}")
    for name, a, b in rows:
        print(f"{name:22s}{a:>14s}{b:>14s}")
    print(
        f"speed-up {result['speedup']:.2f}x (CPU time {result['speedup_cpu_time']:.2f}x), "
        f"activation memory "
        f"{result['activation_memory_ratio']:.2f}x less (targets: >= 2.5x each)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
