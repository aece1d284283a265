"""HiP's groups: modalities split into contiguous groups, padded, ungrouped and regrouped.

HiP (Carreira et al., 2022) flattens every modality to ``[N_m, C]`` tokens, splits each one into
contiguous groups and runs one Perceiver block per group; later blocks merge neighbouring groups
(``regroup``). Everything here is an index map over token positions, so the torch side only
gathers:

* :func:`assign_groups` hands a fixed number of groups to the modalities: every modality gets
  at least one, and the rest go, one at a time, to the modality whose groups are currently the
  largest, which makes the largest group as small as possible (the official
  ``assign_groups_to_modalities``, ties to the first modality).
* :func:`group_layout` pads each modality at its end to a multiple of its group count, splits it
  into its groups and pads every group at its end to the common length: the official
  ``ConstNumGrouper``. Its :class:`GroupLayout` holds the gather index ``[G, L]`` (``-1`` for a
  padding slot) and the inverse, the slot of every token.
* :func:`regroup_index` is the official ``regroup``: ``[G, L] -> [G', L']`` with ``G * L = G' *
  L'``, either a plain reshape (``"reshape"``: neighbouring groups merge) or a reshape of the
  transposed ``[L, G]`` array (``"transpose_reshape"``: every output group mixes all input
  groups).
* :func:`groupwise_slots` reads a group-wise mask (the same number of visible slots in every
  group, as :func:`~grouping.core.groupwise_masks` draws): the visible slots of every group, the
  masked ones, and which masked slots hold a real token (the loss is taken there).

Tokens of the concatenated input are numbered modality after modality, in the order given:
token ``t`` of modality ``m`` is ``offset[m] + t`` with ``offset[m] = sum(N[:m])``. Slots are
numbered row-major over ``[G, L]``.

Examples:
    >>> lay = group_layout(4, [5, 2])
    >>> lay.groups_per_modality, lay.group_len
    ((3, 1), 2)
    >>> lay.index.tolist()
    [[0, 1], [2, 3], [4, -1], [5, 6]]
    >>> regroup_index(4, 2, 2).tolist(), regroup_index(4, 2, 2, "transpose_reshape").tolist()
    ([[0, 1, 2, 3], [4, 5, 6, 7]], [[0, 2, 4, 6], [1, 3, 5, 7]])
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import GroupingValueError, as_array, check_int, check_size, invalid
from .masking import check_mask

__all__ = [
    "MAX_GROUPS",
    "REGROUP_TYPES",
    "GroupLayout",
    "GroupLayoutError",
    "GroupSlots",
    "assign_groups",
    "check_group_layout",
    "group_array",
    "group_layout",
    "groupwise_slots",
    "regroup_index",
    "ungroup_array",
]

REGROUP_TYPES = ("reshape", "transpose_reshape")
MAX_GROUPS = 1 << 20  # bounds the greedy assignment's time (about a second at the bound)


class GroupLayoutError(GroupingValueError):
    """A :class:`GroupLayout` violates one of its invariants (see :func:`check_group_layout`)."""


def _check_index_dims(index_dims: Any) -> tuple[int, ...]:
    expected = "a non-empty sequence of token counts (ints >= 1), one per modality"
    try:
        size = 0 if isinstance(index_dims, (str, bytes, dict)) else len(index_dims)
    except TypeError:  # no len(): an int, a 0-d array, an object
        size = 0
    if size == 0:
        raise invalid("index_dims", expected, index_dims)
    dims = []
    for value in index_dims:
        try:
            dims.append(check_int("index_dims", value, minimum=1))
        except GroupingValueError:
            raise invalid("index_dims", expected, index_dims) from None
    return tuple(dims)


def _check_num_groups(num_groups: Any, num_modalities: int) -> int:
    num_groups = check_int("num_groups", num_groups, minimum=1)
    if num_groups > MAX_GROUPS:
        raise invalid("num_groups", f"an int <= {MAX_GROUPS}", num_groups)
    if num_groups < num_modalities:
        raise invalid(
            "num_groups",
            f"at least one group per modality (>= {num_modalities} for {num_modalities} "
            "modalities)",
            num_groups,
            "A group never mixes modalities, so there cannot be more modalities than groups",
        )
    return num_groups


def assign_groups(num_groups: int, index_dims: Sequence[int]) -> tuple[tuple[int, ...], int]:
    """How many of ``num_groups`` groups each modality gets, and the common group length.

    Every modality gets one group; each remaining group goes to the modality with the largest
    current ``N_m / g_m`` (ties to the first). This greedy order minimises ``max_m N_m / g_m``
    over all assignments with ``g_m >= 1`` and ``sum g_m = G``, and so also the common length
    ``L = max_m ceil(N_m / g_m)``. It is the official ``assign_groups_to_modalities``.

    Args:
        num_groups: the number of groups ``G``, ``len(index_dims) <= G <= MAX_GROUPS``.
        index_dims: tokens per modality ``N_m >= 1``, in input order.

    Returns:
        ``(groups_per_modality, group_len)``: a tuple of ints ``g_m >= 1`` summing to ``G``,
        and ``L = max_m ceil(N_m / g_m)``.

    Raises:
        GroupingValueError: empty or non-positive ``index_dims``, or fewer groups than
            modalities.

    Examples:
        >>> assign_groups(16, [1024, 32])
        ((15, 1), 69)
    """
    dims = _check_index_dims(index_dims)
    num_groups = _check_num_groups(num_groups, len(dims))
    groups = _greedy_start(dims, num_groups)
    # The official compares floats N_m / g_m with argmax (first index on ties); a heap keyed by
    # (-N_m / g_m, m) pops the same modality.
    heap = [(-(n / g), m) for m, (n, g) in enumerate(zip(dims, groups, strict=True))]
    heapq.heapify(heap)
    for _ in range(num_groups - sum(groups)):
        _, m = heapq.heappop(heap)
        groups[m] += 1
        heapq.heappush(heap, (-dims[m] / groups[m], m))
    group_len = max(math.ceil(n / g) for n, g in zip(dims, groups, strict=True))
    return tuple(groups), group_len


def _greedy_start(dims: tuple[int, ...], num_groups: int) -> list[int]:
    """A state the greedy passes through, close to its end (so only ~2M steps are left).

    Modality ``m`` holding ``g`` groups competes for the next one with the key ``N_m / g``
    (a float), so the greedy hands out groups in decreasing order of the keys
    ``N_m / k``, ``k >= 1``. After it has handed out every key above a threshold ``T``, and
    no other, each modality holds ``1 + #{k >= 1 : N_m / k > T}`` groups, whatever the order
    among those keys; the heap then continues from there exactly as from the start. ``T``
    is chosen so that at most ``G - M`` keys lie above it.
    """
    spare = num_groups - len(dims)
    if spare <= 2 * len(dims):
        return [1] * len(dims)

    def above(n: int, t: float) -> int:
        k = min(int(n / t), spare + 1)  # about the last k with n / k > t; fixed up below
        while k >= 1 and not n / k > t:
            k -= 1
        while n / (k + 1) > t:
            k += 1
        return k

    threshold = sum(dims) / (spare - len(dims))
    while True:
        counts = [above(n, threshold) for n in dims]
        if sum(counts) <= spare:
            return [1 + c for c in counts]
        threshold *= 2.0


@dataclass(frozen=True, eq=False)
class GroupLayout:
    """Where every token of the concatenated modalities sits in the grouped ``[G, L]`` array.

    Attributes:
        index_dims: tokens per modality ``N_m``, in input order.
        groups_per_modality: groups of each modality ``g_m`` (summing to ``G``); modality ``m``
            owns the groups ``group_start[m] : group_start[m] + g_m``.
        group_len: the common group length ``L``.
        final_padding: slots added at the end of each modality so that ``g_m`` divides it:
            ``g_m * ceil(N_m / g_m) - N_m``.
        group_padding: slots added at the end of each of modality ``m``'s groups to reach
            ``L``: ``L - ceil(N_m / g_m)``.
        index: int64 ``[G, L]``: the token (position in the concatenated input) at each slot,
            ``-1`` for padding.
        inverse: int64 ``[sum N_m]``: the flat slot ``g * L + n`` of every token, so that
            ``index.ravel()[inverse] == arange(sum N_m)``.
    """

    index_dims: tuple[int, ...]
    groups_per_modality: tuple[int, ...]
    group_len: int
    final_padding: tuple[int, ...]
    group_padding: tuple[int, ...]
    index: NDArray[np.int64]
    inverse: NDArray[np.int64]

    @property
    def num_groups(self) -> int:
        """The number of groups ``G``."""
        return int(self.index.shape[0])

    @property
    def num_tokens(self) -> int:
        """The number of real tokens, ``sum N_m``."""
        return int(self.inverse.shape[0])

    @property
    def group_start(self) -> tuple[int, ...]:
        """The first group of each modality."""
        return tuple(int(s) for s in np.cumsum((0,) + self.groups_per_modality[:-1]))

    @property
    def offsets(self) -> tuple[int, ...]:
        """The first token of each modality in the concatenated input."""
        return tuple(int(s) for s in np.cumsum((0,) + self.index_dims[:-1]))

    @property
    def padding(self) -> NDArray[np.bool_]:
        """bool ``[G, L]``: True at padding slots."""
        return self.index < 0

    @property
    def modality_of_group(self) -> NDArray[np.int64]:
        """int64 ``[G]``: the modality each group belongs to."""
        return np.repeat(np.arange(len(self.index_dims)), self.groups_per_modality)


def group_layout(num_groups: int, index_dims: Sequence[int]) -> GroupLayout:
    """The official ``ConstNumGrouper``'s grouping of modalities with ``index_dims`` tokens.

    Modality ``m`` gets ``g_m`` groups (:func:`assign_groups`). Its ``N_m`` tokens are padded at
    the end to ``g_m * ceil(N_m / g_m)``, split into ``g_m`` contiguous runs of ``ceil(N_m /
    g_m)`` and every run is padded at its end to the common length ``L``. So token ``t`` of
    modality ``m`` lands in group ``group_start[m] + t // ceil(N_m / g_m)`` at position
    ``t % ceil(N_m / g_m)``; the modalities' groups follow each other in input order.

    Args:
        num_groups: the number of groups ``G``.
        index_dims: tokens per modality ``N_m >= 1``, in input order.

    Returns:
        A :class:`GroupLayout` (its checker: :func:`check_group_layout`).

    Examples:
        >>> group_layout(2, [3]).index.tolist()
        [[0, 1], [2, -1]]
    """
    dims = _check_index_dims(index_dims)
    groups, group_len = assign_groups(num_groups, dims)
    check_size("index_dims", index_dims, sum(groups) * group_len, "slots (num_groups x group_len)")
    index = np.full((sum(groups), group_len), -1, dtype=np.int64)
    final_padding, group_padding = [], []
    group, offset = 0, 0
    for n, g in zip(dims, groups, strict=True):
        run = math.ceil(n / g)
        final_padding.append(g * run - n)
        group_padding.append(group_len - run)
        t = np.arange(n, dtype=np.int64)
        index[group + t // run, t % run] = offset + t
        group += g
        offset += n
    flat = index.ravel()
    inverse = np.empty(offset, dtype=np.int64)
    slots = np.flatnonzero(flat >= 0)
    inverse[flat[slots]] = slots
    return GroupLayout(
        index_dims=dims,
        groups_per_modality=groups,
        group_len=group_len,
        final_padding=tuple(final_padding),
        group_padding=tuple(group_padding),
        index=index,
        inverse=inverse,
    )


def check_group_layout(layout: GroupLayout) -> None:
    """Check every invariant of a :class:`GroupLayout`; raise :class:`GroupLayoutError` if not.

    Checked: at least one group per modality and ``G`` groups in all; ``L`` is the largest
    ``ceil(N_m / g_m)``; every token sits in exactly one slot and ``inverse`` points at it; a
    group holds tokens of one modality only, contiguous and in order, followed by padding;
    modality ``m``'s tokens fill its own groups in order, ``ceil(N_m / g_m)`` per group; and the
    paddings are the official ones.

    Args:
        layout: the layout to check.

    Examples:
        >>> check_group_layout(group_layout(5, [7, 3]))
    """

    def fail(what: str) -> GroupLayoutError:
        return GroupLayoutError(f"layout: {what}")

    if not isinstance(layout, GroupLayout):
        raise GroupLayoutError(f"layout: expected a GroupLayout, received {type(layout).__name__}")
    dims, groups = layout.index_dims, layout.groups_per_modality
    index, inverse = np.asarray(layout.index), np.asarray(layout.inverse)
    if len(dims) != len(groups) or any(g < 1 for g in groups):
        raise fail(f"expected at least one group per modality, received {groups} for {dims}")
    num_groups, total = sum(groups), sum(dims)
    if index.shape != (num_groups, layout.group_len) or inverse.shape != (total,):
        raise fail(
            f"expected index [{num_groups}, {layout.group_len}] and inverse [{total}], "
            f"received {index.shape} and {inverse.shape}"
        )
    runs = [math.ceil(n / g) for n, g in zip(dims, groups, strict=True)]
    if layout.group_len != max(runs):
        raise fail(f"expected group_len {max(runs)}, received {layout.group_len}")
    if layout.final_padding != tuple(g * r - n for n, g, r in zip(dims, groups, runs, strict=True)):
        raise fail(f"final_padding {layout.final_padding} is not the official one")
    if layout.group_padding != tuple(layout.group_len - r for r in runs):
        raise fail(f"group_padding {layout.group_padding} is not the official one")
    flat = index.ravel()
    real = flat[flat >= 0]
    if real.size != total or not np.array_equal(np.sort(real), np.arange(total)):
        raise fail("expected every token in exactly one slot")
    if not np.array_equal(flat[inverse], np.arange(total)):
        raise fail("inverse does not point at each token's slot")
    group, offset = 0, 0
    for m, (n, g, run) in enumerate(zip(dims, groups, runs, strict=True)):
        for k in range(g):
            row = index[group + k]
            start = offset + k * run
            count = max(0, min(run, n - k * run))
            if not np.array_equal(row[:count], np.arange(start, start + count)):
                raise fail(f"group {group + k} does not hold modality {m}'s tokens in order")
            if np.any(row[count:] >= 0):
                raise fail(f"group {group + k} has tokens after its padding")
        group += g
        offset += n


def regroup_index(
    num_groups: int, group_len: int, num_output_groups: int, regroup_type: str = "reshape"
) -> NDArray[np.int64]:
    """The official ``regroup`` of ``[G, L]`` into ``[G', L']``, as a gather index.

    Args:
        num_groups: input groups ``G >= 1``.
        group_len: input group length ``L >= 1``.
        num_output_groups: output groups ``G'``; must divide ``G * L``.
        regroup_type: ``"reshape"`` (``[G, L] -> [G', L']`` row-major: neighbouring groups
            merge, or a group splits) or ``"transpose_reshape"`` (``[G, L] -> [L, G] ->
            [G', L']``: each output group interleaves the input groups).

    Returns:
        int64 ``[G', L']`` with ``L' = G * L / G'``: the flat input slot ``g * L + n`` read by
        each output slot; a permutation of ``arange(G * L)``.

    Examples:
        >>> regroup_index(2, 3, 3, "transpose_reshape").tolist()
        [[0, 3], [1, 4], [2, 5]]
    """
    num_groups = check_int("num_groups", num_groups, minimum=1)
    group_len = check_int("group_len", group_len, minimum=1)
    num_output_groups = check_int("num_output_groups", num_output_groups, minimum=1)
    if not isinstance(regroup_type, str) or regroup_type not in REGROUP_TYPES:
        raise invalid("regroup_type", f"one of {REGROUP_TYPES}", regroup_type)
    total = num_groups * group_len
    check_size("group_len", group_len, total, "slots (num_groups x group_len)")
    if total % num_output_groups:
        raise invalid(
            "num_output_groups",
            f"a divisor of num_groups * group_len = {num_groups} * {group_len} = {total}",
            num_output_groups,
        )
    slots = np.arange(total, dtype=np.int64).reshape(num_groups, group_len)
    if regroup_type == "transpose_reshape":
        slots = slots.T
    return np.ascontiguousarray(slots).reshape(num_output_groups, total // num_output_groups)


def _check_layout_arg(layout: Any) -> None:
    if not isinstance(layout, GroupLayout):
        raise invalid("layout", "a GroupLayout (from group_layout)", layout)


def group_array(x: ArrayLike, layout: GroupLayout, *, fill: Any = 0) -> NDArray[Any]:
    """Group concatenated modalities ``[..., sum N_m, C]`` into ``[..., G, L, C]``.

    Args:
        x: the modalities concatenated along the token axis: axis ``-2`` (channels last), or
            axis 0 of a 1-D array ``[sum N_m]``.
        layout: from :func:`group_layout`.
        fill: the value at padding slots (the official pads with zeros).

    Returns:
        The grouped array, same dtype.

    Examples:
        >>> group_array(np.arange(3), group_layout(2, [3]), fill=-9).tolist()
        [[0, 1], [2, -9]]
    """
    _check_layout_arg(layout)
    arr = as_array("x", x, "an array of tokens")
    axis = arr.ndim - 2 if arr.ndim >= 2 else 0
    if arr.ndim == 0 or arr.shape[axis] != layout.num_tokens:
        raise invalid(
            "x",
            f"an array with {layout.num_tokens} tokens on axis {axis} (channels last)",
            arr,
        )
    padded = np.concatenate(
        [arr, np.full(arr.shape[:axis] + (1,) + arr.shape[axis + 1 :], fill, dtype=arr.dtype)],
        axis=axis,
    )
    index = np.where(layout.index >= 0, layout.index, layout.num_tokens)
    return np.take(padded, index, axis=axis)


def ungroup_array(y: ArrayLike, layout: GroupLayout) -> NDArray[Any]:
    """The inverse of :func:`group_array`: ``[..., G, L, C] -> [..., sum N_m, C]``.

    Args:
        y: grouped array: groups on axes ``-3, -2`` (channels last), or a 2-D ``[G, L]``.
        layout: from :func:`group_layout`.

    Returns:
        The tokens of the concatenated modalities, padding dropped.

    Examples:
        >>> lay = group_layout(3, [4, 1])
        >>> ungroup_array(group_array(np.arange(5), lay), lay).tolist()
        [0, 1, 2, 3, 4]
    """
    _check_layout_arg(layout)
    arr = as_array("y", y, "an array of groups")
    axis = arr.ndim - 3 if arr.ndim >= 3 else 0
    shape = (layout.num_groups, layout.group_len)
    if arr.ndim < 2 or arr.shape[axis : axis + 2] != shape:
        raise invalid("y", f"an array with groups {shape} on axes {axis}, {axis + 1}", arr)
    flat = arr.reshape(arr.shape[:axis] + (-1,) + arr.shape[axis + 2 :])
    return np.take(flat, layout.inverse, axis=axis)


class GroupSlots(NamedTuple):
    """The slots of a group-wise mask (:func:`groupwise_slots`).

    Slots are positions inside a group, ``0 <= slot < L``. Arrays have ``R`` rows: 1 for a mask
    shared by the batch, ``B`` for per-sample masks.

    Attributes:
        visible: int64 ``[R, G, K]``: the visible slots of every group, ascending.
        masked: int64 ``[R, G, L - K]``: the masked slots, ascending.
        scored: bool ``[R, G, L - K]``: True where a masked slot holds a real token (not
            padding).
        shared: True for one mask shared by the batch.
    """

    visible: NDArray[np.int64]
    masked: NDArray[np.int64]
    scored: NDArray[np.bool_]
    shared: bool


def groupwise_slots(
    mask: Any,
    grid: tuple[int, int],
    *,
    padding_slots: Sequence[int] = (),
    batch: int | None = None,
) -> GroupSlots:
    """The visible, masked and scored slots of every group of a group-wise mask.

    Args:
        mask: bool ``[G, L]`` (shared by the batch) or ``[B, G, L]`` (one per sample), numpy or
            torch, True = visible, with the same number ``K`` of visible slots in every group,
            ``1 <= K < L`` (:func:`~grouping.core.groupwise_masks` draws such masks).
        grid: ``(G, L)``, the groups and their length.
        padding_slots: the flat slots ``g * L + l`` that hold padding
            (``np.flatnonzero(layout.padding)`` of a :class:`GroupLayout`): never scored.
        batch: the batch a per-sample mask must fit, if known.

    Returns:
        A :class:`GroupSlots`; ``visible`` and ``masked`` split every group's slots (a stable
        sort puts the visible ones first), C-contiguous, writable.

    Raises:
        GroupingValueError: a mask that is not bool ``[G, L]`` / ``[B, G, L]``, another batch,
            unequal visible counts, no visible or no masked slot in a group, or a padding slot
            outside the grid.

    Examples:
        >>> mask = np.array([[1, 0, 0, 1], [0, 1, 1, 0]], bool)
        >>> slots = groupwise_slots(mask, (2, 4), padding_slots=(7,))
        >>> slots.visible.tolist(), slots.masked.tolist()
        ([[[0, 3], [1, 2]]], [[[1, 2], [0, 3]]])
        >>> slots.scored.tolist(), slots.shared
        ([[[True, True], [True, False]]], True)
    """
    num_groups = check_int("num_groups", grid[0], minimum=1)
    group_len = check_int("group_len", grid[1], minimum=1)
    shape = (num_groups, group_len)
    checked = check_mask(
        mask,
        shape,
        batch=batch,
        count_axes=1,
        max_visible=group_len - 1,
        unit="slot",
        scope="group",
        hint="groupwise_masks draws such masks",
    )
    rows = checked.mask.reshape(-1, *shape)  # R, G, L
    padding = np.zeros(num_groups * group_len, dtype=bool)
    slots = np.asarray(padding_slots, dtype=np.int64).reshape(-1)
    if slots.size and (slots.min() < 0 or slots.max() >= padding.size):
        raise invalid("padding_slots", f"flat slots in [0, {padding.size})", padding_slots)
    padding[slots] = True
    k = checked.visible
    order = np.argsort(~rows, axis=-1, kind="stable")  # visible slots first, each ascending
    visible, masked = order[..., :k], order[..., k:]
    real = ~np.broadcast_to(padding.reshape(shape), rows.shape)
    scored = np.take_along_axis(real, masked, axis=-1)
    return GroupSlots(
        visible=np.ascontiguousarray(visible, dtype=np.int64),
        masked=np.ascontiguousarray(masked, dtype=np.int64),
        scored=np.ascontiguousarray(scored),
        shared=checked.shared,
    )
