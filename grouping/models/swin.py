"""GreenMIM Swin: a Swin encoder on visible tokens only, with an MAE decoder.

The encoder is timm's ``SwinTransformer`` without its head, run on the visible tokens of a
masked image (GreenMIM, Huang et al. 2022): window attention inside groups of whole windows
(:class:`grouping.adapter.GroupedWindowAttention`), blocks alternating the unshifted and the
``w // 2``-shifted partition, sparse patch merging of visible 2x2 blocks between stages, final
norm. Its ``state_dict`` has timm's names and shapes (``patch_embed.proj``,
``layers.0.blocks.0.attn.qkv``, ``layers.1.downsample.reduction``, ``norm``), so pretrained
weights load into ``timm.create_model("swin_tiny_patch4_window7_224")`` with
``strict=False`` (only ``head.fc`` is missing).

Conventions (see DESIGN.md):

* A mask is bool, **True = visible (kept)**. The model's masks live on the *mask-unit grid*:
  ``(H / mask_unit, W / mask_unit)`` for images of ``H x W`` pixels. A mask unit (32 px by
  default: 8x8 stage-1 tokens, one final-stage token) is kept or removed as a whole, so every
  visible token's 2x2 block is visible at every stage and patch merging never sees a partial
  block.
* Visible tokens are row-major per sample: ``x_vis[b, i]`` is the ``i``-th True of sample
  ``b``'s token mask. A mask ``[Hu, Wu]`` is shared by the batch (GreenMIM); ``[B, Hu, Wu]``
  gives one mask per sample, all with the same keep count (the adapter then packs windows of
  different samples into the same groups).
* Windows follow timm: per axis, a grid no larger than the window makes the window the grid
  and drops the shift; otherwise the window must divide the grid (the stage geometry comes from
  :func:`grouping.core.geometry.swin_stages`).

Layouts (the grouping plans and their tensors) of every stage, unshifted and shifted, are built
once per step on the host by :func:`prepare_swin` (``model.prepare``, or a
:class:`~grouping.models.step.Preparer` in a DataLoader worker) and reused by all blocks;
``forward`` then runs without solving and without host-device round trips. Solver settings
(``group_size``, ``strategy``, ``layout_mode``) are arguments of ``prepare``.

References:
    Huang, Lang, et al. "Green Hierarchical Vision Transformer for Masked Image Modeling."
    NeurIPS 2022. Liu, Ze, et al. "Swin Transformer: Hierarchical Vision Transformer using
    Shifted Windows." ICCV 2021. He, Kaiming, et al. "Masked Autoencoders Are Scalable Vision
    Learners." CVPR 2022.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from ..adapter import (
    GroupedWindowAttention,
    WindowLayout,
    dense_window_attention,
    shifted_window_mask,
    window_layout,
    window_relative_index,
)
from ..core.errors import as_int_tuple, check_int, invalid
from ..core.geometry import StageGeometry, swin_stages
from ..core.masking import batch_mask, check_mask, sample_masks, upsample_mask
from .layers import DropPath, Mlp, PatchEmbed, gather_visible, patchify
from .mae import MAEHead, MAEOutput, masked_mse, normalize_patches
from .step import Preparer, Step, draw_if_asked

__all__ = [
    "GreenMIMSwin",
    "SwinClassifier",
    "SwinClassifierConfig",
    "SwinConfig",
    "SwinEncoder",
    "SwinMasks",
    "SwinStep",
    "check_unit_mask",
    "greenmim_swin",
    "greenmim_swin_base",
    "greenmim_swin_tiny",
    "prepare_swin",
    "swin_classifier",
]


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SwinConfig:
    """A GreenMIM Swin's architecture: encoder (timm's ``SwinTransformer`` fields), mask unit
    and MAE decoder. Solver settings are not part of it (they are arguments of ``prepare``).

    Attributes:
        img_size: image size ``(H, W)`` in pixels (an int means square).
        patch_size: stage-1 patch size in pixels.
        in_chans: image channels.
        embed_dim: stage-1 width; stage ``i`` has ``embed_dim * 2**i``.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: window size in tokens (clamped per stage as timm does).
        mlp_ratio: MLP hidden width over block width.
        qkv_bias: learn a q/k/v bias.
        norm_eps: LayerNorm eps of the encoder (timm 1e-5; GreenMIM 1e-6).
        mask_unit: mask-unit size in pixels: a multiple of ``patch_size * 2**(stages - 1)``.
        decoder_dim: MAE decoder width.
        decoder_depth: MAE decoder blocks.
        decoder_heads: MAE decoder heads.
        decoder_norm_eps: LayerNorm eps of the decoder.
        norm_pix_loss: normalise every target patch by its mean and variance (MAE).
        drop_path_rate: stochastic depth of the last block (timm's rule: the rate rises
            linearly from 0 over the blocks of all stages); 0 in pretraining, 0.1-0.5 in
            fine-tuning.
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int = 4
    in_chans: int = 3
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-5
    mask_unit: int = 32
    decoder_dim: int = 512
    decoder_depth: int = 1
    decoder_heads: int = 16
    decoder_norm_eps: float = 1e-6
    norm_pix_loss: bool = True
    drop_path_rate: float = 0.0
    stages: tuple[StageGeometry, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        img = as_int_tuple("img_size", self.img_size, 2)
        object.__setattr__(self, "img_size", img)
        p = check_int("patch_size", self.patch_size, minimum=1)
        check_int("in_chans", self.in_chans, minimum=1)
        check_int("embed_dim", self.embed_dim, minimum=1)
        depths = as_int_tuple("depths", self.depths, len(tuple(self.depths)))
        heads = as_int_tuple("num_heads", self.num_heads, len(tuple(self.num_heads)))
        if not depths or len(heads) != len(depths):
            raise invalid("num_heads", f"one int per stage ({len(depths)} stages)", self.num_heads)
        object.__setattr__(self, "depths", depths)
        object.__setattr__(self, "num_heads", heads)
        window = check_int("window_size", self.window_size, minimum=1)
        for axis, size in enumerate(img):
            if size % p:
                raise invalid(
                    "img_size",
                    f"a multiple of patch_size={p} on every axis",
                    self.img_size,
                    f"axis {axis} has {size} px",
                )
        unit = check_int("mask_unit", self.mask_unit, minimum=1)
        step = p * 2 ** (len(depths) - 1)
        if unit % step:
            raise invalid(
                "mask_unit",
                f"a multiple of patch_size * 2**(stages - 1) = {step} px (so that the mask unit "
                f"is a multiple of 2**(stages - 1) = {2 ** (len(depths) - 1)} tokens and patch "
                "merging only sees whole visible 2x2 blocks)",
                self.mask_unit,
            )
        for size in img:
            if size % unit:
                raise invalid(
                    "img_size",
                    f"a multiple of mask_unit={unit} px on every axis (whole mask units)",
                    self.img_size,
                )
        stages = swin_stages((img[0] // p, img[1] // p), window, self.embed_dim, heads)
        for i, s in enumerate(stages):
            if any(r % w for r, w in zip(s.grid, s.window, strict=True)):
                raise invalid(
                    "window_size",
                    f"a window that divides every stage grid (stage {i} is "
                    f"{s.grid[0]}x{s.grid[1]} tokens)",
                    window,
                    "pick an image size whose stage grids the window divides",
                )
        object.__setattr__(self, "stages", stages)
        if self.decoder_dim % self.decoder_heads or self.decoder_dim % 4:
            raise invalid(
                "decoder_dim",
                f"a multiple of 4 and of decoder_heads={self.decoder_heads}",
                self.decoder_dim,
            )
        rate = self.drop_path_rate
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise invalid("drop_path_rate", "a float in [0, 1)", rate)

    @property
    def drop_path_rates(self) -> tuple[tuple[float, ...], ...]:
        """Stochastic depth of every block, per stage: timm's ``linspace(0, rate, blocks)``."""
        rates = np.linspace(0.0, float(self.drop_path_rate), sum(self.depths)).tolist()
        out, start = [], 0
        for depth in self.depths:
            out.append(tuple(rates[start : start + depth]))
            start += depth
        return tuple(out)

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.depths)

    @property
    def grid(self) -> tuple[int, int]:
        """Stage-1 token grid ``(H / patch, W / patch)``."""
        return self.stages[0].grid

    @property
    def unit_tokens(self) -> int:
        """Mask-unit side in stage-1 tokens."""
        return self.mask_unit // self.patch_size

    @property
    def unit_grid(self) -> tuple[int, int]:
        """The mask grid ``(H / mask_unit, W / mask_unit)``."""
        return (self.img_size[0] // self.mask_unit, self.img_size[1] // self.mask_unit)

    @property
    def stage_grids(self) -> tuple[tuple[int, int], ...]:
        """Token grid of every stage."""
        return tuple(s.grid for s in self.stages)

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Width of every stage."""
        return tuple(s.dim for s in self.stages)

    @property
    def stage_windows(self) -> tuple[tuple[tuple[int, int], tuple[int, int]], ...]:
        """``(window, shift)`` of every stage after timm's clamping (shift of odd blocks)."""
        return tuple((s.window, s.shift) for s in self.stages)

    @property
    def num_features(self) -> int:
        """Width of the final stage."""
        return self.stage_dims[-1]

    @property
    def decoder_patch(self) -> int:
        """Pixels per final-stage token (the decoder's patch): ``patch_size * 2**(S-1)``."""
        return self.patch_size * 2 ** (self.num_stages - 1)

    def replace(self, **changes: Any) -> SwinConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


# -- the prepared step ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SwinMasks(Step):
    """The masks of a step, as tensors (what the loss and the dense baseline need).

    Attributes:
        unit_visible: bool ``[1 or B, Hu, Wu]``, the unit mask (True = visible).
        final_visible: bool ``[1 or B, L_f]``, the final-stage token mask (True = visible).
        batch: the batch of per-sample masks, None for a shared mask.
    """

    unit_visible: torch.Tensor
    final_visible: torch.Tensor
    batch: int | None

    def visible_units(self, batch: int) -> torch.Tensor:
        """bool ``[B, Hu, Wu]`` unit mask (broadcast if shared), True = visible."""
        return self.unit_visible.expand(batch, -1, -1)

    def masked_positions(self, batch: int) -> torch.Tensor:
        """bool ``[B, L_f]``: True at masked final-stage tokens (where the loss is taken)."""
        return ~self.final_visible.expand(batch, -1)


@dataclass(frozen=True, eq=False)
class SwinStep(SwinMasks):
    """Everything the encoder and decoder need for one mask besides the weights.

    Built by :func:`prepare_swin`. Index tensors are ``[N]`` when the mask is shared by the
    batch and ``[B, N]`` (one row per sample) otherwise, positions within each sample (see
    :func:`grouping.models.layers.gather_visible`).

    Attributes:
        token_masks: bool numpy token mask of every stage, ``[H_i, W_i]`` or ``[B, H_i, W_i]``.
        embed_index: int64 ``[N_0]`` / ``[B, N_0]``: the visible stage-1 tokens, positions in
            the row-major grid.
        layouts: per stage, the layouts of the unshifted and the shifted partition (the same
            object twice where the stage does not shift).
        merge_index: per stage (None for stage 0), int64 ``[4 * N_i]`` / ``[B, 4 * N_i]``: the
            four children of every visible merged token in timm's order, as positions among
            the previous stage's visible tokens.
        final_index: int64 ``[N_f]`` / ``[B, N_f]``: positions of the visible final-stage
            tokens, where the decoder puts their latents.
    """

    token_masks: tuple[NDArray[np.bool_], ...]
    embed_index: torch.Tensor
    layouts: tuple[tuple[WindowLayout, WindowLayout], ...]
    merge_index: tuple[torch.Tensor | None, ...]
    final_index: torch.Tensor

    @property
    def num_visible(self) -> tuple[int, ...]:
        """Visible tokens per sample at every stage."""
        return tuple(int(m.sum()) // (self.batch or 1) for m in self.token_masks)


def check_unit_mask(config: SwinConfig, mask: Any, batch: int | None = None) -> NDArray[np.bool_]:
    """Validate a mask on the unit grid and return it as a private read-only numpy array.

    Args:
        config: the architecture.
        mask: bool ``[Hu, Wu]`` or ``[B, Hu, Wu]`` (numpy or torch), True = visible; None
            means every unit visible.
        batch: the batch it must fit, if known.
    """
    units = config.unit_grid
    if mask is None:
        return np.ones(units, dtype=np.bool_)
    expected = (
        f"a bool mask [{units[0]}, {units[1]}] or [B, {units[0]}, {units[1]}] on the "
        f"mask-unit grid ({config.mask_unit} px units), True = visible"
    )
    return check_mask(
        mask,
        units,
        batch=batch,
        expected=expected,
        hint="draw them with grouping.sample_masks",
        shape_hint="a token-level mask is not accepted",
    ).mask


def _merge_index(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Children of every visible 2x2 block, as positions in the visible-token order.

    Args:
        mask: bool ``[S, H, W]`` token masks (whole 2x2 blocks).

    Returns:
        int64 ``[S, N', 4]``: for the ``n``-th visible token (row-major) of the merged grid of
        sample ``s``, the positions among sample ``s``'s visible tokens of its children
        ``(0,0), (1,0), (0,1), (1,1)`` in ``(dh, dw)`` (timm's concatenation order).
    """
    s, h, w = mask.shape
    rank = np.cumsum(mask.reshape(s, -1), axis=1).reshape(s, h, w) - 1  # position if visible
    rank = np.where(mask, rank, -1)
    kids = np.stack(
        [rank[:, 0::2, 0::2], rank[:, 1::2, 0::2], rank[:, 0::2, 1::2], rank[:, 1::2, 1::2]], -1
    )  # S, H/2, W/2, 4
    merged = mask[:, 0::2, 0::2]
    out = kids[merged].reshape(s, -1, 4)
    assert (out >= 0).all(), "a visible 2x2 block is partly masked"
    return out


def _positions(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """``[S, H, W]`` masks with equal counts -> int64 ``[S, N]`` row-major visible positions."""
    s = mask.shape[0]
    return np.nonzero(mask.reshape(s, -1))[1].reshape(s, -1)


def prepare_swin(
    config: SwinConfig,
    mask: Any = None,
    *,
    batch: int | None = None,
    group_size: int | str | None = None,
    strategy: str = "auto",
    layout_mode: str = "auto",
) -> SwinStep:
    """Build the layouts and indices of every stage for one mask, on the CPU.

    This is ``model.prepare`` without the weights (what a
    :class:`~grouping.models.step.Preparer` calls in a DataLoader worker).

    Args:
        config: the architecture.
        mask: bool ``[Hu, Wu]`` (shared by the batch) or ``[B, Hu, Wu]`` (per sample),
            True = visible; None = nothing masked.
        batch: the batch size, checked against per-sample masks.
        group_size: group capacity for :func:`grouping.solve` (None: the largest window count,
            GreenMIM's choice; an int; ``"sweep"``: the cheapest).
        strategy: solver strategy for :func:`grouping.solve`.
        layout_mode: ``"auto"`` (the adapter picks grouped windows or one masked group per
            sample by the cost model, stage by stage), ``"grouped"`` or ``"mask"``.

    Returns:
        The :class:`SwinStep`.
    """
    if layout_mode not in ("auto", "grouped", "mask"):
        raise invalid("layout_mode", "one of 'auto', 'grouped', 'mask'", layout_mode)
    unit_mask = check_unit_mask(config, mask, batch)
    shared = unit_mask.ndim == 2
    masks = unit_mask[None] if shared else unit_mask  # S, Hu, Wu

    def index(positions: NDArray[np.int64]) -> torch.Tensor:  # S, N -> [N] or [B, N]
        array = positions[0] if shared else positions
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))

    token_masks, layouts, merges = [], [], []
    stage_mask = upsample_mask(masks, config.unit_tokens)  # S, H0, W0
    embed = index(_positions(stage_mask))
    for i, stage in enumerate(config.stages):
        if i > 0:
            children = _merge_index(stage_mask)  # S, N_i, 4
            merges.append(index(children.reshape(children.shape[0], -1)))
            stage_mask = stage_mask[:, 0::2, 0::2]
        else:
            merges.append(None)
        m = np.ascontiguousarray(stage_mask[0] if shared else stage_mask)
        token_masks.append(m)
        options = dict(
            group_size=group_size, strategy=strategy, channels=stage.dim, mode=layout_mode
        )
        plain = window_layout(m, stage.window, shift=0, **options)
        shifted = (
            window_layout(m, stage.window, shift=stage.shift, **options)
            if any(stage.shift)
            else plain
        )
        layouts.append((plain, shifted))
    return SwinStep(
        unit_visible=torch.from_numpy(masks.copy()),
        final_visible=torch.from_numpy(stage_mask.reshape(stage_mask.shape[0], -1).copy()),
        batch=None if shared else int(unit_mask.shape[0]),
        token_masks=tuple(token_masks),
        embed_index=embed,
        layouts=tuple(layouts),
        merge_index=tuple(merges),
        final_index=index(_positions(stage_mask)),
    )


# -- blocks --------------------------------------------------------------------------------------


class SwinBlock(nn.Module):
    """A Swin block (timm's names) that runs grouped on visible tokens or dense on all.

    Args:
        dim: width.
        num_heads: heads.
        grid: the stage's token grid (for the dense path's buffers).
        window: ``(wh, ww)`` after clamping.
        shift: ``(sh, sw)`` of this block (zero for even blocks).
        mlp_ratio, qkv_bias, norm_eps: as in :class:`SwinConfig`.
        drop_path: this block's stochastic depth (per sample, timm's scaling).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int],
        window: tuple[int, int],
        shift: tuple[int, int],
        mlp_ratio: float,
        qkv_bias: bool,
        norm_eps: float,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = GroupedWindowAttention(dim, num_heads, window, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)
        # derived index tensors of the dense path: non-persistent, not in the state_dict
        self.register_buffer("dense_index", window_relative_index(window), persistent=False)
        self.register_buffer(
            "dense_mask", shifted_window_mask(grid, window, shift), persistent=False
        )

    def forward(self, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        """``x [B, N_vis, C]`` visible tokens -> ``[B, N_vis, C]``."""
        x = x + self.drop_path(self.attn(self.norm1(x), layout))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, H, W, C]`` all tokens -> ``[B, H, W, C]`` (ordinary shifted windows)."""
        y = dense_window_attention(
            self.norm1(x),
            self.attn,
            self.shift,
            bias_index=self.dense_index,
            region_mask=self.dense_mask,
        )
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """timm's ``PatchMerging`` (``norm`` over the 4C concatenation, then ``reduction``)."""

    def __init__(self, dim: int, norm_eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Merge visible 2x2 blocks: ``[B, N, C]`` -> ``[B, N/4, 2C]``.

        Args:
            x: visible tokens, row-major per sample.
            index: int64 ``[N]`` or ``[B, N]``: the children of every merged token, four
                consecutive entries each, in timm's order (see :class:`SwinStep`).
        """
        b, _, c = x.shape
        x = gather_visible(x, index).reshape(b, -1, 4 * c)  # B, N/4, 4C
        return self.reduction(self.norm(x))

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C]`` -> ``[B, H/2, W/2, 2C]``, timm's ``(0,0), (1,0), (0,1), (1,1)``."""
        b, h, w, c = x.shape
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5)  # B, h, w, dw, dh, C
        return self.reduction(self.norm(x.reshape(b, h // 2, w // 2, 4 * c)))


class SwinStage(nn.Module):
    """A stage: patch merging first (stages 1..S-1, as in current timm), then the blocks."""

    def __init__(self, config: SwinConfig, index: int) -> None:
        super().__init__()
        grid, dim, heads, window, shift = config.stages[index]
        if index > 0:
            self.downsample = PatchMerging(dim // 2, config.norm_eps)
        else:
            self.downsample = None
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                heads,
                grid,
                window,
                shift if j % 2 else (0, 0),
                config.mlp_ratio,
                config.qkv_bias,
                config.norm_eps,
                config.drop_path_rates[index][j],
            )
            for j in range(config.depths[index])
        )

    def forward(
        self,
        x: torch.Tensor,
        layouts: tuple[WindowLayout, WindowLayout],
        merge_index: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.downsample is not None:
            assert merge_index is not None
            x = self.downsample(x, merge_index)
        for j, blk in enumerate(self.blocks):
            x = blk(x, layouts[j % 2])
        return x

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample.forward_dense(x)
        for blk in self.blocks:
            x = blk.forward_dense(x)
        return x


# -- the models ----------------------------------------------------------------------------------


def check_images(images: Any, config: SwinConfig) -> torch.Tensor:
    """Raise :class:`~grouping.GroupingValueError` unless ``images`` is a float ``[B, C, H, W]``
    tensor of the config's channels and size."""
    expected = f"a float tensor [B, {config.in_chans}, {config.img_size[0]}, {config.img_size[1]}]"
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise invalid("images", expected, type(images).__name__)
    if images.dim() != 4 or images.shape[0] < 1:
        raise invalid("images", expected, f"shape {tuple(images.shape)}")
    if images.shape[1] != config.in_chans:
        raise invalid(
            "images",
            expected,
            f"shape {tuple(images.shape)}",
            f"the model has in_chans={config.in_chans}",
        )
    if tuple(images.shape[2:]) != config.img_size:
        raise invalid(
            "images",
            expected,
            f"shape {tuple(images.shape)}",
            "build the model with SwinConfig(img_size=...) for other sizes",
        )
    return images


class SwinEncoder(nn.Module):
    """timm's ``SwinTransformer`` without the head, on visible tokens (or dense on all).

    Args:
        config: the architecture.

    Examples:
        >>> cfg = SwinConfig(img_size=64, embed_dim=16, depths=(2, 2, 2), num_heads=(2, 2, 4),
        ...                  window_size=4, mask_unit=16)
        >>> enc = SwinEncoder(cfg)
        >>> mask = np.zeros(cfg.unit_grid, dtype=bool); mask[0] = True   # [4, 4] units
        >>> step = enc.prepare(mask)                                    # solved once, here
        >>> enc(torch.randn(2, 3, 64, 64), step).shape                  # 4 visible units
        torch.Size([2, 4, 64])
    """

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(
            config.in_chans, config.embed_dim, config.patch_size, norm_eps=config.norm_eps
        )
        self.layers = nn.ModuleList(SwinStage(config, i) for i in range(config.num_stages))
        self.norm = nn.LayerNorm(config.num_features, eps=config.norm_eps)
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith("relative_position_bias_table"):
                nn.init.trunc_normal_(param, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # timm's init: truncated normal (std 0.02) linears with zero bias, unit LayerNorms
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def prepare(
        self,
        mask: Any = None,
        *,
        batch: int | None = None,
        device: torch.device | str | None = None,
        **options: Any,
    ) -> SwinStep:
        """:func:`prepare_swin` for this encoder's config, moved to ``device``.

        Args:
            mask: see :func:`prepare_swin`.
            batch: see :func:`prepare_swin`.
            device: where the tensors go (the images' device); default the CPU.
            **options: solver settings (``group_size``, ``strategy``, ``layout_mode``).
        """
        step = prepare_swin(self.config, mask, batch=batch, **options)
        return step if device is None else step.to(device)

    def forward(self, images: torch.Tensor, mask: Any = None) -> torch.Tensor:
        """Encode the visible tokens.

        Args:
            images: ``[B, C, H, W]``.
            mask: a prepared :class:`SwinStep`; or, the slow path that solves here, a unit
                mask (see :func:`prepare_swin`) or None (nothing masked).

        Returns:
            ``[B, N_f, C_f]``: the final-norm features of the visible final-stage tokens,
            row-major per sample (with nothing masked, timm's ``forward_features`` output
            ``[B, H_f, W_f, C_f]`` flattened).
        """
        images = check_images(images, self.config)
        b = images.shape[0]
        step = mask
        if not isinstance(step, SwinStep):
            step = self.prepare(mask, batch=b, device=images.device)
        step.check(b, images.device)
        x = self.patch_embed.forward_visible(images, step.embed_index)  # B, N_0, E
        for stage, layouts, index in zip(self.layers, step.layouts, step.merge_index, strict=True):
            x = stage(x, layouts, index)
        return self.norm(x)

    def forward_dense(
        self,
        images: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode all tokens with ordinary shifted-window attention (timm's computation).

        Args:
            images: ``[B, C, H, W]``.
            token_mask: optional bool ``[B or 1, H_0, W_0]`` stage-1 token mask, True =
                visible; masked tokens are replaced by ``mask_token`` after the patch
                embedding (SimMIM).
            mask_token: ``[E]`` (any shape broadcasting to it), required with ``token_mask``.

        Returns:
            ``[B, H_f, W_f, C_f]``.
        """
        images = check_images(images, self.config)
        x = self.patch_embed(images)  # B, H0, W0, E
        if token_mask is not None:
            if mask_token is None:
                raise invalid("mask_token", "a tensor [E] with a token_mask", mask_token)
            x = torch.where(token_mask[..., None], x, mask_token.reshape(-1).to(x.dtype))
        for stage in self.layers:
            x = stage.forward_dense(x)
        return self.norm(x)


class GreenMIMSwin(MAEHead, nn.Module):
    """GreenMIM: the Swin encoder on visible tokens with an MAE decoder.

    The decoder is GreenMIM's (one ViT block of width 512, 16 heads, fixed 2-D sin-cos
    positions, predicting the pixels of every final-stage token, 32 px for the presets), except
    that every visible latent is placed back at its own position: the published decoder
    appends the latents, which the encoder returns in row-major order, and un-shuffles them
    with MAE's random ``ids_restore``, which scatters them to the wrong positions.

    Args:
        config: the architecture.

    Examples:
        >>> cfg = SwinConfig(img_size=64, embed_dim=16, depths=(2, 2, 2), num_heads=(2, 2, 4),
        ...                  window_size=4, mask_unit=16, decoder_dim=32, decoder_heads=2)
        >>> model = GreenMIMSwin(cfg)
        >>> step = model.prepare(model.sample_mask(2, 0.75, rng=0))   # in a worker, ideally
        >>> loss, pred, mask = model(torch.randn(2, 3, 64, 64), step)
        >>> pred.shape, mask.shape, int(mask[0].sum())   # 16 units of 16 px, 4 visible
        (torch.Size([2, 16, 768]), torch.Size([2, 4, 4]), 4)
    """

    def __init__(self, config: SwinConfig) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.encoder = SwinEncoder(config)
        p = config.decoder_patch
        self.init_mae_head(
            in_dim=config.num_features,
            grid=config.stage_grids[-1],
            patch_dim=p * p * config.in_chans,
            dim=config.decoder_dim,
            depth=config.decoder_depth,
            num_heads=config.decoder_heads,
            mlp_ratio=config.mlp_ratio,
            norm_eps=config.decoder_norm_eps,
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # MAE / GreenMIM: xavier-uniform linears (the encoder's too) and patch embedding,
        # zero biases, unit LayerNorms, N(0, 0.02) mask token; the bias tables keep timm's init
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.encoder.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.mask_token, std=0.02)

    # -- the step protocol ------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image."""
        return (self.config.in_chans, *self.config.img_size)

    @property
    def mask_grid(self) -> tuple[int, int]:
        """The grid masks are drawn on: the mask-unit grid ``(Hu, Wu)``."""
        return self.config.unit_grid

    def preparer(self, **options: Any) -> Preparer:
        """The picklable ``prepare`` (config and solver settings, no weights), for
        DataLoader workers: ``preparer(mask, batch=B)`` returns a CPU :class:`SwinStep`.

        Args:
            **options: ``group_size``, ``strategy``, ``layout_mode`` (see
                :func:`prepare_swin`).
        """
        prepare_swin(self.config, None, **options)  # validates the settings now
        return Preparer(prepare_swin, self.config, self.mask_grid, dict(options))

    def prepare(
        self,
        mask: Any = None,
        *,
        batch: int | None = None,
        device: torch.device | str | None = None,
        **options: Any,
    ) -> SwinStep:
        """Build a step (see :func:`prepare_swin`) and move it to ``device``."""
        return self.encoder.prepare(mask, batch=batch, device=device, **options)

    def sample_mask(
        self,
        batch: int,
        mask_ratio: float = 0.75,
        *,
        rng: np.random.Generator | int | None = None,
        per_sample: bool = False,
    ) -> NDArray[np.bool_]:
        """A random unit mask: ``[Hu, Wu]`` shared (GreenMIM) or ``[B, Hu, Wu]`` per sample."""
        grid = self.config.unit_grid
        if per_sample:
            return sample_masks(batch, grid, mask_ratio, rng=rng)
        return batch_mask(grid, mask_ratio, rng=rng)

    def _step(
        self,
        images: torch.Tensor,
        mask: Any,
        mask_ratio: float | None,
        rng: Any,
        per_sample: bool,
    ) -> SwinStep:
        images = check_images(images, self.config)
        if isinstance(mask, SwinStep):
            mask.check(images.shape[0], images.device)
            return mask
        if mask is None:
            mask = draw_if_asked(self, images.shape[0], mask_ratio, rng, per_sample)
        return self.prepare(mask, batch=images.shape[0], device=images.device)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights, in timm's ``SwinTransformer`` names (what ``--save`` writes)."""
        return self.encoder.state_dict()

    # -- decoder and loss -------------------------------------------------------------------

    def loss(self, images: torch.Tensor, pred: torch.Tensor, step: SwinMasks) -> torch.Tensor:
        """Mean squared error on the masked patches only (0 if nothing is masked)."""
        target = patchify(images, self.config.decoder_patch)  # B, L_f, P*P*C
        if self.config.norm_pix_loss:
            target = normalize_patches(target)
        return masked_mse(pred, target, step.masked_positions(images.shape[0]))

    def forward(
        self,
        images: torch.Tensor,
        mask: Any = None,
        *,
        mask_ratio: float | None = None,
        rng: np.random.Generator | int | None = None,
        per_sample: bool = False,
    ) -> MAEOutput:
        """One MAE pass.

        Args:
            images: ``[B, C, H, W]``.
            mask: a prepared :class:`SwinStep` (the fast path: nothing is solved here); or,
                the slow path that solves inside ``forward``, a bool ``[Hu, Wu]`` /
                ``[B, Hu, Wu]`` unit mask (True = visible); or None: a mask drawn with
                ``mask_ratio`` and ``rng`` when ``mask_ratio`` is given, else nothing masked
                (the loss is then 0).
            mask_ratio: fraction of units masked in a drawn mask (None: no draw).
            rng: ``numpy.random.Generator``, int seed or None, for drawing.
            per_sample: draw one mask per sample instead of one for the batch.

        Returns:
            :class:`~grouping.models.mae.MAEOutput` ``(loss, pred, mask)``: the scalar loss
            on masked patches, ``pred [B, L_f, P*P*C]`` the pixels predicted for every
            final-stage token (MAE's patch order, see :func:`grouping.models.layers.patchify`),
            and ``mask`` bool ``[B, Hu, Wu]`` (True = visible).
        """
        step = self._step(images, mask, mask_ratio, rng, per_sample)
        latent = self.encoder(images, step)  # B, N_f, C_f
        pred = self.decode(self.place_latents(self.decoder_embed(latent), step.final_index))
        return MAEOutput(self.loss(images, pred, step), pred, step.visible_units(images.shape[0]))


class ClassifierHead(nn.Module):
    """timm's ``ClassifierHead`` of a Swin (``fc``, after average pooling and dropout)."""

    def __init__(self, dim: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``[B, H, W, C]`` -> ``[B, num_classes]`` (``[B, C]`` with ``pre_logits``)."""
        x = self.drop(x.mean(dim=(1, 2)))
        return x if pre_logits else self.fc(x)


@dataclass(frozen=True)
class SwinClassifierConfig(SwinConfig):
    """A Swin classifier's architecture: a :class:`SwinConfig` (its decoder and mask-unit
    fields unused) and the head.

    Attributes:
        num_classes: classes of the head (0: no head; the pooled features are returned).
        drop_rate: dropout before the head.
    """

    num_classes: int = 1000
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("num_classes", self.num_classes, minimum=0)
        if not 0.0 <= self.drop_rate < 1.0:
            raise invalid("drop_rate", "a probability in [0, 1)", self.drop_rate)


class SwinClassifier(SwinEncoder):
    """timm's ``SwinTransformer`` classifier, with its parameter names: the encoder (dense on
    all tokens), average pooling and a linear head ``head.fc`` (what fine-tuning trains).

    A GreenMIM or SimMIM encoder (``encoder_state_dict()``) loads into it with only
    ``head.fc.*`` missing; ``state_dict()`` loads into ``timm.models.SwinTransformer`` of the
    same architecture.

    Args:
        config: the architecture and the head.

    Examples:
        >>> cfg = SwinClassifierConfig(img_size=64, embed_dim=16, depths=(2, 2, 2),
        ...                            num_heads=(2, 2, 4), window_size=4, num_classes=10)
        >>> SwinClassifier(cfg)(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 10])
    """

    config: SwinClassifierConfig

    def __init__(self, config: SwinClassifierConfig) -> None:
        super().__init__(config)
        self.num_classes = config.num_classes
        self.head = ClassifierHead(config.num_features, config.num_classes, config.drop_rate)
        self.head.apply(self._init_weights)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input."""
        return (self.config.in_chans, *self.config.img_size)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, num_features]``: the pooled final-norm features (timm's
        ``forward_head(..., pre_logits=True)``), what probes read."""
        return self.head(self.forward_dense(images), pre_logits=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``[B, C, H, W]`` -> logits ``[B, num_classes]``."""
        return self.head(self.forward_dense(images))


# -- entry points --------------------------------------------------------------------------------


def greenmim_swin(**kwargs: Any) -> GreenMIMSwin:
    """A :class:`GreenMIMSwin` of the :class:`SwinConfig` fields ``kwargs`` (the registry's
    entry point for the ``greenmim_swin_*`` names)."""
    return GreenMIMSwin(SwinConfig(**kwargs))


def swin_classifier(**kwargs: Any) -> SwinClassifier:
    """A :class:`SwinClassifier` of the :class:`SwinClassifierConfig` fields ``kwargs`` (the
    registry's entry point for timm's names ``swin_tiny_patch4_window7_224``, ...)."""
    return SwinClassifier(SwinClassifierConfig(**kwargs))


def greenmim_swin_tiny(**overrides: Any) -> GreenMIMSwin:
    """Swin-T (timm's ``swin_tiny_patch4_window7_224``, eps 1e-5) with GreenMIM's decoder."""
    from .registry import create_model

    return create_model("greenmim_swin_tiny", **overrides)


def greenmim_swin_base(window_size: int = 7, **overrides: Any) -> GreenMIMSwin:
    """GreenMIM's Swin-B (eps 1e-6), window 7 or 14 (``..._patch4_win14_dec512b1``)."""
    from .registry import create_model

    if isinstance(window_size, bool) or not isinstance(window_size, numbers.Integral):
        raise invalid("window_size", "7 or 14", window_size)
    if window_size not in (7, 14):
        raise invalid("window_size", "7 or 14 (GreenMIM's Swin-B presets)", window_size)
    name = "greenmim_swin_base" if window_size == 7 else "greenmim_swin_base_w14"
    return create_model(name, **overrides)
