"""Window layouts: a grouping plan turned into gather indices, attention masks and positions.

A :class:`WindowLayout` is everything grouped window attention needs besides the weights: where
each visible token goes in the groups, which slots may attend to which, and the relative
position of every pair of slots. It is built once per step and per window partition (a stage's
unshifted and shifted partitions) by :func:`window_layout` and reused by every block of the stage.

Conventions (see DESIGN.md):

* A mask is bool, ``True`` = visible (kept). ``x_vis[b, i]`` is the ``i``-th True of the mask
  of sample ``b`` in row-major order.
* Visible tokens are numbered in the *flattened* order: token ``t`` of a per-sample layout is
  ``x_vis.reshape(B * N, C)[t]``, i.e. ``t = b * N + i``; for a batch-shared layout ``t = i``
  and the batch stays a separate leading axis (every sample uses the same groups).
* Slots are numbered ``k * g + j`` (group ``k``, position ``j``); ``-1`` marks a padding slot
  in every integer index.

Shapes: ``B`` batch, ``N`` visible tokens per sample, ``T`` visible tokens the layout indexes
(``N`` batch-shared, ``B * N`` per-sample), ``G`` groups, ``g`` group size (slots per group).

Examples:
    >>> import numpy as np
    >>> mask = np.zeros((4, 4), dtype=bool)
    >>> mask[0, :3] = mask[3, 3] = True          # 3 tokens in window 0, 1 token in window 3
    >>> layout = window_layout(mask, 2, group_size=4)
    >>> layout.mode, layout.num_groups, layout.group_size
    ('grouped', 1, 4)
    >>> layout.index.tolist()                    # [G, g] token of every slot, -1 = padding
    [[0, 1, 2, 3]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from .. import core as _core
from ..core.errors import as_int_tuple, invalid
from ..core.masking import as_bool_mask
from ..core.plan import GroupingPlan, attention_cost
from ..core.windows import window_grid, window_index
from .tensors import map_tensors

__all__ = [
    "MODES",
    "WindowLayout",
    "build_attention_mask",
    "relative_position_index",
    "window_layout",
]

#: The two ways of laying out visible tokens for window attention.
#:
#: * ``"grouped"``: GreenMIM's groups, windows packed into ``G`` groups of ``g`` slots.
#: * ``"mask"``: one group per sample holding all ``N`` visible tokens (in row-major order, so
#:   no gather is needed) under a window mask; GreenMIM's choice for small stages.
MODES = ("grouped", "mask")


@dataclass(frozen=True, eq=False)
class WindowLayout:
    """Grouped window attention's tensors for one mask and one window partition.

    Built by :func:`window_layout`; all tensors live on :attr:`device` and are read-only by
    convention (they are shared by all blocks of a stage).

    Attributes:
        index: int64 ``[G, g]``, the token (flattened numbering, see the module docstring) in
            every slot; ``-1`` = padding slot. The gather that packs tokens into groups.
        inverse: int64 ``[T]``, the flat slot ``k * g + j`` of every token; ``groups.view(-1,
            C)[inverse]`` restores the token order (the inverse of ``index``).
        padding: bool ``[G, g]``, True = padding slot (no token).
        attn_mask: bool ``[G, g, g]``, True = slot ``i`` may attend to slot ``j``: both hold a
            token and the tokens lie in the same window of the same sample. Padding rows are
            all False (see :attr:`kernel_mask`).
        kernel_mask: bool ``[G, g, g]``, ``attn_mask`` plus the diagonal of padding slots: what
            the attention kernels use, so that no row is empty and no NaN appears (a padding
            slot attends to itself only; its output is discarded).
        rel_index: int64 ``[G, g, g]``, index into Swin's ``(2*wh - 1) * (2*ww - 1)`` relative
            position bias table from the tokens' true grid coordinates (timm's convention:
            ``(dh + wh - 1) * (2*ww - 1) + (dw + ww - 1)`` with ``dh = h_i - h_j``); 0 where
            ``attn_mask`` is False.
        window_ids: int64 ``[G, g]``, the window of every slot (per-sample layouts: window
            ``w`` of sample ``b`` is ``b * num_windows + w``); ``-1`` = padding.
        group_sizes: int64 ``[G]``, tokens (not padding) in every group.
        plan: the grouping plan the tensors realise (in ``"mask"`` mode, one group per sample
            holding all its non-empty windows, with strategy ``"mask"``).
        mode: ``"grouped"`` or ``"mask"`` (see :data:`MODES`).
        grid: token grid ``(H, W)``.
        window: window size ``(wh, ww)``.
        shift: partition offset ``(sh, sw)``.
        batch: number of samples for a per-sample layout, None for a batch-shared one.
        num_visible: visible tokens per sample ``N``.
        num_windows: windows per sample (empty ones included).
        identity: True if ``index`` is ``arange(T)`` (no padding, tokens in order): grouping is
            then a reshape.
        grouped_cost: :func:`grouping.attention_cost` of the grouped plan (all samples of a
            per-sample layout, one sample of a batch-shared one); nan without ``channels``.
        mask_cost: the same for masking mode (one group of ``N`` tokens per sample).
    """

    index: torch.Tensor
    inverse: torch.Tensor
    padding: torch.Tensor
    attn_mask: torch.Tensor
    kernel_mask: torch.Tensor
    rel_index: torch.Tensor
    window_ids: torch.Tensor
    group_sizes: torch.Tensor
    plan: GroupingPlan
    mode: str
    grid: tuple[int, int]
    window: tuple[int, int]
    shift: tuple[int, int]
    batch: int | None
    num_visible: int
    num_windows: int
    identity: bool
    grouped_cost: float
    mask_cost: float

    @property
    def shared(self) -> bool:
        """True for a batch-shared layout (one mask ``[H, W]`` for every sample)."""
        return self.batch is None

    @property
    def num_groups(self) -> int:
        """Number of groups ``G`` (of one sample for a batch-shared layout)."""
        return int(self.index.shape[0])

    @property
    def group_size(self) -> int:
        """Slots per group ``g``."""
        return int(self.index.shape[1])

    @property
    def num_tokens(self) -> int:
        """Tokens the layout indexes: ``N`` (batch-shared) or ``B * N`` (per-sample)."""
        return int(self.inverse.shape[0])

    @property
    def table_size(self) -> int:
        """Rows of the relative position bias table: ``(2*wh - 1) * (2*ww - 1)``."""
        return (2 * self.window[0] - 1) * (2 * self.window[1] - 1)

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.index.device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> WindowLayout:
        """A copy with every tensor on ``device`` (self if already there).

        Args:
            device: the target device.
            non_blocking: asynchronous copies from pinned memory (see :meth:`pin_memory`).
        """
        device = torch.device(device)
        if device == self.device:
            return self
        return map_tensors(self, lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> WindowLayout:
        """A copy with every tensor in pinned host memory (what DataLoader's ``pin_memory``
        calls), so that ``.to(cuda, non_blocking=True)`` overlaps with compute."""
        return map_tensors(self, lambda t: t.pin_memory())

    def __repr__(self) -> str:
        kind = "shared" if self.shared else f"batch={self.batch}"
        return (
            f"WindowLayout(mode={self.mode!r}, {kind}, grid={self.grid}, window={self.window}, "
            f"shift={self.shift}, num_visible={self.num_visible}, num_groups={self.num_groups}, "
            f"group_size={self.group_size}, device={self.device})"
        )


def build_attention_mask(window_ids: Any) -> Any:
    """Bool mask ``[..., g, g]``: slots ``i`` and ``j`` hold tokens of the same window.

    Args:
        window_ids: int ``[..., g]`` (numpy array or torch tensor), the window of every slot,
            ``-1`` = padding (a window id must be unique across samples).

    Returns:
        bool ``[..., g, g]`` of the same kind, True = may attend; rows and columns of padding
        slots are all False.
    """
    row = window_ids[..., :, None]  # [..., g, 1]
    col = window_ids[..., None, :]  # [..., 1, g]
    return (row == col) & (row >= 0)


def relative_position_index(coords: Any, window: Any, attn_mask: Any = None) -> Any:
    """Index into Swin's relative position bias table for every pair of slots.

    Args:
        coords: int ``[..., g, 2]`` (numpy array or torch tensor), the true ``(h, w)`` grid
            coordinates of the token in every slot (anything for padding).
        window: window size, int or ``(wh, ww)``.
        attn_mask: optional bool ``[..., g, g]``; where False the index is set to 0.

    Returns:
        int ``[..., g, g]``: ``(h_i - h_j + wh - 1) * (2*ww - 1) + (w_i - w_j + ww - 1)``, in
        ``[0, (2*wh - 1) * (2*ww - 1))`` for every pair of the same window (timm's
        ``get_relative_position_index``, with true instead of in-window coordinates, which
        is the same for every pair of a window, partial and shifted windows included).
    """
    wh, ww = as_int_tuple("window", window, 2)
    # the index is linear in the coordinates: pack (h, w) once per slot, subtract per pair
    packed = coords[..., 0] * (2 * ww - 1) + coords[..., 1]  # [..., g]
    index = packed[..., :, None] - packed[..., None, :]  # [..., g, g]
    index += (wh - 1) * (2 * ww - 1) + (ww - 1)
    if attn_mask is not None:
        index *= attn_mask
    return index


def _as_numpy_mask(token_mask: Any) -> tuple[NDArray[np.bool_], torch.device | None]:
    device = token_mask.device if isinstance(token_mask, torch.Tensor) else None
    mask = as_bool_mask(token_mask, "token_mask", "a bool tensor or array (True = visible)")
    return mask, device


def _mask_plan(
    counts: NDArray[np.int64], samples: int, num_visible: int, channels: int | None
) -> GroupingPlan:
    """Masking mode as a plan: one group per sample holding all its non-empty windows."""
    per_sample = counts.reshape(samples, -1)
    num_windows = per_sample.shape[1]
    groups = tuple(
        np.flatnonzero(per_sample[b]) + b * num_windows for b in range(samples) if num_visible
    )
    return GroupingPlan.from_groups(
        groups,
        max(num_visible, 1),
        counts,
        lower_bound=len(groups),
        optimal=True,
        strategy="mask",
        channels=channels,
    )


def window_layout(
    token_mask: Any,
    window: int | tuple[int, int],
    *,
    shift: int | tuple[int, int] = 0,
    group_size: int | str | None = None,
    strategy: str = "auto",
    channels: int | None = None,
    device: torch.device | str | None = None,
    mode: Literal["auto", "grouped", "mask"] = "auto",
    max_group_size: int | None = None,
) -> WindowLayout:
    """Solve the grouping of a mask's windows and build the tensors of grouped attention.

    Args:
        token_mask: bool ``[H, W]`` (one mask for the whole batch, as GreenMIM) or
            ``[B, H, W]`` (one mask per sample, all with the same number of visible tokens;
            the windows of all samples are then packed into one plan, so a group may hold
            windows of different samples). A numpy array or a torch tensor; True = visible.
        window: window size, an int or ``(wh, ww)``, no larger than the grid.
        shift: partition offset (``window // 2`` for Swin's shifted blocks), int or per axis,
            ``0 <= shift < window``; border windows are partial (DESIGN.md).
        group_size: as for :func:`grouping.solve`: None = the largest window count, an int,
            or ``"sweep"`` (needs ``channels``).
        strategy: as for :func:`grouping.solve`.
        channels: embedding width ``C`` of the stage, for ``"sweep"`` and for ``mode="auto"``.
        device: device of the tensors; default the device of a ``token_mask`` tensor, else
            the CPU.
        mode: ``"grouped"``, ``"mask"`` or ``"auto"``: compare
            :func:`grouping.attention_cost` of the grouped plan with that of one group of
            ``N`` tokens per sample and take the cheaper (ties go to ``"grouped"``). Without
            ``channels`` the cost cannot be evaluated and ``"auto"`` means ``"grouped"``.
        max_group_size: as for :func:`grouping.solve` (bounds the ``"sweep"``).

    Returns:
        The :class:`WindowLayout`; ``layout.mode`` tells which mode was chosen.

    Raises:
        GroupingValueError: for a mask that is not bool ``[H, W]`` or ``[B, H, W]``, per-sample
            masks with unequal visible counts, a window larger than the grid, a bad shift or
            mode, and whatever :func:`grouping.solve` rejects.

    Notes:
        The cost model charges the q/k/v and output projections on every slot, padding
        included (GreenMIM's accounting). :class:`GroupedWindowAttention` projects before
        grouping, so padding only costs it the two attention products; the model still
        captures what the masking mode saves (no gather, no padding) for small stages.
    """
    mask, mask_device = _as_numpy_mask(token_mask)
    if mask.ndim not in (2, 3):
        raise invalid("token_mask", "a bool mask of shape [H, W] or [B, H, W]", mask)
    if mode not in ("auto", *MODES):
        raise invalid("mode", "one of 'auto', 'grouped', 'mask'", mode)
    if channels is not None:
        channels = int(channels)
    shared = mask.ndim == 2
    masks = mask[None] if shared else mask  # [S, H, W]
    samples, height, width = masks.shape
    grid = (height, width)
    win = as_int_tuple("window", window, 2)
    sh = as_int_tuple("shift", shift, 2, minimum=0)
    wgrid = window_grid(grid, win, shift=sh)  # validates window <= grid and shift < window
    num_windows = wgrid[0] * wgrid[1]
    if device is None:
        device = mask_device if mask_device is not None else torch.device("cpu")
    device = torch.device(device)

    flat = masks.reshape(samples, height * width)
    visible = flat.sum(axis=1)
    if samples and not np.all(visible == visible[0]):
        raise invalid(
            "token_mask",
            "per-sample masks with equal visible counts",
            f"visible counts {visible.tolist()}",
            "draw them with grouping.sample_masks, which keeps the same count per sample",
        )
    num_visible = int(visible[0]) if samples else 0

    # Tokens in the flattened numbering t = b * N + i (row-major per sample).
    sample_of, pos = np.nonzero(flat)  # [T], [T]
    token_window = window_index(grid, win, shift=sh).ravel()[pos] + sample_of * num_windows
    counts = np.bincount(token_window, minlength=samples * num_windows).astype(np.int64)
    coords = np.stack(np.divmod(pos, width), axis=-1)  # [T, 2] true (h, w)

    if num_visible == 0:
        grouped = _mask_plan(counts, samples, 0, channels)
    else:
        grouped = _core.solve(
            counts,
            group_size,
            strategy=strategy,
            channels=channels,
            max_group_size=max_group_size,
        )
    mask_plan = _mask_plan(counts, samples, num_visible, channels)
    if channels is None:
        grouped_cost = mask_cost = math.nan
    else:
        # Costs per sample for a batch-shared layout, over the batch for a per-sample one.
        grouped_cost = attention_cost(grouped.num_groups, grouped.group_size, channels)
        mask_cost = attention_cost(mask_plan.num_groups, mask_plan.group_size, channels)
    if mode == "auto":
        mode = "mask" if mask_cost < grouped_cost else "grouped"
    plan = mask_plan if mode == "mask" else grouped

    arrays = _slot_arrays(plan, token_window, coords, by_window=mode == "grouped")
    attn_mask = build_attention_mask(arrays["window_ids"])
    # int32 arithmetic (coordinates are small), int64 for torch's index_select
    rel_index = relative_position_index(arrays["coords"].astype(np.int32), win, attn_mask)
    padding = arrays["index"] < 0
    kernel_mask = attn_mask | (padding[:, :, None] & np.eye(plan.group_size, dtype=bool))
    num_tokens = token_window.shape[0]
    identity = plan.num_groups * plan.group_size == num_tokens and bool(
        np.array_equal(arrays["index"].ravel(), np.arange(num_tokens))
    )

    def tensor(array: NDArray[Any]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    return WindowLayout(
        index=tensor(arrays["index"]),
        inverse=tensor(arrays["inverse"]),
        padding=tensor(padding),
        attn_mask=tensor(attn_mask),
        kernel_mask=tensor(kernel_mask),
        rel_index=tensor(rel_index.astype(np.int64)),
        window_ids=tensor(arrays["window_ids"]),
        group_sizes=tensor(arrays["group_sizes"]),
        plan=plan,
        mode=mode,
        grid=grid,
        window=win,
        shift=sh,
        batch=None if shared else samples,
        num_visible=num_visible,
        num_windows=num_windows,
        identity=identity,
        grouped_cost=grouped_cost,
        mask_cost=mask_cost,
    )


def _slot_arrays(
    plan: GroupingPlan,
    token_window: NDArray[np.int64],
    coords: NDArray[np.int64],
    *,
    by_window: bool,
) -> dict[str, NDArray[np.int64]]:
    """Place every token in a slot of its window's group.

    Within a group, tokens are ordered by the window's position in the group, then row-major
    (``by_window=True``: each window is a contiguous block of slots), or row-major only
    (``by_window=False``: masking mode, where the slots then follow the token order).

    Args:
        plan: the plan; every window holding a token must be in a group.
        token_window: int64 ``[T]``, window of every token (flattened numbering).
        coords: int64 ``[T, 2]``, true ``(h, w)`` of every token.

    Returns:
        ``index`` int64 ``[G, g]`` (-1 = padding), ``inverse`` int64 ``[T]``,
        ``window_ids`` int64 ``[G, g]`` (-1 = padding), ``coords`` int64 ``[G, g, 2]`` (0 for
        padding), ``group_sizes`` int64 ``[G]``.
    """
    num_groups, g = plan.num_groups, plan.group_size
    num_tokens = token_window.shape[0]
    windows, offsets = plan.flat()
    rank = np.zeros(plan.num_windows, dtype=np.int64)  # position of a window in its group
    rank[windows] = np.arange(windows.shape[0]) - np.repeat(offsets[:-1], np.diff(offsets))
    token_group = plan.group_of[token_window]  # [T]
    assert num_tokens == 0 or token_group.min() >= 0, "a visible token's window has no group"
    tokens = np.arange(num_tokens, dtype=np.int64)
    keys = (tokens, rank[token_window], token_group) if by_window else (tokens, token_group)
    order = np.lexsort(keys)  # tokens sorted by slot
    sorted_group = token_group[order]
    group_sizes = np.bincount(token_group, minlength=num_groups).astype(np.int64)
    assert np.all(group_sizes <= g), "a group holds more tokens than its size"
    starts = np.zeros(num_groups + 1, dtype=np.int64)
    np.cumsum(group_sizes, out=starts[1:])
    slot = sorted_group * g + (np.arange(num_tokens) - starts[sorted_group])
    inverse = np.empty(num_tokens, dtype=np.int64)
    inverse[order] = slot
    index = np.full(num_groups * g, -1, dtype=np.int64)
    index[slot] = order
    window_ids = np.full(num_groups * g, -1, dtype=np.int64)
    window_ids[inverse] = token_window
    slot_coords = np.zeros((num_groups * g, 2), dtype=np.int64)
    slot_coords[inverse] = coords
    return {
        "index": index.reshape(num_groups, g),
        "inverse": inverse,
        "window_ids": window_ids.reshape(num_groups, g),
        "coords": slot_coords.reshape(num_groups, g, 2),
        "group_sizes": group_sizes,
    }
