"""``grouping pretrain``: MAE pretraining steps of a GreenMIM Swin preset.

Runs ``--steps`` optimizer steps on synthetic images or on the images of a folder (read with
Pillow, an optional dependency: ``pip install grouping[images]``), with a progress bar, the loss,
the throughput and the time spent building the grouping layouts, and can save the encoder
weights (timm's ``SwinTransformer`` names, loadable with ``strict=False``).

Example:
    $ grouping pretrain --model greenmim_swin_tiny --steps 20 --batch-size 8 --save enc.pth
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from ..core.errors import invalid

__all__ = ["IMAGE_SUFFIXES", "MODEL_NAMES", "add_pretrain_parser", "image_files", "run_pretrain"]

#: The presets of :mod:`grouping.models.swin` (kept here so that building the command line does
#: not import torch; a test checks that the two agree).
MODEL_NAMES = ("greenmim_swin_base", "greenmim_swin_tiny")

#: File suffixes read from ``--data`` (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet, as MAE
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def add_pretrain_parser(subparsers: Any) -> None:
    """Add the ``pretrain`` subcommand to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "pretrain",
        help="run MAE pretraining steps of a GreenMIM Swin preset",
        description="Run N MAE pretraining steps (GreenMIM: the Swin encoder on visible tokens "
        "only) on synthetic images or on the images of a folder; print the loss, the "
        "throughput and the time spent in grouping; optionally save the encoder weights.",
    )
    parser.add_argument(
        "--model",
        default="greenmim_swin_tiny",
        choices=MODEL_NAMES,
        help="model preset (default greenmim_swin_tiny)",
    )
    parser.add_argument("--steps", type=int, default=10, metavar="N", help="optimizer steps")
    parser.add_argument(
        "--data",
        default=None,
        metavar="FOLDER",
        help="folder of images (searched recursively; needs Pillow); default synthetic images",
    )
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="default 8")
    parser.add_argument(
        "--mask-ratio", type=float, default=0.75, metavar="R", help="fraction of mask units removed"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    parser.add_argument(
        "--img-size", type=int, default=None, metavar="PX", help="image size (default 224)"
    )
    parser.add_argument(
        "--window-size", type=int, default=None, metavar="W", help="override the window size"
    )
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (1e-4)")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay")
    parser.add_argument(
        "--per-sample", action="store_true", help="one mask per sample (default: one per batch)"
    )
    parser.add_argument(
        "--dense",
        action="store_true",
        help="train the dense SimMIM-style baseline instead (all tokens, for comparison)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--save", default=None, metavar="PATH", help="save the encoder's state_dict here"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="write a summary here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_pretrain)


def image_files(folder: str) -> list[str]:
    """Image files under ``folder`` (recursively, sorted), by suffix."""
    if not os.path.isdir(folder):
        raise invalid("data", "an existing folder of images", folder)
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(IMAGE_SUFFIXES):
                found.append(os.path.join(root, name))
    if not found:
        raise invalid(
            "data", f"a folder holding images ({', '.join(IMAGE_SUFFIXES)})", folder, "none found"
        )
    return sorted(found)


def _load_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """Read an image, resize its shorter side and centre-crop to ``size``; float32 ``[3, H, W]``."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        h, w = size
        scale = max(h / img.height, w / img.width)
        new = (max(w, round(img.width * scale)), max(h, round(img.height * scale)))
        img = img.resize(new, Image.BILINEAR)
        left, top = (new[0] - w) // 2, (new[1] - h) // 2
        img = img.crop((left, top, left + w, top + h))
        arr = np.asarray(img, dtype=np.float32) / 255.0  # H, W, 3
    return ((arr - _MEAN) / _STD).transpose(2, 0, 1)


def _synthetic_batch(
    rng: np.random.Generator, batch: int, size: tuple[int, int], chans: int
) -> np.ndarray:
    """Smooth random images: a few random plane waves per channel plus a little noise."""
    h, w = size
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    out = np.empty((batch, chans, h, w), dtype=np.float32)
    for b in range(batch):
        for c in range(chans):
            freq = rng.uniform(1, 8, size=(3, 2))
            phase = rng.uniform(0, 2 * np.pi, size=3)
            img = sum(
                np.sin(2 * np.pi * (f[0] * yy + f[1] * xx) + p)
                for f, p in zip(freq, phase, strict=True)
            )
            out[b, c] = img / 3 + 0.05 * rng.standard_normal((h, w))
    return out


class _Batches:
    """An endless stream of image batches (folder: shuffled every epoch; else synthetic)."""

    def __init__(
        self, folder: str | None, batch: int, size: tuple[int, int], chans: int, seed: int
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.batch, self.size, self.chans = batch, size, chans
        self.files = image_files(folder) if folder else None
        if self.files is not None:
            if chans != 3:
                raise invalid("data", "a model with in_chans=3 for folder images", chans)
            import PIL  # noqa: F401  (fail early with a clear message)
        self.order: list[int] = []

    def __next__(self) -> np.ndarray:
        if self.files is None:
            return _synthetic_batch(self.rng, self.batch, self.size, self.chans)
        out = []
        for _ in range(self.batch):
            if not self.order:
                self.order = self.rng.permutation(len(self.files)).tolist()
            out.append(_load_image(self.files[self.order.pop()], self.size))
        return np.stack(out)


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def run_pretrain(args: argparse.Namespace) -> int:
    """Run the ``pretrain`` subcommand; return the exit status."""
    if args.steps < 1:
        raise invalid("--steps", "a positive int", args.steps)
    if args.batch_size < 1:
        raise invalid("--batch-size", "a positive int", args.batch_size)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        print("grouping: error: pretrain needs torch", file=sys.stderr)
        return 1
    from .swin import SimMIMSwin, create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    overrides: dict[str, Any] = {}
    if args.img_size:
        overrides["img_size"] = args.img_size
    if args.window_size:
        overrides["window_size"] = args.window_size
    mae = create_model(args.model, **overrides)
    model = SimMIMSwin(mae) if args.dense else mae
    config = mae.config
    try:
        batches = _Batches(args.data, args.batch_size, config.img_size, config.in_chans, args.seed)
    except ImportError:
        print(
            "grouping: error: --data needs Pillow (pip install 'grouping[images]')",
            file=sys.stderr,
        )
        return 1
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.95)
    )
    mask_rng = np.random.default_rng(args.seed + 1)
    progress = not args.no_progress and sys.stderr.isatty()
    kind = "dense (SimMIM-style)" if args.dense else "grouped (GreenMIM)"
    source = args.data or "synthetic images"
    print(
        f"pretrain {args.model} [{kind}]: {sum(p.numel() for p in model.parameters()):,} "
        f"parameters, {config.img_size[0]}x{config.img_size[1]} px, batch {args.batch_size}, "
        f"mask ratio {args.mask_ratio}, {source}, {torch.get_num_threads()} threads"
    )
    from ..core.solve import warmup

    t = time.perf_counter()
    warmup()  # compile the solver's kernels now, not in the first step
    jit_s = time.perf_counter() - t
    losses: list[float] = []
    step_times: list[float] = []
    grouping_s = 0.0
    data_s = 0.0
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        images = torch.from_numpy(next(batches))
        t1 = time.perf_counter()
        mask = mae.sample_mask(
            args.batch_size, args.mask_ratio, rng=mask_rng, per_sample=args.per_sample
        )
        if not args.dense:
            mask = mae.encoder.prepare(mask, batch=args.batch_size, device=images.device)
            grouping_s += mask.grouping_s
        loss, _, _ = model(images, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        data_s += t1 - t0
        step_times.append(t2 - t1)
        losses.append(float(loss.detach()))
        rate = args.batch_size / (t2 - t1)
        line = (
            f"{_bar(step, args.steps)} {step}/{args.steps} loss {losses[-1]:.4f} "
            f"{rate:6.1f} img/s grouping {grouping_s / step * 1e3:5.1f} ms/step"
        )
        if progress:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif step == args.steps or step % max(1, args.steps // 10) == 0:
            print(line)
    if progress:
        print(file=sys.stderr)
    total = time.perf_counter() - start
    compute = sum(step_times)
    steady = step_times[1:] or step_times  # the first step allocates and warms torch up
    summary = {
        "model": args.model,
        "dense": bool(args.dense),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "mask_ratio": args.mask_ratio,
        "data": args.data,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "losses": losses,
        "seconds": total,
        "data_seconds": data_s,
        "images_per_s": args.batch_size * len(steady) / sum(steady),
        "jit_warmup_seconds": jit_s,
        "grouping_seconds": grouping_s,
        "grouping_fraction": grouping_s / compute if compute else 0.0,
        "saved": args.save,
    }
    print(
        f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; {summary['images_per_s']:.1f} img/s "
        f"(after the first step); grouping {grouping_s:.3f} s of {compute:.2f} s in steps "
        f"({100 * summary['grouping_fraction']:.1f} %); data {data_s:.2f} s; solver JIT "
        f"warm-up {jit_s:.2f} s"
    )
    if args.save:
        torch.save(mae.encoder.state_dict(), args.save)
        print(f"encoder weights (timm SwinTransformer names): {args.save}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"json: {args.json}")
    return 0
