"""GreenMIM's grouping: repeated 0-1 subset-sum knapsack, as a bitset DP in numba.

The published algorithm (GreenMIM, Huang et al. 2022, ``group_windows``) packs one group at a
time: a 0-1 knapsack with weight = value = visible count and capacity = group size over the
windows not yet grouped, solved by a table DP ``K[i][w]``; the chosen set is read back from the
last window to the first, skipping window ``i`` whenever ``K[i-1][w]`` already equals the
remaining best sum (so among equal sums the earlier windows are kept); the chosen windows are
removed and the next group is packed.

Because weight equals value, ``K[i][w]`` is the largest subset sum ``<= w`` of the first ``i``
windows, and the skip test ``K[i-1][w] == res`` holds exactly when ``res`` is a reachable subset
sum of the first ``i-1`` windows. So the table can be replaced by the bitsets ``R_i`` of
reachable sums (bit ``s`` set if some subset of the first ``i`` windows sums to ``s``), updated
by ``R_i = R_{i-1} | (R_{i-1} << w_i)``: one or a few machine words per window instead of a
table row. Once bit ``g`` (a full group) is reachable after window ``k``, every later window
would be skipped, so the forward pass stops there. The groups are identical, window for
window, to the published algorithm's.

Notes:
    Zero-count windows never enter a group (the published code would loop forever on them; we
    drop them first, which changes nothing else since a zero item is always skipped). The
    published algorithm is a greedy heuristic: it does not minimise the number of groups.

References:
    Huang, Lang, et al. "Green Hierarchical Vision Transformer for Masked Image Modeling."
    NeurIPS 2022.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__: list[str] = []

_ONE = np.uint64(1)


@njit(cache=True, nogil=True)
def _shift_or(src, dst, shift, nwords, top_mask):  # pragma: no cover - jitted
    """dst = src | (src << shift), truncated to the bits of the capacity."""
    q = shift // 64
    r = np.uint64(shift % 64)
    for j in range(nwords - 1, -1, -1):
        word = np.uint64(0)
        if j - q >= 0:
            word = src[j - q] << r
            if r != 0 and j - q - 1 >= 0:
                word |= src[j - q - 1] >> (np.uint64(64) - r)
        dst[j] = src[j] | word
    dst[nwords - 1] &= top_mask


@njit(cache=True, nogil=True)
def _highest_bit(bits, nwords):  # pragma: no cover - jitted
    """Index of the highest set bit of a multi-word bitset (the best reachable sum)."""
    for j in range(nwords - 1, -1, -1):
        word = bits[j]
        if word != 0:
            b = 63
            while (word >> np.uint64(b)) & _ONE == 0:
                b -= 1
            return j * 64 + b
    return 0


@njit(cache=True, nogil=True)
def _greenmim_kernel(weights, capacity):  # pragma: no cover - jitted
    """Repeated subset-sum packing of ``weights`` (int64, each in [1, capacity]).

    Returns ``(order, offsets)``: group ``k`` is ``order[offsets[k]:offsets[k+1]]``, item
    positions in increasing order; groups in packing order.
    """
    n = weights.shape[0]
    nwords = capacity // 64 + 1
    top_word = capacity // 64
    top_bit = np.uint64(capacity % 64)
    top_mask = (_ONE << top_bit) | ((_ONE << top_bit) - _ONE)
    reach = np.zeros((n + 1, nwords), dtype=np.uint64)
    alive = np.arange(n)
    chosen = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    m = n
    num_groups = 0
    pos = 0
    while m > 0:
        for j in range(nwords):
            reach[0, j] = 0
        reach[0, 0] = _ONE
        end = m
        for i in range(m):
            _shift_or(reach[i], reach[i + 1], weights[alive[i]], nwords, top_mask)
            if (reach[i + 1, top_word] >> top_bit) & _ONE:
                end = i + 1
                break
        # read back from the last window, skipping when the best sum is reachable without it
        res = _highest_bit(reach[end], nwords)
        i = end
        while i > 0 and res > 0:
            in_prev = (reach[i - 1, res // 64] >> np.uint64(res % 64)) & _ONE
            if in_prev == 0:
                chosen[alive[i - 1]] = True
                res -= weights[alive[i - 1]]
            i -= 1
        # emit the group in increasing position and compact the survivors
        keep = 0
        for i in range(m):
            item = alive[i]
            if chosen[item]:
                order[pos] = item
                pos += 1
            else:
                alive[keep] = item
                keep += 1
        m = keep
        num_groups += 1
        offsets[num_groups] = pos
    return order, offsets[: num_groups + 1]


def greenmim_groups(weights: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Run the published algorithm on positive ``weights`` (int64, each ``<= capacity``).

    Returns ``(order, offsets)`` over positions into ``weights`` (see ``_greenmim_kernel``).
    Callers validate; this is the thin private entry used by :func:`grouping.solve`.
    """
    weights = np.ascontiguousarray(weights, dtype=np.int64)
    if weights.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    return _greenmim_kernel(weights, int(capacity))


@njit(cache=True, nogil=True)
def _decreasing_kernel(sizes, capacity):  # pragma: no cover - jitted
    """The repeated knapsack over windows sorted by decreasing count, on the histogram.

    Same groups as the published algorithm applied to the windows in decreasing order of
    count (ties by position), but each forward pass walks the distinct sizes instead of the
    windows, with at most ``capacity // s`` copies of size ``s`` (more copies cannot change the
    reachable sums): O(g log g) words per group instead of O(n). Returns the bin of every item
    and the number of bins.
    """
    n = sizes.shape[0]
    remaining = np.zeros(capacity + 1, dtype=np.int64)
    for i in range(n):
        remaining[sizes[i]] += 1
    # positions of each size, in increasing order, consumed from the front
    start = np.zeros(capacity + 2, dtype=np.int64)
    for s in range(1, capacity + 1):
        start[s + 1] = start[s] + remaining[s]
    bucket = np.empty(n, dtype=np.int64)
    fill = start.copy()
    for i in range(n):
        bucket[fill[sizes[i]]] = i
        fill[sizes[i]] += 1
    front = start[: capacity + 1].copy()
    max_rows = 1
    for s in range(1, capacity + 1):
        max_rows += capacity // s
    nwords = capacity // 64 + 1
    top_word = capacity // 64
    top_bit = np.uint64(capacity % 64)
    top_mask = (_ONE << top_bit) | ((_ONE << top_bit) - _ONE)
    reach = np.zeros((max_rows, nwords), dtype=np.uint64)
    row_size = np.zeros(max_rows, dtype=np.int64)
    take = np.zeros(capacity + 1, dtype=np.int64)
    bins = np.empty(n, dtype=np.int64)
    left = n
    num_bins = 0
    while left > 0:
        for j in range(nwords):
            reach[0, j] = 0
        reach[0, 0] = _ONE
        row = 0
        full = False
        for s in range(capacity, 0, -1):
            copies = min(remaining[s], capacity // s)
            for _ in range(copies):
                _shift_or(reach[row], reach[row + 1], s, nwords, top_mask)
                row += 1
                row_size[row] = s
                if (reach[row, top_word] >> top_bit) & _ONE:
                    full = True
                    break
            if full:
                break
        res = _highest_bit(reach[row], nwords)
        i = row
        while i > 0 and res > 0:
            in_prev = (reach[i - 1, res // 64] >> np.uint64(res % 64)) & _ONE
            if in_prev == 0:
                take[row_size[i]] += 1
                res -= row_size[i]
            i -= 1
        for s in range(1, capacity + 1):
            k = take[s]
            if k > 0:
                for t in range(k):
                    bins[bucket[front[s] + t]] = num_bins
                front[s] += k
                remaining[s] -= k
                left -= k
                take[s] = 0
        num_bins += 1
    return bins, num_bins


def decreasing_knapsack(sizes: np.ndarray, capacity: int) -> tuple[np.ndarray, int]:
    """Bin of every item under the repeated knapsack over decreasing sizes, and the bin count."""
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    if sizes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), 0
    bins, num = _decreasing_kernel(sizes, int(capacity))
    return bins, int(num)
