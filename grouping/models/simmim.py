"""The dense baseline: SimMIM-style masking on all tokens, sharing a GreenMIM Swin's weights.

Every stage-1 token is encoded; masked ones are replaced by a learned mask token after the
patch embedding, and the stages use ordinary shifted-window attention
(:meth:`grouping.models.swin.SwinEncoder.forward_dense`, built on
:func:`grouping.adapter.dense_window_attention`). The decoder and the loss are the GreenMIM
model's, so the two differ only in what the encoder computes: this is what the benchmarks
compare the grouped encoder against.

Reference:
    Xie, Zhenda, et al. "SimMIM: A Simple Framework for Masked Image Modeling." CVPR 2022.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import invalid
from ..core.masking import upsample_mask
from .mae import MAEOutput
from .step import Preparer, draw_if_asked
from .swin import GreenMIMSwin, SwinConfig, SwinMasks, check_images, check_unit_mask, greenmim_swin

__all__ = ["SimMIMStep", "SimMIMSwin", "prepare_simmim", "simmim_swin"]


@dataclass(frozen=True, eq=False)
class SimMIMStep(SwinMasks):
    """The dense baseline's step: the masks only (no layouts).

    Attributes:
        token_visible: bool ``[1 or B, H_0, W_0]`` stage-1 token mask (True = visible).
    """

    token_visible: torch.Tensor


def prepare_simmim(config: SwinConfig, mask: Any = None, *, batch: int | None = None) -> SimMIMStep:
    """The :class:`SimMIMStep` of a unit mask (as :func:`grouping.models.swin.prepare_swin`
    takes it), on the CPU."""
    unit_mask = check_unit_mask(config, mask, batch)
    units = unit_mask.reshape(-1, *unit_mask.shape[-2:])  # S, Hu, Wu
    final = upsample_mask(units, config.unit_tokens >> (config.num_stages - 1))
    tokens = upsample_mask(units, config.unit_tokens)
    return SimMIMStep(
        unit_visible=torch.from_numpy(units.copy()),
        final_visible=torch.from_numpy(final.reshape(units.shape[0], -1).copy()),
        batch=None if unit_mask.ndim == 2 else int(unit_mask.shape[0]),
        token_visible=torch.from_numpy(np.ascontiguousarray(tokens)),
    )


class SimMIMSwin(nn.Module):
    """Dense SimMIM-style masked modelling with the modules of a :class:`GreenMIMSwin`.

    Only :attr:`mask_token` (the encoder's, width ``embed_dim``) is new; every other parameter
    is ``mae``'s.

    Args:
        mae: the model whose modules (and parameters) are shared.
    """

    def __init__(self, mae: GreenMIMSwin) -> None:
        super().__init__()
        self.mae = mae
        self.mask_token = nn.Parameter(torch.zeros(mae.config.embed_dim))
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def config(self) -> SwinConfig:
        """The shared model's architecture."""
        return self.mae.config

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image."""
        return self.mae.input_shape

    @property
    def mask_grid(self) -> tuple[int, int]:
        """The mask-unit grid masks are drawn on."""
        return self.mae.mask_grid

    def preparer(self, **options: Any) -> Preparer:
        """The picklable ``prepare`` (see :class:`~grouping.models.step.Preparer`); the dense
        baseline solves no grouping, so ``options`` must be empty."""
        if options:
            raise invalid(
                "options", "no solver settings (the dense baseline solves nothing)", sorted(options)
            )
        return Preparer(prepare_simmim, self.config, self.mask_grid)

    def prepare(
        self, mask: Any = None, *, batch: int | None = None, device: Any = None
    ) -> SimMIMStep:
        """:func:`prepare_simmim`, moved to ``device``."""
        step = prepare_simmim(self.config, mask, batch=batch)
        return step if device is None else step.to(device)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The shared encoder's weights (timm's names; the mask token is not among them)."""
        return self.mae.encoder_state_dict()

    def forward(
        self,
        images: torch.Tensor,
        mask: Any = None,
        *,
        mask_ratio: float | None = None,
        rng: np.random.Generator | int | None = None,
        per_sample: bool = False,
    ) -> MAEOutput:
        """Same contract as :meth:`GreenMIMSwin.forward`, with a :class:`SimMIMStep` (or a
        unit mask; or None: drawn with ``mask_ratio`` if given, else nothing masked)."""
        mae = self.mae
        images = check_images(images, self.config)
        b = images.shape[0]
        step = mask
        if not isinstance(step, SimMIMStep):
            if step is None:
                step = draw_if_asked(mae, b, mask_ratio, rng, per_sample)
            step = self.prepare(step, batch=b, device=images.device)
        step.check(b, images.device)
        feats = mae.encoder.forward_dense(images, step.token_visible, self.mask_token)
        full = mae.decoder_embed(feats.reshape(b, -1, feats.shape[-1]))  # B, L_f, D
        pred = mae.decode(full)
        return MAEOutput(mae.loss(images, pred, step), pred, step.visible_units(b))


def simmim_swin(**kwargs: Any) -> SimMIMSwin:
    """The dense baseline of ``greenmim_swin(**kwargs)`` (the registry's entry point)."""
    return SimMIMSwin(greenmim_swin(**kwargs))
