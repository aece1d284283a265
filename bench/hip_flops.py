"""Floating-point operations of one HiP MAE training step, masked and unmasked: what group-wise
masking can save independently of the machine.

Counts the FLOPs of forward + backward of ``mae_hip(variant, img_size=S)`` at batch 1 with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention; the
attention runs on SDPA's math backend while counting, because the counter has no formula for
the CPU flash kernel), unmasked (``model(images)``) and 85 % group-wise masked (``model(images,
mask=step)``). The optimizer and elementwise operations are not counted. The ratio unmasked /
masked is the speed-up masking would give if the step were bound by arithmetic; the share of the
step's FLOPs that depend on the pixel count is the difference to the same model at the smallest
size. ``bench/hip.py`` measures the time.

Usage::

    python bench/hip_flops.py                     # docs/results/hip_flops.json
    python bench/hip_flops.py --variants 16 --sizes 32 --json /tmp/f.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, format_table, machine_info, write_json  # noqa: E402

from grouping.models.hip import mae_hip  # noqa: E402


def step_flops(variant: str, size: int, mask_ratio: float, seed: int) -> dict[str, int]:
    """FLOPs of forward + backward, unmasked and masked, at batch 1."""
    torch.manual_seed(seed)
    model = mae_hip(variant, img_size=size)
    images = torch.randn(1, 3, size, size)
    step = model.prepare(model.preparer().draw_mask(mask_ratio, rng=seed), batch=1)
    out = {}
    for name, kwargs in (("unmasked", {}), ("masked", {"mask": step})):
        model.zero_grad(set_to_none=True)
        with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
            model(images, **kwargs)[0].backward()
        out[name] = int(counter.get_total_flops())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["16", "256"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("--mask-ratio", type=float, default=0.85)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(REPO / "docs/results/hip_flops.json"))
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for variant in args.variants:
        smallest = None
        for size in sorted(args.sizes):
            flops = step_flops(variant, size, args.mask_ratio, args.seed)
            smallest = smallest or flops["unmasked"]
            rows.append(
                {
                    "variant": variant,
                    "size": size,
                    "unmasked_flops": flops["unmasked"],
                    "masked_flops": flops["masked"],
                    "ratio": flops["unmasked"] / flops["masked"],
                    "more_than_smallest_size": flops["unmasked"] - smallest,
                }
            )
            print(f"HiP-{variant} {size} px: done", flush=True)
    print(
        format_table(
            ["model", "px", "unmasked GFLOP", "masked GFLOP", "unmasked / masked"],
            [
                [
                    f"HiP-{r['variant']}",
                    r["size"],
                    f"{r['unmasked_flops'] / 1e9:.1f}",
                    f"{r['masked_flops'] / 1e9:.1f}",
                    f"{r['ratio']:.3f}x",
                ]
                for r in rows
            ],
        )
    )
    write_json(
        args.json,
        {
            "benchmark": "hip_flops",
            "what": "FLOPs of one mae_hip training step (forward + backward, batch 1), "
            "torch.utils.flop_counter, attention on SDPA's math backend",
            "machine": machine_info(),
            "parameters": {"mask_ratio": args.mask_ratio, "seed": args.seed, "batch": 1},
            "rows": rows,
        },
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
