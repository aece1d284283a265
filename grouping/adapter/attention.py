"""Grouped window attention on visible tokens (GreenMIM), with Swin's parameters.

:class:`GroupedWindowAttention` has timm's ``WindowAttention`` parameters (``qkv``, ``proj``,
``relative_position_bias_table``) so that Swin checkpoints load into it, and computes exactly
what window attention computes on the visible tokens of each window, the relative position bias
looked up from the tokens' true coordinates. It projects ``q, k, v`` on the visible tokens
before grouping (padding slots cost no projection), attends inside each group under the
layout's boolean mask (masked logits get weight exactly 0: ``-inf`` before the softmax, never an
additive ``-100``), and ungroups before the output projection.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import as_int_tuple, check_heads, invalid
from ..core.windows import window_grid
from .layout import WindowLayout
from .ops import check_tokens, group_tokens, ungroup_tokens

__all__ = [
    "ATTENTION_IMPLS",
    "AUTO_ATTENTION_IMPL",
    "GroupedWindowAttention",
    "default_attention_impl",
    "dense_window_attention",
    "grouped_attention",
    "relative_position_bias",
    "shifted_window_mask",
    "window_relative_index",
]

#: ``"sdpa"``: :func:`torch.nn.functional.scaled_dot_product_attention` with a float bias that
#: holds ``-inf`` at masked pairs; ``"explicit"``: ``softmax(q k^T * scale + bias)`` written out.
ATTENTION_IMPLS = ("sdpa", "explicit")

#: What ``"auto"`` picks per device type. On CPU (torch 2.13, measured in docs/adapter.md) the
#: explicit path is faster: SDPA's fused CPU kernel takes no bias that needs a gradient (the
#: learned relative position bias does), so SDPA falls back to its unfused math path, which
#: also materialises the broadcast mask. Elsewhere SDPA (its fused kernels take such a bias);
#: that choice is not measured yet.
AUTO_ATTENTION_IMPL = {"cpu": "explicit"}


def default_attention_impl(device: torch.device | str) -> str:
    """The attention path ``"auto"`` resolves to on ``device`` (see ``AUTO_ATTENTION_IMPL``)."""
    return AUTO_ATTENTION_IMPL.get(torch.device(device).type, "sdpa")


def relative_position_bias(table: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """Look the relative position bias of every pair of slots up.

    Args:
        table: ``[(2*wh - 1) * (2*ww - 1), H]`` Swin's bias table.
        layout: the layout.

    Returns:
        ``[G, H, g, g]`` bias (entries of masked pairs are ``table[0]``, to be masked).
    """
    num_groups, size = layout.num_groups, layout.group_size
    bias = table.index_select(0, layout.rel_index.view(-1))  # [G * g * g, H]
    return bias.view(num_groups, size, size, -1).permute(0, 3, 1, 2)  # [G, H, g, g]


def grouped_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: WindowLayout,
    bias: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    dropout_p: float = 0.0,
    impl: str = "auto",
) -> torch.Tensor:
    """Attention inside every group under the layout's mask.

    Args:
        q: ``[R, G, H, g, D]`` grouped query heads (``R`` samples for a batch-shared
            layout, 1 for a per-sample one).
        k: ``[R, G, H, g, D]`` grouped key heads.
        v: ``[R, G, H, g, D]`` grouped value heads.
        layout: the layout (its ``kernel_mask`` keeps windows apart; padding slots attend to
            themselves only, so no row is empty).
        bias: optional ``[G, H, g, g]`` additive bias (the relative position bias).
        scale: logit scale, default ``D ** -0.5``.
        dropout_p: attention dropout probability.
        impl: ``"sdpa"``, ``"explicit"`` (same result up to rounding) or ``"auto"``
            (:func:`default_attention_impl` of the device of ``q``).

    Returns:
        ``[R, G, H, g, D]``.
    """
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if impl == "auto":
        impl = default_attention_impl(q.device)
    mask = layout.kernel_mask[:, None]  # [G, 1, g, g]
    if impl == "sdpa":
        if bias is None:
            attn_mask: torch.Tensor = mask
        else:
            attn_mask = bias.masked_fill(~mask, float("-inf"))  # [G, H, g, g]
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale
        )
    if impl != "explicit":
        raise invalid("impl", f"one of {ATTENTION_IMPLS}", impl)
    # the mask goes into the small [G, H, g, g] bias once, not into the [R, G, H, g, g] logits
    if bias is None:
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device)
    bias = bias.masked_fill(~mask, float("-inf"))  # [G, H, g, g]
    attn = ((q * scale) @ k.transpose(-2, -1) + bias).softmax(dim=-1)  # [R, G, H, g, g]
    if dropout_p:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v  # [R, G, H, g, D]


class GroupedWindowAttention(nn.Module):
    """Window multi-head self-attention on visible tokens, grouped by a plan.

    Args:
        dim: channels ``C``.
        num_heads: attention heads; must divide ``dim``.
        window_size: window size, int or ``(wh, ww)``; the layouts must use the same.
        qkv_bias: learn a bias for the q/k/v projection.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
        attn_impl: ``"auto"`` (per device, :func:`default_attention_impl`: the explicit path
            on CPU, where it measured faster, SDPA elsewhere), ``"sdpa"`` or ``"explicit"``;
            may be changed later through :attr:`attn_impl`.

    Shape:
        ``forward(x_vis [B, N, C], layout) -> [B, N, C]``, ``x_vis[b, i]`` the ``i``-th visible
        token (row-major) of sample ``b``'s mask.

    Examples:
        >>> import numpy as np, torch
        >>> from grouping.adapter import window_layout
        >>> mask = np.ones((8, 8), dtype=bool)
        >>> mask[:4, :4] = False                      # 48 visible tokens
        >>> layout = window_layout(mask, 4, shift=2, channels=16)
        >>> attn = GroupedWindowAttention(16, num_heads=2, window_size=4)
        >>> attn(torch.randn(3, 48, 16), layout).shape
        torch.Size([3, 48, 16])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int | tuple[int, int],
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        *,
        attn_impl: Literal["auto", "sdpa", "explicit"] = "auto",
    ) -> None:
        super().__init__()
        dim, num_heads = check_heads(dim, num_heads)
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = as_int_tuple("window_size", window_size, 2)
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attn_impl = attn_impl  # validated by the setter

        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    @property
    def attn_impl(self) -> str:
        """The attention path: ``"auto"``, ``"sdpa"`` or ``"explicit"``."""
        return self._attn_impl

    @attn_impl.setter
    def attn_impl(self, value: str) -> None:
        if value not in ("auto", *ATTENTION_IMPLS):
            raise invalid("attn_impl", "one of 'auto', 'sdpa', 'explicit'", value)
        self._attn_impl = value

    def forward(self, x_vis: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        """Attend within windows over the visible tokens.

        Args:
            x_vis: ``[B, N, C]`` visible tokens.
            layout: from :func:`window_layout` with this module's window size, on the device
                of ``x_vis``.

        Returns:
            ``[B, N, C]``.
        """
        check_tokens(x_vis, layout, channels=self.dim)
        if layout.window != self.window_size:
            raise invalid(
                "layout",
                f"a layout with window {self.window_size} (this module's window_size)",
                f"a layout with window {layout.window}",
            )
        batch, tokens, width = x_vis.shape
        qkv = self.qkv(x_vis)  # [B, N, 3C]
        if tokens:
            rows = batch if layout.shared else 1
            num_groups, size = layout.num_groups, layout.group_size
            qkv = group_tokens(qkv, layout)  # [R * G, g, 3C]
            qkv = qkv.view(rows, num_groups, size, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # 3 x [R, G, H, g, D]
            bias = relative_position_bias(self.relative_position_bias_table, layout)
            x = grouped_attention(
                q,
                k,
                v,
                layout,
                bias.to(q.dtype),
                scale=self.scale,
                dropout_p=self.attn_drop.p if self.training else 0.0,
                impl=self._attn_impl,
            )  # [R, G, H, g, D]
            x = x.transpose(2, 3).reshape(rows * num_groups, size, width)  # [R * G, g, C]
            x = ungroup_tokens(x, layout)  # [B, N, C]
        else:
            x = qkv[..., :width]  # [B, 0, C]
        x = self.proj(x)
        return self.proj_drop(x)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, window_size={self.window_size}, "
            f"attn_impl={self._attn_impl!r}"
        )


# -- dense (all tokens) window attention, the baseline the grouped one is measured against ------


def window_relative_index(window: int | tuple[int, int]) -> torch.Tensor:
    """Relative position index of a full window (timm's ``get_relative_position_index``).

    Args:
        window: ``(wh, ww)`` or an int.

    Returns:
        int64 ``[N, N]`` with ``N = wh * ww`` (tokens row-major in the window):
        ``(dh + wh - 1) * (2*ww - 1) + (dw + ww - 1)``, ``dh, dw`` = query minus key.
    """
    wh, ww = as_int_tuple("window", window, 2)
    ys, xs = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    coords = torch.stack([ys.reshape(-1), xs.reshape(-1)], -1)  # N, 2
    d = coords[:, None] - coords[None, :]  # N, N, 2 (query minus key)
    return (d[..., 0] + wh - 1) * (2 * ww - 1) + (d[..., 1] + ww - 1)


def shifted_window_mask(
    grid: tuple[int, int], window: int | tuple[int, int], shift: int | tuple[int, int]
) -> torch.Tensor | None:
    """Swin's shifted-window mask over the cyclically shifted grid.

    After ``roll(-shift)``, a window of the rolled grid may hold tokens of up to four regions
    of the original grid that must not attend to each other.

    Args:
        grid: ``(H, W)``, divisible by the window.
        window: ``(wh, ww)`` or an int.
        shift: ``(sh, sw)`` or an int, ``0 <= shift < window``.

    Returns:
        bool ``[nW, N, N]`` (True = same region: may attend), windows row-major; None when
        ``shift`` is zero (every pair of a window may attend).
    """
    win = as_int_tuple("window", window, 2)
    sh = as_int_tuple("shift", shift, 2, minimum=0)
    g = as_int_tuple("grid", grid, 2)
    window_grid(g, win, shift=sh)  # validates window <= grid and shift < window
    if not any(sh):
        return None
    labels = []
    for n, w, s in zip(g, win, sh, strict=True):
        r = torch.zeros(n, dtype=torch.long)  # regions [0, n-w), [n-w, n-s), [n-s, n) if s
        if s:
            r[n - w : n - s] = 1
            r[n - s :] = 2
        labels.append(r)
    label = labels[0][:, None] * 3 + labels[1][None, :]  # H, W (of the rolled grid)
    nh, nw = g[0] // win[0], g[1] // win[1]
    lw = label.reshape(nh, win[0], nw, win[1]).permute(0, 2, 1, 3).reshape(nh * nw, -1)
    return lw[:, :, None] == lw[:, None, :]  # nW, N, N


def dense_window_attention(
    x: torch.Tensor,
    attn: GroupedWindowAttention,
    shift: int | tuple[int, int] = 0,
    *,
    bias_index: torch.Tensor | None = None,
    region_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ordinary (shifted-)window attention over all tokens, with ``attn``'s weights.

    Cyclic shift, window partition, attention with the relative position bias (and ``-inf``
    across the regions of a shifted window), reverse partition and shift: what timm's
    ``SwinTransformerBlock._attn`` computes, with masked pairs at weight exactly 0. It runs on
    the same attention path as ``attn``'s grouped attention (``attn.attn_impl``), so that the
    two are compared like for like. This is the dense baseline of the benchmarks and of the
    SimMIM-style model.

    Args:
        x: ``[B, H, W, C]``, ``H`` and ``W`` divisible by ``attn.window_size``.
        attn: the module whose ``qkv``, ``proj`` and bias table are used.
        shift: ``(sh, sw)`` or an int (0: the plain partition).
        bias_index: optional precomputed :func:`window_relative_index` (on ``x``'s device).
        region_mask: optional precomputed :func:`shifted_window_mask` for this grid and shift.

    Returns:
        ``[B, H, W, C]``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[-1] != attn.dim:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else x
        raise invalid("x", f"a tensor [B, H, W, {attn.dim}]", shape)
    b, hh, ww, c = x.shape
    (wh, wwin), (sh, sw) = attn.window_size, as_int_tuple("shift", shift, 2, minimum=0)
    if hh % wh or ww % wwin:
        raise invalid("x", f"a grid divisible by the window {attn.window_size}", (hh, ww))
    if bias_index is None:
        bias_index = window_relative_index(attn.window_size).to(x.device)
    if region_mask is None and (sh or sw):
        region_mask = shifted_window_mask((hh, ww), attn.window_size, (sh, sw))
        region_mask = region_mask.to(x.device)  # type: ignore[union-attr]
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
    if sh or sw:
        bias = bias.masked_fill(~region_mask[:, None], float("-inf"))  # nW, h, N, N
    impl = attn.attn_impl
    if impl == "auto":
        impl = default_attention_impl(x.device)
    if impl == "sdpa":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    else:  # the same path as the grouped attention's (the faster one on CPU)
        out = ((q * attn.scale) @ k.transpose(-2, -1) + bias).softmax(-1) @ v  # B, nW, h, N, d
    out = attn.proj(out.transpose(2, 3).reshape(b, nh * nw, n, c))  # B, nW, N, C
    out = out.reshape(b, nh, nw, wh, wwin, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hh, ww, c)
    if sh or sw:
        out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
    return out
