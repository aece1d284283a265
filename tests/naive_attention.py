"""Slow, obviously-correct references for grouped window attention.

* :func:`naive_window_attention` loops over samples and windows: it gathers the visible tokens
  of one window, runs multi-head attention on them with Swin's relative position bias looked up
  from the tokens' true coordinates, and writes the results back. Windows are cut at
  ``shift + k * window`` (partial at the borders), computed here with Python's floor division,
  independently of ``grouping.core.windows``.
* :func:`naive_shifted_window_attention` is Swin's own formulation over a full grid: cyclic
  ``roll`` by ``-shift``, window partition, a region mask (as a bool mask, not ``-100``), window
  reverse, roll back. With every token visible the two agree, which ties the loop reference to
  Swin's roll-and-mask semantics.

Both take the weights from a module with timm's parameter names (``qkv``, ``proj``,
``relative_position_bias_table``) and are differentiable, so gradients can be compared too.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["naive_shifted_window_attention", "naive_window_attention", "window_key"]


def window_key(h: int, w: int, window: tuple[int, int], shift: tuple[int, int]) -> tuple[int, int]:
    """A key that is equal for two tokens iff they lie in the same window."""
    return ((h - shift[0]) // window[0], (w - shift[1]) // window[1])


def _attend(module, x: torch.Tensor, coords: list[tuple[int, int]], window) -> torch.Tensor:
    """Multi-head attention of ``x [n, C]`` (one window) with the relative position bias."""
    n, dim = x.shape
    heads = module.relative_position_bias_table.shape[1]
    head_dim = dim // heads
    qkv = x @ module.qkv.weight.T
    if module.qkv.bias is not None:
        qkv = qkv + module.qkv.bias
    q, k, v = qkv[:, :dim], qkv[:, dim : 2 * dim], qkv[:, 2 * dim :]
    wh, ww = window
    rel = torch.zeros(n, n, dtype=torch.long)
    for i in range(n):
        for j in range(n):
            dh = coords[i][0] - coords[j][0]
            dw = coords[i][1] - coords[j][1]
            assert abs(dh) < wh and abs(dw) < ww
            rel[i, j] = (dh + wh - 1) * (2 * ww - 1) + (dw + ww - 1)
    outs = []
    for h in range(heads):
        sl = slice(h * head_dim, (h + 1) * head_dim)
        logits = (q[:, sl] * head_dim**-0.5) @ k[:, sl].T
        logits = logits + module.relative_position_bias_table[rel, h]
        outs.append(torch.softmax(logits, dim=-1) @ v[:, sl])
    out = torch.cat(outs, dim=1)
    return out @ module.proj.weight.T + module.proj.bias


def naive_window_attention(
    module, x_vis: torch.Tensor, token_mask, window, shift=0
) -> torch.Tensor:
    """Window attention over the visible tokens, window by window.

    Args:
        module: weights with timm's names.
        x_vis: ``[B, N, C]``, ``x_vis[b, i]`` the i-th visible token (row-major) of sample b.
        token_mask: bool ``[H, W]`` (shared) or ``[B, H, W]``, True = visible.
        window, shift: int or ``(h, w)``.

    Returns:
        ``[B, N, C]``.
    """
    window = (window, window) if isinstance(window, int) else tuple(window)
    shift = (shift, shift) if isinstance(shift, int) else tuple(shift)
    mask = np.asarray(token_mask)
    batch = x_vis.shape[0]
    rows = []
    for b in range(batch):
        m = mask if mask.ndim == 2 else mask[b]
        coords = [(h, w) for h in range(m.shape[0]) for w in range(m.shape[1]) if m[h, w]]
        assert len(coords) == x_vis.shape[1]
        windows: dict[tuple[int, int], list[int]] = {}
        for i, (h, w) in enumerate(coords):
            windows.setdefault(window_key(h, w, window, shift), []).append(i)
        out = [None] * len(coords)
        for members in windows.values():
            y = _attend(module, x_vis[b, members], [coords[i] for i in members], window)
            for row, i in enumerate(members):
                out[i] = y[row]
        if out:
            rows.append(torch.stack(out))
        else:
            rows.append(x_vis[b] @ module.proj.weight.T)
    return torch.stack(rows)


def naive_shifted_window_attention(
    module, x: torch.Tensor, window: int, shift: int
) -> torch.Tensor:
    """Swin's shifted window attention over a full grid ``x [B, H, W, C]`` (H, W divisible).

    Cyclic shift, partition, attention inside each window with the relative bias and the
    region mask (tokens from different regions of a rolled window never attend), reverse.
    """
    batch, height, width, dim = x.shape
    heads = module.relative_position_bias_table.shape[1]
    head_dim = dim // heads
    x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    region = torch.zeros(height, width, dtype=torch.long)
    if shift:
        cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        label = 0
        for hs in cuts:
            for ws in cuts:
                region[hs, ws] = label
                label += 1
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    local = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1)  # [w*w, 2]
    rel = local[:, None, :] - local[None, :, :] + (window - 1)
    rel = rel[..., 0] * (2 * window - 1) + rel[..., 1]  # [w*w, w*w]
    bias = module.relative_position_bias_table[rel].permute(2, 0, 1)  # [heads, n, n]
    out = torch.zeros_like(x)
    for b in range(batch):
        for h0 in range(0, height, window):
            for w0 in range(0, width, window):
                tokens = x[b, h0 : h0 + window, w0 : w0 + window].reshape(-1, dim)
                labels = region[h0 : h0 + window, w0 : w0 + window].reshape(-1)
                allowed = labels[:, None] == labels[None, :]
                qkv = tokens @ module.qkv.weight.T + module.qkv.bias
                q, k, v = qkv.split(dim, dim=1)
                q = q.reshape(-1, heads, head_dim).transpose(0, 1)
                k = k.reshape(-1, heads, head_dim).transpose(0, 1)
                v = v.reshape(-1, heads, head_dim).transpose(0, 1)
                logits = (q * head_dim**-0.5) @ k.transpose(1, 2) + bias
                logits = logits.masked_fill(~allowed, float("-inf"))
                y = (logits.softmax(-1) @ v).transpose(0, 1).reshape(-1, dim)
                y = y @ module.proj.weight.T + module.proj.bias
                out[b, h0 : h0 + window, w0 : w0 + window] = y.reshape(window, window, dim)
    return torch.roll(out, shifts=(shift, shift), dims=(1, 2))
