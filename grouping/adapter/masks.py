"""A layout's attention mask in the other forms torch offers.

* :func:`additive_mask`: float ``[G, g, g]``, 0 = attend, ``-inf`` = masked (padding slots
  attend to themselves), for kernels that take an additive bias.
* :func:`block_mask`: a FlexAttention ``BlockMask`` (torch >= 2.5) over the groups.
* :func:`varlen_offsets`: cumulative sequence lengths for variable-length kernels
  (``flash_attn_varlen_func`` style): the visible tokens sorted by window, one segment per
  non-empty window, no padding at all.
* :func:`token_attention_mask`: the dense ``[T, T]`` token-by-token mask, the slow reference
  the others are checked against (like xformers' ``materialize``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from ..core.errors import check_int, invalid
from .layout import WindowLayout

if TYPE_CHECKING:  # imported lazily at run time (FlexAttention is optional)
    from torch.nn.attention.flex_attention import BlockMask

__all__ = [
    "VarlenOffsets",
    "additive_mask",
    "block_mask",
    "token_attention_mask",
    "varlen_offsets",
]


def additive_mask(layout: WindowLayout, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Float ``[G, g, g]`` mask: 0 where ``layout.kernel_mask`` is True, ``-inf`` elsewhere."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise invalid("dtype", "a floating-point torch dtype", dtype)
    out = torch.zeros(layout.kernel_mask.shape, dtype=dtype, device=layout.device)
    return out.masked_fill_(~layout.kernel_mask, float("-inf"))


def block_mask(
    layout: WindowLayout,
    batch: int | None = None,
    *,
    block_size: int | tuple[int, int] = 128,
    padding_self: bool = False,
) -> BlockMask:
    """The layout's attention mask as a FlexAttention ``BlockMask``.

    For ``flex_attention(q, k, v, block_mask=...)`` with ``q, k, v [R * G, H, g, D]``, the
    groups of :func:`grouping.adapter.group_tokens` split into heads; ``mask_mod(b, h, i, j)``
    is ``attn_mask[b % G, i, j]``.

    Args:
        layout: the layout.
        batch: ``R``, the samples folded into the group axis (batch-shared layouts only);
            default 1.
        block_size: FlexAttention's block size (128 by default; groups shorter than a block
            take one block each).
        padding_self: use ``kernel_mask`` (padding slots attend to themselves) instead of
            ``attn_mask`` (FlexAttention gives fully masked rows an output of 0 anyway).

    Returns:
        A ``BlockMask`` of shape ``[R * G, 1, g, g]``.

    Notes:
        On CPU with torch 2.13, ``create_block_mask`` and ``flex_attention`` both run eagerly;
        ``flex_attention`` then warns that it uses an unfused implementation that materialises
        the scores (a fused kernel needs ``torch.compile``).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    rows = 1 if batch is None else check_int("batch", batch, minimum=1)
    if layout.batch is not None and rows != 1:
        raise invalid(
            "batch", "None or 1 for a per-sample layout (its groups span the batch)", batch
        )
    dense = layout.kernel_mask if padding_self else layout.attn_mask  # [G, g, g]
    num_groups, size = layout.num_groups, layout.group_size

    def mask_mod(b, h, q_idx, kv_idx):
        return dense[b % num_groups, q_idx, kv_idx]

    return create_block_mask(
        mask_mod,
        B=rows * num_groups,
        H=None,
        Q_LEN=size,
        KV_LEN=size,
        device=layout.device,
        BLOCK_SIZE=block_size,
    )


class VarlenOffsets(NamedTuple):
    """Cumulative offsets of the non-empty windows for variable-length attention kernels.

    Attributes:
        order: int64 ``[R * T]``, the tokens (into ``x_vis.reshape(-1, C)``) sorted by
            window, then row-major; ``x_vis.reshape(-1, C)[order]`` is the packed sequence.
        cu_seqlens: int32 ``[S + 1]``, segment ``s`` is ``order[cu_seqlens[s]:cu_seqlens[s+1]]``
            (``S`` non-empty windows of all samples).
        max_seqlen: the longest segment.
        windows: int64 ``[S]``, the window of every segment (window ``w`` of sample ``b`` is
            ``b * num_windows + w``).
    """

    order: torch.Tensor
    cu_seqlens: torch.Tensor
    max_seqlen: int
    windows: torch.Tensor


def _token_windows(layout: WindowLayout, batch: int | None) -> torch.Tensor:
    """int64 ``[R * T]``: the window of every token of ``x_vis.reshape(-1, C)``."""
    rows = 1 if batch is None else check_int("batch", batch, minimum=1)
    if layout.batch is not None and rows != 1:
        raise invalid(
            "batch", "None or 1 for a per-sample layout (its groups span the batch)", batch
        )
    token_window = layout.window_ids.reshape(-1)[layout.inverse]  # [T]
    if layout.shared and rows > 1:
        offsets = torch.arange(rows, device=layout.device) * layout.num_windows  # [R]
        token_window = (token_window[None, :] + offsets[:, None]).reshape(-1)  # [R * T]
    return token_window


def varlen_offsets(layout: WindowLayout, batch: int | None = None) -> VarlenOffsets:
    """Sort the visible tokens by window and return the segment offsets.

    Args:
        layout: the layout.
        batch: samples of a batch-shared layout (their windows become separate segments);
            default 1. Must be None or 1 for a per-sample layout.

    Returns:
        :class:`VarlenOffsets`.
    """
    token_window = _token_windows(layout, batch)
    windows, lengths = torch.unique_consecutive(torch.sort(token_window).values, return_counts=True)
    order = torch.sort(token_window, stable=True).indices  # [R * T]
    cu_seqlens = torch.zeros(lengths.shape[0] + 1, dtype=torch.int32, device=layout.device)
    cu_seqlens[1:] = torch.cumsum(lengths, 0)
    max_seqlen = int(lengths.max()) if lengths.numel() else 0
    return VarlenOffsets(order, cu_seqlens, max_seqlen, windows)


def token_attention_mask(layout: WindowLayout, batch: int | None = None) -> torch.Tensor:
    """Dense bool ``[R * T, R * T]`` mask over the tokens of ``x_vis.reshape(-1, C)``.

    ``out[s, t]`` is True iff token ``s`` may attend to token ``t`` according to the layout
    (read from ``attn_mask`` through the slots; samples of a batch-shared layout never attend
    to each other). A slow reference: quadratic in the tokens.
    """
    rows = 1 if batch is None else check_int("batch", batch, minimum=1)
    _token_windows(layout, batch)  # validates batch
    slot = layout.inverse  # [T]
    size = layout.group_size
    group, pos = slot // size, slot % size
    same_group = group[:, None] == group[None, :]  # [T, T]
    allowed = layout.attn_mask[group[:, None], pos[:, None], pos[None, :]] & same_group
    if rows == 1:
        return allowed
    return torch.block_diag(*([allowed] * rows))
