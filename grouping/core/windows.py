"""Window partition of a token grid, window ids and visible-token counts per window.

Conventions (see DESIGN.md):

* A window partition with ``shift`` ``s`` (per axis, ``0 <= s < w``) is the partition of the
  grid whose boundaries lie at ``s + k*w``, clipped to the grid, so border windows may be
  partial. With ``s == 0`` it is the plain partition ``[0, w), [w, 2w), ...``; with ``s > 0`` it
  is ``[0, s), [s, s + w), ...``. This is exactly what Swin's cyclic shift (``roll`` by ``-s``)
  plus its attention mask computes.
* Windows are numbered row-major over the window grid; counts include empty windows.
* A mask is bool, ``True`` = visible (kept).

Examples:
    >>> import numpy as np
    >>> window_grid((8, 8), 4, shift=2)
    (3, 3)
    >>> window_index((4, 4), 2)[0].tolist()
    [0, 0, 1, 1]
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import as_int_tuple, check_grid, check_size, invalid
from .masking import as_bool_mask

__all__ = [
    "visible_window_ids",
    "window_counts",
    "window_grid",
    "window_index",
    "window_shape",
]


def _window_and_shift(
    grid: tuple[int, ...], window: Any, shift: Any
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ndim = len(grid)
    win = as_int_tuple("window", window, ndim)
    sh = as_int_tuple("shift", shift, ndim, minimum=0)
    for g, w in zip(grid, win, strict=False):
        if w > g:
            raise invalid(
                "window",
                f"a window no larger than the grid {grid}",
                window,
                "use a smaller window or a larger grid",
            )
    for w, s in zip(win, sh, strict=False):
        if s >= w:
            raise invalid("shift", f"0 <= shift < window {win} on every axis", shift)
    return win, sh


def window_grid(
    grid: tuple[int, ...], window: int | tuple[int, ...], *, shift: Any = 0
) -> tuple[int, ...]:
    """Number of windows along each axis.

    Args:
        grid: token grid ``(H, W)`` or ``(T, H, W)``.
        window: window size, an int (same on every axis) or one int per axis.
        shift: partition offset, an int or one int per axis, ``0 <= shift < window``.

    Returns:
        The window grid, e.g. ``(ceil(H / w), ceil(W / w))`` for ``shift == 0``.
    """
    grid = check_grid(grid)
    win, sh = _window_and_shift(grid, window, shift)
    return tuple((g - 1 + (w - s) % w) // w + 1 for g, w, s in zip(grid, win, sh, strict=False))


def window_shape(grid: tuple[int, ...], window: Any, *, shift: Any = 0) -> NDArray[np.int64]:
    """Number of tokens of every window (partial border windows are smaller).

    Returns:
        int64 array of shape ``window_grid(grid, window, shift=shift)``.
    """
    grid = check_grid(grid)
    win, sh = _window_and_shift(grid, window, shift)
    check_size("grid", grid, math.prod(grid), "tokens")
    sizes = []
    for g, w, s in zip(grid, win, sh, strict=False):
        axis_index = (np.arange(g, dtype=np.int64) + (w - s) % w) // w
        sizes.append(np.bincount(axis_index))
    out = sizes[0]
    for s in sizes[1:]:
        out = np.multiply.outer(out, s)
    return out.astype(np.int64)


def window_index(grid: tuple[int, ...], window: Any, *, shift: Any = 0) -> NDArray[np.int64]:
    """Window id of every token: the row-major index of its window in the window grid.

    Args:
        grid: token grid, one positive int per spatial axis.
        window: window size (int or per axis).
        shift: partition offset (int or per axis), ``0 <= shift < window``.

    Returns:
        int64 array of shape ``grid``; values in ``[0, prod(window_grid))``. Ids are computed
        in int64, so they never collide, whatever the grid size.
    """
    grid = check_grid(grid)
    win, sh = _window_and_shift(grid, window, shift)
    check_size("grid", grid, math.prod(grid), "tokens")
    wgrid = tuple((g - 1 + (w - s) % w) // w + 1 for g, w, s in zip(grid, win, sh, strict=False))
    ids = np.zeros((), dtype=np.int64)
    for axis, (g, w, s) in enumerate(zip(grid, win, sh, strict=False)):
        axis_index = (np.arange(g, dtype=np.int64) + (w - s) % w) // w
        ids = np.multiply.outer(ids * wgrid[axis], np.ones(g, dtype=np.int64)) + axis_index
    return ids


def _split_mask(token_mask: ArrayLike, window: Any, ndim: int | None) -> tuple[np.ndarray, int]:
    mask = as_bool_mask(token_mask, "token_mask")
    if ndim is None:
        ndim = len(window) if isinstance(window, (tuple, list)) else min(2, mask.ndim)
    elif isinstance(ndim, bool) or not isinstance(ndim, numbers.Integral):
        raise invalid("ndim", f"a number of spatial axes in [1, {mask.ndim}]", ndim)
    if not 1 <= ndim <= mask.ndim:
        raise invalid("ndim", f"a number of spatial axes in [1, {mask.ndim}]", ndim)
    return mask, ndim


def window_counts(
    token_mask: ArrayLike, window: int | tuple[int, ...], *, shift: Any = 0, ndim: int | None = None
) -> NDArray[np.int64]:
    """Number of visible tokens in every window (empty windows included).

    Args:
        token_mask: bool array ``[*lead, *grid]``, True = visible. Leading axes (a batch) are
            kept in the output.
        window: window size, int or one int per spatial axis.
        shift: partition offset, int or per axis (DESIGN.md: partial border windows).
        ndim: number of trailing spatial axes; default ``len(window)`` for a tuple window, else
            2 (images; pass ``ndim=3`` for video with an int window).

    Returns:
        int64 array ``[*lead, *window_grid]``; its sum over the window axes equals the number
        of visible tokens of each mask.
    """
    mask, ndim = _split_mask(token_mask, window, ndim)
    grid = mask.shape[mask.ndim - ndim :]
    lead = mask.shape[: mask.ndim - ndim]
    ids = window_index(grid, window, shift=shift).ravel()
    wgrid = window_grid(grid, window, shift=shift)
    num_windows = int(np.prod(wgrid))
    flat = mask.reshape(-1, ids.size)
    offsets = np.arange(flat.shape[0], dtype=np.int64)[:, None] * num_windows
    all_ids = (ids[None, :] + offsets)[flat]
    counts = np.bincount(all_ids, minlength=flat.shape[0] * num_windows)
    return counts.astype(np.int64).reshape(*lead, *wgrid)


def visible_window_ids(
    token_mask: ArrayLike, window: int | tuple[int, ...], *, shift: Any = 0, ndim: int | None = None
) -> NDArray[np.int64]:
    """Window id of every visible token, visible tokens in row-major order.

    For a single mask ``[*grid]`` the result is int64 ``[N_vis]`` with ids in
    ``[0, num_windows)``. For a batch ``[B, *grid]`` (every sample with the same number of
    visible tokens) it is int64 ``[B, N_vis]`` with the id of sample ``b`` offset by
    ``b * num_windows``, so ids are unique across the batch and match the flattened
    ``window_counts(token_mask, ...)``.

    Raises:
        GroupingValueError: if the samples of a batch have different visible counts.
    """
    mask, ndim = _split_mask(token_mask, window, ndim)
    grid = mask.shape[mask.ndim - ndim :]
    ids = window_index(grid, window, shift=shift).ravel()
    if mask.ndim == ndim:
        return ids[mask.ravel()]
    num_windows = int(np.prod(window_grid(grid, window, shift=shift)))
    flat = mask.reshape(-1, ids.size)
    visible = flat.sum(axis=1)
    if flat.shape[0] and not np.all(visible == visible[0]):
        raise invalid(
            "token_mask",
            "per-sample masks with equal visible counts",
            f"visible counts {visible.tolist()}",
        )
    offsets = np.arange(flat.shape[0], dtype=np.int64)[:, None] * num_windows
    out = (ids[None, :] + offsets)[flat]
    num_visible = int(visible[0]) if flat.shape[0] else 0  # an empty batch has no tokens
    return out.reshape(*mask.shape[: mask.ndim - ndim], num_visible)
