"""HiP's speed comparison at this machine's scale: training steps per second of HiP-16 and
HiP-256 (group-wise masked auto-encoding of raw pixels, 85 % masked and unmasked) and of the
ImageNet Perceiver IO, at several resolutions.

The HiP paper (Carreira et al. 2022) argues that HiP with group-wise masking trains much faster
than Perceiver IO on raw pixels. This benchmark measures that on this machine, in float32 on the
CPU, with one batch for every model:

* **HiP-16, HiP-256**: :func:`grouping.models.hip.mae_hip` (``"16"`` / ``"256"``,
  ``img_size=S``): ``S * S`` raw-pixel tokens of 3 channels. *Masked*: ``model.preparer()
  .draw_mask(mask_ratio, rng=seed + i)`` draws one group-wise mask ``[G, L]`` per sample (the
  same number of visible pixels in every group), ``model.prepare(np.stack(masks), batch=B)``
  turns them into the step once, outside the timing, and ``model(images, mask=step)`` encodes
  the visible pixels and reconstructs the masked ones (MSE there). *Unmasked*:
  ``model(images)`` encodes and reconstructs every pixel.
* **Perceiver IO**: ``grouping.models.create_model("perceiver_io_imagenet", image_size=S)``
  (the released ImageNet configuration: raw pixels with 64-band Fourier positions, 512 x 1024
  latents, 8 x 6 self-attention layers, 1000 classes); the step is cross-entropy on its logits
  against fixed labels. No masking.

A training step is the forward, the loss, ``loss.backward()``, ``torch.optim.AdamW(lr=1e-4,
fused=True).step()`` and ``zero_grad(set_to_none=False)`` (gradients kept allocated: they are
state, not activations). The driver seeds torch and creates the weights of each HiP model and
size once (saved to a temporary file; every worker of that model and size loads them, masked and
unmasked, in every round); Perceiver IO is built from the seed in its worker.

Each (model, size, masked) configuration runs in its own worker process (``--worker``): it
builds the model, runs ``--warmup`` untimed steps (the first steps fault in the gradients and
the optimizer state), then ``--steps`` timed steps (``--perceiver-steps`` for Perceiver IO,
whose steps take tens of seconds here). In the first round only, it then runs
``--breakdown-steps`` steps timed region by region with module hooks (HiP: block 0's
cross-attention from the pixels and its self-attention, every other block, the reconstruction
head, the rest; Perceiver IO: the cross-attention from the pixels, the latent self-attention,
the decoder, the rest), forward and backward apart, plus the optimizer; and last
``--memory-steps`` steps measured for memory (``bench/_memory.py``: the peak RSS during a step,
and that minus the RSS just before it, the activation peak; last, because trimming the heap
makes the next step fault its pages in again). The workers of all configurations alternate
over ``--rounds`` rounds; the reported step time of a configuration is the median over rounds
of each round's median, and its steps/s is one over that. Every timed step also records how
many cores the rest of the machine used meanwhile (``/proc/stat``), as ``bench/hiera_step.py``
does; a worker during whose timed steps (or breakdown) that exceeded ``--max-other-load``
cores is run again, at most ``--retries`` times (two torch threads on two cores slow down
several times over when another process takes a core; the discarded runs are kept in the
JSON).

Ratios are taken between configurations of the same run: the masking speed-up (unmasked step
time / masked step time) of every HiP model at every size, and Perceiver IO's step time over
every HiP configuration's at every size. The targets (the issue's): HiP-16 masked at 224 px at
least 2x the steps/s of Perceiver IO at 224 px, and group-wise masking at least 1.5x faster than
the same HiP unmasked, at every size.

Usage::

    flock /tmp/bench.lock python bench/hip.py     # docs/results/hip.json, docs/figures/hip.png
    python bench/hip.py --sizes 48 --steps 1 --perceiver-steps 1 --warmup 1 --rounds 1 \\
        --json /tmp/hip.json --png /tmp/hip.png    # smoke run (a few minutes)

Writes the JSON keys ``configs`` (per configuration: ``steps_per_s``, ``step_s`` and
``step_s_rounds``, every step, CPU time, other load, ``peak_rss_bytes``, ``activation_bytes``,
``process_peak_bytes``, ``breakdown``, the model's sizes), ``masking_speedup``,
``masking_speedup_bound`` (the most masking could gain: the unmasked step over its latent
blocks and optimizer, from the breakdown), ``vs_perceiver``, ``targets``, ``settings``,
``versions`` and ``machine``; a PNG of steps/s and memory against the resolution; and prints a
table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from _memory import activation_peaks, machine_busy_s, spawn_worker, timed_call

MODELS = ("hip_16", "hip_256", "perceiver_io")
LABELS = {"hip_16": "HiP-16", "hip_256": "HiP-256", "perceiver_io": "Perceiver IO"}
QUIET_CORES = 0.1  # a step is quiet if the rest of the machine used at most this many cores
TARGETS = {
    "hip16_masked_vs_perceiver_224": (
        "steps/s, HiP-16 masked / Perceiver IO, 224 px",
        2.0,
    ),
    "masking_speedup": ("steps/s, HiP masked / the same HiP unmasked, every model and size", 1.5),
}
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


class Config(NamedTuple):
    """One measured configuration: a model, a resolution, masked or not."""

    model: str
    size: int
    masked: bool

    @property
    def key(self) -> str:
        return f"{self.model}/{self.size}/{'masked' if self.masked else 'unmasked'}"

    @property
    def label(self) -> str:
        if self.model == "perceiver_io":
            return LABELS[self.model]
        return f"{LABELS[self.model]} {'masked' if self.masked else 'unmasked'}"


def configs_of(models: list[str], sizes: list[int]) -> list[Config]:
    """Every configuration, size by size (HiP masked and unmasked, Perceiver IO unmasked)."""
    out = []
    for size in sizes:
        for model in models:
            for masked in (True, False) if model != "perceiver_io" else (False,):
                out.append(Config(model, size, masked))
    return out


def check_sizes(models: list[str], sizes: list[int], mask_ratio: float) -> str | None:
    """Why these sizes cannot be measured (a group-wise mask keeps no pixel of a group), or
    None."""
    from grouping.core import group_layout
    from grouping.models.hip import VARIANTS

    for model in models:
        if model == "perceiver_io":
            continue
        groups = VARIANTS[model.removeprefix("hip_")]["num_groups"][0]
        for size in sizes:
            length = group_layout(groups, (size * size,)).group_len
            if int(length * (1 - mask_ratio)) < 1:
                return (
                    f"--sizes: {LABELS[model]} groups {size} x {size} pixels into {groups} groups "
                    f"of {length}, and a mask ratio of {mask_ratio} keeps none of them; use "
                    f"sizes of at least {math.ceil(math.sqrt(groups / (1 - mask_ratio)))} px"
                )
    return None


# -- the worker (one configuration, its own process) ------------------------------------------


def _vm_hwm_bytes() -> int:
    """The peak resident memory of this process so far (``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def hip_model(model: str, size: int, *, meta: bool = False) -> Any:
    """``mae_hip`` of ``model`` (``"hip_16"`` / ``"hip_256"``) at ``size`` px; with ``meta``,
    its parameters on the meta device (no initialisation: the worker loads the weights)."""
    import torch

    from grouping.models.hip import mae_hip

    if not meta:
        return mae_hip(model.removeprefix("hip_"), img_size=size)
    with torch.device("meta"):
        return mae_hip(model.removeprefix("hip_"), img_size=size)


def create_weights(model: str, size: int, seed: int, path: str) -> float:
    """Seed, build a HiP, save its ``state_dict`` (every worker of this model and size loads
    it: the same weights masked and unmasked, in every round). Returns the seconds it took."""
    import torch

    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.save(hip_model(model, size).state_dict(), path)
    return time.perf_counter() - start


def _block_label(hip: Any, i: int) -> str:
    g, z, d = hip.num_groups[i], hip.z_index_dim[i], hip.num_z_channels[i]
    n = hip.num_self_attends_per_block[i]
    return (
        f"block {i}: {g} group{'s' if g > 1 else ''} x {z} latents x {d} ch, "
        f"{n} self-attention layer{'s' if n > 1 else ''}"
    )


def build(cfg: Config, batch: int, mask_ratio: float, seed: int, weights: str | None) -> dict:
    """The model, its inputs and its loss (one home: every worker builds here).

    HiP loads ``weights`` (:func:`create_weights`) into a model built on the meta device;
    Perceiver IO (quick to initialise) is built from ``seed``.

    Returns ``model``, ``loss`` (a function computing the step's loss), ``regions`` (the
    modules the breakdown times, by name), ``rest`` (the name of what is left) and ``info``
    (sizes, for the record).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, 3, cfg.size, cfg.size, generator=gen)
    if cfg.model == "perceiver_io":
        from grouping.models import create_model

        model = create_model("perceiver_io_imagenet", image_size=cfg.size)
        labels = torch.randint(0, model.config.num_classes, (batch,), generator=gen)

        def loss() -> torch.Tensor:
            return F.cross_entropy(model(x), labels)

        enc, pio = model.encoder, model.config
        layers = pio.num_blocks * pio.num_self_attends_per_block
        regions = {
            "cross-attention from the pixels": [enc.cross_attention],
            f"latent self-attention ({layers} layers, {pio.num_latents} x {pio.d_latents})": list(
                enc.self_attends
            ),
            "classification decoder": [model.decoder],
        }
        rest = "rest (Fourier positions, loss)"
        info = {
            "tokens": cfg.size * cfg.size,
            "input_channels": int(model.input_preprocessor.num_channels),
            "num_latents": pio.num_latents,
            "d_latents": pio.d_latents,
            "self_attention_layers": layers,
        }
    else:
        if weights is None:
            raise ValueError("HiP needs the weights file of create_weights")
        model = hip_model(cfg.model, cfg.size, meta=True).to_empty(device="cpu")
        model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
        model.hip.refill_layout_buffers()  # derived buffers: not in the weights file
        step = None
        if cfg.masked:
            prep = model.preparer()
            masks = np.stack([prep.draw_mask(mask_ratio, rng=seed + i) for i in range(batch)])
            step = model.prepare(masks, batch=batch)  # once, outside the timing

        def loss() -> torch.Tensor:
            return model(x, mask=step)[0]

        hip = model.hip
        first = hip.blocks[0]
        regions = {
            "block 0 cross-attention from the pixels": [first.projector],
            f"block 0 self-attention ({_block_label(hip, 0).split(': ', 1)[1]})": list(
                first.self_attends
            ),
        }
        regions.update({_block_label(hip, i): [b] for i, b in enumerate(hip.blocks) if i})
        regions["reconstruction head (to the pixels)"] = [hip.reconstruction_head]
        rest = "rest (embedding, positions, grouping, gathers, un-embedding, loss)"
        groups, length = model.mask_grid
        info = {
            "tokens": cfg.size * cfg.size,
            "num_groups": groups,
            "group_len": length,
            "visible_per_group": int(step.visible.shape[-1]) if step is not None else length,
            "reconstructed_per_group": int(step.masked.shape[-1]) if step is not None else length,
            "blocks": hip.num_blocks,
        }
    info["params"] = sum(q.numel() for q in model.parameters())
    return {"model": model, "loss": loss, "regions": regions, "rest": rest, "info": info}


def _breakdown(
    loss_fn: Callable[[], Any], optimizer: Any, regions: dict[str, list[Any]], rest: str
) -> dict[str, Any]:
    """One training step timed region by region: forward and backward wall seconds of each
    region's modules (forward hooks; full backward pre-hooks and hooks; a module called several
    times adds up), the rest of the forward and of the backward (``rest``), and the optimizer
    step."""
    fwd = dict.fromkeys(regions, 0.0)
    bwd = dict.fromkeys(regions, 0.0)
    start: dict[tuple[int, str], float] = {}
    handles = []
    for name, modules in regions.items():
        for mod in modules:

            def f_pre(m: Any, *_: Any) -> None:
                start[id(m), "f"] = time.perf_counter()

            def f_post(m: Any, *_: Any, name: str = name) -> None:
                fwd[name] += time.perf_counter() - start.pop((id(m), "f"))

            def b_pre(m: Any, *_: Any) -> None:
                start[id(m), "b"] = time.perf_counter()

            def b_post(m: Any, *_: Any, name: str = name) -> None:
                t = start.pop((id(m), "b"), None)
                if t is not None:
                    bwd[name] += time.perf_counter() - t

            handles += [
                mod.register_forward_pre_hook(f_pre),
                mod.register_forward_hook(f_post),
                mod.register_full_backward_pre_hook(b_pre),
                mod.register_full_backward_hook(b_post),
            ]
    busy, cpu = machine_busy_s(), time.process_time()
    try:
        t0 = time.perf_counter()
        loss = loss_fn()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        t3 = time.perf_counter()
    finally:
        for h in handles:
            h.remove()
    other = max(0.0, machine_busy_s() - busy - (time.process_time() - cpu))
    out = {
        "step_s": t3 - t0,
        "other_cores": other / (t3 - t0),
        "forward_s": t1 - t0,
        "backward_s": t2 - t1,
        "optimizer_s": t3 - t2,
        "regions": {
            name: {"forward_s": fwd[name], "backward_s": bwd[name], "s": fwd[name] + bwd[name]}
            for name in regions
            if regions[name]
        },
    }
    rest_f = out["forward_s"] - sum(fwd.values())
    rest_b = out["backward_s"] - sum(bwd.values())
    out["regions"][rest] = {
        "forward_s": rest_f,
        "backward_s": rest_b,
        "s": rest_f + rest_b,
    }
    return out


def _median_breakdown(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if len(runs) == 1:
        return runs[0]
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "regions"}
    out["regions"] = {
        name: {k: statistics.median(r["regions"][name][k] for r in runs) for k in parts}
        for name, parts in runs[0]["regions"].items()
    }
    return out


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one configuration in this process."""
    import torch

    torch.set_num_threads(args.threads)
    cfg = Config(args.model, args.size, bool(args.masked))
    t = time.perf_counter()
    built = build(cfg, args.batch_size, args.mask_ratio, args.seed, args.weights)
    build_s = time.perf_counter() - t
    model, loss_fn = built["model"], built["loss"]
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    losses: list[float] = []

    def step() -> None:
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        losses.append(float(loss.detach()))

    steps = args.perceiver_steps if cfg.model == "perceiver_io" else args.steps
    warm = [timed_call(step) for _ in range(args.warmup)]
    timed = [timed_call(step) for _ in range(steps)]
    out: dict[str, Any] = {
        "config": cfg.key,
        "threads": torch.get_num_threads(),
        "build_s": build_s,
        **built["info"],
        "first_step_loss": losses[0],
        "warmup_s_all": [w.wall for w in warm],
        "step_s": statistics.median(w.wall for w in timed),
        "step_s_all": [w.wall for w in timed],
        "step_cpu_s": statistics.median(w.cpu for w in timed),
        "other_cores_all": [w.other / w.wall for w in timed],
        "process_peak_bytes": _vm_hwm_bytes(),  # build, warm-up and timed steps
    }
    if args.breakdown_steps:
        runs = [
            _breakdown(loss_fn, optimizer, built["regions"], built["rest"])
            for _ in range(args.breakdown_steps)
        ]
        out["breakdown"] = _median_breakdown(runs)
    if args.memory_steps:  # last: trimming makes the next step fault its pages in again
        out.update(activation_peaks(step, args.memory_steps))
    return out


# -- the driver -------------------------------------------------------------------------------


def _spawn(
    args: argparse.Namespace, cfg: Config, first: bool, weights: str | None
) -> dict[str, Any]:
    """Run one worker; ``first``: the first round, which also measures memory and the
    breakdown."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", cfg.model]
    if weights is not None:
        cmd += ["--weights", weights]
    cmd += ["--size", str(cfg.size), "--masked", str(int(cfg.masked))]
    for key in (
        "batch_size",
        "mask_ratio",
        "steps",
        "perceiver_steps",
        "warmup",
        "threads",
        "seed",
    ):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    cmd += ["--breakdown-steps", str(args.breakdown_steps if first else 0)]
    cmd += ["--memory-steps", str(args.memory_steps if first else 0)]
    return spawn_worker(cmd, cfg.key)


def _busy(r: dict[str, Any]) -> float:
    """The most cores the rest of the machine used during a worker's timed (or breakdown)
    steps, as a median over its timed steps."""
    other = statistics.median(r["other_cores_all"])
    return max(other, r.get("breakdown", {}).get("other_cores", 0.0))


def _run_one(
    args: argparse.Namespace,
    cfg: Config,
    i: int,
    weights: str | None,
    runs: dict[str, list[dict[str, Any]]],
    discarded: dict[str, list[dict[str, Any]]],
) -> None:
    """One worker of ``cfg`` in round ``i``; rerun (at most ``--retries`` times) while the rest
    of the machine used more than ``--max-other-load`` cores during its timed steps."""
    for attempt in range(args.retries + 1):
        start = time.perf_counter()
        r = _spawn(args, cfg, i == 0, weights)
        r["worker_s"] = time.perf_counter() - start
        busy = _busy(r)
        last = attempt == args.retries or busy <= args.max_other_load
        print(
            f"round {i + 1}/{args.rounds} {cfg.key}: step {r['step_s']:.2f} s, other load "
            f"{busy:.2f} cores (worker {r['worker_s']:.0f} s)"
            + ("" if last else "; busy machine, run again"),
            flush=True,
        )
        if last:
            runs[cfg.key].append(r)
            return
        discarded.setdefault(cfg.key, []).append(r)


def _combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration over rounds: medians of each round's medians (every round kept)."""
    step_s = statistics.median(r["step_s"] for r in rounds)
    steps = [
        (s, o) for r in rounds for s, o in zip(r["step_s_all"], r["other_cores_all"], strict=True)
    ]
    quiet = [s for s, o in steps if o <= QUIET_CORES]
    first = rounds[0]
    out: dict[str, Any] = {
        "steps_per_s": 1.0 / step_s,
        "step_s": step_s,
        "step_s_rounds": [r["step_s"] for r in rounds],
        "round_spread": max(r["step_s"] for r in rounds) / min(r["step_s"] for r in rounds),
        "step_s_all": [s for s, _ in steps],
        "step_cpu_s": statistics.median(r["step_cpu_s"] for r in rounds),
        "step_s_quiet": statistics.median(quiet) if quiet else math.nan,
        "quiet_steps": len(quiet),
        "steps": len(steps),
        "other_cores_median": statistics.median(o for _, o in steps),
        "warmup_s_all": [w for r in rounds for w in r["warmup_s_all"]],
        "peak_rss_bytes": first.get("total_peak_bytes"),
        "activation_bytes": first.get("peak_bytes"),
        "activation_bytes_all": first.get("peak_bytes_all"),
        "memory_method": first.get("memory_method"),
        "process_peak_bytes": int(statistics.median(r["process_peak_bytes"] for r in rounds)),
        "build_s": statistics.median(r["build_s"] for r in rounds),
        "breakdown": first.get("breakdown"),
    }
    skip = set(out) | {"config", "total_peak_bytes", "peak_bytes", "peak_bytes_all", "step_s_all"}
    skip |= {"total_peak_bytes_all", "other_cores_all", "first_step_loss"}
    out.update({k: v for k, v in first.items() if k not in skip})
    out["first_step_loss"] = first["first_step_loss"]
    out["rounds"] = [{k: v for k, v in r.items() if k != "breakdown"} for r in rounds]
    return out


def _ratios(
    results: dict[str, dict[str, Any]], configs: list[Config]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``masking_speedup[model][size]`` and ``vs_perceiver[config][size]`` (step-time ratios
    of medians, and the same ratio round by round)."""

    def ratio(slow: str, fast: str) -> dict[str, Any]:
        a, b = results[slow], results[fast]
        return {
            "value": a["step_s"] / b["step_s"],
            "rounds": [x / y for x, y in zip(a["step_s_rounds"], b["step_s_rounds"], strict=True)],
        }

    masking: dict[str, Any] = {}
    versus: dict[str, Any] = {}
    for cfg in configs:
        if cfg.model != "perceiver_io" and cfg.masked:
            unmasked = Config(cfg.model, cfg.size, False).key
            masking.setdefault(cfg.model, {})[str(cfg.size)] = ratio(unmasked, cfg.key)
        pio = Config("perceiver_io", cfg.size, False).key
        if cfg.model != "perceiver_io" and pio in results:
            name = cfg.key.split("/", 2)
            versus.setdefault(f"{name[0]}/{name[2]}", {})[str(cfg.size)] = ratio(pio, cfg.key)
    return masking, versus


PIXEL_REGIONS = ("block 0 cross-attention from the pixels", "reconstruction head", "rest (")


def _masking_bounds(results: dict[str, dict[str, Any]], configs: list[Config]) -> dict[str, Any]:
    """The most masking could gain, ``bound[model][size]``, from the unmasked step's breakdown
    (Amdahl): the unmasked step over the same step without every region whose work depends on
    the number of pixels (the first cross-attention, the reconstruction head, and the rest:
    embedding, positions, grouping, gathers, un-embedding and loss), as if masking removed all
    of it. The latent blocks and the optimizer do not depend on the pixel count."""
    bounds: dict[str, Any] = {}
    for cfg in configs:
        if cfg.model == "perceiver_io" or cfg.masked:
            continue
        b = results.get(cfg.key, {}).get("breakdown")
        if not b:
            continue
        pixel = {
            name: r["s"]
            for name, r in b["regions"].items()
            if any(name.startswith(p) for p in PIXEL_REGIONS)
        }
        fixed = b["step_s"] - sum(pixel.values())
        bounds.setdefault(cfg.model, {})[str(cfg.size)] = {
            "value": b["step_s"] / fixed if fixed > 0 else math.inf,
            "step_s": b["step_s"],
            "pixel_s": pixel,
            "fixed_s": fixed,
        }
    return bounds


def _verdicts(masking: dict[str, Any], versus: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    what, bound = TARGETS["hip16_masked_vs_perceiver_224"]
    value = versus.get("hip_16/masked", {}).get("224", {}).get("value")
    out["hip16_masked_vs_perceiver_224"] = {
        "what": what,
        "target": f">= {bound}",
        "value": value,
        "met": None if value is None else bool(value >= bound),
    }
    what, bound = TARGETS["masking_speedup"]
    each = {
        f"{model}/{size}": {"value": r["value"], "met": bool(r["value"] >= bound)}
        for model, sizes in masking.items()
        for size, r in sizes.items()
    }
    out["masking_speedup"] = {
        "what": what,
        "target": f">= {bound}",
        "each": each,
        "met": bool(each) and all(e["met"] for e in each.values()),
        "met_count": sum(e["met"] for e in each.values()),
        "count": len(each),
    }
    return out


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def _table_rows(result: dict[str, Any], configs: list[Config]) -> list[tuple[Any, ...]]:
    rows = []
    for cfg in configs:
        r = result["configs"][cfg.key]
        ratio = "-"
        if cfg.model != "perceiver_io" and cfg.masked:
            ratio = f"{result['masking_speedup'][cfg.model][str(cfg.size)]['value']:.2f}x"
        pio = "-"
        if cfg.model != "perceiver_io":
            name = f"{cfg.model}/{'masked' if cfg.masked else 'unmasked'}"
            versus = result["vs_perceiver"].get(name, {}).get(str(cfg.size))
            pio = f"{versus['value']:.2f}x" if versus else "-"
        rows.append(
            (
                f"{cfg.label}, {cfg.size} px",
                f"{r['steps_per_s']:.3f}",
                f"{r['step_s'] * 1e3:.0f} ms",
                f"{r['other_cores_median']:.2f}",
                ratio,
                pio,
                _mib(r["peak_rss_bytes"]),
                _mib(r["activation_bytes"]),
            )
        )
    return rows


def _breakdown_lines(result: dict[str, Any], configs: list[Config]) -> list[str]:
    lines = []
    for cfg in configs:
        b = result["configs"][cfg.key].get("breakdown")
        if not b:
            continue
        parts = ", ".join(
            f"{name.split(' (')[0]} {r['s'] * 1e3:.0f}" for name, r in b["regions"].items()
        )
        lines.append(
            f"{cfg.label}, {cfg.size} px: step {b['step_s'] * 1e3:.0f} ms (forward "
            f"{b['forward_s'] * 1e3:.0f}, backward {b['backward_s'] * 1e3:.0f}, AdamW "
            f"{b['optimizer_s'] * 1e3:.0f}; other load {b['other_cores']:.2f} cores); "
            f"ms forward + backward: {parts}"
        )
    return lines


def _gib(n: int | None) -> float | None:
    return None if n is None else n / 2**30


STYLE = {  # (color, linestyle, marker)
    "HiP-16 masked": ("#1f77b4", "-", "o"),
    "HiP-16 unmasked": ("#1f77b4", "--", "o"),
    "HiP-256 masked": ("#2ca02c", "-", "s"),
    "HiP-256 unmasked": ("#2ca02c", "--", "s"),
    "Perceiver IO": ("#d62728", "-", "^"),
}


def plot(result: dict[str, Any], configs: list[Config], path: str | os.PathLike[str]) -> None:
    """Steps/s against the resolution (log y), one line per model x masked/unmasked, and the
    peak RSS and activation peak of a step beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    lines: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for cfg in configs:
        lines.setdefault(cfg.label, []).append((cfg.size, result["configs"][cfg.key]))

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
    panels = [
        ("training steps per second (log)", "steps/s", lambda r: r["steps_per_s"], True),
        ("peak RSS during a step", "GiB", lambda r: _gib(r["peak_rss_bytes"]), False),
        (
            "activation peak (peak RSS - RSS before the step)",
            "GiB",
            lambda r: _gib(r["activation_bytes"]),
            False,
        ),
    ]
    sizes = sorted({cfg.size for cfg in configs})
    for ax, (title, unit, value, log) in zip(axes, panels, strict=True):
        for label, points in lines.items():
            color, style, marker = STYLE[label]
            xs = [s for s, _ in points]
            ys = [value(r) for _, r in points]
            ys = [math.nan if y is None else y for y in ys]
            ax.plot(xs, ys, style, color=color, marker=marker, label=label)
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("image size (px per side)")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    verdict = result["targets"]["hip16_masked_vs_perceiver_224"]
    notes = []
    if verdict["value"] is not None:
        notes.append(
            f"HiP-16 masked / Perceiver IO at 224 px: {verdict['value']:.2f}x "
            f"(target >= 2: {'met' if verdict['met'] else 'missed'})"
        )
    speedups = ", ".join(
        f"{LABELS[m]} {s} px {r['value']:.2f}x"
        for m, by in result["masking_speedup"].items()
        for s, r in by.items()
    )
    notes.append(f"masking speed-up, unmasked / masked step time (target >= 1.5): {speedups}")
    fig.text(0.5, 0.01, "\n".join(notes), ha="center", va="bottom", fontsize=9)
    machine = result["machine"]
    fig.suptitle(
        f"HiP (group-wise MAE, {result['settings']['mask_ratio']:.0%} masked or unmasked) and "
        f"Perceiver IO (ImageNet), training steps, batch {result['settings']['batch_size']}, "
        f"float32, {result['settings']['threads']} threads\n{machine['cpu']} "
        f"({machine['usable_cores']} cores), torch {result['versions']['torch']}; medians of "
        f"{result['settings']['rounds']} rounds",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[64, 128, 224], help="image sizes (px per side)"
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=2, help="the same for every model")
    parser.add_argument("--mask-ratio", type=float, default=0.85, help="group-wise masking")
    parser.add_argument("--steps", type=int, default=1, help="timed HiP steps per round")
    parser.add_argument(
        "--perceiver-steps", type=int, default=1, help="timed Perceiver IO steps per round"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument(
        "--memory-steps", type=int, default=1, help="steps measured for memory, round 1 (0: none)"
    )
    parser.add_argument(
        "--breakdown-steps", type=int, default=1, help="steps timed by region, round 1 (0: none)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="worker processes per config")
    parser.add_argument(
        "--max-other-load",
        type=float,
        default=0.25,
        help="rerun a worker when the rest of the machine used more cores than this",
    )
    parser.add_argument("--retries", type=int, default=2, help="reruns of a worker at most")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(REPO / "docs/results/hip.json"), help="results")
    parser.add_argument("--png", default=str(REPO / "docs/figures/hip.png"), help="plot")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--masked", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0

    from _common import format_table, machine_info, uncommitted_files, versions, write_json

    problem = check_sizes(args.models, args.sizes, args.mask_ratio)
    if problem:
        parser.error(problem)
    start = time.perf_counter()
    machine = machine_info()  # load average before the workers start
    machine.update(threads=args.threads, uncommitted_model_files=uncommitted_files("grouping"))
    configs = configs_of(args.models, args.sizes)
    runs: dict[str, list[dict[str, Any]]] = {cfg.key: [] for cfg in configs}
    discarded: dict[str, list[dict[str, Any]]] = {}
    # every configuration once per round, so that a burst of load elsewhere on the machine hits
    # one round of many configurations rather than all rounds of one
    with tempfile.TemporaryDirectory() as tmp:
        weights, create_s = {}, {}
        for cfg in configs:
            name = f"{cfg.model}-{cfg.size}"
            if cfg.model != "perceiver_io" and name not in weights:
                weights[name] = os.path.join(tmp, name + ".pt")
                create_s[name] = create_weights(cfg.model, cfg.size, args.seed, weights[name])
        for i in range(args.rounds):
            for cfg in configs:
                _run_one(args, cfg, i, weights.get(f"{cfg.model}-{cfg.size}"), runs, discarded)
    results = {key: _combine(rounds) for key, rounds in runs.items()}
    masking, versus = _ratios(results, configs)
    result: dict[str, Any] = {
        "what": "training steps per second: HiP-16 and HiP-256 (group-wise MAE on raw pixels, "
        "masked and unmasked) and the ImageNet Perceiver IO, same batch",
        "configs": results,
        "masking_speedup": masking,
        "vs_perceiver": versus,
        "weights_create_s": create_s,
        "discarded_runs": discarded,
    }
    result["masking_speedup_bound"] = _masking_bounds(results, configs)
    result["targets"] = _verdicts(masking, versus)
    result.update(
        settings={
            "sizes": args.sizes,
            "models": args.models,
            "batch_size": args.batch_size,
            "mask_ratio": args.mask_ratio,
            "steps": args.steps,
            "perceiver_steps": args.perceiver_steps,
            "warmup": args.warmup,
            "memory_steps": args.memory_steps,
            "breakdown_steps": args.breakdown_steps,
            "rounds": args.rounds,
            "threads": args.threads,
            "seed": args.seed,
            "dtype": "float32",
            "optimizer": "torch.optim.AdamW(lr=1e-4, fused=True); zero_grad(set_to_none=False)",
            "hip": "grouping.models.hip.mae_hip(variant, img_size=S); masked: "
            "model(images, mask=model.prepare(masks, batch=B)), masks from "
            "model.preparer().draw_mask(mask_ratio, rng=seed + i); unmasked: model(images)",
            "perceiver_io": "grouping.models.create_model('perceiver_io_imagenet', "
            "image_size=S); cross_entropy(model(images), labels)",
            "quiet_cores": QUIET_CORES,
            "max_other_load": args.max_other_load,
            "retries": args.retries,
        },
        versions=versions("python", "torch", "numpy", "grouping"),
        machine=machine,
    )
    result["runtime_s"] = time.perf_counter() - start

    print(
        f"HiP and Perceiver IO training steps, batch {args.batch_size}, mask ratio "
        f"{args.mask_ratio}, {args.threads} threads; {machine['cpu']}, torch "
        f"{result['versions']['torch']}; medians of {args.rounds} rounds"
    )
    headers = (
        "",
        "steps/s",
        "step",
        "other load",
        "masking speed-up",
        "vs Perceiver IO",
        "peak RSS",
        "activation peak",
    )
    print(format_table(headers, _table_rows(result, configs)))
    for line in _breakdown_lines(result, configs):
        print(line)
    v = result["targets"]["hip16_masked_vs_perceiver_224"]
    print(
        f"{v['what']}: "
        + ("not measured" if v["value"] is None else f"{v['value']:.2f}x (target {v['target']})")
        + ("" if v["met"] is None else f": {'met' if v['met'] else 'MISSED'}")
    )
    v = result["targets"]["masking_speedup"]
    print(
        f"{v['what']} (target {v['target']}): met at {v['met_count']} of {v['count']}"
        + "".join(f"; {k} {e['value']:.2f}x" for k, e in v["each"].items())
    )
    print(
        "the most masking could gain (unmasked step / its latent blocks and optimizer): "
        + "; ".join(
            f"{m} {size} px {b['value']:.2f}x"
            for m, by in result["masking_speedup_bound"].items()
            for size, b in by.items()
        )
    )
    print(f"runtime {result['runtime_s'] / 60:.1f} min")
    if args.json:
        print(f"wrote {write_json(args.json, result)}")
    if args.png:
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        plot(result, configs, args.png)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
