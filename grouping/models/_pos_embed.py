"""Fixed 2-D sine-cosine position embeddings (MAE's table, any grid shape)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["sincos_1d", "sincos_2d"]


def sincos_1d(dim: int, positions: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sine-cosine embedding of 1-D positions.

    Args:
        dim: embedding width (even).
        positions: float ``[M]``.

    Returns:
        float64 ``[M, dim]``: ``sin(pos * w_k)`` in the first half and ``cos(pos * w_k)`` in the
        second, with ``w_k = 10000 ** (-k / (dim / 2))``.
    """
    assert dim % 2 == 0, "the sin-cos embedding needs an even width"
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

    Example:
        >>> sincos_2d(8, (2, 3)).shape
        (6, 8)
    """
    assert dim % 4 == 0, "the 2-D sin-cos embedding needs a width divisible by 4"
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")  # H, W
    return np.concatenate(
        [sincos_1d(dim // 2, cols.reshape(-1)), sincos_1d(dim // 2, rows.reshape(-1))], axis=1
    )
