"""The MAE head shared by the model families: decoder, pixel targets and the masked loss.

MAE (He et al. 2022) decodes a full set of tokens: the encoder's latents, projected to the
decoder width, each at its own position, and a learned mask token at every masked position;
position embeddings are added, a few transformer blocks run, and a linear layer predicts the
pixels of every token's patch. The loss is the mean squared error on the masked tokens only,
against the pixels of each patch, optionally normalised by the patch's mean and variance
(``norm_pix_loss``).

:class:`MAEHead` is a mixin for the model ``nn.Module`` that registers the decoder under MAE's
parameter names, which MAE, GreenMIM and Hiera checkpoints all use: ``decoder_embed``,
``mask_token``, ``decoder_pos_embed``, ``decoder_blocks``, ``decoder_norm``, ``decoder_pred``.

Conventions: a mask is bool, True = visible; the decoder's ``L`` tokens are row-major on the
decoder grid; latents are placed with an index ``[N]`` (shared) or ``[B, N]`` (per sample), as in
:func:`grouping.models.layers.place_visible`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from .layers import Block, place_visible
from .pos_embed import sincos_2d, sincos_3d

__all__ = [
    "HiPMAEOutput",
    "HieraMAEOutput",
    "MAEHead",
    "MAEOutput",
    "MultimodalOutput",
    "masked_mse",
    "normalize_patches",
]


# -- what every pretraining forward returns ------------------------------------------------------
#
# A NamedTuple whose first field is the loss, so a caller writes ``out.loss`` whatever the
# family, and ``out.metrics`` (a dict of scalar tensors, empty where the model has none) holds
# what a training loop logs beside the loss. Tuple unpacking keeps working as before.

_NO_METRICS: Mapping[str, Any] = MappingProxyType({})


@property  # type: ignore[misc]
def _no_metrics(self: Any) -> Mapping[str, torch.Tensor]:
    """Scalars logged beside the loss: none (read-only, empty)."""
    return _NO_METRICS


class MAEOutput(NamedTuple):
    """A GreenMIM Swin or SimMIM pretraining pass.

    Attributes:
        loss: scalar, the mean squared error on the masked patches.
        pred: ``[B, L_f, P*P*C]``, the pixels predicted for every final-stage token.
        mask: bool ``[B, Hu, Wu]`` on the mask-unit grid, True = visible.
    """

    loss: torch.Tensor
    pred: torch.Tensor
    mask: torch.Tensor

    metrics = _no_metrics


class HieraMAEOutput(NamedTuple):
    """A MAE-Hiera pretraining pass (the official ``MaskedAutoencoderHiera`` order).

    Attributes:
        loss: scalar, the mean squared error on the masked mask units.
        pred: ``[M, patch_dim]``, the predictions of the masked mask units' tokens.
        label: ``[M, patch_dim]``, their (optionally normalised) pixel targets.
        mask: bool ``[B, num_mask_units]``, True = kept.
    """

    loss: torch.Tensor
    pred: torch.Tensor
    label: torch.Tensor
    mask: torch.Tensor

    metrics = _no_metrics


class HiPMAEOutput(NamedTuple):
    """A HiP MAE pretraining pass.

    Attributes:
        loss: scalar, the mean squared error on the masked real slots.
        pred: ``[B, G, L - K, C]``, the predictions at the masked slots.
        target: ``[B, G, L - K, C]``, the targets there.
    """

    loss: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor

    metrics = _no_metrics


class MultimodalOutput(NamedTuple):
    """A pass of the multimodal (video, audio, label) autoencoder.

    Attributes:
        loss: scalar, the weighted sum of the three reconstruction losses.
        outputs: the decoded ``image``, ``audio`` and ``label`` tensors.
        metrics: scalar tensors logged beside the loss (per-modality losses, PSNR).
    """

    loss: torch.Tensor
    outputs: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor]


def normalize_patches(target: torch.Tensor, eps: float = 1.0e-6) -> torch.Tensor:
    """MAE's ``norm_pix_loss`` target: every patch minus its mean over its own pixels, divided
    by ``sqrt(var + eps)`` (unbiased variance, as MAE).

    Args:
        target: ``[..., P]`` pixels of every patch.
    """
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps) ** 0.5


def masked_mse(pred: torch.Tensor, target: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked tokens only.

    Args:
        pred: ``[B, L, P]`` predictions.
        target: ``[B, L, P]`` targets.
        masked: bool ``[B or 1, L]``, True where the loss is taken (masked tokens).

    Returns:
        The scalar mean over masked tokens of the per-token mean over ``P`` (MAE's loss); 0
        (still differentiable) when nothing is masked.
    """
    per_token = ((pred - target) ** 2).mean(dim=-1)  # B, L
    weight = masked.expand_as(per_token).to(per_token.dtype)
    return (per_token * weight).sum() / weight.sum().clamp_min(1.0)


class MAEHead:
    """Mixin: MAE's decoder, registered on the model under MAE's parameter names.

    Call :meth:`init_mae_head` in the model's ``__init__`` (after ``nn.Module.__init__``), then
    :meth:`place_latents` and :meth:`decode` in ``forward``.
    """

    decoder_embed: nn.Linear
    mask_token: nn.Parameter
    decoder_pos_embed: torch.Tensor
    decoder_blocks: nn.ModuleList
    decoder_norm: nn.LayerNorm
    decoder_pred: nn.Linear

    def init_mae_head(
        self,
        *,
        in_dim: int,
        grid: tuple[int, ...],
        patch_dim: int,
        dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
        pos_embed: Literal["sincos", "learned"] = "sincos",
    ) -> None:
        """Register the decoder modules on ``self``.

        Args:
            in_dim: width of the encoder's latents.
            grid: the decoder's token grid (2-D or 3-D); ``L = prod(grid)`` tokens.
            patch_dim: values predicted per token (``P * P * C`` pixels for images).
            dim: decoder width.
            depth: decoder blocks.
            num_heads: decoder heads.
            mlp_ratio: MLP ratio of the decoder blocks.
            norm_eps: LayerNorm eps of the decoder.
            pos_embed: ``"sincos"`` (MAE's fixed table, a non-persistent buffer: derived, not
                saved) or ``"learned"`` (a parameter ``[1, L, dim]``, Hiera's choice).
        """
        assert isinstance(self, nn.Module), "MAEHead is a mixin for nn.Module models"
        length = 1
        for side in grid:
            length *= int(side)
        self.decoder_embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        if pos_embed == "sincos":
            table = sincos_2d(dim, grid) if len(grid) == 2 else sincos_3d(dim, grid)  # type: ignore[arg-type]
            pos = torch.from_numpy(table).float()[None]  # 1, L, D
            self.register_buffer("decoder_pos_embed", pos, persistent=False)
        else:
            self.decoder_pos_embed = nn.Parameter(torch.zeros(1, length, dim))
        self.decoder_blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, norm_eps=norm_eps) for _ in range(depth)
        )
        self.decoder_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.decoder_pred = nn.Linear(dim, patch_dim)

    @property
    def decoder_length(self) -> int:
        """Tokens the decoder sees, ``L``."""
        return int(self.decoder_pos_embed.shape[1])

    def place_latents(self, latent: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Every visible latent at its own position, the mask token elsewhere.

        Args:
            latent: ``[B, N, D]`` decoder-width latents of the visible tokens.
            index: int64 ``[N]`` or ``[B, N]``, their positions among the decoder's ``L``
                tokens.

        Returns:
            ``[B, L, D]``.
        """
        fill = self.mask_token.expand(1, self.decoder_length, -1)  # 1, L, D
        return place_visible(fill, latent, index)

    def decode(self, full: torch.Tensor) -> torch.Tensor:
        """``[B, L, D]`` decoder tokens -> ``[B, L, patch_dim]`` predictions."""
        x = full + self.decoder_pos_embed.to(full.dtype)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))
