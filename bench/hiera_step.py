"""One MAE-Hiera pretraining step: our Hiera against the official implementation.

Times one MAE pretraining step (forward, backward, fused AdamW) of ``mae_hiera_tiny_224`` in
``grouping.models.hiera`` and in the official code (PyPI ``hiera-transformer``, run in its own
venv as ``tests/fixtures/record_hiera.py`` does, with an import stub for torchvision on
``PYTHONPATH``), with the same weights, input and mask; measures the activation memory of each
(peak resident memory during a step minus the resident memory just before it, model, gradients
and optimizer state already allocated: ``bench/_memory.py``); and times the eval forward of
``hiera_tiny_224`` (``torch.no_grad()``) in both.

The official code creates the weights: a first process in the official venv seeds torch with
``--seed``, builds ``hiera.mae_hiera_tiny_224()`` and ``hiera.hiera_tiny_224()``, draws the
input ``x`` ``[B, 3, 224, 224]`` and a mask (``get_random_mask(x, mask_ratio)``, bool
``[B, 49]``, True = keep), computes the reference loss and class probabilities, and saves it all
with ``torch.save`` to a temporary file. Every worker loads exactly that (ours with
``load_state_dict(state, strict=True)``) and checks its loss and probabilities against it.

Ours runs two variants in the same process, their steps alternating: the mask given as the
official bool tensor (the step is prepared inside ``forward``: host work included, the
conservative headline) and as a prepared :class:`~grouping.models.hiera.HieraStep`
(``model.prepare(mask)`` built once outside the timing, as the training package does in
DataLoader workers). The time to prepare a step alone is reported too.

Each worker is its own process (``--worker``); the official and our processes alternate over
``--rounds`` rounds, and the reported numbers are medians over rounds of each round's medians.
The official worker imports neither ``grouping`` nor ``_common`` (its venv has neither): only the
standard library, ``_memory`` and torch. Every timed step also records how many cores the rest of
the machine used meanwhile (``/proc/stat``); medians over the quiet steps (at most
``QUIET_CORES``) are reported beside the plain ones. Run it holding the lock that other timings
on the machine take: two threads on two cores slow down many times over when another process
takes a core.

Usage::

    flock /tmp/bench.lock python bench/hiera_step.py      # docs/results, docs/figures
    python bench/hiera_step.py --batch-size 2 --steps 1 --warmup 1 --rounds 1 --json /tmp/h.json

Writes the JSON keys ``official_step_s``, ``ours_step_s`` (bool mask), ``ours_prepared_step_s``,
the ``*_peak_bytes`` and ``*_eval_s`` beside them, ``ours_prepare_s``, the ratios ``speedup``,
``speedup_prepared``, ``activation_memory_ratio``, ``eval_speedup`` (and ``*_quiet``),
``targets`` (each with its bound and ``met``), ``sanity`` (losses and probabilities against the
official), the per-variant details ``official``, ``ours_bool``, ``ours_prepared``,
``official_eval``, ``ours_eval`` (every round and step), ``versions``, ``machine`` and
``settings``; a PNG of the three comparisons; and prints a table. Exit status 1 if the sanity
check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _memory import Timing, activation_peaks, spawn_worker, timed_call

MODEL, EVAL_MODEL = "mae_hiera_tiny_224", "hiera_tiny_224"
OFFICIAL_PYTHON = "/work/scratch/hiera-venv/bin/python"
OFFICIAL_PYTHONPATH = "/work/scratch/stub"
LOSS_RTOL = 1e-4  # first-step loss, ours against the official
PROBS_ATOL = 1e-5  # eval class probabilities
QUIET_CORES = 0.1  # a step is quiet if the rest of the machine used at most this many cores
TARGETS = {  # name: (what, bound, "ge" / "le")
    "speedup": ("step time, official / ours (bool mask)", 1.1, "ge"),
    "activation_memory_ratio": ("activation memory, ours (bool mask) / official", 0.9, "le"),
    "eval_speedup": ("eval forward, official / ours", 1.0, "ge"),
}
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


# -- the workers (each its own process) ----------------------------------------------------------


def _train_step(model: Any, optimizer: Any, x: Any, mask: Any) -> float:
    """Forward, backward, AdamW; the gradients zeroed but kept allocated (state, not
    activations). Returns the loss."""
    loss = model(x, mask=mask)[0]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    return float(loss.detach())


def _summary(timings: list[Timing]) -> dict[str, Any]:
    """Medians of wall and CPU time, every wall time, and the other load during each call (in
    cores: foreign CPU seconds per wall second)."""
    return {
        "s": statistics.median(t.wall for t in timings),
        "s_all": [t.wall for t in timings],
        "cpu_s": statistics.median(t.cpu for t in timings),
        "other_cores_all": [t.other / t.wall for t in timings],
    }


def _measure(
    mae: Any,
    clf: Any,
    data: dict[str, Any],
    variants: dict[str, Any],
    args: argparse.Namespace,
    *,
    logits: bool,
) -> dict[str, Any]:
    """Everything one worker measures, on its own models: the initial loss of every variant
    (no_grad), timed training steps (variants alternating), the eval forward, then memory.
    ``logits``: the classifier returns logits in eval mode (ours), not probabilities."""
    import torch

    x = data["x"]
    mae.train()
    clf.eval()
    optimizer = torch.optim.AdamW(mae.parameters(), lr=1e-4, fused=True)
    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    with torch.no_grad():
        initial = {name: float(mae(x, mask=m)[0]) for name, m in variants.items()}
        probs = clf(x)
    if logits:  # ours returns logits in eval mode, the official their softmax
        probs = probs.softmax(-1)
    out["eval_probs_max_abs_diff"] = float((probs - data["probs"]).abs().max())

    first: dict[str, float] = {}  # the loss of each variant's first step

    def train(name: str) -> None:
        first.setdefault(name, _train_step(mae, optimizer, x, variants[name]))

    timings: dict[str, list[Timing]] = {name: [] for name in variants}
    for i in range(args.warmup + args.steps):
        for name in variants:  # alternating, so that load elsewhere hits every variant alike
            timing = timed_call(lambda name=name: train(name))
            if i >= args.warmup:
                timings[name].append(timing)

    def forward() -> None:
        with torch.no_grad():
            clf(x)

    for _ in range(args.warmup):
        forward()
    timed = _summary([timed_call(forward) for _ in range(args.steps)])
    out["eval"] = {
        "step_s": timed["s"],
        "step_s_all": timed["s_all"],
        "step_cpu_s": timed["cpu_s"],
        "other_cores_all": timed["other_cores_all"],
    }

    for name in variants:
        memory = activation_peaks(lambda name=name: train(name), args.memory_steps)
        step = _summary(timings[name])
        out[name] = {
            "initial_loss": initial[name],
            "first_step_loss": first.get(name),
            "step_s": step["s"],
            "step_s_all": step["s_all"],
            "step_cpu_s": step["cpu_s"],
            "other_cores_all": step["other_cores_all"],
            **memory,
        }
    out["params"] = sum(p.numel() for p in mae.parameters())
    out["eval_params"] = sum(p.numel() for p in clf.parameters())
    return out


def _official_versions() -> dict[str, Any]:
    import platform
    from importlib import metadata

    import numpy
    import timm
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "hiera-transformer": metadata.version("hiera-transformer"),
        "numpy": numpy.__version__,
    }


def run_create(args: argparse.Namespace) -> dict[str, Any]:
    """In the official venv: seed, weights, input, mask and the reference outputs, saved."""
    import hiera
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mae = getattr(hiera, MODEL)()
    clf = getattr(hiera, EVAL_MODEL)()
    x = torch.randn(args.batch_size, 3, 224, 224)
    mask = mae.get_random_mask(x, args.mask_ratio)  # B, num_mask_units; True = keep
    mae.train()
    clf.eval()
    with torch.no_grad():
        loss = float(mae(x, mask=mask)[0])
        probs = clf(x)  # eval: the official head applies a softmax
    torch.save(
        {
            "mae_state": mae.state_dict(),
            "clf_state": clf.state_dict(),
            "x": x,
            "mask": mask,
            "loss": loss,
            "probs": probs,
        },
        args.data,
    )
    return {"loss": loss, "kept_units": int(mask[0].sum()), "versions": _official_versions()}


def run_official(args: argparse.Namespace) -> dict[str, Any]:
    """The official models on the saved weights, input and mask."""
    import hiera
    import torch

    assert "grouping" not in sys.modules, "the official worker must not import grouping"
    torch.set_num_threads(args.threads)
    data = torch.load(args.data, weights_only=True)
    mae = getattr(hiera, MODEL)()
    mae.load_state_dict(data["mae_state"], strict=True)
    clf = getattr(hiera, EVAL_MODEL)()
    clf.load_state_dict(data["clf_state"], strict=True)
    out = _measure(mae, clf, data, {"official": data["mask"]}, args, logits=False)
    out["versions"] = _official_versions()
    return out


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    """Our models on the saved weights, input and mask: the bool mask and the prepared step."""
    import torch
    from _common import median_time

    from grouping.models import hiera

    torch.set_num_threads(args.threads)
    data = torch.load(args.data, weights_only=True)
    mae = getattr(hiera, MODEL)()
    mae.load_state_dict(data["mae_state"], strict=True)
    clf = getattr(hiera, EVAL_MODEL)()
    clf.load_state_dict(data["clf_state"], strict=True)
    mask, batch = data["mask"], len(data["x"])
    prepare_s = median_time(lambda: mae.prepare(mask, batch=batch), repeats=50, warmup=5)
    step = mae.prepare(mask, batch=batch)  # once, outside the timing (a DataLoader worker's job)
    out = _measure(mae, clf, data, {"bool": mask, "prepared": step}, args, logits=True)
    out["prepare_s"] = prepare_s
    return out


# -- the driver ----------------------------------------------------------------------------------


def _spawn(args: argparse.Namespace, which: str, data: str) -> dict[str, Any]:
    official = which in ("create", "official")
    python = args.official_python if official else sys.executable
    env = dict(os.environ)
    if official:  # the torchvision stub, for this process only (never in the package)
        env["PYTHONPATH"] = args.official_pythonpath
    cmd = [python, os.path.abspath(__file__), "--worker", which, "--data", data]
    for key in ("batch_size", "mask_ratio", "steps", "warmup", "memory_steps", "threads", "seed"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    return spawn_worker(cmd, which, env)


def _combine(runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One variant over rounds: medians of each round's medians (every round kept), and the
    median over the quiet steps of all rounds (other load at most ``QUIET_CORES``)."""
    rounds = [r[name] for r in runs]
    out: dict[str, Any] = {}
    for key in ("step_s", "step_cpu_s", "peak_bytes", "total_peak_bytes"):
        if key in rounds[0]:
            out[key] = statistics.median(r[key] for r in rounds)
    for key in ("peak_bytes", "total_peak_bytes"):
        if key in out:
            out[key] = int(out[key])
    steps = [
        (s, o) for r in rounds for s, o in zip(r["step_s_all"], r["other_cores_all"], strict=True)
    ]
    quiet = [s for s, o in steps if o <= QUIET_CORES]
    out["step_s_quiet"] = statistics.median(quiet) if quiet else math.nan
    out["quiet_steps"], out["steps"] = len(quiet), len(steps)
    out["other_cores_median"] = statistics.median(o for _, o in steps)
    for key in ("initial_loss", "first_step_loss", "memory_method"):
        if key in rounds[0]:
            out[key] = rounds[0][key]
    out["rounds"] = rounds
    return out


def _verdicts(result: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, (what, bound, sense) in TARGETS.items():
        value = result[key]
        met = value >= bound if sense == "ge" else value <= bound
        out[key] = {"what": what, "target": f"{'>=' if sense == 'ge' else '<='} {bound}"}
        out[key].update(value=value, met=bool(met))
    return out


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    off, ob, op = result["official"], result["ours_bool"], result["ours_prepared"]
    oe, we = result["official_eval"], result["ours_eval"]

    def ms(s: float) -> str:
        return f"{s * 1e3:.0f} ms"

    def quiet(r: dict[str, Any]) -> str:
        return f"{ms(r['step_s_quiet'])} ({r['quiet_steps']}/{r['steps']})"

    def load(r: dict[str, Any]) -> str:
        return f"{r['other_cores_median']:.2f}"

    return [
        ("train step (median)", ms(off["step_s"]), ms(ob["step_s"]), ms(op["step_s"])),
        ("  quiet steps only (n)", quiet(off), quiet(ob), quiet(op)),
        ("  CPU time", ms(off["step_cpu_s"]), ms(ob["step_cpu_s"]), ms(op["step_cpu_s"])),
        ("  other load (cores)", load(off), load(ob), load(op)),
        (
            "activation peak",
            _mib(off["peak_bytes"]),
            _mib(ob["peak_bytes"]),
            _mib(op["peak_bytes"]),
        ),
        (
            "total peak RSS",
            _mib(off["total_peak_bytes"]),
            _mib(ob["total_peak_bytes"]),
            _mib(op["total_peak_bytes"]),
        ),
        ("eval forward (median)", ms(oe["step_s"]), ms(we["step_s"]), "-"),
        ("  quiet steps only (n)", quiet(oe), quiet(we), "-"),
        ("prepare the step (host)", "-", "(inside)", f"{result['ours_prepare_s'] * 1e3:.2f} ms"),
        (
            "first-step loss",
            f"{off['first_step_loss']:.6f}",
            f"{ob['first_step_loss']:.6f}",
            f"{op['initial_loss']:.6f}",
        ),
    ]


def plot(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Three bar panels, ours against the official: step time, activation memory, eval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    off, ob, op = result["official"], result["ours_bool"], result["ours_prepared"]
    colors = {"official": "#888888", "ours (bool mask)": "#1f77b4", "ours (prepared)": "#6baed6"}
    panels = [
        (
            "train step (forward, backward, AdamW)",
            "ms",
            {
                "official": off["step_s"] * 1e3,
                "ours (bool mask)": ob["step_s"] * 1e3,
                "ours (prepared)": op["step_s"] * 1e3,
            },
            f"{result['speedup']:.2f}x faster (target >= 1.1x; quiet steps "
            f"{result['speedup_quiet']:.2f}x)",
        ),
        (
            "activation memory (peak RSS - RSS before)",
            "MiB",
            {
                "official": off["peak_bytes"] / 2**20,
                "ours (bool mask)": ob["peak_bytes"] / 2**20,
                "ours (prepared)": op["peak_bytes"] / 2**20,
            },
            f"{result['activation_memory_ratio']:.2f}x the official's (target <= 0.9x)",
        ),
        (
            f"eval forward ({EVAL_MODEL}, no_grad)",
            "ms",
            {
                "official": result["official_eval_s"] * 1e3,
                "ours (bool mask)": result["ours_eval_s"] * 1e3,
            },
            f"{result['eval_speedup']:.2f}x faster (target >= 1.0x; quiet steps "
            f"{result['eval_speedup_quiet']:.2f}x)",
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    for ax, (title, unit, bars, note) in zip(axes, panels, strict=True):
        names = list(bars)
        labels = ["ours" if n == "ours (bool mask)" and len(names) == 2 else n for n in names]
        xs = range(len(names))
        rects = ax.bar(xs, [bars[n] for n in names], color=[colors[n] for n in names])
        ax.bar_label(rects, fmt="%.0f", fontsize=9)
        ax.set_xticks(list(xs), [label.replace(" (", "\n(") for label in labels], fontsize=9)
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(note, fontsize=9)
        ax.margins(y=0.15)
    machine = result["machine"]
    fig.suptitle(
        f"{MODEL} MAE step, batch {result['batch_size']}, mask ratio {result['mask_ratio']}, "
        f"{result['threads']} threads; {machine['cpu']} ({machine['usable_cores']} cores), "
        f"torch {machine['torch']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mask-ratio", type=float, default=0.6)
    parser.add_argument("--steps", type=int, default=7, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--memory-steps", type=int, default=3, help="steps measured for memory")
    parser.add_argument("--rounds", type=int, default=3, help="processes per side, alternated")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", default=str(REPO / "docs/results/hiera_step.json"), help="results (JSON)"
    )
    parser.add_argument("--png", default=str(REPO / "docs/figures/hiera_step.png"), help="plot")
    parser.add_argument("--official-python", default=OFFICIAL_PYTHON)
    parser.add_argument("--official-pythonpath", default=OFFICIAL_PYTHONPATH)
    parser.add_argument("--worker", choices=("create", "official", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        run = {"create": run_create, "official": run_official, "ours": run_ours}[args.worker]
        print(json.dumps(run(args)))
        return 0

    import torch
    from _common import format_table, machine_info, versions, write_json

    machine = machine_info()  # load average before the workers start
    machine.update(versions("torch"), threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "hiera_step.pt")
        created = _spawn(args, "create", data)
        # alternate the two sides' processes, so that a burst of load elsewhere on the
        # machine hits one round of both rather than all of one side
        runs: dict[str, list[dict[str, Any]]] = {"official": [], "ours": []}
        for _ in range(args.rounds):
            for which in ("official", "ours"):
                runs[which].append(_spawn(args, which, data))
    official = _combine(runs["official"], "official")
    ours_bool = _combine(runs["ours"], "bool")
    ours_prepared = _combine(runs["ours"], "prepared")
    official_eval = _combine(runs["official"], "eval")
    ours_eval = _combine(runs["ours"], "eval")

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side])

    reference = created["loss"]
    losses = {
        "official": official["first_step_loss"],
        "ours_bool": ours_bool["first_step_loss"],
        "ours_prepared": ours_prepared["initial_loss"],
    }
    rel = {k: abs(v - reference) / abs(reference) for k, v in losses.items()}
    probs = max(r["eval_probs_max_abs_diff"] for r in runs["ours"])
    sanity = {
        "reference_loss": reference,
        "first_step_loss": losses,
        "relative_difference": rel,
        "loss_rtol": LOSS_RTOL,
        "eval_probs_max_abs_diff": probs,
        "probs_atol": PROBS_ATOL,
        "ok": max(rel.values()) <= LOSS_RTOL and probs <= PROBS_ATOL,
    }
    result: dict[str, Any] = {
        "model": MODEL,
        "eval_model": EVAL_MODEL,
        "batch_size": args.batch_size,
        "mask_ratio": args.mask_ratio,
        "kept_mask_units": created["kept_units"],
        "threads": args.threads,
        "official_step_s": official["step_s"],
        "ours_step_s": ours_bool["step_s"],
        "ours_prepared_step_s": ours_prepared["step_s"],
        "official_peak_bytes": official["peak_bytes"],
        "ours_peak_bytes": ours_bool["peak_bytes"],
        "ours_prepared_peak_bytes": ours_prepared["peak_bytes"],
        "official_eval_s": official_eval["step_s"],
        "ours_eval_s": ours_eval["step_s"],
        "ours_prepare_s": median("ours", "prepare_s"),
        "speedup": official["step_s"] / ours_bool["step_s"],
        "speedup_prepared": official["step_s"] / ours_prepared["step_s"],
        "speedup_cpu_time": official["step_cpu_s"] / ours_bool["step_cpu_s"],
        "activation_memory_ratio": ours_bool["peak_bytes"] / max(official["peak_bytes"], 1),
        "activation_memory_ratio_prepared": ours_prepared["peak_bytes"]
        / max(official["peak_bytes"], 1),
        "eval_speedup": official_eval["step_s"] / ours_eval["step_s"],
        # the same ratios over the quiet steps only (context for the medians above)
        "speedup_quiet": official["step_s_quiet"] / ours_bool["step_s_quiet"],
        "speedup_prepared_quiet": official["step_s_quiet"] / ours_prepared["step_s_quiet"],
        "eval_speedup_quiet": official_eval["step_s_quiet"] / ours_eval["step_s_quiet"],
    }
    result["targets"] = _verdicts(result)
    result.update(
        sanity=sanity,
        official=official,
        ours_bool=ours_bool,
        ours_prepared=ours_prepared,
        official_eval=official_eval,
        ours_eval=ours_eval,
        params=runs["ours"][0]["params"],
        eval_params=runs["ours"][0]["eval_params"],
        versions={
            "official": created["versions"],
            "ours": versions("grouping", "torch", "python", "numpy"),
        },
        machine=machine,
        settings={
            "steps": args.steps,
            "warmup": args.warmup,
            "memory_steps": args.memory_steps,
            "rounds": args.rounds,
            "seed": args.seed,
            "optimizer": "torch.optim.AdamW(lr=1e-4, fused=True)",
            "memory_method": official["memory_method"],
        },
    )

    print(
        f"{MODEL}, batch {args.batch_size}, mask ratio {args.mask_ratio}, {args.threads} threads; "
        f"{machine['cpu']}, torch {torch.__version__}; "
        f"official hiera-transformer {created['versions']['hiera-transformer']}"
    )
    print(format_table(("", "official", "ours (bool mask)", "ours (prepared)"), _rows(result)))
    for key, verdict in result["targets"].items():
        print(
            f"{verdict['what']}: {verdict['value']:.3f} (target {verdict['target']}): "
            f"{'met' if verdict['met'] else 'MISSED'}"
            + (
                f"; quiet steps only {result[key + '_quiet']:.3f}"
                if key != "activation_memory_ratio"
                else ""
            )
        )
    print(
        f"sanity: first-step loss relative difference {max(rel.values()):.1e} "
        f"(<= {LOSS_RTOL:g}), eval probabilities max |diff| {probs:.1e}: "
        f"{'ok' if sanity['ok'] else 'MISMATCH'}"
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
