"""``grouping reconstruct``: the reconstruction grid of a pretraining checkpoint.

::

    grouping reconstruct --checkpoint ckpt --data images --images 8 --out rec.png --json rec.json

One row per image: the original, the input as the encoder sees it (the hidden patches grey:
mask units for Swin and Hiera, group-wise pixels for HiP), the prediction at every patch, and
the prediction with the visible pixels pasted back (:mod:`grouping.models.reconstruct`).
Models trained with ``norm_pix_loss`` predict each patch normalised by its own mean and
variance; the picture un-normalises it with the true patch's statistics (``--stats true``,
what MAE's visualisation does: information the model did not have) or with those of the
visible neighbours (``--stats visible``), and says which under the title.

The images are the first ``--images`` files of ``--data`` (sorted, resized to cover the input
and centre-cropped), or the synthetic images of the training stream without ``--data``. Each
gets its own mask, drawn from ``--seed`` + its row at ``--mask-ratio`` (default: the model's,
the paper's). ``--json`` writes the model's masked loss over those images in its own target
space (``loss``), the loss of the trivial predictor in that space (``loss_trivial``: zeros for
normalised targets, else the mean of each image's visible pixels), the PSNR of the pasted
reconstruction against the original in ``[0, 1]`` pixels (``psnr``, and ``psnr_masked`` over
the hidden pixels only) and the settings.

Bad input (a checkpoint that is not a pixel MAE's, one without decoder weights, ``--images
0``, an output in a missing folder) is one line naming the option, exit status 2, and nothing
written.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from .._files import check_out, write_atomic, write_json
from ..core.errors import GroupingValueError, invalid
from ._args import positive_int_arg

__all__ = ["add_parser", "compute", "run"]


def add_parser(subparsers: Any) -> None:
    """Add the ``reconstruct`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "reconstruct",
        help="the reconstruction grid (and its loss and PSNR) of a pretraining checkpoint",
        description="Draw what a pretraining checkpoint reconstructs: per image the original, "
        "the masked input, the prediction and the prediction with the visible pixels pasted "
        "back.",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a grouping pretrain checkpoint (ckpt_*.pt) or its folder (the latest)",
    )
    p.add_argument(
        "--data", metavar="FOLDER", help="images to reconstruct (default: synthetic images)"
    )
    p.add_argument(
        "--images", type=positive_int_arg, default=8, metavar="N", help="rows (default 8)"
    )
    p.add_argument(
        "--mask-ratio",
        type=float,
        default=None,
        metavar="R",
        help="fraction masked (default: the model's)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the masks (default 0)")
    p.add_argument(
        "--stats",
        choices=("true", "visible"),
        default="true",
        help="un-normalise normalised predictions with the true patches' statistics (MAE's "
        "visualisation) or the visible neighbours' (default true)",
    )
    p.add_argument("--out", required=True, metavar="FILE.png", help="the grid (PNG)")
    p.add_argument("--json", metavar="PATH", help="write the numbers here (one JSON line)")
    p.set_defaults(run=run)


def _checkpoint(path: str) -> tuple[str, Mapping[str, Any]]:
    from ..train.checkpoint import load_checkpoint, resolve_checkpoint

    file = resolve_checkpoint(path)
    if not os.path.isfile(file):
        raise invalid("--checkpoint", "a grouping pretrain checkpoint", path)
    try:
        return file, load_checkpoint(file)
    except GroupingValueError as exc:
        raise invalid(
            "--checkpoint",
            "a grouping pretrain checkpoint with its decoder (a --save encoder file or an "
            "export has none)",
            f"{path} ({exc})",
        ) from None


def compute(
    checkpoint: str,
    *,
    data: str | None = None,
    images: int = 8,
    mask_ratio: float | None = None,
    seed: int = 0,
    stats: str = "true",
) -> tuple[Any, dict[str, Any]]:
    """The :class:`~grouping.models.reconstruct.Reconstruction` of a checkpoint and the JSON
    summary ``--json`` writes (see the module docstring).

    Raises:
        GroupingValueError: naming the option.
    """
    import torch

    from ..models.export import model_from_checkpoint
    from ..models.reconstruct import reconstruct_batch
    from ..models.registry import list_models, model_info
    from ..train.data import ImageFolder, SyntheticImages, UnreadableImageError, picture_stats

    if images < 1:
        raise invalid("--images", "an int >= 1", images)
    path, ckpt = _checkpoint(checkpoint)
    run = ckpt.get("run") if isinstance(ckpt.get("run"), Mapping) else {}
    name = run.get("model")
    if name not in list_models() or not model_info(name).pretrain:
        raise invalid(
            "--checkpoint", "a checkpoint of a masked image model (grouping pretrain)", path, name
        )
    try:
        model = model_from_checkpoint(ckpt).model
    except GroupingValueError as exc:
        raise invalid(
            "--checkpoint",
            "a pretraining checkpoint whose model (decoder included) loads",
            path,
            str(exc),
        ) from None
    model.eval()
    ratio = model_info(name).mask_ratio if mask_ratio is None else float(mask_ratio)
    if not 0.0 < ratio < 1.0:
        raise invalid("--mask-ratio", "a fraction in (0, 1)", mask_ratio)
    if model_info(name).data == "clips":
        return _clips(model, name, path, ckpt, data=data, images=images, seed=seed)
    shape = tuple(model.input_shape)  # (C, H, W) or (C, T, H, W)
    size = shape[1:]
    if data is not None:
        if len(shape) != 3:
            raise invalid("--data", "no folder for a video model (its clips are synthetic)", data)
        if not os.path.isdir(data):
            raise invalid("--data", "a folder of images", data)
        try:
            source = ImageFolder(data, size)
        except GroupingValueError as exc:
            raise invalid("--data", "a folder of readable images", f"{data} ({exc})") from None
        count = min(images, len(source))
        try:
            batch = torch.stack([torch.from_numpy(source.load(i, i)) for i in range(count)])
        except UnreadableImageError as exc:
            raise invalid("--data", "readable images", str(exc)) from None
        source_text = f"{count} images of {data}"
    else:
        source = SyntheticImages(size, shape[0], seed=seed)
        batch = torch.stack([source[i, i][0] for i in range(images)])
        source_text = f"{images} synthetic {'clips' if len(shape) == 4 else 'images'}"
    try:
        model.preparer().draw_mask(ratio, rng=seed)
    except GroupingValueError as exc:
        raise invalid(
            "--mask-ratio", "a ratio the model's mask grid allows", ratio, str(exc)
        ) from None
    mean, std = picture_stats(source)
    rec = reconstruct_batch(
        model,
        batch,
        mask_ratio=ratio,
        seed=seed,
        stats=stats,
        mean=mean,
        std=std,  # type: ignore[arg-type]
    )
    summary = {
        "model": name,
        "checkpoint": os.path.abspath(path),
        "step": ckpt.get("step"),
        "images": len(batch),
        "source": source_text,
        "mask_ratio": ratio,
        "seed": seed,
        "stats": rec.stats,
        "normalized_targets": rec.stats != "none",
        "loss": rec.loss,
        "loss_trivial": rec.loss_trivial,
        "psnr": rec.psnr,
        "psnr_masked": rec.psnr_masked,
    }
    return rec, summary


def _clips(
    model: Any,
    name: str,
    path: str,
    ckpt: Mapping[str, Any],
    *,
    data: str | None,
    images: int,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """The multimodal autoencoder: synthetic clips of the training stream, decoded whole."""
    import torch

    from ..models.reconstruct import reconstruct_clips
    from ..train.data import SyntheticClips

    if data is not None:
        raise invalid(
            "--data", "no folder for the multimodal autoencoder (its clips are synthetic)", data
        )
    source = SyntheticClips(**model.clip_spec, seed=seed)
    samples = [source[i, i][0] for i in range(images)]
    clips = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    rec = reconstruct_clips(model, clips)
    summary = {
        "model": name,
        "checkpoint": os.path.abspath(path),
        "step": ckpt.get("step"),
        "images": images,
        "source": f"{images} synthetic clips (every pixel and audio sample decoded, label hidden)",
        "mask_ratio": None,
        "seed": seed,
        "stats": "none",
        "normalized_targets": False,
        "loss": rec.loss,
        "loss_trivial": rec.loss_trivial,
        "psnr": rec.psnr_image,
        "psnr_audio": rec.psnr_audio,
        "label_accuracy": rec.label_accuracy,
    }
    return rec, summary


def run(args: argparse.Namespace) -> int:
    """Run the ``reconstruct`` subcommand; return the exit status."""
    check_out("--out", args.out, (".png",))
    if args.json is not None:
        check_out("--json", args.json)
    rec, summary = compute(
        args.checkpoint,
        data=args.data,
        images=args.images,
        mask_ratio=args.mask_ratio,
        seed=args.seed,
        stats=args.stats,
    )
    from ..models.reconstruct import ClipReconstruction
    from ..plotting import plot_clips, plot_reconstruction

    title = (
        f"{summary['model']} at step {summary['step']}: loss {rec.loss:.4f} "
        f"(trivial {rec.loss_trivial:.4f}), PSNR {summary['psnr']:.1f} dB"
    )
    if isinstance(rec, ClipReconstruction):
        write_atomic(args.out, lambda tmp: plot_clips(rec, tmp, title=title))
    else:
        ratio = summary["mask_ratio"]
        write_atomic(
            args.out, lambda tmp: plot_reconstruction(rec, tmp, title=title, mask_ratio=ratio)
        )
    if args.json is not None:
        write_json(args.json, summary)
    print(f"grouping reconstruct: wrote {args.out}; {title}")
    return 0
