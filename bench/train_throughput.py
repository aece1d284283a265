"""Training throughput: masks and plans made in the training process vs in DataLoader workers.

Runs GreenMIM Swin-T pretraining (:func:`grouping.train.train`, synthetic images, per-sample
masks at ratio 0.75 by default) with the masks drawn and the steps prepared (grouping solver,
layouts, index tensors) **in the training process** (``workers=0``) and **in DataLoader
workers** (``workers=1``, ``workers=2``), and reports per configuration the throughput
(samples/s), the step time, the time the training process waits for its next batch, and that
wait as a share of the step; plus the throughput of each worker configuration over the
in-process one.

Targets (for workers > 0): the data wait is at most 5 % of the step time, and the throughput is
no worse than in the training process (ratio >= 1).

A second comparison isolates what workers can take off the critical path: in a separate
process, the host work of one step (reading the synthetic images, drawing the masks, the
model's ``preparer(mask, batch=B)``, and the whole collator) is timed on the samples of the
same steps, with the training process's torch threads and with the one thread a DataLoader
worker gets, and set against the forward + backward + optimizer time of the in-process run.

Method: every configuration runs in its own process (``--worker``), the configurations
alternate over ``--rounds`` rounds (the order rotated each round), and each number is the
median over rounds of that round's median over the steady steps (the first ``--warmup`` steps
dropped). Per-step numbers come from the training package's ``--metrics`` JSON lines
(``step_time_s``, ``data_wait_s``, ``samples_per_s``); the data-wait fraction of a round is
the total wait over the total step time of its steady steps (as the loop's summary defines
it), so an occasional long wait counts; ``samples_per_s_mean`` is the samples over the total
time of the steady steps (what a long run would average), beside the median of the per-step
rates. CPU time per step of the training process is its process time between the starts of
consecutive steps, read by wrapping the private ``grouping.train.engine._next_batch`` (the
metrics hold no CPU time; without that name it is left out). DataLoader workers' CPU time is
separate: ``worker_cpu_total_s``, their whole lives, start-up (numba warm-up) included.

Usage::

    python bench/train_throughput.py                       # the full run (minutes), writes docs/
    python bench/train_throughput.py --workers 0,2 --rounds 5 --json out.json --png out.png
    python bench/train_throughput.py --replot out.json --png out.png   # redraw the figure
    python bench/train_throughput.py --steps 2 --warmup 1 --rounds 1 --img-size 64 \\
        --set window_size=4 --set embed_dim=16 ...         # a smoke run on a tiny model

Writes the JSON keys ``machine``, ``versions``, ``settings``, ``configs`` (per configuration:
medians and ``rounds``, the raw per-round numbers with every step), ``prepare`` (the host work
of a step), ``comparison``, ``targets`` (name, value, met, measured) and ``order``; prints a
table.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    format_table,
    machine_info,
    machine_line,
    median_time,
    versions,
    write_json,
)

TARGET_WAIT_FRACTION = 0.05
"""Data wait with workers: at most this share of the step time."""
TARGET_RATIO = 1.0
"""Throughput with workers over throughput in the training process: at least this."""

# medians of each round (over steady steps) that are combined over rounds
_TRAIN_KEYS = (
    "samples_per_s",
    "samples_per_s_mean",
    "step_time_s",
    "data_wait_s",
    "data_wait_mean_s",
    "data_wait_fraction",
    "compute_s",
    "cpu_step_s",
    "worker_cpu_total_s",
)
_PREPARE_PARTS = ("load_s", "masks_s", "prepare_s", "masks_prepare_s", "collate_s", "host_s")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Architecture overrides from ``--img-size`` and ``--set KEY=VALUE`` (Python literals;
    anything else is kept as a string)."""
    out: dict[str, Any] = {}
    if args.img_size:
        out["img_size"] = args.img_size
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set: expected KEY=VALUE, received {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key.strip()] = value
    return out


def _config_name(workers: int) -> str:
    return f"workers={workers}"


# -- the measuring processes ------------------------------------------------------------------


def run_train(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """One training run in this process; its steady-step medians and every step."""
    import torch

    from grouping.train import TrainConfig, engine, train

    total = args.warmup + args.steps
    # the process time at the start of every step: the loop fetches each batch first
    marks: list[tuple[float, float]] = []
    fetch = getattr(engine, "_next_batch", None)
    if fetch is not None:

        def timed_fetch(it: Any) -> Any:
            marks.append((time.perf_counter(), time.process_time()))
            return fetch(it)

        engine._next_batch = timed_fetch  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "metrics.jsonl")
        cfg = TrainConfig(
            model=args.model,
            overrides=_overrides(args),
            steps=total,
            batch_size=args.batch_size,
            workers=workers,
            per_sample=args.per_sample,
            mask_ratio=args.mask_ratio,
            seed=args.seed,
            threads=args.threads,
            device=args.device,
            progress=False,
            log=None,
            metrics=metrics,
        )
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        summary = train(cfg)
        gc.collect()  # the loader's iterator is gone: its workers are joined
        marks.append((time.perf_counter(), time.process_time()))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(metrics, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    if fetch is not None:
        engine._next_batch = fetch  # type: ignore[attr-defined]

    # CPU of step k: from its start to the next step's (the last one: to train()'s return)
    if len(marks) == len(records) + 1:
        for k, record in enumerate(records):
            record["cpu_s"] = marks[k + 1][1] - marks[k][1]
    steady = [r for r in records if r["step"] > args.warmup] or records
    step = [r["step_time_s"] for r in steady]
    wait = [r["data_wait_s"] for r in steady]
    cpus = [r["cpu_s"] for r in steady if "cpu_s" in r]
    worker_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {
        "config": _config_name(workers),
        "workers": workers,
        "samples_per_s": statistics.median(r["samples_per_s"] for r in steady),
        "samples_per_s_mean": sum(r["global_batch"] for r in steady) / sum(step),
        "step_time_s": statistics.median(step),
        "data_wait_s": statistics.median(wait),
        "data_wait_mean_s": statistics.fmean(wait),
        "data_wait_max_s": max(wait),
        "data_wait_fraction": sum(wait) / sum(step),
        "compute_s": statistics.median(s - w for s, w in zip(step, wait, strict=True)),
        "cpu_step_s": statistics.median(cpus) if cpus else None,
        "cpu_total_s": cpu,
        "worker_cpu_total_s": worker_cpu,
        "wall_total_s": wall,
        "steady_steps": len(steady),
        "steps_run": summary["steps_run"],
        "parameters": summary["parameters"],
        "last_loss": summary.get("last_loss"),
        "threads": torch.get_num_threads(),
        "device": args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "steps": records,
    }


def run_prepare(args: argparse.Namespace) -> dict[str, Any]:
    """The host work of one step, timed in this process on the samples of the timed steps:
    with the training process's torch threads and with a DataLoader worker's one thread."""
    import torch

    import grouping as gp
    from grouping.models import create_model
    from grouping.train.collate import MaskingCollator
    from grouping.train.data import StreamSampler, SyntheticImages, stack_images

    if args.threads:
        torch.set_num_threads(args.threads)
    training_threads = torch.get_num_threads()
    torch.manual_seed(args.seed)
    model = create_model(args.model, **_overrides(args))
    preparer = model.preparer()
    chans, *size = model.input_shape
    dataset = SyntheticImages(tuple(size), chans, seed=args.seed)
    collator = MaskingCollator(
        preparer,
        args.mask_ratio,
        per_sample=args.per_sample,
        seed=args.seed,
        global_batch=args.batch_size,
    )
    total = args.warmup + args.steps
    sampler = StreamSampler(None, args.batch_size, total, seed=args.seed)
    gp.warmup()
    batch = args.batch_size
    out: dict[str, Any] = {
        "input_shape": list(model.input_shape),
        "mask_grid": list(preparer.mask_grid),
    }
    for label, threads in (("training_threads", training_threads), ("worker_thread", 1)):
        torch.set_num_threads(threads)
        parts: dict[str, list[float]] = {k: [] for k in _PREPARE_PARTS}
        for s in range(args.warmup, total):
            keys = sampler.keys(s)
            samples = [dataset[k] for k in keys]
            _, positions = stack_images(samples)
            masks = collator.masks(positions)

            def time_it(fn: Any) -> float:
                return median_time(fn, repeats=args.repeats, warmup=1)

            parts["load_s"].append(time_it(lambda keys=keys: [dataset[k] for k in keys]))
            parts["masks_s"].append(time_it(lambda p=positions: collator.masks(p)))
            parts["prepare_s"].append(time_it(lambda m=masks: preparer(m, batch=batch)))
            parts["masks_prepare_s"].append(
                time_it(lambda p=positions: preparer(collator.masks(p), batch=batch))
            )
            parts["collate_s"].append(time_it(lambda x=samples: collator(x)))
            parts["host_s"].append(time_it(lambda keys=keys: collator([dataset[k] for k in keys])))
        out[label] = {k: statistics.median(v) for k, v in parts.items()}
        out[label]["threads"] = threads
    return out


# -- the parent: spawn, combine, report -------------------------------------------------------


def _spawn(args: argparse.Namespace, which: str) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", which]
    for key in ("model", "batch_size", "mask_ratio", "steps", "warmup", "threads", "seed"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    cmd += ["--repeats", str(args.repeats)]
    cmd += ["--per-sample" if args.per_sample else "--shared"]
    if args.img_size:
        cmd += ["--img-size", str(args.img_size)]
    if args.device:
        cmd += ["--device", args.device]
    for item in args.set:
        cmd += ["--set", item]
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        out = subprocess.run([*cmd, "--result", result], capture_output=True, text=True)
        if out.returncode:
            sys.stderr.write(out.stdout[-4000:] + out.stderr[-8000:])
            raise SystemExit(f"the {which} process failed (exit status {out.returncode})")
        with open(result, encoding="utf-8") as f:
            return json.load(f)


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _combine_train(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over rounds of each round's medians; every round kept under ``rounds``."""
    out: dict[str, Any] = {k: _median([r[k] for r in runs]) for k in _TRAIN_KEYS}
    for key in ("workers", "threads", "device", "parameters", "steps_run", "steady_steps"):
        out[key] = runs[0][key]
    out["rounds"] = runs
    return out


def _combine_prepare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"input_shape": runs[0]["input_shape"], "mask_grid": runs[0]["mask_grid"]}
    for label in ("training_threads", "worker_thread"):
        out[label] = {k: _median([r[label][k] for r in runs]) for k in _PREPARE_PARTS}
        out[label]["threads"] = runs[0][label]["threads"]
    out["rounds"] = runs
    return out


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1e3 * seconds:.1f}"


def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def _targets(configs: dict[str, dict[str, Any]], workers: list[int]) -> list[dict[str, Any]]:
    base = configs.get(_config_name(0))
    checks = []
    for w in workers:
        if w == 0:
            continue
        c = configs[_config_name(w)]
        f = c["data_wait_fraction"]
        checks.append(
            {
                "name": f"data wait <= {100 * TARGET_WAIT_FRACTION:.0f} % of the step time "
                f"with {w} worker(s)",
                "value": f"{100 * f:.2f} % (mean wait {_ms(c['data_wait_mean_s'])} ms, "
                f"median {_ms(c['data_wait_s'])} ms, of a {_ms(c['step_time_s'])} ms step)",
                "met": bool(f <= TARGET_WAIT_FRACTION),
                "measured": f,
            }
        )
        if base is None:
            continue
        ratio = c["throughput_ratio"]
        spread = c["throughput_ratio_per_round"]
        checks.append(
            {
                "name": f"throughput with {w} worker(s) no worse than in the training process",
                "value": f"{ratio:.3f}x ({c['samples_per_s']:.2f} vs "
                f"{base['samples_per_s']:.2f} samples/s; per round "
                f"{min(spread):.3f}-{max(spread):.3f}x)",
                "met": bool(ratio >= TARGET_RATIO),
                "measured": ratio,
            }
        )
    return checks


def _comparison(
    configs: dict[str, dict[str, Any]], prepare: dict[str, Any], workers: list[int]
) -> dict[str, Any]:
    """What moved off the critical path: the host work of a step against the in-process
    compute, and the data wait each worker configuration saved."""
    train_threads = prepare["training_threads"]
    out: dict[str, Any] = {
        "masks_prepare_s": train_threads["masks_prepare_s"],
        "host_s": train_threads["host_s"],
        "masks_prepare_s_one_thread": prepare["worker_thread"]["masks_prepare_s"],
        "host_s_one_thread": prepare["worker_thread"]["host_s"],
    }
    base = configs.get(_config_name(0))
    if base is not None:
        compute = base["compute_s"]
        out["in_process_compute_s"] = compute
        out["in_process_data_wait_s"] = base["data_wait_s"]
        out["masks_prepare_fraction_of_compute"] = train_threads["masks_prepare_s"] / compute
        out["host_fraction_of_in_process_step"] = train_threads["host_s"] / base["step_time_s"]
        out["saved_per_step"] = {
            _config_name(w): {
                "data_wait_s": base["data_wait_s"] - configs[_config_name(w)]["data_wait_s"],
                "step_time_s": base["step_time_s"] - configs[_config_name(w)]["step_time_s"],
                "compute_s_increase": configs[_config_name(w)]["compute_s"] - compute,
            }
            for w in workers
            if w != 0
        }
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    configs = result["configs"]
    names = list(configs)
    x = list(range(len(names)))
    colors = ["tab:grey" if configs[n]["workers"] == 0 else "tab:blue" for n in names]
    kinds = [
        Patch(color="tab:grey", label="in the training process"),
        Patch(color="tab:blue", label="in DataLoader workers"),
        Line2D([], [], color="k", marker=".", ls="none", label="each round"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))

    def bars(ax: Any, values: list[float], per_round: list[list[float]], fmt: str) -> None:
        ax.bar(x, values, color=colors)
        for i, ys in enumerate(per_round):
            ax.plot([i] * len(ys), ys, "k.", ms=6)
        top = max([*values, *(y for ys in per_round for y in ys)], default=1.0) or 1.0
        for i, v in enumerate(values):
            ax.annotate(fmt.format(v), (i, v), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")  # fmt: skip
        ax.set_ylim(0, 1.35 * top)
        ax.set_xticks(x, names)
        ax.grid(True, axis="y", alpha=0.25)

    ax = axes[0]
    bars(
        ax,
        [configs[n]["samples_per_s"] for n in names],
        [[r["samples_per_s"] for r in configs[n]["rounds"]] for n in names],
        "{:.2f}",
    )
    ax.set_ylabel("samples / s (median of steady steps)")
    ax.set_xlabel("where masks and plans are made")
    ax.set_title("throughput")
    ax.legend(handles=kinds, fontsize=8, loc="upper left")

    ax = axes[1]
    bars(
        ax,
        [100 * configs[n]["data_wait_fraction"] for n in names],
        [[100 * r["data_wait_fraction"] for r in configs[n]["rounds"]] for n in names],
        "{:.1f} %",
    )
    target = 100 * TARGET_WAIT_FRACTION
    ax.axhline(target, color="tab:red", ls="--", lw=1)
    ax.set_ylim(0, max(ax.get_ylim()[1], 1.35 * target))
    target_line = Line2D(
        [], [], color="tab:red", ls="--", label=f"target with workers: <= {target:.0f} %"
    )
    ax.legend(handles=[*kinds, target_line], fontsize=8, loc="upper left")
    ax.set_ylabel("data wait, % of step time (total over steady steps)")
    ax.set_xlabel("where masks and plans are made")
    ax.set_title("time waiting for the next batch")

    ax = axes[2]
    prep = result["prepare"]["training_threads"]
    labels = [*names, "host work,\ntimed apart"]
    compute = [1e3 * configs[n]["compute_s"] for n in names]
    wait = [1e3 * configs[n]["data_wait_s"] for n in names]
    xs = list(range(len(labels)))
    ax.bar(x, compute, color="tab:green", label="forward + backward + optimizer")
    ax.bar(x, wait, bottom=compute, color="tab:orange", label="data wait")
    load, collate = 1e3 * prep["load_s"], 1e3 * prep["collate_s"]
    ax.bar([xs[-1]], [load], color="tab:purple", label="read the synthetic images")
    ax.bar([xs[-1]], [collate], bottom=[load], color="tab:brown",
           label="collator: stack + masks + prepare")  # fmt: skip
    totals = [c + w for c, w in zip(compute, wait, strict=True)] + [load + collate]
    for i, v in enumerate(totals):
        ax.annotate(f"{v:.1f}", (i, v), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")  # fmt: skip
    ax.set_ylim(0, 1.45 * max(totals))
    ax.set_xticks(xs, labels)
    ax.set_ylabel("ms per step (medians)")
    ax.set_title(f"where a step's time goes ({prep['threads']} threads)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, axis="y", alpha=0.25)

    s, m = result["settings"], result["machine"]
    size = "x".join(str(v) for v in s["input_shape"][1:])
    fig.suptitle(
        f"{s['model']} pretraining, {size} px, batch {s['batch_size']}, "
        f"{'per-sample' if s['per_sample'] else 'batch-shared'} masks at {s['mask_ratio']}, "
        f"{s['threads']} torch threads in the training process; {m['cpu']}, "
        f"{m['usable_cores']} cores; medians of {s['rounds']} round(s) x {s['steps']} steps",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _workers_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a list like 0,1,2, received {text!r}") from None
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(
            f"expected distinct worker counts >= 0 like 0,1,2, received {text!r}"
        )
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="greenmim_swin_tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--img-size", type=int, default=None, help="override the model's")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture override (a Python literal), e.g. 'depths=(1,1,1)'; repeatable",
    )
    masks = parser.add_mutually_exclusive_group()
    masks.add_argument(
        "--per-sample", dest="per_sample", action="store_true", help="one mask per sample (default)"
    )
    masks.add_argument(
        "--shared", dest="per_sample", action="store_false", help="one mask per batch"
    )
    parser.set_defaults(per_sample=True)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run (median)")
    parser.add_argument("--warmup", type=int, default=2, help="steps dropped first")
    parser.add_argument(
        "--workers",
        type=_workers_list,
        default=[0, 1, 2],
        help="DataLoader worker counts to compare (0: in the training process)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads of the training process"
    )
    parser.add_argument("--rounds", type=int, default=3, help="processes per configuration")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per host-work median")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: as grouping.train)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="JSON output (default for a full run: docs/)")
    parser.add_argument("--png", type=Path, help="PNG output (default for a full run: docs/)")
    parser.add_argument(
        "--replot", type=Path, metavar="JSON", help="only redraw --png from a written JSON"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "rounds", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected an int >= 1")
    if args.warmup < 0 or args.threads < 0:
        parser.error("--warmup and --threads: expected ints >= 0")

    if args.worker:
        if args.worker == "prepare":
            result = run_prepare(args)
        else:
            result = run_train(args, int(args.worker.removeprefix("workers=")))
        with open(args.result, encoding="utf-8", mode="w") as f:
            json.dump(result, f)
        return 0

    if args.replot:
        if not args.png:
            parser.error("--replot: expected --png PATH to draw to")
        with open(args.replot, encoding="utf-8") as f:
            plot(json.load(f), args.png)
        print(f"wrote {args.png}")
        return 0

    full = not (args.set or args.img_size)
    json_path = args.json or (REPO / "docs/results/train_throughput.json" if full else None)
    png_path = args.png or (REPO / "docs/figures/train_throughput.png" if full else None)

    import torch

    info = machine_info()
    info.update(versions("torch"))
    print(machine_line(info) + f", torch {torch.__version__}")
    start = time.perf_counter()
    labels = ["prepare", *(_config_name(w) for w in args.workers)]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    order = []
    for r in range(args.rounds):
        # rotate the order, so that no configuration always runs first (or after another)
        turn = labels[r % len(labels) :] + labels[: r % len(labels)]
        order.append(turn)
        for label in turn:
            t0 = time.perf_counter()
            out = _spawn(args, label)
            runs[label].append(out)
            if label == "prepare":
                p = out["training_threads"]
                note = (
                    f"host work {_ms(p['host_s'])} ms/step (masks + prepare "
                    f"{_ms(p['masks_prepare_s'])} ms)"
                )
            else:
                note = (
                    f"{out['samples_per_s']:.2f} samples/s, step {_ms(out['step_time_s'])} ms, "
                    f"data wait {_ms(out['data_wait_s'])} ms ({_pct(out['data_wait_fraction'])})"
                )
            print(
                f"  round {r + 1}/{args.rounds} {label:<10} {note}  "
                f"[{time.perf_counter() - t0:.0f} s]",
                flush=True,
            )

    configs = {label: _combine_train(runs[label]) for label in labels[1:]}
    prepare = _combine_prepare(runs["prepare"])
    base = configs.get(_config_name(0))
    for c in configs.values():
        if base is None:
            c["throughput_ratio"] = c["throughput_ratio_per_round"] = None
            c["throughput_ratio_mean"] = None
            continue
        c["throughput_ratio"] = c["samples_per_s"] / base["samples_per_s"]
        c["throughput_ratio_mean"] = c["samples_per_s_mean"] / base["samples_per_s_mean"]
        c["throughput_ratio_per_round"] = [
            a["samples_per_s"] / b["samples_per_s"]
            for a, b in zip(c["rounds"], base["rounds"], strict=True)
        ]
    comparison = _comparison(configs, prepare, args.workers)
    targets = _targets(configs, args.workers)

    size = "x".join(str(v) for v in prepare["input_shape"][1:])
    print(
        f"\n{args.model}, {size} px, batch {args.batch_size}, "
        f"{'per-sample' if args.per_sample else 'batch-shared'} masks at {args.mask_ratio}, "
        f"{next(iter(configs.values()))['threads']} torch threads, "
        f"{next(iter(configs.values()))['device']}; medians over {args.rounds} round(s) of "
        f"{args.steps} steps after {args.warmup}"
    )
    headers = ["config", "samples/s", "mean s/s", "step ms", "compute ms", "wait ms", "wait %"]
    headers += ["CPU ms/step", "vs in-process"]
    rows = []
    for name, c in configs.items():
        ratio = c["throughput_ratio"]
        rows.append(
            [
                name,
                f"{c['samples_per_s']:.2f}",
                f"{c['samples_per_s_mean']:.2f}",
                _ms(c["step_time_s"]),
                _ms(c["compute_s"]),
                _ms(c["data_wait_s"]),
                _pct(c["data_wait_fraction"]),
                _ms(c["cpu_step_s"]),
                "-" if ratio is None else f"{ratio:.3f}x",
            ]
        )
    print(format_table(headers, rows))

    print(
        "\nHost work of one step, timed apart (ms, median; the collator = stack + masks + prepare)"
    )
    headers = ["threads", "load images", "masks", "prepare", "masks+prepare", "collator", "total"]
    rows = []
    for label in ("training_threads", "worker_thread"):
        p = prepare[label]
        rows.append(
            [
                f"{p['threads']} ({'training' if label == 'training_threads' else 'worker'})",
                *(_ms(p[k]) for k in ("load_s", "masks_s", "prepare_s", "masks_prepare_s")),
                _ms(p["collate_s"]),
                _ms(p["host_s"]),
            ]
        )
    print(format_table(headers, rows))
    if "masks_prepare_fraction_of_compute" in comparison:
        print(
            f"masks + prepare = {_pct(comparison['masks_prepare_fraction_of_compute'])} of the "
            f"in-process forward + backward + optimizer ({_ms(comparison['in_process_compute_s'])} "
            f"ms); all host work = {_pct(comparison['host_fraction_of_in_process_step'])} of the "
            "in-process step"
        )

    print("\nTargets:")
    for t in targets:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['name']}: {t['value']}")

    result = {
        "benchmark": "train_throughput",
        "machine": info,
        "versions": versions("python", "torch", "numpy", "numba", "grouping"),
        "settings": {
            "model": args.model,
            "overrides": _overrides(args),
            "input_shape": prepare["input_shape"],
            "mask_grid": prepare["mask_grid"],
            "batch_size": args.batch_size,
            "mask_ratio": args.mask_ratio,
            "per_sample": args.per_sample,
            "workers": args.workers,
            "threads": args.threads,
            "device": next(iter(configs.values()))["device"],
            "steps": args.steps,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "repeats": args.repeats,
            "seed": args.seed,
            "data": "synthetic",
            "targets": {"data_wait_fraction_max": TARGET_WAIT_FRACTION, "ratio_min": TARGET_RATIO},
            "elapsed_s": time.perf_counter() - start,
        },
        "configs": configs,
        "prepare": prepare,
        "comparison": comparison,
        "targets": targets,
        "order": order,
    }
    if json_path:
        print(f"wrote {write_json(json_path, result)}")
    if png_path:
        plot(result, png_path)
        print(f"wrote {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
