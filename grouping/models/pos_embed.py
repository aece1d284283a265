"""Position embeddings: fixed sine-cosine tables (1-D, 2-D, 3-D) and learned ones.

The sine-cosine tables are MAE's (``get_2d_sincos_pos_embed``) and MAE-ST's for video; they are
computed in float64 numpy and turned into tensors by the models (as non-persistent buffers,
since they are derived). Learned embeddings are parameters; :func:`resample_pos_embed` adapts
one to another grid (what timm does when a checkpoint is loaded at another input size).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from ..core.errors import as_int_tuple, check_int, invalid

__all__ = ["resample_pos_embed", "sincos_1d", "sincos_2d", "sincos_3d"]


def sincos_1d(dim: int, positions: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sine-cosine embedding of 1-D positions.

    Args:
        dim: embedding width (even).
        positions: float ``[M]``.

    Returns:
        float64 ``[M, dim]``: ``sin(pos * w_k)`` in the first half and ``cos(pos * w_k)`` in the
        second, with ``w_k = 10000 ** (-k / (dim / 2))``.
    """
    if dim % 2:
        raise invalid("dim", "an even width for the sin-cos embedding", dim)
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(np.asarray(positions, dtype=np.float64).reshape(-1), omega)  # M, dim/2
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(dim: int, grid: tuple[int, int]) -> NDArray[np.float64]:
    """MAE's fixed 2-D sine-cosine table for a ``grid = (H, W)`` of positions, row-major.

    As in MAE (``get_2d_sincos_pos_embed``), the first half of every row encodes the column
    ``w`` and the second half the row ``h``, so a square grid gives MAE's table exactly.

    Args:
        dim: embedding width, a multiple of 4.
        grid: ``(H, W)``.

    Returns:
        float64 ``[H * W, dim]``; row ``h * W + w`` embeds position ``(h, w)``.

    Examples:
        >>> sincos_2d(8, (2, 3)).shape
        (6, 8)
    """
    if dim % 4:
        raise invalid("dim", "a width divisible by 4 for the 2-D sin-cos embedding", dim)
    h, w = as_int_tuple("grid", grid, 2)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # H, W
    return np.concatenate(
        [sincos_1d(dim // 2, cols.reshape(-1)), sincos_1d(dim // 2, rows.reshape(-1))], axis=1
    )


def sincos_3d(dim: int, grid: tuple[int, int, int]) -> NDArray[np.float64]:
    """MAE-ST's fixed sine-cosine table for video, ``grid = (T, H, W)``, row-major.

    As in MAE-ST (``get_3d_sincos_pos_embed``): the first quarter of every row is the 1-D
    embedding of the frame ``t``, the other three quarters the 2-D embedding of ``(h, w)``
    (:func:`sincos_2d`).

    Args:
        dim: embedding width, a multiple of 16 (so that both parts have valid widths).
        grid: ``(T, H, W)``.

    Returns:
        float64 ``[T * H * W, dim]``; row ``(t * H + h) * W + w`` embeds ``(t, h, w)``.

    Examples:
        >>> sincos_3d(16, (2, 2, 3)).shape
        (12, 16)
    """
    if dim % 16:
        raise invalid("dim", "a width divisible by 16 for the 3-D sin-cos embedding", dim)
    t, h, w = as_int_tuple("grid", grid, 3)
    temporal = sincos_1d(dim // 4, np.arange(t))  # T, dim/4
    spatial = sincos_2d(dim // 4 * 3, (h, w))  # H*W, 3dim/4
    return np.concatenate([np.repeat(temporal, h * w, axis=0), np.tile(spatial, (t, 1))], axis=1)


def resample_pos_embed(
    pos_embed: torch.Tensor,
    old_grid: tuple[int, ...],
    new_grid: tuple[int, ...],
    *,
    num_prefix_tokens: int = 0,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Resample a learned position embedding to another grid (timm's
    ``resample_abs_pos_embed``).

    Args:
        pos_embed: ``[1, P + prod(old_grid), D]``, ``P`` prefix tokens (e.g. a class token)
            first, then the grid row-major.
        old_grid: the grid it was learned for, 2-D ``(H, W)`` or 3-D ``(T, H, W)``.
        new_grid: the grid wanted, same rank.
        num_prefix_tokens: ``P``, kept as they are.
        mode: ``F.interpolate`` mode for 2-D grids (``"bicubic"`` with antialiasing, as timm);
            3-D grids use ``"trilinear"``.

    Returns:
        ``[1, P + prod(new_grid), D]`` (the input itself if the grids are equal).
    """
    old = tuple(int(s) for s in old_grid)
    new = tuple(int(s) for s in new_grid)
    if len(old) != len(new) or len(old) not in (2, 3):
        raise invalid("new_grid", f"a grid of the same rank as {old} (2-D or 3-D)", new_grid)
    prefix = check_int("num_prefix_tokens", num_prefix_tokens, minimum=0)
    if pos_embed.dim() != 3 or pos_embed.shape[1] != prefix + math.prod(old):
        raise invalid(
            "pos_embed",
            f"a tensor [1, {prefix} + {math.prod(old)}, D] for the grid {old}",
            tuple(pos_embed.shape),
        )
    if old == new:
        return pos_embed
    head, body = pos_embed[:, :prefix], pos_embed[:, prefix:]
    d = body.shape[-1]
    x = body.reshape(1, *old, d).movedim(-1, 1).float()  # 1, D, *old
    x = F.interpolate(
        x,
        size=new,
        mode=mode if len(new) == 2 else "trilinear",
        align_corners=False,
        antialias=len(new) == 2 and mode in ("bilinear", "bicubic"),
    )
    x = x.movedim(1, -1).reshape(1, -1, d).to(pos_embed.dtype)  # 1, prod(new), D
    return torch.cat([head, x], dim=1)
