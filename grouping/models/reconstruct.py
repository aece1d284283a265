"""What a masked image model reconstructs, in pixels: the pictures and the numbers behind them.

Every pixel-predicting pretraining model here (GreenMIM and SimMIM Swin, MAE-Hiera on images,
HiP) predicts *patches* of pixels: ``P x P`` pixels of ``C`` channels at every position of a
patch grid, of which some are visible to the encoder and the rest are scored.
:func:`predict_pixels` runs one model on a prepared step and returns that in one form
(:class:`PixelPrediction`); :func:`reconstruct` turns it into images and metrics the same way
for every family.

Normalised targets (``norm_pix_loss``, always on for MAE-Hiera): the model predicts each patch
minus its mean, over its standard deviation (:func:`~grouping.models.mae.normalize_patches`),
so the raw prediction is no picture. MAE's visualisation un-normalises it with the true patch's
mean and variance (``stats="true"``): the picture then shows the structure the model predicted,
with the true brightness and contrast, information the model did not have. ``stats="visible"``
uses no hidden information: each masked patch gets the mean of the means and variances of the
visible patches among its eight neighbours (of all visible patches of the image when none is a
neighbour).

Conventions: images are in the model's input space (for ``grouping`` data, ImageNet-normalised);
pictures are in ``[0, 1]`` after ``x * std + mean`` and clipping. Patches are in MAE's order
(:func:`~grouping.models.layers.patchify`: row-major patches, ``(p, q, c)`` within).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F

from ..core.errors import invalid
from .layers import patchify, unpatchify
from .mae import masked_mse, normalize_patches

__all__ = [
    "ClipReconstruction",
    "PixelPrediction",
    "Reconstruction",
    "masked_picture",
    "predict_pixels",
    "reconstruct",
    "reconstruct_batch",
    "reconstruct_clips",
]

Stats = Literal["true", "visible"]


class PixelPrediction(NamedTuple):
    """One model's prediction of every patch, in one form for every family.

    A video model's frames count as images: ``B`` is then videos x frames (the frames the
    model predicts, one per temporal token), video by video.

    Attributes:
        inputs: float ``[B, C, H, W]``, the images the patches tile (the model's input, or
            a video's predicted frames).
        frames: frames per video (1 for images); ``B`` is a multiple of it.
        pred: float ``[B, L, P*P*C]``, the prediction at every patch (at visible patches
            whatever the decoder gave there; only masked ones are scored), in the model's
            target space.
        target: float ``[B, L, P*P*C]``, the model's targets (normalised per patch when
            ``normalized``).
        visible: bool ``[B, L]``, True where the encoder saw the patch.
        patch: ``P``, pixels per patch side.
        grid: ``(h, w)``, the patch grid (``L = h * w``).
        normalized: whether targets are normalised per patch (``norm_pix_loss``).
        loss: the model's own loss of this pass (a scalar).
        groups: GreenMIM Swin only: int64 ``[B, H, W]``, the group of stage 1's unshifted
            window partition (the solver's plan) that every visible pixel's token attends in,
            -1 at hidden pixels; None for the other models.
    """

    inputs: torch.Tensor
    frames: int
    pred: torch.Tensor
    target: torch.Tensor
    visible: torch.Tensor
    patch: int
    grid: tuple[int, int]
    normalized: bool
    loss: torch.Tensor
    groups: torch.Tensor | None = None


class Reconstruction(NamedTuple):
    """Pictures and numbers of one reconstruction (see the module docstring).

    Attributes:
        original: float ``[B, C, H, W]`` in ``[0, 1]``, the input.
        visible: bool ``[B, 1, H, W]``, the pixels the encoder saw.
        reconstruction: float ``[B, C, H, W]`` in ``[0, 1]``, the prediction at every patch.
        pasted: float ``[B, C, H, W]`` in ``[0, 1]``, the prediction with the visible pixels
            of ``original`` pasted back (equal to ``original`` there, exactly).
        loss: the masked loss in the model's target space (equal to the model's).
        loss_trivial: the same loss of the trivial predictor: zeros for normalised targets
            (each patch predicted as its own mean), else the mean of each image's visible
            pixels, per channel.
        psnr: mean over images of the PSNR (dB, peak 1) of ``pasted`` against ``original``
            over the whole image.
        psnr_masked: the same over the masked pixels only.
        stats: how normalised predictions were un-normalised (``"true"``, ``"visible"``, or
            ``"none"`` for raw targets).
        frames: frames per video (1 for images; the pictures are then frames, video by
            video).
        groups: :attr:`PixelPrediction.groups` (GreenMIM Swin), or None.
    """

    original: torch.Tensor
    visible: torch.Tensor
    reconstruction: torch.Tensor
    pasted: torch.Tensor
    loss: float
    loss_trivial: float
    psnr: float
    psnr_masked: float
    stats: str
    frames: int = 1
    groups: torch.Tensor | None = None


def _full_visible(masked_index: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """bool ``[B, L]``: False at the positions ``masked_index`` (``[M]`` or ``[B, M]``)."""
    index = masked_index.expand(batch, -1) if masked_index.dim() == 1 else masked_index
    visible = torch.ones(batch, length, dtype=torch.bool, device=index.device)
    return visible.scatter(1, index, False)


def _window_groups(step: Any, batch: int, cfg: Any) -> torch.Tensor:
    """int64 ``[B, H, W]``: the group (in stage 1's unshifted layout) of every visible pixel's
    token, -1 where hidden (see :mod:`grouping.adapter.layout` for the token numbering)."""
    import numpy as np

    layout = step.layouts[0][0]
    grid = tuple(cfg.grid)
    masks = np.broadcast_to(np.asarray(step.token_masks[0], bool), (batch, *grid))
    n = int(masks[0].sum())
    index = layout.index.cpu().numpy()  # G, g; -1 padding
    group_of = np.full(n * (1 if layout.batch is None else batch), -1, np.int64)
    for k, row in enumerate(index):
        group_of[row[row >= 0]] = k
    out = np.full((batch, grid[0] * grid[1]), -1, np.int64)
    for b in range(batch):
        tokens = np.arange(n) + (0 if layout.batch is None else b * n)
        out[b, np.flatnonzero(masks[b])] = group_of[tokens]
    p = cfg.patch_size
    groups = torch.from_numpy(out.reshape(batch, *grid))
    return groups.repeat_interleave(p, 1).repeat_interleave(p, 2)


@torch.no_grad()
def predict_pixels(model: torch.nn.Module, images: torch.Tensor, step: Any) -> PixelPrediction:
    """Run ``model`` on ``images`` with a prepared ``step`` (``model.prepare(mask)``), in the
    model's current mode, and return its prediction of every patch.

    Args:
        model: a ``GreenMIMSwin``, ``SimMIMSwin``, ``MaskedAutoencoderHiera`` (images or
            video) or ``HiPMAE``.
        images: ``[B, C, H, W]`` (``[B, C, T, H, W]`` for video), the model's input.
        step: the model's prepared step for this batch.

    Returns:
        A :class:`PixelPrediction`.

    Raises:
        GroupingValueError: naming ``model`` for a model that predicts no pixel patches
            (a classifier, the multimodal autoencoder).
    """
    from .hiera import MaskedAutoencoderHiera
    from .hip import HiPMAE
    from .simmim import SimMIMSwin
    from .swin import GreenMIMSwin

    batch = images.shape[0]
    if isinstance(model, (GreenMIMSwin, SimMIMSwin)):
        cfg = model.config
        out = model(images, step)
        p = cfg.decoder_patch
        target = patchify(images, p)
        if cfg.norm_pix_loss:
            target = normalize_patches(target)
        visible = step.final_visible.to(images.device).expand(batch, -1)
        grid = (images.shape[2] // p, images.shape[3] // p)
        groups = None if isinstance(model, SimMIMSwin) else _window_groups(step, batch, cfg)
        return PixelPrediction(
            images, 1, out.pred, target, visible, p, grid, cfg.norm_pix_loss, out.loss, groups
        )
    if isinstance(model, MaskedAutoencoderHiera):
        x = model._check_input(images)
        step = model._step(x, step)
        s = model.pred_stride
        c = model.config.in_chans
        pred = model.predict(x, step)  # B, L_f, P in the official label order
        length = pred.shape[1]
        visible = _full_visible(step.masked_index, batch, length)
        if model.config.ndim == 2:  # (c, p, q) -> MAE's (p, q, c)
            pred = pred.reshape(batch, length, c, s, s).permute(0, 1, 3, 4, 2)
            pred = pred.reshape(batch, length, -1)
            frames, inputs = 1, x
        else:  # video: the first frame of every temporal token, (p, q, c) already
            inputs = x[:, :, :: model.config.patch_stride[0]]  # B, C, T', H, W
            frames = inputs.shape[2]
            inputs = inputs.transpose(1, 2).reshape(batch * frames, c, *inputs.shape[3:])
            pred = pred.reshape(batch * frames, length // frames, -1)
            visible = visible.reshape(batch * frames, length // frames)
        target = normalize_patches(patchify(inputs, s))
        loss = masked_mse(pred, target, ~visible)  # the official loss (a mean over masked)
        grid = (inputs.shape[2] // s, inputs.shape[3] // s)
        return PixelPrediction(inputs, frames, pred, target, visible, s, grid, True, loss)
    if isinstance(model, HiPMAE):
        out = model(images, step)
        hip = model.hip
        h, w = model.img_size
        index = torch.from_numpy(hip.layout([h * w]).index).to(images.device)  # G, L (-1: pad)
        masked = step.masked.to(images.device).expand(batch, -1, -1)  # B, G, L - K
        tokens = index.unsqueeze(0).expand(batch, -1, -1).gather(2, masked)  # B, G, L - K
        real = tokens >= 0
        flat = tokens.clamp_min(0).reshape(batch, -1)
        c = model.in_chans
        pred = torch.zeros(batch, h * w, c, dtype=out.pred.dtype, device=images.device)
        rows = torch.arange(batch, device=images.device)[:, None].expand_as(flat)
        keep = real.reshape(batch, -1)
        pred[rows[keep], flat[keep]] = out.pred.reshape(batch, -1, c)[keep]
        visible = torch.ones(batch, h * w, dtype=torch.bool, device=images.device)
        visible[rows[keep], flat[keep]] = False
        target = model.tokens(images)
        return PixelPrediction(images, 1, pred, target, visible, 1, (h, w), False, out.loss)
    raise invalid(
        "model",
        "a pixel-predicting pretraining model (GreenMIMSwin, SimMIMSwin, MAE-Hiera, HiPMAE)",
        type(model).__name__,
    )


def _neighbour_stats(
    mean: torch.Tensor, var: torch.Tensor, visible: torch.Tensor, grid: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per patch, the mean of the visible 8-neighbours' means and variances ``[B, L, 1]``
    (of all visible patches where no neighbour is visible)."""
    b = mean.shape[0]
    h, w = grid
    weight = visible.to(mean.dtype).reshape(b, 1, h, w)
    kernel = torch.ones(1, 1, 3, 3, dtype=mean.dtype, device=mean.device)
    kernel[0, 0, 1, 1] = 0.0

    count = F.conv2d(weight, kernel, padding=1).reshape(b, -1, 1)

    def smooth(values: torch.Tensor) -> torch.Tensor:
        v = values.reshape(b, 1, h, w) * weight
        total = F.conv2d(v, kernel, padding=1).reshape(b, -1, 1)
        overall = v.sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1.0)
        fallback = overall.reshape(b, 1, 1).expand_as(total)
        return torch.where(count > 0, total / count.clamp_min(1.0), fallback)

    return smooth(mean), smooth(var)


def reconstruct(
    prediction: PixelPrediction,
    *,
    stats: Stats = "true",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    eps: float = 1.0e-6,
) -> Reconstruction:
    """The pictures and numbers of ``prediction`` (see the module docstring).

    Args:
        prediction: :func:`predict_pixels`'s (its ``inputs`` are the pictures' originals).
        stats: ``"true"`` (MAE's visualisation) or ``"visible"``; unused for raw targets.
        mean: per-channel mean of the input's normalisation (``grouping``'s data:
            ``IMAGENET_MEAN``); pictures are ``images * std + mean``.
        std: its per-channel std.
        eps: the variance epsilon of :func:`~grouping.models.mae.normalize_patches`.

    Returns:
        A :class:`Reconstruction` (tensors on the CPU, float32).
    """
    if stats not in ("true", "visible"):
        raise invalid("stats", "'true' or 'visible'", stats)
    images = prediction.inputs
    p, grid, b = prediction.patch, prediction.grid, images.shape[0]
    c = images.shape[1]
    pred = prediction.pred.float()
    target = prediction.target.float()
    visible = prediction.visible
    masked = ~visible
    raw = patchify(images.float(), p)  # B, L, P*P*C
    if prediction.normalized:
        if stats == "true":
            mu, var = raw.mean(dim=-1, keepdim=True), raw.var(dim=-1, keepdim=True)
        else:
            mu, var = _neighbour_stats(raw.mean(dim=-1), raw.var(dim=-1), visible, grid)
        pixels = pred * (var + eps) ** 0.5 + mu
        trivial = torch.zeros_like(target)
    else:
        pixels = pred
        per_channel = raw.reshape(b, raw.shape[1], p * p, c)
        weight = visible.to(raw.dtype).reshape(b, -1, 1, 1)
        visible_mean = (per_channel * weight).sum(dim=(1, 2)) / (
            weight.sum(dim=(1, 2)) * p * p
        ).clamp_min(1.0)  # B, C
        trivial = visible_mean.reshape(b, 1, 1, c).expand_as(per_channel).reshape_as(target)
    recon = unpatchify(pixels, p, grid)
    vis_px = visible.reshape(b, 1, *grid).repeat_interleave(p, 2).repeat_interleave(p, 3)
    shift = torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    scale = torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)

    def picture(x: torch.Tensor) -> torch.Tensor:
        return (x.detach().float().cpu() * scale + shift).clamp(0.0, 1.0)

    original = picture(images)
    reconstruction = picture(recon)
    vis_px = vis_px.cpu()
    pasted = torch.where(vis_px, original, reconstruction)
    err = (pasted - original) ** 2
    mse_all = err.mean(dim=(1, 2, 3))
    hidden = (~vis_px).expand_as(err).to(err.dtype)
    mse_masked = (err * hidden).sum(dim=(1, 2, 3)) / hidden.sum(dim=(1, 2, 3)).clamp_min(1.0)

    def psnr(mse: torch.Tensor) -> float:
        return float((10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))).mean())

    return Reconstruction(
        original=original,
        visible=vis_px,
        reconstruction=reconstruction,
        pasted=pasted,
        loss=float(masked_mse(pred, target, masked)),
        loss_trivial=float(masked_mse(trivial, target, masked)),
        psnr=psnr(mse_all),
        psnr_masked=psnr(mse_masked),
        stats=stats if prediction.normalized else "none",
        frames=prediction.frames,
        groups=None if prediction.groups is None else prediction.groups.cpu(),
    )


def masked_picture(rec: Reconstruction, fill: float = 0.5) -> torch.Tensor:
    """The input as the encoder sees it: ``original`` with the hidden pixels set to
    ``fill`` (grey), ``[B, C, H, W]``."""
    return torch.where(rec.visible, rec.original, torch.full_like(rec.original, fill))


@torch.no_grad()
def reconstruct_batch(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    mask_ratio: float,
    seed: int = 0,
    stats: Stats = "true",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
) -> Reconstruction:
    """:func:`reconstruct` of ``images`` with their own masks: image ``i`` gets the mask
    ``model.preparer().draw_mask(mask_ratio, rng=seed + i)``. The model runs in eval mode
    (its mode is restored), so no random stream of a training run is touched.

    Args:
        model: see :func:`predict_pixels`.
        images: ``[B, C, H, W]`` on the model's device.
        mask_ratio: the fraction masked.
        seed: the first image's mask seed.
        stats: see :func:`reconstruct`.
        mean: see :func:`reconstruct`.
        std: see :func:`reconstruct`.
    """
    import numpy as np

    preparer = model.preparer()  # type: ignore[operator]
    masks = np.stack([preparer.draw_mask(mask_ratio, rng=seed + i) for i in range(len(images))])
    step = model.prepare(masks, batch=len(images), device=images.device)  # type: ignore[operator]
    training = model.training
    model.eval()
    try:
        prediction = predict_pixels(model, images, step)
    finally:
        model.train(training)
    return reconstruct(prediction, stats=stats, mean=mean, std=std)


class ClipReconstruction(NamedTuple):
    """What the multimodal autoencoder (video, audio, label) reconstructs of clips.

    Every video pixel and audio sample is decoded and the label is hidden from the encoder,
    so the label is predicted from the video and audio alone.

    Attributes:
        video: float ``[B, T, C, H, W]``, the input clips' frames, as given.
        video_rec: float ``[B, T, C, H, W]``, the decoded frames.
        audio: float ``[B, S]``, the input audio.
        audio_rec: float ``[B, S]``, the decoded audio.
        label: int64 ``[B]``, the true class.
        predicted: int64 ``[B]``, the decoded label's argmax.
        loss: the model's weighted loss of this pass.
        loss_trivial: the same loss of the trivial predictor: each clip's mean pixel (per
            channel) and mean audio sample, and uniform label logits.
        psnr_image: dB (range 2, the clips' ``[-1, 1]``) of the decoded video.
        psnr_audio: dB of the decoded audio.
        label_accuracy: the fraction of clips whose label is predicted right.
    """

    video: torch.Tensor
    video_rec: torch.Tensor
    audio: torch.Tensor
    audio_rec: torch.Tensor
    label: torch.Tensor
    predicted: torch.Tensor
    loss: float
    loss_trivial: float
    psnr_image: float
    psnr_audio: float
    label_accuracy: float


@torch.no_grad()
def reconstruct_clips(model: torch.nn.Module, clips: dict[str, torch.Tensor]) -> ClipReconstruction:
    """Decode whole clips with the multimodal autoencoder, the label hidden (eval mode; the
    model's mode is restored).

    Args:
        model: a :class:`~grouping.models.multimodal.MultimodalAutoencoder`.
        clips: ``{"image": [B, T, C, H, W], "audio": [B, S], "label": [B, K] one-hot}``.
    """
    from dataclasses import replace

    from .multimodal import MultimodalAutoencoder, _full_step, multimodal_loss, psnr

    if not isinstance(model, MultimodalAutoencoder):
        raise invalid("model", "a MultimodalAutoencoder", type(model).__name__)
    cfg = model.config
    video = clips["image"]
    b = video.shape[0]
    step = replace(
        _full_step(cfg, video.device),
        label_hidden=torch.ones(1, 1, dtype=torch.bool, device=video.device),
    )
    training = model.training
    model.eval()
    try:
        out = model(clips, step)
    finally:
        model.train(training)
    t, c, h, w = video.shape[1:]
    video_rec = out.outputs["image"].reshape(b, t, h, w, c).permute(0, 1, 4, 2, 3)
    audio_rec = out.outputs["audio"].reshape(b, -1)
    labels = clips["label"].argmax(dim=-1)
    pixels = video.permute(0, 1, 3, 4, 2).reshape(b, -1, c)
    patches = clips["audio"].reshape(b, -1, cfg.samples_per_patch)
    trivial = {
        "image": pixels.mean(dim=1, keepdim=True).expand_as(pixels),
        "audio": patches.mean(dim=(1, 2), keepdim=True).expand_as(patches),
        "label": torch.zeros_like(out.outputs["label"]),
    }
    targets = {"image": pixels, "audio": patches, "label": labels}
    loss_trivial, _ = multimodal_loss(cfg, trivial, targets)
    predicted = out.outputs["label"].argmax(dim=-1)
    return ClipReconstruction(
        video=video.cpu(),
        video_rec=video_rec.cpu(),
        audio=clips["audio"].reshape(b, -1).cpu(),
        audio_rec=audio_rec.cpu(),
        label=labels.cpu(),
        predicted=predicted.cpu(),
        loss=float(out.loss),
        loss_trivial=float(loss_trivial),
        psnr_image=float(psnr(video_rec, video)),
        psnr_audio=float(psnr(audio_rec, clips["audio"].reshape(b, -1))),
        label_accuracy=float((predicted == labels).float().mean()),
    )
