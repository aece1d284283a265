"""One Perceiver IO training step: ours against transformers' ``PerceiverModel``, same weights.

Times one image-classification training step (forward, cross-entropy on the logits against fixed
labels, backward, ``torch.optim.AdamW(lr=1e-4, fused=True)``) of transformers'
``PerceiverModel`` and of ours (:class:`grouping.models.perceiver.PerceiverIO`, built by
:func:`~grouping.models.perceiver.from_transformers` from it, so with the same weights), times the
eval forward of both (``torch.no_grad()``), and measures the activation memory of a step (peak
resident memory during a step minus the resident memory just before it, with model, gradients and
optimizer state already allocated: ``bench/_memory.py``).

The model is the ImageNet Perceiver IO of ``PerceiverForImageClassificationFourier`` (raw pixels
with 64-band Fourier positions concatenated, ``prep_type="pixels"``, one cross-attention head
from the latents to the pixels, ``num_blocks`` repeats of a block of 6 self-attention layers with
8 heads and shared weights, ``qk_channels = d_latents / 4``, ``v_channels = d_latents``, a
classification decoder with one trainable query and the query residual), at a reduced size that
takes about a second a step on two cores: by default 64 px (4096 inputs of 261 channels),
128 x 256 latents and 2 blocks (the released model: 224 px, 512 x 1024 latents, 8 blocks).
Attention dropout is 0 (transformers' default is 0.1; ours has none), so both compute the same
function.

The driver seeds torch with ``--seed``, builds transformers' model, draws the images ``[B, 3, S,
S]`` and labels, computes the reference loss and logits (no_grad), and saves the model's
``state_dict``, its configuration, the inputs and the references with ``torch.save`` to a
temporary file. The transformers worker rebuilds the model and loads the weights
(``strict=True``); our worker does the same and converts it with ``from_transformers``. Every
worker checks its first-step loss and its eval logits against the references.

Each worker is its own process (``--worker``); the transformers and our processes alternate over
``--rounds`` rounds, and the reported numbers are medians over rounds of each round's medians.
Then one more step of each runs under ``torch.profiler`` (after the timing and the memory steps;
``--profile-rows 0`` skips it) and the operators with the most self CPU time are recorded.

Usage::

    flock /tmp/bench.lock python bench/perceiver.py          # docs/results, docs/figures
    python bench/perceiver.py --image-size 16 --num-latents 16 --d-latents 32 --num-blocks 1 \\
        --batch-size 2 --steps 1 --warmup 1 --rounds 1 --json /tmp/p.json --png /tmp/p.png

Writes the JSON keys ``transformers`` and ``ours`` (each with ``step_s``, ``step_cpu_s``,
``peak_bytes``, ``total_peak_bytes``, ``saved_bytes`` (what autograd saves for the backward of
one forward, each storage once), ``eval_s``, ``profile`` and every round), ``speedup``,
``activation_memory_ratio``, ``eval_speedup``, ``targets``, ``sanity``, ``config``,
``versions``, ``machine`` and ``settings``, and a PNG of the three comparisons.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _memory import activation_peaks, spawn_worker

LOSS_RTOL = 1e-4  # first-step loss against the reference, relative
LOGITS_ATOL = 1e-4  # eval logits against the reference, relative to their largest magnitude
TARGETS = {  # name: (what, bound, "ge" / "le")
    "speedup": ("train step time, transformers / ours", 1.3, "ge"),
    "activation_memory_ratio": ("activation memory, ours / transformers", 0.75, "le"),
}
FULL = {  # the released ImageNet model (deepmind/vision-perceiver-fourier), for the record
    "image_size": 224,
    "num_latents": 512,
    "d_latents": 1024,
    "num_blocks": 8,
    "num_self_attends_per_block": 6,
    "num_self_attention_heads": 8,
    "num_cross_attention_heads": 1,
    "qk_channels": 256,
    "v_channels": 1024,
    "num_bands": 64,
    "num_labels": 1000,
}
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


# -- the model (one home: the driver and both workers build it here) -------------------------------


def spec_of(args: argparse.Namespace) -> dict[str, Any]:
    """The reduced ImageNet configuration: the released model's structure and width ratios."""
    d = args.d_latents
    return {
        "image_size": args.image_size,
        "num_latents": args.num_latents,
        "d_latents": d,
        "num_blocks": args.num_blocks,
        "num_self_attends_per_block": 6,
        "num_self_attention_heads": 8,
        "num_cross_attention_heads": 1,
        "qk_channels": d // 4,  # 256 of 1024 in the released model
        "v_channels": d,  # 1024 of 1024
        "num_bands": 64,
        "num_labels": args.num_labels,
    }


def build_transformers(spec: dict[str, Any]) -> Any:
    """transformers' ``PerceiverModel`` laid out as ``PerceiverForImageClassificationFourier``
    (pixels + Fourier positions in, classification decoder out), at the size of ``spec``."""
    from transformers import PerceiverConfig, PerceiverModel
    from transformers.models.perceiver import modeling_perceiver as hf

    size = spec["image_size"]
    config = PerceiverConfig(
        num_latents=spec["num_latents"],
        d_latents=spec["d_latents"],
        num_blocks=spec["num_blocks"],
        num_self_attends_per_block=spec["num_self_attends_per_block"],
        num_self_attention_heads=spec["num_self_attention_heads"],
        num_cross_attention_heads=spec["num_cross_attention_heads"],
        qk_channels=spec["qk_channels"],
        v_channels=spec["v_channels"],
        image_size=size,
        num_labels=spec["num_labels"],
        attention_probs_dropout_prob=0.0,  # ours has none; the same function on both sides
    )
    pre = hf.PerceiverImagePreprocessor(
        config,
        prep_type="pixels",
        spatial_downsample=1,
        position_encoding_type="fourier",
        fourier_position_encoding_kwargs=dict(
            num_bands=spec["num_bands"],
            max_resolution=(size, size),
            concat_pos=True,
            sine_only=False,
        ),
    )
    dec = hf.PerceiverClassificationDecoder(
        config,
        num_channels=spec["d_latents"],
        trainable_position_encoding_kwargs=dict(num_channels=spec["d_latents"], index_dims=1),
        use_query_residual=True,
    )
    return PerceiverModel(config, decoder=dec, input_preprocessor=pre)


# -- the workers (each its own process) ------------------------------------------------------------


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU (all threads) seconds of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def _profile(step: Callable[[], Any], rows: int, inputs: int) -> dict[str, Any]:
    """One step under ``torch.profiler`` (shapes recorded): the ``rows`` operators with the most
    self CPU time, the ``rows`` (operator, input shapes) pairs with the most, and the self CPU
    time of the operators on per-input tensors (a dimension of ``inputs`` = M or B * M: the
    preprocessed pixels, the cross-attention's keys, values and weights, and their gradients)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()

    def top(events: list[Any], shapes: bool) -> list[dict[str, Any]]:
        events = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
        return [
            {"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "calls": e.count}
            | ({"input_shapes": e.input_shapes} if shapes else {})
            for e in events
        ]

    by_name = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    by_shape = [
        e for e in prof.key_averages(group_by_input_shape=True) if e.self_cpu_time_total > 0
    ]
    total = sum(e.self_cpu_time_total for e in by_name)
    per_input = sum(
        e.self_cpu_time_total
        for e in by_shape
        if any(d > 0 and d % inputs == 0 for shape in e.input_shapes for d in shape)
    )
    return {
        "self_cpu_ms_total": total / 1e3,
        "per_input_ops_ms": per_input / 1e3,
        "per_input_ops_share": per_input / total,
        "ops": top(by_name, False),
        "ops_by_shape": top(by_shape, True),
    }


def _saved_bytes(forward_loss: Callable[[], Any]) -> int:
    """Bytes that autograd saves for the backward of one forward (each storage counted once):
    the activations a step must hold at its end of the forward."""
    import torch

    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward_loss()
    del loss
    return sum(seen.values())


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one side in this process: the first-step loss, timed training steps, the eval
    forward, the activation memory, then a profiled step."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    data = torch.load(args.data, weights_only=True)
    hf_model = build_transformers(data["spec"])
    hf_model.load_state_dict(data["state"], strict=True)
    if args.worker == "ours":
        from grouping.models.perceiver import from_transformers

        model = from_transformers(hf_model)
        del hf_model

        def logits_of(x: torch.Tensor) -> torch.Tensor:
            return model(x)

    else:
        model = hf_model

        def logits_of(x: torch.Tensor) -> torch.Tensor:
            return model(inputs=x).logits

    x, labels = data["x"], data["labels"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    losses: list[float] = []

    def step() -> None:
        loss = F.cross_entropy(logits_of(x), labels)
        loss.backward()
        optimizer.step()
        # keep the gradients allocated (zeroed, not freed): they are state, not activations
        optimizer.zero_grad(set_to_none=False)
        losses.append(float(loss.detach()))

    def forward() -> None:
        with torch.no_grad():
            logits_of(x)

    model.eval()
    with torch.no_grad():
        eval_logits = logits_of(x)
    scale = float(data["logits"].abs().max())
    out: dict[str, Any] = {
        "side": args.worker,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "eval_logits_max_rel_diff": float((eval_logits - data["logits"]).abs().max()) / scale,
    }

    model.train()
    times = [_timed(step) for _ in range(args.warmup + args.steps)][args.warmup :]
    out["first_step_loss"] = losses[0]
    out["step_s"] = statistics.median(w for w, _ in times)
    out["step_s_all"] = [w for w, _ in times]
    out["step_cpu_s"] = statistics.median(c for _, c in times)

    model.eval()
    for _ in range(args.warmup):
        forward()
    evals = [_timed(forward) for _ in range(args.steps)]
    out["eval_s"] = statistics.median(w for w, _ in evals)
    out["eval_s_all"] = [w for w, _ in evals]
    out["eval_cpu_s"] = statistics.median(c for _, c in evals)

    model.train()
    out.update(activation_peaks(step, args.memory_steps))
    out["saved_bytes"] = _saved_bytes(lambda: F.cross_entropy(logits_of(x), labels))
    if args.profile_rows:
        inputs = data["spec"]["image_size"] ** 2  # M, the pixels
        out["profile"] = _profile(step, args.profile_rows, inputs)
    return out


# -- the driver ------------------------------------------------------------------------------------


def create(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """Seed, build transformers' model, draw inputs and labels, compute the references, save."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(args.seed)
    spec = spec_of(args)
    model = build_transformers(spec)
    size = spec["image_size"]
    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(args.batch_size, 3, size, size, generator=gen)
    labels = torch.randint(0, spec["num_labels"], (args.batch_size,), generator=gen)
    model.train()  # no dropout: train and eval compute the same function
    with torch.no_grad():
        logits = model(inputs=x).logits
    loss = float(F.cross_entropy(logits, labels))
    state = model.state_dict()
    torch.save(
        {
            "spec": spec,
            "config": model.config.to_dict(),
            "state": state,
            "x": x,
            "labels": labels,
            "logits": logits,
            "loss": loss,
        },
        path,
    )
    return {
        "loss": loss,
        "spec": spec,
        "inputs": int(size * size),
        "input_channels": int(model.input_preprocessor.num_channels),
        "params": sum(p.numel() for p in model.parameters()),
    }


def _spawn(args: argparse.Namespace, which: str, data: str) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", which, "--data", data]
    for key in ("steps", "warmup", "memory_steps", "threads", "profile_rows"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    return spawn_worker(cmd, which)


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side over rounds: medians of each round's medians (every round kept)."""
    out: dict[str, Any] = {}
    for key in ("step_s", "step_cpu_s", "eval_s", "eval_cpu_s", "peak_bytes", "total_peak_bytes"):
        out[key] = statistics.median(r[key] for r in runs)
    for key in ("peak_bytes", "total_peak_bytes"):
        out[key] = int(out[key])
    for key in ("first_step_loss", "params", "threads", "memory_method", "saved_bytes", "profile"):
        out[key] = runs[0].get(key)
    out["eval_logits_max_rel_diff"] = max(r["eval_logits_max_rel_diff"] for r in runs)
    out["rounds"] = [{k: v for k, v in r.items() if k != "profile"} for r in runs]
    return out


def _verdicts(result: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, (what, bound, sense) in TARGETS.items():
        value = result[key]
        met = value >= bound if sense == "ge" else value <= bound
        out[key] = {"what": what, "target": f"{'>=' if sense == 'ge' else '<='} {bound}"}
        out[key].update(value=value, met=bool(met))
    return out


def config_line(spec: dict[str, Any]) -> str:
    """The configuration in one line (table header, plot title, docs)."""
    return (
        f"{spec['image_size']} px, {spec['num_latents']} x {spec['d_latents']} latents, "
        f"{spec['num_blocks']} x {spec['num_self_attends_per_block']} self-attention layers"
    )


def _rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    hf, ours = result["transformers"], result["ours"]

    def ms(s: float) -> str:
        return f"{s * 1e3:.0f} ms"

    def mib(n: float) -> str:
        return f"{n / 2**20:.1f} MiB"

    return [
        (
            "train step (median)",
            ms(hf["step_s"]),
            ms(ours["step_s"]),
            f"{result['speedup']:.2f}x speed-up",
        ),
        (
            "train step CPU time",
            ms(hf["step_cpu_s"]),
            ms(ours["step_cpu_s"]),
            f"{result['speedup_cpu_time']:.2f}x speed-up",
        ),
        (
            "activation peak",
            mib(hf["peak_bytes"]),
            mib(ours["peak_bytes"]),
            f"{result['activation_memory_ratio']:.2f}x theirs",
        ),
        (
            "saved for backward",
            mib(hf["saved_bytes"]),
            mib(ours["saved_bytes"]),
            f"{ours['saved_bytes'] / hf['saved_bytes']:.2f}x theirs",
        ),
        (
            "total peak RSS",
            mib(hf["total_peak_bytes"]),
            mib(ours["total_peak_bytes"]),
            f"{ours['total_peak_bytes'] / hf['total_peak_bytes']:.2f}x theirs",
        ),
        (
            "eval forward (median)",
            ms(hf["eval_s"]),
            ms(ours["eval_s"]),
            f"{result['eval_speedup']:.2f}x speed-up",
        ),
        (
            "first-step loss",
            f"{hf['first_step_loss']:.6f}",
            f"{ours['first_step_loss']:.6f}",
            f"reference {result['sanity']['reference_loss']:.6f}",
        ),
    ]


def plot(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Three bar panels, ours against transformers: step time, activation memory, eval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hf, ours = result["transformers"], result["ours"]
    targets = result["targets"]
    panels = [
        (
            "train step (forward, backward, AdamW)",
            "ms",
            (hf["step_s"] * 1e3, ours["step_s"] * 1e3),
            f"speed-up {result['speedup']:.2f}x (target {targets['speedup']['target']}x)",
        ),
        (
            "activation memory (peak RSS - RSS before)",
            "MiB",
            (hf["peak_bytes"] / 2**20, ours["peak_bytes"] / 2**20),
            f"ours / transformers {result['activation_memory_ratio']:.2f}x "
            f"(target {targets['activation_memory_ratio']['target']}x)",
        ),
        (
            "eval forward (no_grad)",
            "ms",
            (hf["eval_s"] * 1e3, ours["eval_s"] * 1e3),
            f"speed-up {result['eval_speedup']:.2f}x",
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    for ax, (title, unit, values, note) in zip(axes, panels, strict=True):
        rects = ax.bar([0, 1], values, color=["#888888", "#1f77b4"])
        ax.bar_label(rects, fmt="%.0f" if min(values) >= 100 else "%.1f", fontsize=9)
        ax.set_xticks([0, 1], ["transformers\nPerceiverModel", "ours\nPerceiverIO"], fontsize=9)
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(note, fontsize=9)
        ax.margins(y=0.15)
    machine = result["machine"]
    fig.suptitle(
        f"Perceiver IO (ImageNet layout, reduced: {config_line(result['config'])}), "
        f"batch {result['batch_size']}, {result['threads']} threads\n"
        f"{machine['cpu']} ({machine['usable_cores']} cores), torch {machine['torch']}, "
        f"transformers {result['versions']['transformers']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=64, help="pixels per side (224)")
    parser.add_argument("--num-latents", type=int, default=128, help="latents (512)")
    parser.add_argument("--d-latents", type=int, default=256, help="latent width (1024)")
    parser.add_argument("--num-blocks", type=int, default=2, help="blocks of 6 layers (8)")
    parser.add_argument("--num-labels", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=7, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--memory-steps", type=int, default=3, help="steps measured for memory")
    parser.add_argument("--rounds", type=int, default=3, help="processes per side, alternated")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--profile-rows", type=int, default=12, help="profiled ops (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", default=str(REPO / "docs/results/perceiver.json"), help="results (JSON)"
    )
    parser.add_argument("--png", default=str(REPO / "docs/figures/perceiver.png"), help="plot")
    parser.add_argument("--worker", choices=("transformers", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0

    import torch
    from _common import format_table, machine_info, versions, write_json

    machine = machine_info()  # load average before the workers start
    machine.update(versions("torch"), threads=args.threads)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perceiver.pt")
        created = create(args, data)
        # alternate the two sides' processes, so that a burst of load elsewhere on the
        # machine hits one round of both rather than all of one side
        runs: dict[str, list[dict[str, Any]]] = {"transformers": [], "ours": []}
        for _ in range(args.rounds):
            for which in ("transformers", "ours"):
                runs[which].append(_spawn(args, which, data))
    hf, ours = _combine(runs["transformers"]), _combine(runs["ours"])

    reference = created["loss"]
    losses = {"transformers": hf["first_step_loss"], "ours": ours["first_step_loss"]}
    rel = {k: abs(v - reference) / abs(reference) for k, v in losses.items()}
    logits = {
        "transformers": hf["eval_logits_max_rel_diff"],
        "ours": ours["eval_logits_max_rel_diff"],
    }
    sanity = {
        "reference_loss": reference,
        "first_step_loss": losses,
        "relative_difference": rel,
        "ours_vs_transformers_relative": abs(losses["ours"] - losses["transformers"])
        / abs(losses["transformers"]),
        "loss_rtol": LOSS_RTOL,
        "eval_logits_max_rel_diff": logits,
        "logits_rtol": LOGITS_ATOL,
        "same_params": hf["params"] == ours["params"],
        "ok": max(rel.values()) <= LOSS_RTOL
        and max(logits.values()) <= LOGITS_ATOL
        and hf["params"] == ours["params"],
    }
    spec = created["spec"]
    result: dict[str, Any] = {
        "model": "PerceiverIO (PerceiverForImageClassificationFourier layout, reduced)",
        "config": spec,
        "config_released": FULL,
        "inputs": created["inputs"],
        "input_channels": created["input_channels"],
        "params": created["params"],
        "batch_size": args.batch_size,
        "threads": args.threads,
        "transformers_step_s": hf["step_s"],
        "ours_step_s": ours["step_s"],
        "transformers_peak_bytes": hf["peak_bytes"],
        "ours_peak_bytes": ours["peak_bytes"],
        "transformers_eval_s": hf["eval_s"],
        "ours_eval_s": ours["eval_s"],
        "speedup": hf["step_s"] / ours["step_s"],
        "speedup_cpu_time": hf["step_cpu_s"] / ours["step_cpu_s"],
        "activation_memory_ratio": ours["peak_bytes"] / max(hf["peak_bytes"], 1),
        "eval_speedup": hf["eval_s"] / ours["eval_s"],
    }
    result["targets"] = _verdicts(result)
    result.update(
        sanity=sanity,
        transformers=hf,
        ours=ours,
        versions=versions("python", "torch", "transformers", "numpy", "grouping"),
        machine=machine,
        settings={
            "steps": args.steps,
            "warmup": args.warmup,
            "memory_steps": args.memory_steps,
            "rounds": args.rounds,
            "seed": args.seed,
            "loss": "torch.nn.functional.cross_entropy(logits, labels)",
            "optimizer": "torch.optim.AdamW(lr=1e-4, fused=True)",
            "attention_dropout": 0.0,
            "memory_method": hf["memory_method"],
            "profile_rows": args.profile_rows,
        },
    )

    print(
        f"Perceiver IO, ImageNet layout reduced to {config_line(spec)} "
        f"({created['inputs']} inputs x {created['input_channels']} channels, "
        f"{created['params'] / 1e6:.2f} M parameters), batch {args.batch_size}, "
        f"{args.threads} threads; {machine['cpu']}, torch {torch.__version__}, "
        f"transformers {result['versions']['transformers']}"
    )
    print(format_table(("", "transformers", "ours", "ratio"), _rows(result)))
    for verdict in result["targets"].values():
        print(
            f"{verdict['what']}: {verdict['value']:.3f} (target {verdict['target']}): "
            f"{'met' if verdict['met'] else 'MISSED'}"
        )
    print(
        f"sanity: first-step loss relative difference {max(rel.values()):.1e} "
        f"(<= {LOSS_RTOL:g}), eval logits {max(logits.values()):.1e} (<= {LOGITS_ATOL:g}): "
        f"{'ok' if sanity['ok'] else 'MISMATCH'}"
    )
    for side in ("transformers", "ours"):
        prof = result[side]["profile"]
        if prof:
            top = ", ".join(
                f"{o['op'].removeprefix('aten::')} {o['self_cpu_ms']:.0f}" for o in prof["ops"][:6]
            )
            print(
                f"profile {side}: {prof['self_cpu_ms_total']:.0f} ms self CPU, "
                f"{prof['per_input_ops_share']:.0%} in ops on per-input tensors; ms: {top}"
            )
    if args.json:
        print(f"wrote {write_json(args.json, result)}")
    if args.png:
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        plot(result, args.png)
        print(f"wrote {args.png}")
    return 0 if sanity["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
