"""Perceiver IO autoencoding video, audio and a label through one latent array.

The paper's Kinetics-700 experiment (Jaegle et al. 2022, Sec. 4.3) at a size a CPU trains: the
model (:class:`MultimodalAutoencoder`), its config, the step a DataLoader worker prepares, and
the loss and metrics. The blocks are Perceiver IO's (:mod:`grouping.models.perceiver`): the
image and audio pre-processors, the multimodal pre-processor and decoder, the encoder.

A step decodes a sub-sample of the output queries (the paper sub-samples them at train time,
since decoding a whole clip at once does not fit) and hides the label from the encoder with
probability ``label_mask_prob``. One draw of it is a :class:`MultimodalMask` with named fields,
since the flags mean different things: ``image`` and ``audio`` are True at the queries decoded
this step (``1 - mask_ratio`` of each, as a mask keeps), ``label_hidden`` is True where the
label is *hidden*. Packed into one bool array ``[P + A + 1]`` (:meth:`MultimodalMask.pack`) it
is what :meth:`MultimodalPreparer.draw_mask` returns, so that the training collator can stack
per-sample draws like any other mask; :func:`prepare_multimodal` takes either form.

``mask=None`` means nothing masked: every video position and audio patch decoded, the label
shown (:func:`prepare_multimodal` and the forward both read it so).

Examples:
    >>> cfg = MultimodalAEConfig(frames=1, image_size=4, audio_samples_per_frame=32)
    >>> draw = MultimodalPreparer(prepare_multimodal, cfg, (16 + 2 + 1,)).draw(0.5, rng=0)
    >>> draw.image.shape, int(draw.image.sum()), draw.audio.shape
    ((16,), 8, (2,))
    >>> step = prepare_multimodal(cfg, draw.pack())
    >>> tuple(step.image_positions.shape), tuple(step.label_hidden.shape)
    ((8,), (1, 1))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from ..core.errors import as_rng, invalid
from ..core.masking import as_bool_mask, batch_mask, check_mask
from .layers import gather_visible
from .mae import MultimodalOutput
from .perceiver import (
    AudioPreprocessor,
    BasicDecoder,
    ImagePreprocessor,
    MultimodalDecoder,
    MultimodalPreprocessor,
    PerceiverEncoder,
)
from .step import Preparer, Step

__all__ = [
    "MultimodalAEConfig",
    "MultimodalAEStep",
    "MultimodalAutoencoder",
    "MultimodalMask",
    "MultimodalPreparer",
    "multimodal_loss",
    "perceiver_multimodal_autoencoder",
    "prepare_multimodal",
    "psnr",
]


@dataclass(frozen=True)
class MultimodalAEConfig:
    """A multimodal autoencoder of video, audio and a class label (Perceiver IO, Sec. 4.3).

    Attributes:
        frames: the video ``[T, C, H, W]``.
        image_size: the video ``[T, C, H, W]``.
        in_chans: the video ``[T, C, H, W]``.
        audio_samples_per_frame: audio samples per video frame (``S = frames * this``).
        samples_per_patch: audio samples per input patch and per output query.
        num_labels: classes of the label.
        spatial_downsample: video patch side of the input (every pixel is decoded).
        image_bands: Fourier bands of the video and audio positions.
        audio_bands: Fourier bands of the video and audio positions.
        num_latents: the encoder.
        d_latents: the encoder.
        num_blocks: the encoder.
        num_self_attends_per_block: the encoder.
        num_self_attention_heads: the encoder.
        num_cross_attention_heads: the encoder.
        output_num_channels: width of the shared decoder's output.
        label_mask_prob: probability that the label is hidden from the encoder (its mask
            token instead), so that the model learns to predict it from video and audio.
        image_weight: the weights of the losses.
        audio_weight: the weights of the losses.
        label_weight: the weights of the losses.
    """

    frames: int = 4
    image_size: int = 32
    in_chans: int = 3
    audio_samples_per_frame: int = 64
    samples_per_patch: int = 16
    num_labels: int = 10
    spatial_downsample: int = 4
    image_bands: int = 8
    audio_bands: int = 16
    num_latents: int = 32
    d_latents: int = 64
    num_blocks: int = 1
    num_self_attends_per_block: int = 2
    num_self_attention_heads: int = 4
    num_cross_attention_heads: int = 1
    output_num_channels: int = 64
    label_mask_prob: float = 0.5
    image_weight: float = 1.0
    audio_weight: float = 1.0
    label_weight: float = 0.1

    @property
    def num_audio_samples(self) -> int:
        """Audio samples per clip."""
        return self.frames * self.audio_samples_per_frame

    @property
    def num_pixels(self) -> int:
        """Decoded video positions ``T * H * W``."""
        return self.frames * self.image_size**2

    @property
    def num_audio_patches(self) -> int:
        """Decoded audio positions."""
        return self.num_audio_samples // self.samples_per_patch


@dataclass(frozen=True, eq=False)
class MultimodalAEStep(Step):
    """The output queries decoded this step and whether the label is hidden.

    Attributes:
        image_positions: int64 ``[M_i]`` or ``[B, M_i]`` video positions (row-major
            ``(t, h, w)``) decoded and scored.
        audio_positions: int64 ``[M_a]`` or ``[B, M_a]`` audio patches decoded and scored.
        label_hidden: bool ``[B or 1, 1]``, True = the label's mask token replaces it.
        batch: the batch of per-sample draws, None for one draw shared by the batch.
    """

    image_positions: torch.Tensor
    audio_positions: torch.Tensor
    label_hidden: torch.Tensor
    batch: int | None


class MultimodalMask(NamedTuple):
    """One draw of a multimodal step, by name: shared by the batch, or one per sample (a
    leading ``B`` on every field).

    Attributes:
        image: bool ``[P]`` or ``[B, P]``, ``P = T * H * W``: True = the video position
            (row-major ``(t, h, w)``) is decoded and scored this step.
        audio: bool ``[A]`` or ``[B, A]``: True = the audio patch is decoded and scored.
        label_hidden: bool ``[]`` or ``[B]``: True = the label is hidden from the encoder (its
            mask token replaces it). The opposite sense of the two others: True hides.
    """

    image: NDArray[np.bool_]
    audio: NDArray[np.bool_]
    label_hidden: NDArray[np.bool_]

    @classmethod
    def unpack(cls, config: MultimodalAEConfig, draw: Any) -> MultimodalMask:
        """Split a packed draw, bool ``[P + A + 1]`` or ``[B, P + A + 1]`` (the video
        positions, the audio patches, the label flag), into its fields (views)."""
        n_img, n_aud = config.num_pixels, config.num_audio_patches
        expected = (
            f"a MultimodalMask or a packed bool draw [{n_img} + {n_aud} + 1] or [B, ...] "
            "(decoded video positions, decoded audio patches, label hidden)"
        )
        flat = as_bool_mask(draw, "mask", expected)
        if flat.ndim not in (1, 2) or flat.shape[-1] != n_img + n_aud + 1:
            raise invalid("mask", expected, flat)
        return cls(flat[..., :n_img], flat[..., n_img : n_img + n_aud], flat[..., -1])

    def pack(self) -> NDArray[np.bool_]:
        """The packed draw, bool ``[P + A + 1]`` or ``[B, P + A + 1]`` (see :meth:`unpack`)."""
        hidden = np.asarray(self.label_hidden, dtype=bool)[..., None]
        return np.concatenate([self.image, self.audio, hidden], axis=-1)


def _full_step(config: MultimodalAEConfig, device: torch.device | str) -> MultimodalAEStep:
    """Nothing masked: every video position and audio patch decoded, the label shown."""
    return MultimodalAEStep(
        image_positions=torch.arange(config.num_pixels, device=device),
        audio_positions=torch.arange(config.num_audio_patches, device=device),
        label_hidden=torch.zeros(1, 1, dtype=torch.bool, device=device),
        batch=None,
    )


def _positions(checked: Any) -> torch.Tensor:
    """The True positions of a checked ``[M]`` or ``[B, M]`` mask: int64 ``[K]`` or ``[B,
    K]`` (the same count in every row)."""
    rows = checked.mask.reshape(-1, checked.mask.shape[-1])  # R, M
    idx = np.nonzero(rows)[1].reshape(rows.shape[0], -1)  # R, K
    return torch.from_numpy(np.ascontiguousarray(idx[0] if checked.shared else idx, np.int64))


def prepare_multimodal(
    config: MultimodalAEConfig, mask: Any, *, batch: int | None = None
) -> MultimodalAEStep:
    """The step of one draw, on the CPU.

    Args:
        config: the model's :class:`MultimodalAEConfig`.
        mask: a :class:`MultimodalMask` or its packed draw (what
            :meth:`MultimodalPreparer.draw_mask` returns), shared by the batch or one per
            sample, with the same, non-zero number of decoded video positions (and of audio
            patches) in every sample; None = nothing masked (every query decoded, the label
            shown).
        batch: the batch the step is for (checked against per-sample draws).

    Returns:
        A :class:`MultimodalAEStep`.

    Raises:
        GroupingValueError: a draw of another shape or dtype, another batch, unequal or zero
            decoded counts, or fields that disagree on the batch (checked by
            :func:`~grouping.core.check_mask`).
    """
    if mask is None:
        return _full_step(config, "cpu")
    parts = mask if isinstance(mask, MultimodalMask) else MultimodalMask.unpack(config, mask)
    common = dict(batch=batch, word="decoded", scope="draw")
    image = check_mask(
        parts.image, (config.num_pixels,), name="mask.image", unit="video position", **common
    )
    audio = check_mask(
        parts.audio,
        (config.num_audio_patches,),
        name="mask.audio",
        unit="audio position",
        **common,
    )
    hidden = as_bool_mask(
        parts.label_hidden, "mask.label_hidden", "a bool [] or [B] (True = the label hidden)"
    )
    rows = None if image.shared else image.mask.shape[0]
    if audio.shared != image.shared or hidden.shape != (() if rows is None else (rows,)):
        raise invalid(
            "mask",
            "fields that are all shared by the batch or all per sample, for one batch",
            f"image {parts.image.shape}, audio {parts.audio.shape}, label_hidden "
            f"{np.shape(parts.label_hidden)}",
        )
    return MultimodalAEStep(
        image_positions=_positions(image),
        audio_positions=_positions(audio),
        label_hidden=torch.from_numpy(hidden.reshape(-1, 1).copy()),
        batch=rows,
    )


@dataclass(frozen=True)
class MultimodalPreparer(Preparer):
    """The multimodal autoencoder's preparer: a draw decodes ``1 - mask_ratio`` of the video
    positions and of the audio patches, and hides the label with probability
    ``label_mask_prob`` (:meth:`draw`); :meth:`draw_mask` packs it into one bool array
    ``[num_pixels + num_audio_patches + 1]``, the form the training collator stacks."""

    def draw(self, mask_ratio: float, *, rng: Any = None) -> MultimodalMask:
        """One draw, by name (the video, the audio, then the label, from one generator)."""
        gen = as_rng(rng)
        cfg = self.config
        return MultimodalMask(
            image=batch_mask((cfg.num_pixels,), mask_ratio, rng=gen),
            audio=batch_mask((cfg.num_audio_patches,), mask_ratio, rng=gen),
            label_hidden=np.array(gen.random() < cfg.label_mask_prob),
        )

    def draw_mask(self, mask_ratio: float, *, rng: Any = None) -> NDArray[np.bool_]:
        """:meth:`draw`, packed (:meth:`MultimodalMask.pack`)."""
        return self.draw(mask_ratio, rng=rng).pack()


def multimodal_loss(
    config: MultimodalAEConfig,
    outputs: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted loss and its terms: the video and audio MSE and the label cross-entropy.

    Args:
        config: the weights (``image_weight``, ``audio_weight``, ``label_weight``).
        outputs: ``image [B, M_i, C]``, ``audio [B, M_a, S]`` and ``label [B, K]`` logits.
        targets: the pixels and audio samples at the decoded queries (same shapes), and the
            class index ``label`` int64 ``[B]``.

    Returns:
        ``(loss, {"image": mse, "audio": mse, "label": cross-entropy})``, scalars.
    """
    losses = {
        "image": ((outputs["image"] - targets["image"]) ** 2).mean(),
        "audio": ((outputs["audio"] - targets["audio"]) ** 2).mean(),
        "label": torch.nn.functional.cross_entropy(outputs["label"], targets["label"]),
    }
    loss = (
        config.image_weight * losses["image"]
        + config.audio_weight * losses["audio"]
        + config.label_weight * losses["label"]
    )
    return loss, losses


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)`` (``range`` 2 for values in
    about ``[-1, 1]``, as the synthetic clips)."""
    mse = ((pred.float() - target.float()) ** 2).mean().clamp_min(1e-12)
    return 10.0 * torch.log10(data_range**2 / mse)


class MultimodalAutoencoder(nn.Module):
    """Perceiver IO autoencoding video, audio and a label through one latent array.

    Each modality is preprocessed (video patches and audio patches with Fourier positions, the
    label as a one-hot vector that is hidden behind a mask token with probability
    ``label_mask_prob``), padded to a common width with a learned vector and concatenated; the
    encoder cross-attends to all of it. The decoder builds each modality's queries (Fourier
    positions of every video pixel and audio patch, one trainable query for the label), pads
    them to one width, and decodes a sub-sample of them (chosen per step by the preparer)
    through one shared cross-attention; linear heads give pixels, audio samples and logits.

    ``forward(inputs, mask=None) -> (loss, outputs, metrics)``: ``inputs`` ``{"image": [B, T,
    C, H, W], "audio": [B, S], "label": [B, K] one-hot}``; ``mask`` a prepared
    :class:`MultimodalAEStep` (or a draw, prepared on the way: a :class:`MultimodalMask` or
    its packed form), None = nothing masked (decode everything, label visible); ``loss`` the
    weighted sum of the video and audio MSE and the label cross-entropy
    (:func:`multimodal_loss`); ``metrics`` the video and audio PSNR (dB) and the label
    accuracy.
    """

    def __init__(self, config: MultimodalAEConfig) -> None:
        super().__init__()
        self.config = cfg = config
        video = ImagePreprocessor(
            (cfg.frames, cfg.in_chans, cfg.image_size, cfg.image_size),
            prep_type="patches",
            spatial_downsample=cfg.spatial_downsample,
            num_bands=cfg.image_bands,
            max_resolution=(cfg.frames, cfg.image_size, cfg.image_size),
        )
        audio = AudioPreprocessor(
            cfg.num_audio_samples, cfg.samples_per_patch, num_bands=cfg.audio_bands
        )
        self.input_preprocessor = MultimodalPreprocessor(
            {"image": video, "audio": audio, "label": None},
            vector_channels={"label": cfg.num_labels},
            mask_probs={"label": cfg.label_mask_prob},
            min_padding_size=4,
        )
        self.encoder = PerceiverEncoder(
            cfg.num_latents,
            cfg.d_latents,
            self.input_preprocessor.num_channels,
            num_blocks=cfg.num_blocks,
            num_self_attends_per_block=cfg.num_self_attends_per_block,
            num_cross_attention_heads=cfg.num_cross_attention_heads,
            num_self_attention_heads=cfg.num_self_attention_heads,
        )
        grid = (cfg.frames, cfg.image_size, cfg.image_size)
        self.decoder = MultimodalDecoder(
            cfg.d_latents,
            {
                "image": BasicDecoder(
                    cfg.d_latents,
                    1,
                    output_index_dims=grid,
                    position_encoding="fourier",
                    num_bands=cfg.image_bands,
                    max_resolution=grid,
                    position_encoding_only=True,
                ),
                "audio": BasicDecoder(
                    cfg.d_latents,
                    1,
                    output_index_dims=(cfg.num_audio_patches,),
                    position_encoding="fourier",
                    num_bands=cfg.audio_bands,
                    max_resolution=(cfg.num_audio_samples,),
                    position_encoding_only=True,
                ),
                "label": BasicDecoder(
                    cfg.d_latents,
                    1,
                    output_index_dims=1,
                    position_encoding="trainable",
                    num_channels=cfg.output_num_channels,
                    position_encoding_only=True,
                ),
            },
            cfg.output_num_channels,
        )
        self.image_head = nn.Linear(cfg.output_num_channels, cfg.in_chans)
        self.audio_head = nn.Linear(cfg.output_num_channels, cfg.samples_per_patch)
        self.label_head = nn.Linear(cfg.output_num_channels, cfg.num_labels)

    # -- the step protocol ------------------------------------------------------------------

    @property
    def clip_spec(self) -> dict[str, int]:
        """What a synthetic clip of this model looks like (for the training package)."""
        cfg = self.config
        return dict(
            frames=cfg.frames,
            size=cfg.image_size,
            channels=cfg.in_chans,
            audio_samples=cfg.num_audio_samples,
            num_labels=cfg.num_labels,
        )

    @property
    def mask_grid(self) -> tuple[int]:
        """Length of one draw: decoded pixels, decoded audio patches, label hidden."""
        cfg = self.config
        return (cfg.num_pixels + cfg.num_audio_patches + 1,)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights: the input preprocessor and the Perceiver encoder (what
        ``grouping pretrain --save`` writes; the decoder and the output heads are left out)."""
        keep = ("input_preprocessor.", "encoder.")
        return {k: v for k, v in self.state_dict().items() if k.startswith(keep)}

    def preparer(self, **options: Any) -> MultimodalPreparer:
        """The picklable ``prepare`` (see :class:`MultimodalPreparer`); no settings."""
        if options:
            raise invalid("options", "no solver settings (nothing to solve)", sorted(options))
        return MultimodalPreparer(prepare_multimodal, self.config, self.mask_grid)

    def prepare(
        self, mask: Any, *, batch: int | None = None, device: Any = None
    ) -> MultimodalAEStep:
        """:func:`prepare_multimodal`, moved to ``device``."""
        step = prepare_multimodal(self.config, mask, batch=batch)
        return step if device is None else step.to(device)

    # -- forward ----------------------------------------------------------------------------

    def forward(self, inputs: Mapping[str, torch.Tensor], mask: Any = None) -> MultimodalOutput:
        cfg = self.config
        if not isinstance(inputs, Mapping) or set(inputs) != {"image", "audio", "label"}:
            raise invalid(
                "inputs", "a dict with 'image', 'audio' and 'label'", type(inputs).__name__
            )
        video = inputs["image"]
        b = video.shape[0]
        step = _full_step(cfg, video.device) if mask is None else mask
        if not isinstance(step, MultimodalAEStep):
            step = self.prepare(step, batch=b, device=video.device)
        step.check(b, video.device)
        hidden = {"label": step.label_hidden.expand(b, 1)}
        x, _, _ = self.input_preprocessor(inputs, mask=hidden)
        z = self.encoder(x)
        out = self.decoder(
            z, positions={"image": step.image_positions, "audio": step.audio_positions}
        )
        pixels = self.image_head(out["image"])  # B, M_i, C
        audio = self.audio_head(out["audio"])  # B, M_a, spp
        logits = self.label_head(out["label"])[:, 0]  # B, K
        target_pixels = gather_visible(
            video.permute(0, 1, 3, 4, 2).reshape(b, -1, cfg.in_chans), step.image_positions
        )
        patches = inputs["audio"].reshape(b, -1, cfg.samples_per_patch)
        target_audio = gather_visible(patches, step.audio_positions)
        labels = inputs["label"].argmax(dim=-1)
        outputs = {"image": pixels, "audio": audio, "label": logits}
        targets = {"image": target_pixels, "audio": target_audio, "label": labels}
        loss, _ = multimodal_loss(cfg, outputs, targets)
        metrics = {
            "psnr_image": psnr(pixels.detach(), target_pixels),
            "psnr_audio": psnr(audio.detach(), target_audio),
            "label_accuracy": (logits.detach().argmax(-1) == labels).float().mean(),
        }
        return MultimodalOutput(loss, outputs, metrics)


def perceiver_multimodal_autoencoder(**kwargs: Any) -> MultimodalAutoencoder:
    """A :class:`MultimodalAutoencoder` of :class:`MultimodalAEConfig` fields (the registry's
    entry point)."""
    return MultimodalAutoencoder(MultimodalAEConfig(**kwargs))
