"""Hiera and MAE-Hiera on the core's mask-unit layout.

The official models (Ryali et al. 2023, facebookresearch/hiera, PyPI ``hiera-transformer``
0.1.4) with their constructor arguments, ``state_dict`` keys and shapes, forward signatures and
results, built on :mod:`grouping.core.layout`:

* the unroll / reroll permutations are gather indices from the core's
  :class:`~grouping.core.layout.MaskUnitLayout` (non-persistent buffers);
* mask-unit attention windows are the mask units of the same layout: after unrolling, position
  ``p`` holds a token of mask unit ``p % num_mask_units``;
* kept mask units become a gather index (``[B, N]``, :func:`prepare_hiera`), not boolean
  indexing, so ``forward`` has no data-dependent shapes and no host synchronisation when it is
  given a prepared :class:`HieraStep` (a raw boolean mask is the slow path: one host read of the
  keep count);
* attention runs on 4-D ``[B * windows, heads, T, d]`` tensors, so
  :func:`~torch.nn.functional.scaled_dot_product_attention` can take a fused kernel (the
  official 5-D call falls back to the unfused math kernel).

Conventions: a mask is bool over the mask units, ``[B, num_mask_units]`` (row-major over the
mask-unit grid), **True = keep** (Hiera's "1 is *keep*, 0 is *remove*", the library's "True =
visible"). Every sample keeps the same number of units.

One deliberate difference: the classifier's head returns logits in eval mode too (the official
``Head`` applies a softmax when not training); apply ``softmax(-1)`` to compare.

Beyond the official code: any input size (``input_size``, rectangular images included; a
checkpoint's position embeddings are resampled on load, as timm does), a gradient checkpointing
switch (:meth:`Hiera.set_grad_checkpointing`), and loading timm's Hiera weight names
(``head.fc``, ``head.norm``) into the official layout (:func:`convert_timm_state_dict`).

References:
    Ryali, Chaitanya, et al. "Hiera: A Hierarchical Vision Transformer without the
    Bells-and-Whistles." ICML 2023. He, Kaiming, et al. "Masked Autoencoders Are Scalable
    Vision Learners." CVPR 2022.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn
from torch.utils.checkpoint import checkpoint as grad_checkpoint

from ..core.errors import (
    GroupingValueError,
    as_int_tuple,
    as_rng,
    check_int,
    check_mask_ratio,
    invalid,
)
from ..core.layout import MaskUnitLayout, mask_unit_ids, mask_unit_layout, reroll_index
from ..core.masking import batch_mask, check_mask
from .layers import DropPath, Mlp, PatchEmbed, gather_visible
from .mae import HieraMAEOutput, MAEHead, normalize_patches
from .pos_embed import resample_pos_embed
from .step import Preparer, Step

__all__ = [
    "Hiera",
    "HieraBlock",
    "HieraConfig",
    "HieraStep",
    "MaskUnitAttention",
    "MaskedAutoencoderHiera",
    "convert_timm_state_dict",
    "hiera_base_16x224",
    "hiera_base_224",
    "hiera_base_plus_16x224",
    "hiera_base_plus_224",
    "hiera_huge_16x224",
    "hiera_huge_224",
    "hiera_large_16x224",
    "hiera_large_224",
    "hiera_small_224",
    "hiera_tiny_224",
    "load_checkpoint",
    "mae_hiera_base_16x224",
    "mae_hiera_base_224",
    "mae_hiera_base_plus_16x224",
    "mae_hiera_base_plus_224",
    "mae_hiera_huge_16x224",
    "mae_hiera_huge_224",
    "mae_hiera_large_16x224",
    "mae_hiera_large_224",
    "mae_hiera_small_224",
    "mae_hiera_tiny_224",
    "prepare_hiera",
]

#: Where the official weights are published (facebookresearch/hiera's README).
WEIGHTS_URL = "https://dl.fbaipublicfiles.com/hiera/{name}.pth"


# -- configuration -------------------------------------------------------------------------------


def _tuple(name: str, value: Any, ndim: int | None = None) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * (ndim or 2)
    seq = tuple(value)
    return as_int_tuple(name, seq, len(seq) if ndim is None else ndim)


@dataclass(frozen=True)
class HieraConfig:
    """The official constructor arguments of ``Hiera`` (and ``MaskedAutoencoderHiera``).

    Validated on construction; the derived :attr:`layout` is the core's
    :class:`~grouping.core.layout.MaskUnitLayout` of the model. ``decoder_*`` are used by the
    MAE only.
    """

    input_size: tuple[int, ...] = (224, 224)
    in_chans: int = 3
    embed_dim: int = 96
    num_heads: int = 1
    num_classes: int = 1000
    stages: tuple[int, ...] = (2, 3, 16, 3)
    q_pool: int = 3
    q_stride: tuple[int, ...] = (2, 2)
    mask_unit_size: tuple[int, ...] = (8, 8)
    mask_unit_attn: tuple[bool, ...] = (True, True, False, False)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    patch_kernel: tuple[int, ...] = (7, 7)
    patch_stride: tuple[int, ...] = (4, 4)
    patch_padding: tuple[int, ...] = (3, 3)
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0
    head_dropout: float = 0.0
    head_init_scale: float = 0.001
    sep_pos_embed: bool = False
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    layout: MaskUnitLayout = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size = _tuple("input_size", self.input_size)
        nd = len(size)
        if nd not in (2, 3):
            raise invalid("input_size", "(H, W) or (T, H, W)", self.input_size)
        set_ = partial(object.__setattr__, self)
        set_("input_size", size)
        for name in ("q_stride", "mask_unit_size", "patch_kernel", "patch_stride"):
            set_(name, _tuple(name, getattr(self, name), nd))
        set_("patch_padding", as_int_tuple("patch_padding", self.patch_padding, nd, minimum=0))
        stages = _tuple("stages", self.stages)
        set_("stages", stages)
        attn = tuple(bool(a) for a in self.mask_unit_attn)
        if len(attn) != len(stages):
            raise invalid("mask_unit_attn", f"one bool per stage ({len(stages)})", attn)
        set_("mask_unit_attn", attn)
        for name in ("in_chans", "embed_dim", "num_heads", "decoder_depth"):
            check_int(name, getattr(self, name), minimum=1 if name != "decoder_depth" else 0)
        check_int("num_classes", self.num_classes, minimum=0)
        q_pool = check_int("q_pool", self.q_pool, minimum=0)
        if q_pool >= len(stages):
            raise invalid("q_pool", f"fewer than the {len(stages)} stages", self.q_pool)
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise invalid("drop_path_rate", "a float in [0, 1)", self.drop_path_rate)
        grid = [i // s for i, s in zip(size, self.patch_stride, strict=True)]
        unit = self.mask_unit_size
        hint = (
            f"the patch grid {tuple(grid)} (input_size {size} // patch_stride "
            f"{self.patch_stride}) must be made of whole mask units of {unit} tokens"
        )
        if any(i % s for i, s in zip(size, self.patch_stride, strict=True)) or any(
            g % u for g, u in zip(grid, unit, strict=True)
        ):
            raise invalid(
                "input_size", "an input size whose token grid the mask units fit", size, hint
            )
        try:
            layout = mask_unit_layout(
                size,
                patch_stride=self.patch_stride,
                q_stride=self.q_stride,
                num_stages=len(stages),
                mask_unit_size=unit,
                q_pool=q_pool,
            )
        except GroupingValueError as exc:
            raise invalid("mask_unit_size", "a mask unit the strides fit", unit, str(exc)) from None
        # Hiera unrolls num_stages - 1 times by q_stride: the mask unit must be that product
        product = tuple(s ** (len(stages) - 1) for s in self.q_stride)
        if layout.unroll_schedule != (self.q_stride,) * (len(stages) - 1) or unit != product:
            raise invalid(
                "mask_unit_size",
                f"q_stride**(stages - 1) = {product} tokens (Hiera unrolls once per stage "
                "transition)",
                unit,
            )
        dims, heads = [self.embed_dim], [self.num_heads]
        for _ in stages[1:]:
            dims.append(int(dims[-1] * self.dim_mul))
            heads.append(int(heads[-1] * self.head_mul))
        for d, h in zip(dims, heads, strict=True):
            if h < 1 or d % h:
                raise invalid("num_heads", f"heads that divide every stage width {dims}", heads)
        if self.decoder_embed_dim % self.decoder_num_heads:
            raise invalid(
                "decoder_num_heads",
                f"a divisor of decoder_embed_dim={self.decoder_embed_dim}",
                self.decoder_num_heads,
            )
        if self.sep_pos_embed and nd != 3:
            raise invalid("sep_pos_embed", "False for images (True needs (T, H, W))", True)
        set_("layout", layout)

    @property
    def ndim(self) -> int:
        """Spatial axes: 2 (images) or 3 (video)."""
        return len(self.input_size)

    @property
    def tokens_spatial_shape(self) -> tuple[int, ...]:
        """The stage-0 token grid."""
        return self.layout.grids[0]

    @property
    def mask_spatial_shape(self) -> tuple[int, ...]:
        """The mask-unit grid."""
        return self.layout.mask_unit_grid

    @property
    def num_mask_units(self) -> int:
        """Mask units per sample."""
        return self.layout.num_mask_units

    @property
    def stage_ends(self) -> tuple[int, ...]:
        """Index of the last block of every stage."""
        return tuple(sum(self.stages[: i + 1]) - 1 for i in range(len(self.stages)))

    @property
    def final_stage(self) -> int:
        """The last stage."""
        return len(self.stages) - 1

    @property
    def pred_stride(self) -> int:
        """Pixels per side of a predicted patch (MAE):
        ``patch_stride[-1] * q_stride[-1]**q_pool``."""
        return self.patch_stride[-1] * self.q_stride[-1] ** self.q_pool

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments as a dict."""
        return {
            f: getattr(self, f)
            for f in self.__dataclass_fields__
            if f != "layout"  # type: ignore[attr-defined]
        }


# -- the prepared step ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HieraStep(Step):
    """Everything a masked Hiera pass needs besides the weights (built by :func:`prepare_hiera`).

    Index tensors are ``[N]`` for one mask shared by the batch, ``[B, N]`` per sample.

    Attributes:
        unit_mask: bool ``[1 or B, num_mask_units]``, True = keep (the official ``mask``).
        num_kept: kept mask units per sample ``K``.
        keep_index: int64 ``[K * mu_0]`` / ``[B, K * mu_0]``: the kept tokens' positions in the
            unrolled stage-0 order (what the official boolean indexing selects, in its order).
        final_index: int64 ``[K * mu_f]`` / ``[B, K * mu_f]``: for the MAE decoder, the
            row-major position in the final token grid of every encoder output token (kept
            unit by kept unit, row-major inside the unit).
        masked_index: int64 ``[(U - K) * mu_f]`` / ``[B, ...]``: the row-major positions of the
            masked final tokens, in row-major order (where the loss is taken).
        final_visible: bool ``[1 or B, L_f]``: True at kept final tokens.
        batch: the batch of per-sample masks, None for a shared mask.
    """

    unit_mask: torch.Tensor
    num_kept: int
    keep_index: torch.Tensor
    final_index: torch.Tensor
    masked_index: torch.Tensor
    final_visible: torch.Tensor
    batch: int | None

    def visible_units(self, batch: int) -> torch.Tensor:
        """bool ``[B, num_mask_units]``, True = keep."""
        return self.unit_mask.expand(batch, -1)


def _unit_mask(config: HieraConfig, mask: Any, batch: int | None) -> NDArray[np.bool_]:
    units, grid = config.num_mask_units, config.mask_spatial_shape
    expected = (
        f"a bool mask [B, {units}] (or [B, *{grid}], or one mask [{units}] for the batch) over "
        "the mask units, True = keep, the same keep count for every sample"
    )
    checked = check_mask(mask, grid, batch=batch, expected=expected, flat_ok=True, word="keep")
    return checked.mask.reshape(units if checked.shared else (-1, units))


def _no_options(options: Mapping[str, Any]) -> None:
    if options:
        raise invalid(
            "options", "no solver settings (Hiera has no grouping to solve)", sorted(options)
        )


def prepare_hiera(config: HieraConfig, mask: Any, *, batch: int | None = None) -> HieraStep:
    """Turn a mask over the mask units into the gather indices of a masked pass, on the CPU.

    Args:
        config: the architecture.
        mask: bool ``[B, num_mask_units]`` (or ``[B, *mask_spatial_shape]``), True = keep,
            equal keep counts; or one mask ``[num_mask_units]`` for the whole batch.
        batch: the batch size, checked against per-sample masks.

    Returns:
        The :class:`HieraStep`.
    """
    if mask is None:
        raise invalid("mask", "a mask (None means no masking: call forward without a step)", None)
    units = _unit_mask(config, mask, batch)
    shared = units.ndim == 1
    rows = units.reshape(-1, config.num_mask_units)  # S, U
    lay = config.layout
    num_units = lay.num_mask_units
    kept = np.nonzero(rows)[1].reshape(rows.shape[0], -1)  # S, K (ascending)
    masked = np.nonzero(~rows)[1].reshape(rows.shape[0], -1)  # S, U - K
    mu0 = math.prod(lay.mask_units[0])
    keep = (np.arange(mu0)[None, :, None] * num_units + kept[:, None, :]).reshape(len(rows), -1)
    final_grid = lay.grids[-1]
    mu_f = lay.mask_units[-1]
    ids = mask_unit_ids(final_grid, mu_f).ravel()
    by_unit = np.argsort(ids, kind="stable").reshape(num_units, -1)  # U, mu_f (row-major)
    final = by_unit[kept].reshape(len(rows), -1)  # S, K * mu_f
    masked_pos = np.sort(by_unit[masked].reshape(len(rows), -1), axis=1)  # row-major order
    visible = np.zeros((len(rows), ids.size), dtype=np.bool_)
    np.put_along_axis(visible, final, True, axis=1)

    def index(a: NDArray[np.int64]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a[0] if shared else a, dtype=np.int64))

    return HieraStep(
        unit_mask=torch.from_numpy(rows.copy()),
        num_kept=int(kept.shape[1]),
        keep_index=index(keep),
        final_index=index(final),
        masked_index=index(masked_pos),
        final_visible=torch.from_numpy(visible),
        batch=None if shared else int(rows.shape[0]),
    )


# -- blocks --------------------------------------------------------------------------------------


def do_pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max-pool unrolled tokens by a flat stride: ``[B, N, C]`` -> ``[B, N / stride, C]``
    (the stride offsets are the outermost block of the token axis)."""
    return x.view(x.shape[0], stride, -1, x.shape[-1]).max(dim=1).values


class MaskUnitAttention(nn.Module):
    """Hiera's attention: within mask units (or global), with optional query pooling.

    Args:
        dim: input width.
        dim_out: output width.
        heads: heads.
        q_stride: flat pooling stride of the queries (1: none).
        window_size: flat mask-unit size after pooling (tokens per window).
        use_mask_unit_attn: attend within mask units (else globally).
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        heads: int,
        q_stride: int = 1,
        window_size: int = 0,
        use_mask_unit_attn: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out, self.heads = dim, dim_out, heads
        self.q_stride = q_stride
        self.head_dim = dim_out // heads
        self.qkv = nn.Linear(dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)
        self.window_size = window_size
        self.use_mask_unit_attn = use_mask_unit_attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        windows = n // (self.q_stride * self.window_size) if self.use_mask_unit_attn else 1
        t = n // windows
        qkv = self.qkv(x).reshape(b, t, windows, 3, self.heads, self.head_dim)
        qkv = qkv.permute(3, 0, 2, 4, 1, 5)  # 3, B, W, h, T, d (window-major)
        qkv = qkv.reshape(3, b * windows, self.heads, t, self.head_dim)  # 4-D per tensor
        q, k, v = qkv.unbind(0)
        if self.q_stride > 1:  # the stride offsets are the outermost block of each window
            q = q.view(b * windows, self.heads, self.q_stride, -1, self.head_dim).max(2).values
        x = F.scaled_dot_product_attention(q, k, v)  # B*W, h, T', d
        x = x.view(b, windows, self.heads, -1, self.head_dim).permute(0, 3, 1, 2, 4)  # B,T',W,h,d
        return self.proj(x.reshape(b, -1, self.dim_out))


class HieraBlock(nn.Module):
    """Hiera's block: pre-norm mask-unit attention (with pooling and a width change through
    ``proj`` on the first block of a pooled stage) and an MLP."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        norm_layer: Any = nn.LayerNorm,
        q_stride: int = 1,
        window_size: int = 0,
        use_mask_unit_attn: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.norm1 = norm_layer(dim)
        self.attn = MaskUnitAttention(
            dim, dim_out, heads, q_stride, window_size, use_mask_unit_attn
        )
        self.norm2 = norm_layer(dim_out)
        self.mlp = Mlp(dim_out, int(dim_out * mlp_ratio))
        self.drop_path = DropPath(drop_path)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        if self.dim != self.dim_out:
            x = do_pool(self.proj(x_norm), stride=self.attn.q_stride)
        x = x + self.drop_path(self.attn(x_norm))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Head(nn.Module):
    """The classification head (``projection``); returns logits in eval mode too."""

    def __init__(self, dim: int, num_classes: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout_rate)
        self.projection = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.dropout(x))


def _norm_layer(norm_layer: Any) -> Any:
    if norm_layer is None or norm_layer == "LayerNorm":
        return partial(nn.LayerNorm, eps=1e-6)
    if isinstance(norm_layer, str):
        if not hasattr(nn, norm_layer):
            raise invalid("norm_layer", "a torch.nn layer name or a callable", norm_layer)
        return partial(getattr(nn, norm_layer), eps=1e-6)
    return norm_layer


# -- the models ----------------------------------------------------------------------------------


class Hiera(nn.Module):
    """Hiera, with the official constructor arguments (``norm_layer``: a ``torch.nn`` name,
    eps 1e-6, or a callable).

    ``forward(x, mask=None, return_intermediates=False)``: with no mask, the class logits
    ``[B, num_classes]`` (mean of the final tokens, norm, head); with a mask (a prepared
    :class:`HieraStep`, or the official bool ``[B, num_mask_units]``, True = keep), the final
    tokens of the kept units ``[B, N, C]`` in the unrolled order. ``return_intermediates``
    adds the output of every stage rerolled: ``[B, *grid, C]`` unmasked, ``[B, K, *mu, C]``
    (kept units, then the mask unit's own grid) masked.

    Examples:
        >>> model = Hiera(input_size=(64, 64), embed_dim=8, num_heads=1, stages=(1, 1, 1),
        ...               q_pool=2, mask_unit_size=(4, 4), mask_unit_attn=(True, False, False),
        ...               num_classes=5)
        >>> x = torch.randn(2, 3, 64, 64)
        >>> model(x).shape                                   # logits
        torch.Size([2, 5])
        >>> step = model.prepare(model.get_random_mask(x, 0.5))
        >>> model(x, step).shape                             # 8 of 16 units kept, 1 token each
        torch.Size([2, 8, 32])
    """

    def __init__(self, *, norm_layer: Any = "LayerNorm", **kwargs: Any) -> None:
        super().__init__()
        self.config = config = HieraConfig(**kwargs)
        norm = _norm_layer(norm_layer)
        lay = config.layout
        embed_dim, num_heads = config.embed_dim, config.num_heads
        depth = sum(config.stages)
        self.patch_stride = config.patch_stride
        self.tokens_spatial_shape = list(config.tokens_spatial_shape)
        self.mask_spatial_shape = list(config.mask_spatial_shape)
        self.mu_size = math.prod(config.mask_unit_size)
        self.q_pool, self.q_stride = config.q_pool, config.q_stride
        self.stage_ends = list(config.stage_ends)
        self.patch_embed = PatchEmbed(
            config.in_chans,
            embed_dim,
            config.patch_kernel,
            stride=config.patch_stride,
            padding=config.patch_padding,
        )
        self.sep_pos_embed = config.sep_pos_embed
        tokens = self.tokens_spatial_shape
        if config.sep_pos_embed:
            self.pos_embed_spatial = nn.Parameter(torch.zeros(1, tokens[1] * tokens[2], embed_dim))
            self.pos_embed_temporal = nn.Parameter(torch.zeros(1, tokens[0], embed_dim))
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, math.prod(tokens), embed_dim))
        # the layout's permutations, derived: non-persistent buffers
        self.register_buffer(
            "unroll_index", torch.from_numpy(lay.unroll_index(0)), persistent=False
        )
        for k in range(lay.num_stages):
            self.register_buffer(
                f"reroll_index_{k}", torch.from_numpy(lay.reroll_index(k)), persistent=False
            )
            mu_order = reroll_index(lay.mask_units[k], lay.stage_schedule(k))
            self.register_buffer(
                f"mu_reroll_index_{k}", torch.from_numpy(mu_order), persistent=False
            )

        q_pool_blocks = [x + 1 for x in self.stage_ends[: config.q_pool]]
        dpr = torch.linspace(0, config.drop_path_rate, depth, device="cpu").tolist()
        flat_mu, flat_q = self.mu_size, math.prod(config.q_stride)
        stage = 0
        self.blocks = nn.ModuleList()
        for i in range(depth):
            dim_out = embed_dim
            use_mu_attn = config.mask_unit_attn[stage]  # lags by one block, as the official
            if i - 1 in self.stage_ends:
                dim_out = int(embed_dim * config.dim_mul)
                num_heads = int(num_heads * config.head_mul)
                stage += 1
                if i in q_pool_blocks:
                    flat_mu //= flat_q
            self.blocks.append(
                HieraBlock(
                    dim=embed_dim,
                    dim_out=dim_out,
                    heads=num_heads,
                    mlp_ratio=config.mlp_ratio,
                    drop_path=dpr[i],
                    norm_layer=norm,
                    q_stride=flat_q if i in q_pool_blocks else 1,
                    window_size=flat_mu,
                    use_mask_unit_attn=use_mu_attn,
                )
            )
            embed_dim = dim_out
        self.num_features = embed_dim
        self.norm = norm(embed_dim)
        self.head = Head(embed_dim, config.num_classes, dropout_rate=config.head_dropout)
        self.grad_checkpointing = False
        # the official initialisation
        if config.sep_pos_embed:
            nn.init.trunc_normal_(self.pos_embed_spatial, std=0.02)
            nn.init.trunc_normal_(self.pos_embed_temporal, std=0.02)
        else:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)
        self.head.projection.weight.data.mul_(config.head_init_scale)
        self.head.projection.bias.data.mul_(config.head_init_scale)

    @staticmethod
    def _init_weights(m: nn.Module, init_bias: float = 0.02) -> None:
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.constant_(m.bias, init_bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, init_bias)
            nn.init.constant_(m.weight, 1.0)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``nn.Module.load_state_dict`` with a clear error for a state dict of another config:
        a :class:`~grouping.GroupingValueError` naming the first key whose shape differs (or,
        with ``strict``, the missing and unexpected keys)."""
        own = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        for key, value in state_dict.items():
            if key in own and tuple(value.shape) != own[key]:
                raise invalid(
                    "state_dict",
                    f"{key} of shape {own[key]} (this model's config)",
                    f"shape {tuple(value.shape)}",
                    "build the model with the checkpoint's constructor arguments, or use "
                    "grouping.models.hiera.load_checkpoint to resample position embeddings",
                )
        if strict:
            missing = sorted(set(own) - set(state_dict))
            unexpected = sorted(set(state_dict) - set(own))
            if missing or unexpected:
                raise invalid(
                    "state_dict",
                    f"the {len(own)} keys of this model",
                    f"a state dict missing {missing[:4]} and with unexpected {unexpected[:4]}",
                )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every block's activations in the backward pass (less memory, more time)."""
        self.grad_checkpointing = bool(enable)

    def no_weight_decay(self) -> list[str]:
        """Parameters without weight decay (the official list)."""
        return ["pos_embed_spatial", "pos_embed_temporal"] if self.sep_pos_embed else ["pos_embed"]

    # -- masks and steps --------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, *input_size)`` of one input."""
        return (self.config.in_chans, *self.config.input_size)

    @property
    def mask_grid(self) -> tuple[int, ...]:
        """The mask-unit grid masks are drawn on."""
        return self.config.mask_spatial_shape

    def get_random_mask(self, x: torch.Tensor, mask_ratio: float) -> torch.Tensor:
        """A random bool mask ``[B, num_mask_units]``, ``mask_ratio`` of the units dropped
        (1 is *keep*, 0 is *remove*), drawn on ``x``'s device with torch's generator as the
        official does."""
        b = x.shape[0]
        units = self.config.num_mask_units
        keep = int(units * (1 - check_mask_ratio(mask_ratio)))
        noise = torch.rand(b, units, device=x.device)
        ids_restore = torch.argsort(torch.argsort(noise, dim=1), dim=1)
        mask = torch.zeros(b, units, device=x.device)
        mask[:, :keep] = 1
        return torch.gather(mask, dim=1, index=ids_restore).bool()

    def preparer(self, **options: Any) -> Preparer:
        """The picklable ``prepare`` (no weights), for DataLoader workers (Hiera's step has
        no settings: ``options`` must be empty)."""
        _no_options(options)
        return Preparer(prepare_hiera, self.config, self.mask_grid)

    def prepare(self, mask: Any, *, batch: int | None = None, device: Any = None) -> HieraStep:
        """:func:`prepare_hiera`, moved to ``device``."""
        step = prepare_hiera(self.config, mask, batch=batch)
        return step if device is None else step.to(device)

    def sample_mask(
        self, batch: int, mask_ratio: float = 0.6, *, rng: np.random.Generator | int | None = None
    ) -> NDArray[np.bool_]:
        """A random numpy mask ``[B, num_mask_units]`` with MAE's keep count (True = keep)."""
        gen = as_rng(rng)
        return np.stack(
            [batch_mask((self.config.num_mask_units,), mask_ratio, rng=gen) for _ in range(batch)]
        )

    def _step(self, x: torch.Tensor, mask: Any) -> HieraStep:
        if isinstance(mask, HieraStep):
            step = mask
        else:  # the slow path: indices built from a mask here (one host read of the mask)
            step = self.prepare(mask, batch=x.shape[0], device=x.device)
        step.check(x.shape[0], x.device)
        return step

    # -- forward ----------------------------------------------------------------------------

    def _check_input(self, x: Any) -> torch.Tensor:
        cfg = self.config
        expected = f"a float tensor [B, {cfg.in_chans}, {', '.join(map(str, cfg.input_size))}]"
        if isinstance(x, list):  # slowfast-style loaders pass a list (as the official accepts)
            x = x[0]
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise invalid("x", expected, type(x).__name__)
        if x.dim() != 2 + cfg.ndim or x.shape[1] != cfg.in_chans:
            raise invalid("x", expected, f"shape {tuple(x.shape)}")
        if tuple(x.shape[2:]) != cfg.input_size:
            raise invalid(
                "x", expected, f"shape {tuple(x.shape)}", "build the model with input_size=..."
            )
        return x

    def get_pos_embed(self) -> torch.Tensor:
        """``[1, L_0, C]`` position embeddings (the separable ones summed for video)."""
        if self.sep_pos_embed:
            t, hw = self.tokens_spatial_shape[0], self.pos_embed_spatial.shape[1]
            return self.pos_embed_spatial.repeat(1, t, 1) + torch.repeat_interleave(
                self.pos_embed_temporal, hw, dim=1
            )
        return self.pos_embed

    def _reroll(self, x: torch.Tensor, stage: int, step: HieraStep | None) -> torch.Tensor:
        lay = self.config.layout
        b, n, c = x.shape
        if step is None:  # spatial order back: [B, *grid, C]
            return x.index_select(1, getattr(self, f"reroll_index_{stage}")).view(
                b, *lay.grids[stage], c
            )
        k = step.num_kept
        mu = lay.mask_units[stage]
        x = x.view(b, math.prod(mu), k, c).index_select(
            1, getattr(self, f"mu_reroll_index_{stage}")
        )
        return x.transpose(1, 2).reshape(b, k, *mu, c)  # B, K, *mu, C

    def forward_tokens(
        self, x: torch.Tensor, step: HieraStep | None, return_intermediates: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Patch embedding, position embedding, unroll, masking, blocks: the final tokens
        ``[B, N, C]`` (unrolled order) and, if asked, the rerolled output of every stage."""
        pixel_mask = None
        if step is not None:
            units = step.unit_mask.expand(x.shape[0], -1)
            units = units.view(x.shape[0], 1, *self.mask_spatial_shape)
            pixel_mask = F.interpolate(units.float(), size=x.shape[2:]).bool()  # B, 1, *S
        x = self.patch_embed.proj(x if pixel_mask is None else x * pixel_mask)  # B, C, *S'
        x = x.flatten(2).transpose(1, 2)  # B, L, C
        x = (x + self.get_pos_embed()).index_select(1, self.unroll_index)  # unrolled order
        if step is not None:
            x = gather_visible(x, step.keep_index)  # B, K * mu_0, C: the kept units
        intermediates = []
        stage = 0
        for i, blk in enumerate(self.blocks):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = grad_checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
            if i in self.stage_ends:
                if return_intermediates:
                    intermediates.append(self._reroll(x, stage, step))
                stage += 1
        return x, intermediates

    def forward(
        self,
        x: torch.Tensor,
        mask: Any = None,
        return_intermediates: bool = False,
    ) -> Any:
        """See the class docstring. ``mask``: None, a :class:`HieraStep` (fast), or a bool
        ``[B, num_mask_units]`` tensor, True = keep (the official form; the slow path)."""
        x = self._check_input(x)
        step = None if mask is None else self._step(x, mask)
        x, intermediates = self.forward_tokens(x, step, return_intermediates)
        if step is None:
            x = self.head(self.norm(x.mean(dim=1)))
        return (x, intermediates) if return_intermediates else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` -> ``[B, num_features]``: the normed mean of the final tokens, what the
        official head reads (the input of ``head``; what probes read)."""
        tokens, _ = self.forward_tokens(self._check_input(x), None, False)
        return self.norm(tokens.mean(dim=1))


def _fusion_conv(ndim: int) -> type[nn.Module]:
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class MaskedAutoencoderHiera(MAEHead, Hiera):
    """MAE with a Hiera encoder: multi-scale fusion of the pooled stages, MAE decoder with
    learned positions. The official constructor arguments (``decoder_embed_dim``,
    ``decoder_depth``, ``decoder_num_heads`` besides Hiera's).

    ``forward(x, mask_ratio=0.6, mask=None) -> (loss, pred, label, mask)`` as the official:
    ``pred`` and ``label`` ``[B * M, P]`` at the masked final tokens (row-major per sample),
    ``mask`` bool ``[B, num_mask_units]``, True = keep. ``mask`` may be a prepared
    :class:`HieraStep` (the fast path); with None a mask is drawn as the official does.
    """

    def __init__(self, *, norm_layer: Any = "LayerNorm", **kwargs: Any) -> None:
        Hiera.__init__(self, norm_layer=norm_layer, **kwargs)
        cfg = self.config
        norm = _norm_layer(norm_layer)
        del self.norm, self.head
        encoder_dim = self.blocks[-1].dim_out
        self.encoder_norm = norm(encoder_dim)
        lay = cfg.layout
        self.mask_unit_spatial_shape_final = list(lay.mask_units[-1])
        self.tokens_spatial_shape_final = list(lay.grids[-1])
        self.multi_scale_fusion_heads = nn.ModuleList()
        for stage, end in enumerate(self.stage_ends[: cfg.q_pool]):
            kernel = [
                u // f for u, f in zip(lay.mask_units[stage], lay.mask_units[-1], strict=True)
            ]
            self.multi_scale_fusion_heads.append(
                _fusion_conv(cfg.ndim)(
                    self.blocks[end].dim_out, encoder_dim, kernel_size=kernel, stride=kernel
                )
            )
        self.multi_scale_fusion_heads.append(nn.Identity())  # the final stage as it is
        self.pred_stride = cfg.pred_stride
        self.init_mae_head(
            in_dim=encoder_dim,
            grid=lay.grids[-1],
            patch_dim=self.pred_stride ** min(2, cfg.ndim) * cfg.in_chans,
            dim=cfg.decoder_embed_dim,
            depth=cfg.decoder_depth,
            num_heads=cfg.decoder_num_heads,
            mlp_ratio=cfg.mlp_ratio,
            pos_embed="learned",
        )
        self._initialize_mae_weights()

    def _initialize_mae_weights(self) -> None:
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.decoder_pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights (everything but the decoder), official names."""
        skip = ("decoder_", "mask_token")
        return {k: v for k, v in self.state_dict().items() if not k.startswith(skip)}

    def _random_step(self, x: torch.Tensor, mask_ratio: float) -> HieraStep:
        return self.prepare(self.get_random_mask(x, mask_ratio), batch=x.shape[0], device=x.device)

    def forward_encoder(self, x: torch.Tensor, step: HieraStep) -> torch.Tensor:
        """The fused, normed latents ``[B, K, *mu_f, C]`` of the kept units."""
        _, intermediates = self.forward_tokens(x, step, return_intermediates=True)
        intermediates = intermediates[: self.q_pool] + intermediates[-1:]
        fused: Any = 0.0
        for head, inter in zip(self.multi_scale_fusion_heads, intermediates, strict=True):
            fused = fused + _apply_fusion_head(head, inter)
        return self.encoder_norm(fused)

    def predict(self, x: torch.Tensor, step: HieraStep) -> torch.Tensor:
        """The decoder's prediction for every final-stage token, ``[B, L_f, P]`` in the label
        order of :meth:`pixel_labels` (row-major tokens; ``x`` and ``step`` checked by the
        caller)."""
        latent = self.forward_encoder(x, step)  # B, K, *mu_f, C
        b, d = latent.shape[0], latent.shape[-1]
        latent = self.decoder_embed(latent.reshape(b, -1, d))  # B, K * mu_f, D
        return self.decode(self.place_latents(latent, step.final_index))

    def pixel_labels(self, x: torch.Tensor, step: HieraStep) -> torch.Tensor:
        """The official labels ``[B * M, P]``: pixels of every masked final token, per-patch
        normalised (2-D order ``(c, p, q)``; video: the first frame of each token,
        ``(p, q, c)``)."""
        s = self.pred_stride
        if self.config.ndim == 2:
            patches = _patches_2d(x, s)  # B, L_f, C*s*s
        else:
            patches = _patches_3d(x[:, :, :: self.patch_stride[0]], s)  # B, L_f, s*s*C
        label = gather_visible(patches, step.masked_index)
        return normalize_patches(label).reshape(-1, label.shape[-1])

    def forward(self, x: torch.Tensor, mask_ratio: float = 0.6, mask: Any = None) -> HieraMAEOutput:
        """One MAE pass; see the class docstring."""
        x = self._check_input(x)
        step = self._random_step(x, mask_ratio) if mask is None else self._step(x, mask)
        b = x.shape[0]
        pred = self.predict(x, step)  # B, L_f, P
        masked = gather_visible(pred, step.masked_index)  # B, M, P (row-major)
        label = self.pixel_labels(x, step)
        pred_masked = masked.reshape(-1, masked.shape[-1])
        loss = ((pred_masked - label) ** 2).mean()
        return HieraMAEOutput(loss, pred_masked, label, step.visible_units(b))


def _apply_fusion_head(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[B, K, *mu, C]`` -> ``head`` on every unit -> ``[B, K, *mu', C']``.

    The head is a convolution whose kernel equals its stride (official ``multi_scale_fusion_
    heads``), i.e. a linear map of every kernel-sized block: computed as one ``F.linear`` on the
    channels-last blocks (measured ~2.5x faster than the convolution on this CPU at MAE-Hiera-T's
    shapes; the same numbers up to float rounding), with the convolution's own weights.
    """
    if isinstance(head, nn.Identity):
        return x
    b, k, *mu, c = x.shape
    kernel = tuple(head.kernel_size)
    nd = len(kernel)
    grid = [m // s for m, s in zip(mu, kernel, strict=True)]
    y = x.reshape(b, k, *[d for g, s in zip(grid, kernel, strict=True) for d in (g, s)], c)
    order = [0, 1, *(2 + 2 * i for i in range(nd)), *(3 + 2 * i for i in range(nd)), 2 + 2 * nd]
    y = y.permute(order).reshape(b, k, *grid, -1)  # B, K, *mu', (s1, s2, ..., C)
    weight = head.weight.permute(0, *range(2, 2 + nd), 1).reshape(head.weight.shape[0], -1)
    return F.linear(y, weight, head.bias)  # B, K, *mu', C'


def _patches_2d(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, L, C*s*s]`` in the official 2-D label order ``(c, p, q)``."""
    b, c, h, w = x.shape
    y = x.reshape(b, c, h // size, size, w // size, size).permute(0, 2, 4, 1, 3, 5)
    return y.reshape(b, (h // size) * (w // size), c * size * size)


def _patches_3d(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B, L, s*s*C]`` in the official 3-D label order ``(p, q, c)``."""
    b, c, t, h, w = x.shape
    y = x.reshape(b, c, t, h // size, size, w // size, size).permute(0, 2, 3, 5, 4, 6, 1)
    return y.reshape(b, t * (h // size) * (w // size), size * size * c)


# -- checkpoints ---------------------------------------------------------------------------------


def convert_timm_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, mae: bool = False
) -> dict[str, torch.Tensor]:
    """timm's Hiera names -> the official ones (``head.fc`` -> ``head.projection``,
    ``head.norm`` -> ``norm``, or ``encoder_norm`` for an MAE encoder); official names pass."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("head.fc."):
            key = "head.projection." + key[len("head.fc.") :]
        elif key.startswith("head.norm."):
            key = ("encoder_norm." if mae else "norm.") + key[len("head.norm.") :]
        elif key in ("pos_embed_win", "pos_embed_abs"):
            raise invalid("state_dict", "a Hiera checkpoint (not a windowed-position variant)", key)
        out[key] = value
    return out


def _resample(state: dict[str, torch.Tensor], model: Hiera) -> None:
    """Resample position embeddings learned for another input size (timm's bicubic)."""
    cfg = model.config
    tokens = cfg.tokens_spatial_shape
    if "pos_embed" in state and hasattr(model, "pos_embed"):
        old = state["pos_embed"]
        if old.shape != model.pos_embed.shape:
            side = math.isqrt(old.shape[1])
            if side * side != old.shape[1]:
                raise invalid(
                    "state_dict", "a square position-embedding grid to resample", tuple(old.shape)
                )
            state["pos_embed"] = resample_pos_embed(old, (side, side), tokens)
    if "pos_embed_spatial" in state and hasattr(model, "pos_embed_spatial"):
        old = state["pos_embed_spatial"]
        if old.shape != model.pos_embed_spatial.shape:
            side = math.isqrt(old.shape[1])
            state["pos_embed_spatial"] = resample_pos_embed(old, (side, side), tokens[1:])
        old_t = state["pos_embed_temporal"]
        if old_t.shape != model.pos_embed_temporal.shape:
            t = F.interpolate(
                old_t.transpose(1, 2), size=tokens[0], mode="linear", align_corners=False
            )
            state["pos_embed_temporal"] = t.transpose(1, 2)
    if "decoder_pos_embed" in state and hasattr(model, "decoder_pos_embed"):
        old = state["decoder_pos_embed"]
        if old.shape != model.decoder_pos_embed.shape:
            grid = cfg.layout.grids[-1]
            if len(grid) == 2:
                side = math.isqrt(old.shape[1])
                state["decoder_pos_embed"] = resample_pos_embed(old, (side, side), grid)
            else:
                raise invalid(
                    "state_dict", f"a video decoder for the token grid {grid}", tuple(old.shape)
                )


def load_checkpoint(model: Hiera, path: str | os.PathLike, *, strict: bool = True) -> Hiera:
    """Load an official checkpoint file (``{"model_state": ...}``, or a plain state dict, in
    official or timm names) into ``model``, with ``torch.load(weights_only=True)``; position
    embeddings made for another input size are resampled. A checkpoint with a decoder loads
    into a classifier with ``strict=False``, as the official does."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    state = obj.get("model_state", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, Mapping):
        raise invalid(
            "checkpoint", "a state dict or {'model_state': state dict}", type(obj).__name__
        )
    state = convert_timm_state_dict(state, mae=isinstance(model, MaskedAutoencoderHiera))
    _resample(state, model)
    if "decoder_pos_embed" in state and not hasattr(model, "decoder_pos_embed"):
        strict = False
    if "head.projection.weight" in state and hasattr(model, "head"):
        if state["head.projection.weight"].shape != model.head.projection.weight.shape:
            del state["head.projection.weight"], state["head.projection.bias"]
            strict = False
    model.load_state_dict(state, strict=strict)
    return model


def _build(
    cls: type[Hiera], name: str, pretrained: bool, checkpoint: Any, kwargs: dict[str, Any]
) -> Hiera:
    from .registry import model_info

    if pretrained:
        raise invalid(
            "pretrained",
            "False: the official weights cannot be downloaded here",
            True,
            f"they are published at {WEIGHTS_URL.format(name=name)} (facebookresearch/hiera); "
            "download the file and pass checkpoint=PATH",
        )
    arguments = {**model_info(name).kwargs, **kwargs}
    if checkpoint is not None and "num_classes" not in kwargs and cls is Hiera:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("model_state", state)
        for key in ("head.projection.weight", "head.fc.weight"):
            if key in state:
                arguments["num_classes"] = int(state[key].shape[0])
    model = cls(**arguments)
    return model if checkpoint is None else load_checkpoint(model, checkpoint)


def _factory(name: str, cls: type[Hiera]) -> Any:
    def build(pretrained: bool = False, checkpoint: str | None = None, **kwargs: Any) -> Hiera:
        return _build(cls, name, pretrained, checkpoint, kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"The official ``{name}`` (facebookresearch/hiera), as registered; ``checkpoint=PATH``"
        " loads an official checkpoint file, ``pretrained=True`` raises (no download here)."
    )
    return build


hiera_tiny_224 = _factory("hiera_tiny_224", Hiera)
hiera_small_224 = _factory("hiera_small_224", Hiera)
hiera_base_224 = _factory("hiera_base_224", Hiera)
hiera_base_plus_224 = _factory("hiera_base_plus_224", Hiera)
hiera_large_224 = _factory("hiera_large_224", Hiera)
hiera_huge_224 = _factory("hiera_huge_224", Hiera)
hiera_base_16x224 = _factory("hiera_base_16x224", Hiera)
hiera_base_plus_16x224 = _factory("hiera_base_plus_16x224", Hiera)
hiera_large_16x224 = _factory("hiera_large_16x224", Hiera)
hiera_huge_16x224 = _factory("hiera_huge_16x224", Hiera)
mae_hiera_tiny_224 = _factory("mae_hiera_tiny_224", MaskedAutoencoderHiera)
mae_hiera_small_224 = _factory("mae_hiera_small_224", MaskedAutoencoderHiera)
mae_hiera_base_224 = _factory("mae_hiera_base_224", MaskedAutoencoderHiera)
mae_hiera_base_plus_224 = _factory("mae_hiera_base_plus_224", MaskedAutoencoderHiera)
mae_hiera_large_224 = _factory("mae_hiera_large_224", MaskedAutoencoderHiera)
mae_hiera_huge_224 = _factory("mae_hiera_huge_224", MaskedAutoencoderHiera)
mae_hiera_base_16x224 = _factory("mae_hiera_base_16x224", MaskedAutoencoderHiera)
mae_hiera_base_plus_16x224 = _factory("mae_hiera_base_plus_16x224", MaskedAutoencoderHiera)
mae_hiera_large_16x224 = _factory("mae_hiera_large_16x224", MaskedAutoencoderHiera)
mae_hiera_huge_16x224 = _factory("mae_hiera_huge_16x224", MaskedAutoencoderHiera)
