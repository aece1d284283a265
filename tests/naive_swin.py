"""Slow, obviously-correct reference Swin Transformers for the model tests.

Two references share one set of weights, named as in timm's ``SwinTransformer`` (timm itself
cannot be imported here: it needs torchvision):

* :class:`NaiveSwin` runs the dense model over all tokens with timm's semantics: 4x4 patch
  embedding with norm, stages whose first module (from stage 1 on) is a patch merging
  (``norm`` then ``reduction`` over the 2x2 block concatenated as ``(0,0), (1,0), (0,1),
  (1,1)`` in ``(dh, dw)``), blocks alternating shift 0 and ``w // 2`` implemented as a cyclic
  ``roll`` plus the additive ``-100`` region mask, the window clamped to the grid (and no
  shift) where the grid is no larger than the window, final norm. No classifier head.
* :func:`naive_visible_forward` runs the same weights on the visible tokens of one sample
  only, window by window in plain Python loops: every visible token attends to the visible
  tokens of its own window (windows cut at ``shift + k*w``, partial at the borders), with the
  relative position bias taken from the tokens' true coordinates; patch merging concatenates
  the four visible children of every visible 2x2 block.

With every token visible the two must agree (tested), which ties the loop reference to timm's
roll-and-mask formulation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NaiveSwin", "naive_visible_forward", "stage_window_shift"]


def stage_window_shift(
    grid: tuple[int, int], window: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """timm's rule: per axis, the window is clamped to the grid, and no shift where clamped."""
    win = tuple(r if r <= window else window for r in grid)
    shift = tuple(0 if r <= w else w // 2 for r, w in zip(grid, win, strict=True))
    return win, shift  # type: ignore[return-value]


class _PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, dim: int, eps: float) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim, eps=eps)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, window: tuple[int, int], qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * window[0] - 1) * (2 * window[1] - 1), heads) * 0.5
        )


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)


class _Block(nn.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        window: tuple[int, int],
        shift: tuple[int, int],
        mlp_ratio: float,
        qkv_bias: bool,
        eps: float,
    ) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = _Attention(dim, heads, window, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))


class _Merge(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)


class _Stage(nn.Module):
    def __init__(self, downsample: nn.Module | None, blocks: list[_Block]) -> None:
        super().__init__()
        if downsample is not None:
            self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)


def _relative_index(coords: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Index into the ``(2wh-1)*(2ww-1)`` table for every (query, key) pair of ``coords [N, 2]``."""
    d = coords[:, None, :] - coords[None, :, :]  # N, N, 2 (query minus key)
    return (d[..., 0] + window[0] - 1) * (2 * window[1] - 1) + (d[..., 1] + window[1] - 1)


def _attend(
    attn: _Attention, x: torch.Tensor, bias: torch.Tensor, extra: torch.Tensor | None = None
) -> torch.Tensor:
    """Multi-head attention of ``x [..., N, C]`` with additive ``bias [heads, N, N]``."""
    *lead, n, c = x.shape
    h = attn.heads
    qkv = attn.qkv(x).reshape(*lead, n, 3, h, c // h)  # ..., N, 3, h, d
    q, k, v = qkv.unbind(-3)  # ..., N, h, d each
    q, k, v = (t.transpose(-3, -2) for t in (q, k, v))  # ..., h, N, d
    logits = (q * (c // h) ** -0.5) @ k.transpose(-2, -1) + bias  # ..., h, N, N
    if extra is not None:
        logits = logits + extra
    out = logits.softmax(-1) @ v  # ..., h, N, d
    return attn.proj(out.transpose(-3, -2).reshape(*lead, n, c))


class NaiveSwin(nn.Module):
    """Dense Swin encoder with timm's semantics and state_dict names (no head).

    ``forward(images [B, C, H, W])`` returns the final-norm features ``[B, H/32, W/32, C']``
    (for 4 stages and patch size 4).
    """

    def __init__(
        self,
        *,
        img_size: tuple[int, int],
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        depths: tuple[int, ...],
        num_heads: tuple[int, ...],
        window_size: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.patch_embed = _PatchEmbed(patch_size, in_chans, embed_dim, norm_eps)
        grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        layers = []
        dim = embed_dim
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            merge = None
            if i > 0:
                merge = _Merge(dim, norm_eps)
                dim *= 2
                grid = (grid[0] // 2, grid[1] // 2)
            win, shift = stage_window_shift(grid, window_size)
            blocks = [
                _Block(dim, heads, win, shift if j % 2 else (0, 0), mlp_ratio, qkv_bias, norm_eps)
                for j in range(depth)
            ]
            layers.append(_Stage(merge, blocks))
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    # -- dense, timm semantics ---------------------------------------------------------------

    @staticmethod
    def _block_dense(blk: _Block, x: torch.Tensor) -> torch.Tensor:
        b, hh, ww, c = x.shape
        (wh, wwin), (sh, sw) = blk.window, blk.shift
        shortcut = x
        x = blk.norm1(x)
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        # partition into windows, row-major over the window grid
        nh, nw = hh // wh, ww // wwin
        xw = x.reshape(b, nh, wh, nw, wwin, c).permute(0, 1, 3, 2, 4, 5)
        xw = xw.reshape(b, nh * nw, wh * wwin, c)  # B, nW, N, C
        ys, xs = torch.meshgrid(torch.arange(wh), torch.arange(wwin), indexing="ij")
        coords = torch.stack([ys.reshape(-1), xs.reshape(-1)], -1)
        index = _relative_index(coords, blk.window)
        bias = blk.attn.relative_position_bias_table[index].permute(2, 0, 1)  # heads, N, N
        extra = None
        if sh or sw:
            # Swin's region mask: the rolled grid splits into 3 regions per shifted axis,
            # [0, n-w), [n-w, n-s), [n-s, n); tokens of different regions get -100
            def regions(n: int, w: int, s: int) -> torch.Tensor:
                r = torch.zeros(n)
                if s:
                    r[n - w : n - s] = 1
                    r[n - s :] = 2
                return r

            label = regions(hh, wh, sh)[:, None] * 3 + regions(ww, wwin, sw)[None, :]
            lw = label.reshape(nh, wh, nw, wwin).permute(0, 2, 1, 3).reshape(nh * nw, -1)
            diff = lw[:, None, :] - lw[:, :, None]  # nW, N, N
            extra = torch.where(diff != 0, -100.0, 0.0).to(x.dtype)[:, None]  # nW, 1, N, N
        yw = _attend(blk.attn, xw, bias, extra)  # B, nW, N, C
        y = yw.reshape(b, nh, nw, wh, wwin, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hh, ww, c)
        if sh or sw:
            y = torch.roll(y, shifts=(sh, sw), dims=(1, 2))
        x = shortcut + y
        return x + blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(x))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(images).permute(0, 2, 3, 1)  # B, H, W, C
        x = self.patch_embed.norm(x)
        for stage in self.layers:
            if hasattr(stage, "downsample"):
                x0 = x[:, 0::2, 0::2]
                x1 = x[:, 1::2, 0::2]
                x2 = x[:, 0::2, 1::2]
                x3 = x[:, 1::2, 1::2]
                x = torch.cat([x0, x1, x2, x3], -1)  # B, H/2, W/2, 4C
                x = stage.downsample.reduction(stage.downsample.norm(x))
            for blk in stage.blocks:
                x = self._block_dense(blk, x)
        return self.norm(x)


def naive_visible_forward(
    model: NaiveSwin, images: torch.Tensor, token_mask: np.ndarray
) -> list[tuple[torch.Tensor, list[tuple[int, int]]]]:
    """Run ``model``'s weights on the visible tokens only, window by window, sample by sample.

    Args:
        model: the weights.
        images: ``[B, C, H, W]``.
        token_mask: bool ``[H/p, W/p]`` (shared) or ``[B, H/p, W/p]``, True = visible, made of
            whole mask units (every visible stage-i token's 2x2 block is visible).

    Returns:
        Per sample, the final features ``[N_vis, C']`` of the visible final-stage tokens in
        row-major order, and their coordinates.
    """
    b = images.shape[0]
    masks = np.broadcast_to(token_mask, (b, *np.shape(token_mask)[-2:]))
    feats = model.patch_embed.norm(model.patch_embed.proj(images).permute(0, 2, 3, 1))
    out = []
    for s in range(b):
        coords = [tuple(map(int, c)) for c in np.argwhere(masks[s])]  # row-major
        x = torch.stack([feats[s, h, w] for h, w in coords]) if coords else feats[s, :0, 0]
        grid = masks[s].shape
        for stage in model.layers:
            if hasattr(stage, "downsample"):
                index = {c: i for i, c in enumerate(coords)}
                parents = sorted({(h // 2, w // 2) for h, w in coords})
                rows = []
                for ph, pw in parents:
                    kids = [
                        (2 * ph + dh, 2 * pw + dw) for dh, dw in ((0, 0), (1, 0), (0, 1), (1, 1))
                    ]
                    assert all(k in index for k in kids), "a 2x2 block is partly masked"
                    rows.append(torch.cat([x[index[k]] for k in kids]))
                x = stage.downsample.reduction(stage.downsample.norm(torch.stack(rows)))
                coords = parents
                grid = (grid[0] // 2, grid[1] // 2)
            for blk in stage.blocks:
                (wh, ww), (sh, sw) = blk.window, blk.shift
                shortcut = x
                xn = blk.norm1(x)
                windows: dict[tuple[int, int], list[int]] = {}
                for i, (h, w) in enumerate(coords):
                    windows.setdefault(((h - sh) // wh, (w - sw) // ww), []).append(i)
                y = torch.zeros_like(x)
                for members in windows.values():
                    c = torch.tensor([coords[i] for i in members])
                    bias = blk.attn.relative_position_bias_table[_relative_index(c, blk.window)]
                    y[members] = _attend(blk.attn, xn[members], bias.permute(2, 0, 1))
                x = shortcut + y
                x = x + blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(x))))
        out.append((model.norm(x), coords))
    return out
