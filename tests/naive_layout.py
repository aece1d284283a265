"""Slow, obviously-correct oracles for masking, mask-unit layout and window partition.

The layout oracles repeat the view / permute / flatten steps of Hiera's ``Unroll`` and
``Reroll`` (``hiera/hiera_utils.py``) literally, with numpy on an ``arange`` in place of torch
tensors (``B`` batch, ``C = 1`` channel). The window oracles follow DESIGN.md's definition with
plain Python loops.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _interleave(a: list[int], b: list[int]) -> list[int]:
    return [v for pair in zip(a, b, strict=True) for v in pair]


def hiera_unroll(x: np.ndarray, size: list[int], schedule: list[tuple[int, ...]]) -> np.ndarray:
    """Hiera's ``Unroll.forward`` on ``x`` of shape ``[B, N, C]``."""
    B, _, C = x.shape
    cur_size = list(size)
    x = x.reshape([B] + cur_size + [C])
    for strides in schedule:
        # [B, H // Sy, Sy, W // Sx, Sx, C]
        cur_size = [i // s for i, s in zip(cur_size, strides, strict=True)]
        new_shape = [B] + _interleave(cur_size, list(strides)) + [C]
        x = x.reshape(new_shape)
        # [B, Sy, Sx, H // Sy, W // Sx, C]
        L = len(new_shape)
        permute = [0] + list(range(2, L - 1, 2)) + list(range(1, L - 1, 2)) + [L - 1]
        x = x.transpose(permute)
        # flatten(0, len(strides)): the strides join the batch
        x = x.reshape([-1] + list(x.shape[len(strides) + 1 :]))
        B *= math.prod(strides)
    return x.reshape(-1, math.prod(size), C)


def hiera_reroll(x: np.ndarray, size: list[int], schedule: list[tuple[int, ...]]) -> np.ndarray:
    """Hiera's ``Reroll.forward`` without a mask on ``x`` of shape ``[B, N, C]``.

    Returns ``[B, *size, C]`` in spatial (row-major) order.
    """
    B, N, C = x.shape
    D = len(size)
    cur_mu_shape = [1] * D
    for strides in schedule:
        x = x.reshape(B, *strides, N // math.prod(strides), *cur_mu_shape, C)
        L = x.ndim
        permute = (
            [0, 1 + D] + _interleave(list(range(1, 1 + D)), list(range(1 + D + 1, L - 1))) + [L - 1]
        )
        x = x.transpose(permute)
        cur_mu_shape = [m * s for m, s in zip(cur_mu_shape, strides, strict=True)]
        x = x.reshape(B, -1, *cur_mu_shape, C)
        N = x.shape[1]
    x = x.reshape(B, N, *cur_mu_shape, C)
    # undo_windowing: [B, #MUy*#MUx, MUy, MUx, C] -> [B, #MUy*MUy, #MUx*MUx, C]
    num_mus = [s // m for s, m in zip(size, cur_mu_shape, strict=True)]
    x = x.reshape(B, *num_mus, *cur_mu_shape, C)
    permute = [0] + _interleave(list(range(1, 1 + D)), list(range(1 + D, 1 + 2 * D))) + [x.ndim - 1]
    return x.transpose(permute).reshape(B, *size, C)


def naive_unroll_index(grid: tuple[int, ...], schedule: list[tuple[int, ...]]) -> np.ndarray:
    """``perm`` with ``x_unrolled = x_flat[perm]``: Hiera's Unroll applied to an arange."""
    L = math.prod(grid)
    x = np.arange(L, dtype=np.int64).reshape(1, L, 1)
    return hiera_unroll(x, list(grid), schedule).reshape(-1)


def naive_reroll_index(grid: tuple[int, ...], schedule: list[tuple[int, ...]]) -> np.ndarray:
    """``inv`` with ``x_flat = x_unrolled[inv]``: Hiera's Reroll applied to an arange.

    Rerolling the unrolled positions ``0..L-1`` puts, at every spatial token, its unrolled
    position.
    """
    L = math.prod(grid)
    x = np.arange(L, dtype=np.int64).reshape(1, L, 1)
    return hiera_reroll(x, list(grid), schedule).reshape(-1)


def naive_mask_unit_ids(grid: tuple[int, ...], mask_unit: tuple[int, ...]) -> np.ndarray:
    """Mask-unit id of every token, by a loop over the tokens."""
    unit_grid = [g // u for g, u in zip(grid, mask_unit, strict=True)]
    out = np.zeros(grid, dtype=np.int64)
    for coord in itertools.product(*(range(g) for g in grid)):
        unit = [c // u for c, u in zip(coord, mask_unit, strict=True)]
        uid = 0
        for i, n in zip(unit, unit_grid, strict=True):
            uid = uid * n + i
        out[coord] = uid
    return out


def naive_upsample(mask: np.ndarray, factor: tuple[int, ...]) -> np.ndarray:
    """Upsample the last ``len(factor)`` axes of ``mask`` by a loop over the output tokens."""
    ndim = len(factor)
    lead = mask.shape[: mask.ndim - ndim]
    grid = mask.shape[mask.ndim - ndim :]
    out = np.zeros((*lead, *(g * f for g, f in zip(grid, factor, strict=True))), dtype=bool)
    for index in itertools.product(*(range(n) for n in out.shape)):
        spatial = index[len(lead) :]
        src = index[: len(lead)] + tuple(c // f for c, f in zip(spatial, factor, strict=True))
        out[index] = mask[src]
    return out


def _axis_window(coord: int, size: int, window: int, shift: int) -> tuple[int, int]:
    """(index of the window holding ``coord``, number of windows) along one axis.

    Window boundaries lie at ``shift + k * window`` (k any integer), clipped to ``[0, size)``.
    """
    starts = [0]
    b = shift
    while b < size:
        if b > 0:
            starts.append(b)
        b += window
    index = -1
    for k, start in enumerate(starts):
        if start <= coord:
            index = k
    return index, len(starts)


def naive_window_grid(grid, window, shift) -> tuple[int, ...]:
    return tuple(_axis_window(0, g, w, s)[1] for g, w, s in zip(grid, window, shift, strict=True))


def naive_window_index(grid, window, shift) -> np.ndarray:
    """Window id of every token: row-major over the window grid, by loops."""
    wgrid = naive_window_grid(grid, window, shift)
    out = np.zeros(grid, dtype=np.int64)
    for coord in itertools.product(*(range(g) for g in grid)):
        wid = 0
        for c, g, w, s, n in zip(coord, grid, window, shift, wgrid, strict=True):
            wid = wid * n + _axis_window(c, g, w, s)[0]
        out[coord] = wid
    return out


def naive_window_counts(mask: np.ndarray, window, shift) -> np.ndarray:
    """Visible tokens per window for a mask ``[*lead, *grid]`` (``len(window)`` spatial axes)."""
    ndim = len(window)
    lead = mask.shape[: mask.ndim - ndim]
    grid = mask.shape[mask.ndim - ndim :]
    wgrid = naive_window_grid(grid, window, shift)
    ids = naive_window_index(grid, window, shift)
    out = np.zeros((*lead, math.prod(wgrid)), dtype=np.int64)
    for b in itertools.product(*(range(n) for n in lead)):
        for coord in itertools.product(*(range(g) for g in grid)):
            if mask[b + coord]:
                out[b + (ids[coord],)] += 1
    return out.reshape(*lead, *wgrid)


def naive_visible_window_ids(mask: np.ndarray, window, shift) -> list[list[int]]:
    """Window id of every visible token, row-major; per sample, offset by b * num_windows."""
    ndim = len(window)
    lead = mask.shape[: mask.ndim - ndim]
    grid = mask.shape[mask.ndim - ndim :]
    num_windows = math.prod(naive_window_grid(grid, window, shift))
    ids = naive_window_index(grid, window, shift)
    out = []
    for flat_b, b in enumerate(itertools.product(*(range(n) for n in lead))):
        row = []
        for coord in itertools.product(*(range(g) for g in grid)):
            if mask[b + coord]:
                row.append(int(ids[coord]) + flat_b * num_windows)
        out.append(row)
    return out
