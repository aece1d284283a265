"""HiP's groups as tensors: group, ungroup and regroup the tokens of concatenated modalities.

The index maps come from the core (:mod:`grouping.core.groups`): a
:class:`~grouping.core.GroupLayout` says which token sits at every slot of the ``[G, L]`` group
array (``index``, ``-1`` for padding) and where every token went (``inverse``);
:func:`~grouping.core.regroup_index` is the official ``regroup`` as a gather index. Here those
maps are applied to torch tensors, differentiably (gradients of padding slots are dropped):

* :func:`group_modalities`: ``[B, N, C] -> [B, G, L, C]``, zeros at padding slots (the torch
  twin of :func:`~grouping.core.group_array`);
* :func:`ungroup_modalities`: its inverse on the real slots, ``[B, G, L, C] -> [B, N, C]``
  (the twin of :func:`~grouping.core.ungroup_array`);
* :func:`regroup`: ``[B, G, N, C] -> [B, G', G * N / G', C]`` between HiP's blocks;
* :func:`gather_slots`: the same slots of every group, ``[B, G, L, C] -> [B, G, K, C]`` (the
  visible or masked slots of a group-wise mask).

These are not the window groups of :func:`~grouping.adapter.group_tokens` (GreenMIM's packing
of visible windows by a :class:`~grouping.adapter.WindowLayout`): HiP's groups are contiguous
runs of one modality's tokens, the same for every sample.

Examples:
    >>> from grouping.core import group_layout
    >>> lay = group_layout(2, [3])                           # [[0, 1], [2, -1]]
    >>> x = torch.arange(3.0).reshape(1, 3, 1)
    >>> y = group_modalities(x, torch.from_numpy(lay.index))
    >>> y[..., 0].tolist()
    [[[0.0, 1.0], [2.0, 0.0]]]
    >>> ungroup_modalities(y, torch.from_numpy(lay.inverse))[..., 0].tolist()
    [[0.0, 1.0, 2.0]]
    >>> regroup(y, 1).shape
    torch.Size([1, 1, 4, 1])
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.errors import invalid
from ..core.groups import REGROUP_TYPES

__all__ = ["gather_slots", "group_modalities", "regroup", "ungroup_modalities"]


def _shape(x: Any) -> Any:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def group_modalities(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Group concatenated tokens: ``[B, N, C] -> [B, G, L, C]`` with zero padding slots.

    Args:
        x: the modalities concatenated along the tokens, ``[B, N, C]``.
        index: int64 ``[G, L]`` from :class:`~grouping.core.GroupLayout` (``-1`` = padding).

    Returns:
        ``[B, G, L, C]``: ``out[b, g, l] = x[b, index[g, l]]``, zeros where ``index`` is -1.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise invalid("x", "a tensor [B, N, C]", _shape(x))
    if not isinstance(index, torch.Tensor) or index.dim() != 2:
        raise invalid("index", "an int64 tensor [G, L] (GroupLayout.index)", _shape(index))
    b, n, c = x.shape
    padded = torch.cat([x, x.new_zeros(b, 1, c)], dim=1)  # B, N + 1, C: the last row is zero
    flat = torch.where(index >= 0, index, n).reshape(-1)  # G * L
    return padded.index_select(1, flat).reshape(b, *index.shape, c)  # B, G, L, C


def ungroup_modalities(y: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`group_modalities`: ``[B, G, L, C] -> [B, N, C]`` (padding dropped).

    Args:
        y: grouped tokens ``[B, G, L, C]``.
        inverse: int64 ``[N]``, the flat slot ``g * L + l`` of every token
            (:attr:`~grouping.core.GroupLayout.inverse`).

    Returns:
        ``[B, N, C]``, the tokens in input order.
    """
    if not isinstance(y, torch.Tensor) or y.dim() != 4:
        raise invalid("y", "a tensor [B, G, L, C]", _shape(y))
    if not isinstance(inverse, torch.Tensor) or inverse.dim() != 1:
        raise invalid("inverse", "an int64 tensor [N] (GroupLayout.inverse)", _shape(inverse))
    b, g, length, c = y.shape
    return y.reshape(b, g * length, c).index_select(1, inverse)  # B, N, C


def regroup(x: torch.Tensor, num_output_groups: int, regroup_type: str = "reshape") -> torch.Tensor:
    """The official ``regroup``: ``[B, G, N, C] -> [B, G', G * N / G', C]``.

    ``"reshape"`` merges neighbouring groups; ``"transpose_reshape"`` reshapes the ``[B, N, G,
    C]`` transpose, so every output group mixes all input groups. The gather index of either is
    :func:`grouping.core.regroup_index`.

    Args:
        x: ``[B, G, N, C]``, e.g. the latents of a HiP block.
        num_output_groups: ``G'``, a divisor of ``G * N``.
        regroup_type: ``"reshape"`` or ``"transpose_reshape"``.

    Returns:
        ``[B, G', G * N / G', C]``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise invalid("x", "a tensor [B, G, N, C]", _shape(x))
    if regroup_type not in REGROUP_TYPES:
        raise invalid("regroup_type", f"one of {REGROUP_TYPES}", regroup_type)
    b, g, n, c = x.shape
    if (g * n) % num_output_groups:
        raise invalid(
            "num_groups",
            f"a group count that divides the {g} x {n} = {g * n} latents of the previous block",
            num_output_groups,
        )
    if regroup_type == "transpose_reshape":
        x = x.transpose(1, 2)  # B, N, G, C
    return x.reshape(b, num_output_groups, g * n // num_output_groups, c)


def gather_slots(x: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """The slots ``slots`` of every group: ``x [B, G, L, C]`` -> ``[B, G, K, C]``.

    Args:
        x: grouped tokens ``[B, G, L, C]``.
        slots: int64 ``[1, G, K]`` (the same slots for every sample) or ``[B, G, K]``,
            positions in ``[0, L)`` inside each group (a :class:`~grouping.core.GroupSlots`
            row, e.g. the visible slots of a group-wise mask).

    Returns:
        ``[B, G, K, C]`` with ``out[b, g, k] = x[b, g, slots[b or 0, g, k]]``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise invalid("x", "a tensor [B, G, L, C]", _shape(x))
    if not isinstance(slots, torch.Tensor) or slots.dim() != 3:
        raise invalid("slots", "an int64 tensor [1 or B, G, K]", _shape(slots))
    slots = slots.expand(x.shape[0], -1, -1)  # B, G, K
    return x.gather(2, slots[..., None].expand(-1, -1, -1, x.shape[-1]))  # B, G, K, C
