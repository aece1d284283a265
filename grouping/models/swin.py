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
  and drops the shift; otherwise the window must divide the grid.

Layouts (the grouping plans and their tensors) of every stage, unshifted and shifted, are built
once per step on the host by :meth:`SwinEncoder.prepare` and reused by all blocks; ``forward``
then runs without host-device round trips.

References:
    Huang, Lang, et al. "Green Hierarchical Vision Transformer for Masked Image Modeling."
    NeurIPS 2022. Liu, Ze, et al. "Swin Transformer: Hierarchical Vision Transformer using
    Shifted Windows." ICCV 2021. He, Kaiming, et al. "Masked Autoencoders Are Scalable Vision
    Learners." CVPR 2022. Xie, Zhenda, et al. "SimMIM: A Simple Framework for Masked Image
    Modeling." CVPR 2022.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from ..adapter import GroupedWindowAttention, WindowLayout, window_layout
from ..core.errors import as_int_tuple, check_int, invalid
from ..core.masking import batch_mask, sample_masks, upsample_mask
from ._pos_embed import sincos_2d

__all__ = [
    "PRESETS",
    "GreenMIMSwin",
    "SimMIMSwin",
    "SwinConfig",
    "SwinEncoder",
    "SwinStep",
    "create_model",
    "greenmim_swin_base",
    "greenmim_swin_tiny",
    "preset_config",
]


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SwinConfig:
    """A GreenMIM Swin: encoder (timm's ``SwinTransformer`` fields), masking and MAE decoder.

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
        group_size: group capacity for :func:`grouping.solve` (None: the largest window count,
            GreenMIM's choice; an int; ``"sweep"``: the cheapest).
        strategy: solver strategy for :func:`grouping.solve`.
        layout_mode: ``"auto"`` (the adapter picks grouped windows or one masked group per
            sample by the cost model, stage by stage), ``"grouped"`` or ``"mask"``.
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
    group_size: int | str | None = None
    strategy: str = "auto"
    layout_mode: str = "auto"
    _stages: tuple[tuple[Any, ...], ...] = field(init=False, repr=False, compare=False)

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
        stages = len(depths)
        for axis, size in enumerate(img):
            if size % p:
                raise invalid(
                    "img_size",
                    f"a multiple of patch_size={p} on every axis",
                    self.img_size,
                    f"axis {axis} has {size} px",
                )
        unit = check_int("mask_unit", self.mask_unit, minimum=1)
        step = p * 2 ** (stages - 1)
        if unit % step:
            raise invalid(
                "mask_unit",
                f"a multiple of patch_size * 2**(stages - 1) = {step} px (so that the mask unit "
                f"is a multiple of 2**(stages - 1) = {2 ** (stages - 1)} tokens and patch "
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
        grid = (img[0] // p, img[1] // p)
        out = []
        for i in range(stages):
            dim = self.embed_dim * 2**i
            if dim % heads[i]:
                raise invalid("num_heads", f"stage {i}: a divisor of its width {dim}", heads)
            g = (grid[0] >> i, grid[1] >> i)
            win = tuple(r if r <= window else window for r in g)
            shift = tuple(0 if r <= w else w // 2 for r, w in zip(g, win, strict=True))
            for r, w in zip(g, win, strict=True):
                if r % w:
                    raise invalid(
                        "window_size",
                        f"a window that divides every stage grid (stage {i} is {g[0]}x{g[1]} "
                        "tokens)",
                        window,
                        "pick an image size whose stage grids the window divides",
                    )
            out.append((g, dim, heads[i], win, shift))
        object.__setattr__(self, "_stages", tuple(out))
        if self.layout_mode not in ("auto", "grouped", "mask"):
            raise invalid("layout_mode", "one of 'auto', 'grouped', 'mask'", self.layout_mode)
        if self.decoder_dim % self.decoder_heads or self.decoder_dim % 4:
            raise invalid(
                "decoder_dim",
                f"a multiple of 4 and of decoder_heads={self.decoder_heads}",
                self.decoder_dim,
            )

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.depths)

    @property
    def grid(self) -> tuple[int, int]:
        """Stage-1 token grid ``(H / patch, W / patch)``."""
        return self._stages[0][0]

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
        return tuple(s[0] for s in self._stages)

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Width of every stage."""
        return tuple(s[1] for s in self._stages)

    @property
    def stage_windows(self) -> tuple[tuple[tuple[int, int], tuple[int, int]], ...]:
        """``(window, shift)`` of every stage after timm's clamping (shift of odd blocks)."""
        return tuple((s[3], s[4]) for s in self._stages)

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


PRESETS: dict[str, dict[str, Any]] = {
    # Swin-T (timm's swin_tiny_patch4_window7_224, LayerNorm eps 1e-5) with GreenMIM's decoder.
    "greenmim_swin_tiny": dict(
        embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, norm_eps=1e-5
    ),
    # GreenMIM's green_mim_swin_base_patch4_dec512b1 (window 7) and _win14_ (window 14).
    "greenmim_swin_base": dict(
        embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=7, norm_eps=1e-6
    ),
}


def preset_config(name: str, **overrides: Any) -> SwinConfig:
    """The :class:`SwinConfig` of a preset (``"greenmim_swin_tiny"``, ``"greenmim_swin_base"``).

    Args:
        name: preset name.
        **overrides: config fields to change (e.g. ``window_size=14``, ``img_size=192``).
    """
    if name not in PRESETS:
        raise invalid("name", f"one of {sorted(PRESETS)}", name)
    return SwinConfig(**{**PRESETS[name], **overrides})


# -- plain functions -----------------------------------------------------------------------------


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into non-overlapping patches, MAE's pixel order ``(p, q, c)``.

    Args:
        images: ``[B, C, H, W]``.
        patch: patch side ``P`` in pixels (divides ``H`` and ``W``).

    Returns:
        ``[B, (H/P) * (W/P), P * P * C]``, patches row-major.
    """
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)  # B, C, h, P, w, P
    x = x.permute(0, 2, 4, 3, 5, 1)  # B, h, w, P, P, C
    return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B, h*w, P*P*C]`` -> ``[B, C, h*P, w*P]``."""
    b = patches.shape[0]
    h, w = grid
    x = patches.reshape(b, h, w, patch, patch, -1)  # B, h, w, P, P, C
    x = x.permute(0, 5, 1, 3, 2, 4)  # B, C, h, P, w, P
    return x.reshape(b, -1, h * patch, w * patch)


def _dense_relative_index(window: tuple[int, int]) -> torch.Tensor:
    """Relative position index ``[N, N]`` of a full window (timm's convention)."""
    ys, xs = torch.meshgrid(torch.arange(window[0]), torch.arange(window[1]), indexing="ij")
    coords = torch.stack([ys.reshape(-1), xs.reshape(-1)], -1)  # N, 2
    d = coords[:, None] - coords[None, :]  # N, N, 2 (query minus key)
    return (d[..., 0] + window[0] - 1) * (2 * window[1] - 1) + (d[..., 1] + window[1] - 1)


def _dense_region_mask(
    grid: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]
) -> torch.Tensor | None:
    """Swin's shifted-window mask ``[nW, N, N]`` (True = same region), None without shift."""
    if not any(shift):
        return None
    labels = []
    for n, w, s in zip(grid, window, shift, strict=True):
        r = torch.zeros(n, dtype=torch.long)  # regions [0, n-w), [n-w, n-s), [n-s, n) if s
        if s:
            r[n - w : n - s] = 1
            r[n - s :] = 2
        labels.append(r)
    label = labels[0][:, None] * 3 + labels[1][None, :]  # H, W (of the rolled grid)
    nh, nw = grid[0] // window[0], grid[1] // window[1]
    lw = label.reshape(nh, window[0], nw, window[1]).permute(0, 2, 1, 3).reshape(nh * nw, -1)
    return lw[:, :, None] == lw[:, None, :]  # nW, N, N


def dense_window_attention(
    x: torch.Tensor,
    attn: GroupedWindowAttention,
    window: tuple[int, int],
    shift: tuple[int, int],
    bias_index: torch.Tensor,
    region_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Ordinary (shifted-)window attention over all tokens, with ``attn``'s weights.

    Cyclic shift, window partition, attention with the relative position bias (and ``-inf``
    across the regions of a shifted window), reverse partition and shift: what timm's
    ``SwinTransformerBlock._attn`` computes, with masked pairs at weight exactly 0. The
    attention runs on the same path as ``attn``'s grouped attention (``attn.attn_impl``).

    Args:
        x: ``[B, H, W, C]``.
        attn: the module whose ``qkv``, ``proj`` and bias table are used.
        window: ``(wh, ww)``, dividing ``(H, W)``.
        shift: ``(sh, sw)``.
        bias_index: int64 ``[N, N]`` from :func:`_dense_relative_index`.
        region_mask: bool ``[nW, N, N]`` from :func:`_dense_region_mask` or None.

    Returns:
        ``[B, H, W, C]``.
    """
    b, hh, ww, c = x.shape
    (wh, wwin), (sh, sw) = window, shift
    heads, n = attn.num_heads, wh * wwin
    nh, nw = hh // wh, ww // wwin
    if sh or sw:
        x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
    x = x.reshape(b, nh, wh, nw, wwin, c).permute(0, 1, 3, 2, 4, 5)  # B, nh, nw, wh, ww, C
    x = x.reshape(b, nh * nw, n, c)  # B, nW, N, C
    qkv = attn.qkv(x).reshape(b, nh * nw, n, 3, heads, c // heads)  # B, nW, N, 3, h, d
    q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # 3 x [B, nW, h, N, d]
    bias = attn.relative_position_bias_table[bias_index.view(-1)].view(n, n, heads)
    bias = bias.permute(2, 0, 1).to(q.dtype)  # h, N, N
    if region_mask is not None:
        bias = bias.masked_fill(~region_mask[:, None], float("-inf"))  # nW, h, N, N
    if attn.attn_impl == "sdpa":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    else:  # the same path as the grouped attention's (the faster one on CPU)
        out = ((q * attn.scale) @ k.transpose(-2, -1) + bias).softmax(-1) @ v  # B, nW, h, N, d
    out = attn.proj(out.transpose(2, 3).reshape(b, nh * nw, n, c))  # B, nW, N, C
    out = out.reshape(b, nh, nw, wh, wwin, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hh, ww, c)
    if sh or sw:
        out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
    return out


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


# -- the prepared step ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SwinStep:
    """Everything the encoder needs for one mask besides the weights (built by ``prepare``).

    Attributes:
        unit_mask: bool ``[Hu, Wu]`` (shared) or ``[B, Hu, Wu]`` (per-sample), True = visible.
        token_masks: bool token mask of every stage, ``[H_i, W_i]`` or ``[B, H_i, W_i]``.
        embed_index: int64, the visible stage-1 tokens: ``[N_0]`` positions in the row-major
            grid (shared), or ``[B * N_0]`` positions in the flattened ``[B * H * W]`` grid.
        layouts: per stage, the layouts of the unshifted and the shifted partition (the same
            object twice where the stage does not shift).
        merge_index: per stage (None for stage 0), int64 ``[N_i, 4]`` (shared) or
            ``[B * N_i, 4]`` (per-sample, into the flattened ``[B * N_{i-1}]`` tokens): the
            four children of every visible merged token, in timm's order.
        final_index: int64 positions of the visible final-stage tokens, ``[N_f]`` (shared)
            or ``[B * N_f]`` (per-sample, flattened), for the decoder.
        final_visible: bool ``[1 or B, L_f]``, the final-stage token mask (True = visible),
            for the loss.
        unit_visible: bool ``[1 or B, Hu, Wu]``, the unit mask as a tensor.
        batch: the batch of per-sample masks, None for a shared mask.
        grouping_s: seconds spent building the layouts (solver + index tensors).
    """

    unit_mask: NDArray[np.bool_]
    token_masks: tuple[NDArray[np.bool_], ...]
    embed_index: torch.Tensor
    layouts: tuple[tuple[WindowLayout, WindowLayout], ...]
    merge_index: tuple[torch.Tensor | None, ...]
    final_index: torch.Tensor
    final_visible: torch.Tensor
    unit_visible: torch.Tensor
    batch: int | None
    grouping_s: float

    @property
    def shared(self) -> bool:
        """True for one mask shared by the batch."""
        return self.batch is None

    @property
    def num_visible(self) -> tuple[int, ...]:
        """Visible tokens per sample at every stage."""
        return tuple(int(m.sum()) // (self.batch or 1) for m in self.token_masks)

    @property
    def device(self) -> torch.device:
        """Device of the index tensors and layouts."""
        return self.embed_index.device

    def visible_units(self, batch: int) -> torch.Tensor:
        """bool ``[B, Hu, Wu]`` tensor of the unit mask (broadcast if shared), True = visible."""
        return self.unit_visible.expand(batch, -1, -1)

    def masked_positions(self, batch: int) -> torch.Tensor:
        """bool ``[B, L_f]``: True at masked final-stage tokens (where the loss is taken)."""
        return ~self.final_visible.expand(batch, -1)


# -- blocks --------------------------------------------------------------------------------------


class Mlp(nn.Module):
    """timm's ``Mlp``: ``fc1``, GELU, ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """A Swin block (timm's names) that runs grouped on visible tokens or dense on all.

    Args:
        dim: width.
        num_heads: heads.
        grid: the stage's token grid (for the dense path's buffers).
        window: ``(wh, ww)`` after clamping.
        shift: ``(sh, sw)`` of this block (zero for even blocks).
        mlp_ratio, qkv_bias, norm_eps: as in :class:`SwinConfig`.
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
    ) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = GroupedWindowAttention(dim, num_heads, window, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # derived index tensors of the dense path: non-persistent, not in the state_dict
        self.register_buffer("dense_index", _dense_relative_index(window), persistent=False)
        self.register_buffer(
            "dense_mask", _dense_region_mask(grid, window, shift), persistent=False
        )

    def forward(self, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        """``x [B, N_vis, C]`` visible tokens -> ``[B, N_vis, C]``."""
        x = x + self.attn(self.norm1(x), layout)
        return x + self.mlp(self.norm2(x))

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, H, W, C]`` all tokens -> ``[B, H, W, C]`` (ordinary shifted windows)."""
        y = dense_window_attention(
            self.norm1(x), self.attn, self.window, self.shift, self.dense_index, self.dense_mask
        )
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """timm's ``PatchMerging`` (``norm`` over the 4C concatenation, then ``reduction``)."""

    def __init__(self, dim: int, norm_eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, index: torch.Tensor, shared: bool) -> torch.Tensor:
        """Merge visible 2x2 blocks: ``[B, N, C]`` -> ``[B, N/4, 2C]``.

        Args:
            x: visible tokens, row-major per sample.
            index: int64 ``[N/4, 4]`` (shared) or ``[B * N/4, 4]`` (per-sample, into the
                flattened ``[B * N]`` tokens), see :class:`SwinStep`.
            shared: whether the index is shared by the batch.
        """
        b, n, c = x.shape
        if shared:
            x = x[:, index.view(-1)]  # B, N/4 * 4, C
        else:
            x = x.reshape(b * n, c)[index.view(-1)]  # B * N/4 * 4, C
        x = x.reshape(b, -1, 4 * c)  # B, N/4, 4C (children in timm's order)
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
        grid, dim, heads, window, shift = config._stages[index]
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
            )
            for j in range(config.depths[index])
        )

    def forward(
        self,
        x: torch.Tensor,
        layouts: tuple[WindowLayout, WindowLayout],
        merge_index: torch.Tensor | None,
        shared: bool,
    ) -> torch.Tensor:
        if self.downsample is not None:
            assert merge_index is not None
            x = self.downsample(x, merge_index, shared)
        for j, blk in enumerate(self.blocks):
            x = blk(x, layouts[j % 2])
        return x

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample.forward_dense(x)
        for blk in self.blocks:
            x = blk.forward_dense(x)
        return x


class PatchEmbed(nn.Module):
    """timm's ``PatchEmbed`` with norm: ``proj`` (conv ``p x p``, stride ``p``) then ``norm``."""

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.patch_size = p
        self.proj = nn.Conv2d(config.in_chans, config.embed_dim, kernel_size=p, stride=p)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)

    def forward_visible(self, images: torch.Tensor, step: SwinStep) -> torch.Tensor:
        """Embed the visible patches only: ``[B, C, H, W]`` -> ``[B, N_0, E]``.

        The convolution is a linear map of every ``p x p`` patch; only visible patches are
        projected.
        """
        b, c, h, w = images.shape
        p = self.patch_size
        x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        x = x.reshape(b, (h // p) * (w // p), c * p * p)  # B, L, C*p*p (conv weight order)
        if step.shared:
            x = x[:, step.embed_index]  # B, N_0, C*p*p
        else:
            x = x.reshape(-1, c * p * p)[step.embed_index].reshape(b, -1, c * p * p)
        x = F.linear(x, self.proj.weight.reshape(self.proj.out_channels, -1), self.proj.bias)
        return self.norm(x)

    def forward_dense(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, H/p, W/p, E]``."""
        return self.norm(self.proj(images).permute(0, 2, 3, 1))


# -- the models ----------------------------------------------------------------------------------


def _check_images(images: Any, config: SwinConfig) -> torch.Tensor:
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

    Example:
        >>> cfg = SwinConfig(img_size=64, embed_dim=16, depths=(2, 2, 2), num_heads=(2, 2, 4),
        ...                  window_size=4, mask_unit=16)
        >>> enc = SwinEncoder(cfg)
        >>> mask = np.zeros(cfg.unit_grid, dtype=bool); mask[0] = True   # [4, 4] units
        >>> enc(torch.randn(2, 3, 64, 64), mask).shape                 # 4 visible units
        torch.Size([2, 4, 64])
    """

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
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

    # -- masks and layouts ------------------------------------------------------------------

    def check_mask(self, mask: Any, batch: int | None = None) -> NDArray[np.bool_]:
        """Validate a mask on the unit grid and return it as a numpy bool array.

        Args:
            mask: bool ``[Hu, Wu]`` or ``[B, Hu, Wu]`` (numpy or torch), True = visible; None
                means every unit visible.
            batch: the batch it must fit, if known.
        """
        units = self.config.unit_grid
        if mask is None:
            return np.ones(units, dtype=np.bool_)
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        mask = np.asarray(mask)
        expected = (
            f"a bool mask [{units[0]}, {units[1]}] or [B, {units[0]}, {units[1]}] on the "
            f"mask-unit grid ({self.config.mask_unit} px units), True = visible"
        )
        if mask.dtype != np.bool_:
            raise invalid("mask", expected, mask)
        if mask.ndim not in (2, 3) or mask.shape[-2:] != units:
            raise invalid("mask", expected, mask, "a token-level mask is not accepted")
        if mask.ndim == 3 and batch is not None and mask.shape[0] != batch:
            raise invalid("mask", f"{batch} per-sample masks (the batch)", mask)
        flat = mask.reshape(-1 if mask.ndim == 2 else (mask.shape[0], -1))
        visible = np.atleast_1d(flat.sum(-1))
        if np.any(visible != visible[0]):
            raise invalid(
                "mask",
                "per-sample masks with equal visible counts",
                f"visible counts {visible.tolist()}",
                "draw them with grouping.sample_masks",
            )
        if visible[0] == 0:
            raise invalid("mask", "at least one visible mask unit", mask)
        mask = np.array(mask, dtype=np.bool_, order="C")  # a private, read-only copy
        mask.setflags(write=False)
        return mask

    def prepare(
        self,
        mask: Any = None,
        *,
        batch: int | None = None,
        device: torch.device | str | None = None,
    ) -> SwinStep:
        """Build the layouts and indices of every stage for one mask (once per step).

        Args:
            mask: bool ``[Hu, Wu]`` (shared by the batch) or ``[B, Hu, Wu]`` (per sample),
                True = visible; None = nothing masked.
            batch: the batch size, checked against per-sample masks.
            device: where the tensors go (the images' device).

        Returns:
            The :class:`SwinStep`, to pass to ``forward``.
        """
        unit_mask = self.check_mask(mask, batch)
        start = time.perf_counter()
        device = torch.device("cpu") if device is None else torch.device(device)
        cfg = self.config
        shared = unit_mask.ndim == 2
        masks = unit_mask[None] if shared else unit_mask  # S, Hu, Wu

        def tensor(array: NDArray[Any], dtype: Any = np.int64) -> torch.Tensor:
            return torch.from_numpy(np.array(array, dtype=dtype)).to(device)

        token_masks, layouts, merges = [], [], []
        stage_mask = upsample_mask(masks, cfg.unit_tokens)  # S, H0, W0
        embed = np.flatnonzero(stage_mask.reshape(-1))  # positions in [S * H0 * W0]
        for i, (_, dim, _, window, shift) in enumerate(cfg._stages):
            if i > 0:
                index = _merge_index(stage_mask)  # S, N_i, 4 (per sample)
                prev = int(stage_mask[0].sum())
                stage_mask = stage_mask[:, 0::2, 0::2]
                index = index + (np.arange(index.shape[0]) * prev)[:, None, None]
                merges.append(tensor(index.reshape(-1, 4)))
            else:
                merges.append(None)
            m = np.ascontiguousarray(stage_mask[0] if shared else stage_mask)
            token_masks.append(m)
            kwargs = dict(
                group_size=cfg.group_size,
                strategy=cfg.strategy,
                channels=dim,
                device=device,
                mode=cfg.layout_mode,
            )
            plain = window_layout(m, window, shift=0, **kwargs)
            shifted = window_layout(m, window, shift=shift, **kwargs) if any(shift) else plain
            layouts.append((plain, shifted))
        final = np.flatnonzero(stage_mask.reshape(-1))
        grouping_s = time.perf_counter() - start
        return SwinStep(
            unit_mask=unit_mask,
            token_masks=tuple(token_masks),
            embed_index=tensor(embed),
            layouts=tuple(layouts),
            merge_index=tuple(merges),
            final_index=tensor(final),
            final_visible=tensor(stage_mask.reshape(stage_mask.shape[0], -1), np.bool_),
            unit_visible=tensor(masks, np.bool_),
            batch=None if shared else int(unit_mask.shape[0]),
            grouping_s=grouping_s,
        )

    # -- forward ----------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, mask: Any = None) -> torch.Tensor:
        """Encode the visible tokens.

        Args:
            images: ``[B, C, H, W]``.
            mask: a unit mask (see :meth:`prepare`), a prepared :class:`SwinStep`, or None
                (nothing masked).

        Returns:
            ``[B, N_f, C_f]``: the final-norm features of the visible final-stage tokens,
            row-major per sample (with nothing masked, timm's ``forward_features`` output
            ``[B, H_f, W_f, C_f]`` flattened).
        """
        images = _check_images(images, self.config)
        b = images.shape[0]
        step = (
            mask
            if isinstance(mask, SwinStep)
            else self.prepare(mask, batch=b, device=images.device)
        )
        if step.batch is not None and step.batch != b:
            raise invalid("mask", f"a step prepared for a batch of {b}", f"batch {step.batch}")
        if step.device != images.device:
            raise invalid("mask", f"a step prepared on {images.device}", f"one on {step.device}")
        x = self.patch_embed.forward_visible(images, step)  # B, N_0, E
        for stage, layouts, index in zip(self.layers, step.layouts, step.merge_index, strict=True):
            x = stage(x, layouts, index, step.shared)
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
        images = _check_images(images, self.config)
        x = self.patch_embed.forward_dense(images)  # B, H0, W0, E
        if token_mask is not None:
            assert mask_token is not None, "a token mask needs a mask token"
            x = torch.where(token_mask[..., None], x, mask_token.reshape(-1).to(x.dtype))
        for stage in self.layers:
            x = stage.forward_dense(x)
        return self.norm(x)


class _DecoderAttention(nn.Module):
    """timm's ViT ``Attention`` (``qkv``, ``proj``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads)  # B, N, 3, h, d
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, h, N, d]
        x = F.scaled_dot_product_attention(q, k, v)  # B, h, N, d
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class DecoderBlock(nn.Module):
    """timm's ViT ``Block`` (pre-norm attention and MLP), as in the MAE decoder."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = _DecoderAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GreenMIMSwin(nn.Module):
    """GreenMIM: the Swin encoder on visible tokens with an MAE decoder.

    The decoder is GreenMIM's (one ViT block of width 512, 16 heads, fixed 2-D sin-cos
    positions, predicting the pixels of every final-stage token, 32 px for the presets), except
    that every visible latent is placed back at its own position: the published decoder
    appends the latents, which the encoder returns in row-major order, and un-shuffles them
    with MAE's random ``ids_restore``, which scatters them to the wrong positions.

    Args:
        config: the architecture.

    Example:
        >>> cfg = SwinConfig(img_size=64, embed_dim=16, depths=(2, 2, 2), num_heads=(2, 2, 4),
        ...                  window_size=4, mask_unit=16, decoder_dim=32, decoder_heads=2)
        >>> model = GreenMIMSwin(cfg)
        >>> loss, pred, mask = model(torch.randn(2, 3, 64, 64), rng=0)
        >>> pred.shape, mask.shape, int(mask[0].sum())   # 16 units of 16 px, 4 visible
        (torch.Size([2, 16, 768]), torch.Size([2, 4, 4]), 4)
    """

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SwinEncoder(config)
        d = config.decoder_dim
        final_grid = config.stage_grids[-1]
        p = config.decoder_patch
        self.decoder_embed = nn.Linear(config.num_features, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        pos = torch.from_numpy(sincos_2d(d, final_grid)).float()[None]  # 1, L_f, D
        self.register_buffer("decoder_pos_embed", pos, persistent=False)
        self.decoder_blocks = nn.ModuleList(
            DecoderBlock(d, config.decoder_heads, config.mlp_ratio, config.decoder_norm_eps)
            for _ in range(config.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(d, eps=config.decoder_norm_eps)
        self.decoder_pred = nn.Linear(d, p * p * config.in_chans)
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

    # -- masks ------------------------------------------------------------------------------

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
        mask_ratio: float,
        rng: Any,
        per_sample: bool,
    ) -> SwinStep:
        images = _check_images(images, self.config)
        if isinstance(mask, SwinStep):
            return mask
        if mask is None:
            mask = self.sample_mask(images.shape[0], mask_ratio, rng=rng, per_sample=per_sample)
        return self.encoder.prepare(mask, batch=images.shape[0], device=images.device)

    # -- decoder and loss -------------------------------------------------------------------

    def place_latents(self, latent: torch.Tensor, step: SwinStep) -> torch.Tensor:
        """Put every visible latent back at its own position, mask tokens elsewhere.

        Args:
            latent: ``[B, N_f, D]`` decoder-width latents of the visible final-stage tokens,
                row-major per sample.
            step: the step whose mask selected them.

        Returns:
            ``[B, L_f, D]`` with ``out[b, step.final positions] = latent[b]``.
        """
        b, n, d = latent.shape
        length = self.decoder_pos_embed.shape[1]
        full = self.mask_token.to(latent.dtype).expand(b, length, d).clone()  # B, L_f, D
        if step.shared:
            full[:, step.final_index] = latent
        else:
            full.view(b * length, d)[step.final_index] = latent.reshape(b * n, d)
        return full

    def decode(self, full: torch.Tensor) -> torch.Tensor:
        """``[B, L_f, D]`` decoder tokens (latents and mask tokens) -> ``[B, L_f, P*P*C]``."""
        x = full + self.decoder_pos_embed.to(full.dtype)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))

    def loss(self, images: torch.Tensor, pred: torch.Tensor, step: SwinStep) -> torch.Tensor:
        """Mean squared error on the masked patches only (0 if nothing is masked)."""
        target = patchify(images, self.config.decoder_patch)  # B, L_f, P*P*C
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        per_patch = ((pred - target) ** 2).mean(dim=-1)  # B, L_f
        masked = step.masked_positions(images.shape[0]).to(per_patch.dtype)
        return (per_patch * masked).sum() / masked.sum().clamp_min(1.0)

    def forward(
        self,
        images: torch.Tensor,
        mask: Any = None,
        *,
        mask_ratio: float = 0.75,
        rng: np.random.Generator | int | None = None,
        per_sample: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One MAE pass.

        Args:
            images: ``[B, C, H, W]``.
            mask: bool ``[Hu, Wu]`` / ``[B, Hu, Wu]`` unit mask (True = visible), a prepared
                :class:`SwinStep`, or None to draw one with ``mask_ratio`` and ``rng``.
            mask_ratio: fraction of units masked when drawing.
            rng: ``numpy.random.Generator``, int seed or None, for drawing.
            per_sample: draw one mask per sample instead of one for the batch.

        Returns:
            ``(loss, pred, mask)``: the scalar loss on masked patches, ``pred [B, L_f,
            P*P*C]`` the pixels predicted for every final-stage token (MAE's patch order, see
            :func:`patchify`), and ``mask`` bool ``[B, Hu, Wu]`` (True = visible).
        """
        step = self._step(images, mask, mask_ratio, rng, per_sample)
        latent = self.encoder(images, step)  # B, N_f, C_f
        pred = self.decode(self.place_latents(self.decoder_embed(latent), step))
        return self.loss(images, pred, step), pred, step.visible_units(images.shape[0])


class SimMIMSwin(nn.Module):
    """The dense baseline: SimMIM-style masking on all tokens, sharing the weights of a model.

    Every stage-1 token is encoded; masked ones are replaced by a learned mask token after the
    patch embedding, and the stages use ordinary shifted-window attention
    (:meth:`SwinEncoder.forward_dense`). The decoder and loss are ``mae``'s (every final-stage
    token has a latent, so no decoder mask tokens). Only :attr:`mask_token` is new.

    Args:
        mae: the :class:`GreenMIMSwin` whose modules (and parameters) are shared.
    """

    def __init__(self, mae: GreenMIMSwin) -> None:
        super().__init__()
        self.mae = mae
        self.mask_token = nn.Parameter(torch.zeros(mae.config.embed_dim))
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def config(self) -> SwinConfig:
        return self.mae.config

    def forward(
        self,
        images: torch.Tensor,
        mask: Any = None,
        *,
        mask_ratio: float = 0.75,
        rng: np.random.Generator | int | None = None,
        per_sample: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Same contract as :meth:`GreenMIMSwin.forward`."""
        mae = self.mae
        images = _check_images(images, self.config)
        b = images.shape[0]
        if isinstance(mask, SwinStep):
            unit_mask = mask.unit_mask
        else:
            if mask is None:
                mask = mae.sample_mask(b, mask_ratio, rng=rng, per_sample=per_sample)
            unit_mask = mae.encoder.check_mask(mask, b)
        step = _dense_step(unit_mask, self.config, images.device)
        token_mask = upsample_mask(unit_mask, self.config.unit_tokens)
        token_mask = torch.from_numpy(token_mask).to(images.device)
        if token_mask.dim() == 2:
            token_mask = token_mask[None]
        feats = mae.encoder.forward_dense(images, token_mask, self.mask_token)  # B, Hf, Wf, Cf
        full = mae.decoder_embed(feats.reshape(b, -1, feats.shape[-1]))  # B, L_f, D
        pred = mae.decode(full)
        return mae.loss(images, pred, step), pred, step.visible_units(b)


def _dense_step(unit_mask: NDArray[np.bool_], config: SwinConfig, device: Any) -> SwinStep:
    """A :class:`SwinStep` with the masks only (no layouts), for the dense baseline's loss."""
    final = upsample_mask(unit_mask, config.unit_tokens >> (config.num_stages - 1))
    empty = torch.zeros(0, dtype=torch.long, device=device)
    units = unit_mask.reshape(-1, *unit_mask.shape[-2:])
    return SwinStep(
        unit_mask=unit_mask,
        token_masks=(final,),
        embed_index=empty,
        layouts=(),
        merge_index=(),
        final_index=empty,
        final_visible=torch.from_numpy(final.reshape(units.shape[0], -1).copy()).to(device),
        unit_visible=torch.from_numpy(units.copy()).to(device),
        batch=None if unit_mask.ndim == 2 else int(unit_mask.shape[0]),
        grouping_s=0.0,
    )


# -- entry points --------------------------------------------------------------------------------


def create_model(name: str, **overrides: Any) -> GreenMIMSwin:
    """Build a preset's :class:`GreenMIMSwin` (``overrides`` change config fields)."""
    return GreenMIMSwin(preset_config(name, **overrides))


def greenmim_swin_tiny(**overrides: Any) -> GreenMIMSwin:
    """Swin-T (timm's ``swin_tiny_patch4_window7_224``, eps 1e-5) with GreenMIM's decoder."""
    return create_model("greenmim_swin_tiny", **overrides)


def greenmim_swin_base(window_size: int = 7, **overrides: Any) -> GreenMIMSwin:
    """GreenMIM's Swin-B (eps 1e-6), window 7 or 14 (``..._patch4_win14_dec512b1``)."""
    if isinstance(window_size, bool) or not isinstance(window_size, numbers.Integral):
        raise invalid("window_size", "7 or 14", window_size)
    if window_size not in (7, 14):
        raise invalid("window_size", "7 or 14 (GreenMIM's Swin-B presets)", window_size)
    return create_model("greenmim_swin_base", window_size=int(window_size), **overrides)
