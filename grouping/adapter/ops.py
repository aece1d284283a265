"""Group and ungroup visible tokens with a :class:`~grouping.adapter.WindowLayout`.

``group_tokens`` packs ``x_vis [B, N, C]`` into ``[R * G, g, C]`` groups with zero padding
slots, where ``R = B`` for a batch-shared layout (every sample uses the same groups, the batch is
folded into the group axis, sample-major) and ``R = 1`` for a per-sample layout (the groups
already span the batch). ``ungroup_tokens`` is its inverse on the real slots. Both are
differentiable; gradients of padding slots are dropped.
"""

from __future__ import annotations

import torch

from ..core.errors import GroupingValueError, invalid
from .layout import WindowLayout

__all__ = ["check_tokens", "group_tokens", "ungroup_tokens"]


def check_tokens(
    x_vis: torch.Tensor, layout: WindowLayout, *, channels: int | None = None, name: str = "x_vis"
) -> None:
    """Raise :class:`GroupingValueError` unless ``x_vis [B, N, C]`` fits ``layout``.

    Checks the rank, the token count ``N`` against the mask's visible count, the batch of a
    per-sample layout, the channels (if given) and the device.
    """
    if not isinstance(layout, WindowLayout):
        raise invalid("layout", "a WindowLayout built by grouping.adapter.window_layout", layout)
    if not isinstance(x_vis, torch.Tensor) or x_vis.dim() != 3:
        shape = tuple(x_vis.shape) if isinstance(x_vis, torch.Tensor) else x_vis
        raise invalid(name, "a tensor [B, N_vis, C]", shape)
    if not x_vis.is_floating_point():
        raise invalid(name, "a floating-point tensor", x_vis.dtype)
    batch, tokens, width = x_vis.shape
    if tokens != layout.num_visible:
        raise invalid(
            name,
            f"{layout.num_visible} visible tokens per sample (the layout's mask)",
            f"shape {tuple(x_vis.shape)}",
            "build the layout from the mask that selected these tokens",
        )
    if layout.batch is not None and batch != layout.batch:
        raise invalid(
            name,
            f"a batch of {layout.batch} (the layout's per-sample masks)",
            f"shape {tuple(x_vis.shape)}",
        )
    if channels is not None and width != channels:
        raise invalid(name, f"{channels} channels", f"shape {tuple(x_vis.shape)}")
    if x_vis.device != layout.device:
        raise GroupingValueError(
            f"layout: expected a layout on {x_vis.device} (the device of {name}), received a "
            f"layout on {layout.device}. Build it with device={name}.device or call "
            f"layout.to({name}.device)"
        )


def group_tokens(x_vis: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """Pack visible tokens into groups.

    Args:
        x_vis: ``[B, N, C]`` visible tokens, row-major per sample.
        layout: the layout of the mask that selected them.

    Returns:
        ``[R * G, g, C]`` groups (``R = B`` batch-shared, ``1`` per-sample), padding slots 0.
    """
    check_tokens(x_vis, layout)
    batch, _, width = x_vis.shape
    rows = batch if layout.shared else 1
    num_groups, size = layout.num_groups, layout.group_size
    x = x_vis.reshape(rows, layout.num_tokens, width)  # [R, T, C]
    if not layout.identity:
        x = x.new_zeros(rows, num_groups * size, width).index_copy(1, layout.inverse, x)
    return x.reshape(rows * num_groups, size, width)  # [R * G, g, C]


def ungroup_tokens(x_groups: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """Inverse of :func:`group_tokens`: take every token back from its slot.

    Args:
        x_groups: ``[R * G, g, C]`` groups.
        layout: the layout they were grouped with.

    Returns:
        ``[B, N, C]`` tokens in row-major order per sample (padding slots dropped).
    """
    num_groups, size = layout.num_groups, layout.group_size
    if x_groups.dim() != 3 or x_groups.shape[1] != size:
        raise invalid("x_groups", f"a tensor [R * {num_groups}, {size}, C]", tuple(x_groups.shape))
    total, _, width = x_groups.shape
    if num_groups == 0:
        rows = 1 if layout.batch is not None else 0
    else:
        rows, rest = divmod(total, num_groups)
        if rest or (layout.batch is not None and rows != 1):
            expected = f"[{num_groups}, {size}, C]" if layout.batch else f"[B * {num_groups}, ...]"
            raise invalid("x_groups", f"a tensor {expected}", tuple(x_groups.shape))
    x = x_groups.reshape(rows, num_groups * size, width)  # [R, G * g, C]
    if not layout.identity:
        x = x.index_select(1, layout.inverse)  # [R, T, C]
    batch = rows if layout.shared else layout.batch
    return x.reshape(batch, layout.num_visible, width)  # [B, N, C]
