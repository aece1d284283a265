"""Packing kernels (numba): GreenMIM's knapsack, first/best-fit decreasing, bounds, search.

Windows are items (size = visible count), groups are bins of capacity ``g``. Every jitted
kernel and the helpers it calls live in this one file (numba's on-disk cache does not see
changes in other files); ``solve.py`` holds the Python wrappers and the strategy logic.
numba compiles one specialisation per signature of argument types, so the wrappers pass every
array through :func:`kernel_array` (int64, C-contiguous, aligned, writeable) and every scalar as
a Python int in the int64 range: each kernel then has exactly one signature, the one that
:func:`warm_kernels` compiles (or loads from the cache) ahead of time.

**GreenMIM's repeated knapsack.** The published algorithm (GreenMIM, ``group_windows``) packs
one group at a time: a 0-1 knapsack with weight = value = visible count and capacity = group
size over the windows not yet grouped, solved by a table DP ``K[i][w]``; the chosen set is read
back from the last window to the first, skipping window ``i`` whenever ``K[i-1][w]`` already
equals the remaining best sum (so among equal sums the earlier windows are kept); the chosen
windows are removed and the next group is packed. Because weight equals value, ``K[i][w]`` is
the largest subset sum ``<= w`` of the first ``i`` windows, and the skip test holds exactly when
the remaining sum is a reachable subset sum of the first ``i-1`` windows. So the table is
replaced by bitsets ``R_i`` of reachable sums, ``R_i = R_{i-1} | (R_{i-1} << w_i)``: one machine
word per window for ``g < 64`` (a few otherwise) instead of a table row. Once a full group is
reachable after window ``k`` every later window would be skipped, so the forward pass stops
there. The groups are identical, window for window, to the published algorithm's. Zero-count
windows never enter a group (the published code loops forever on them; dropping them first
changes nothing else, a zero item is always skipped).

**Bin packing.** First-fit and best-fit decreasing are greedy (at most ``11/9 OPT + 6/9`` bins,
Dosa 2007). The lower bounds are ``ceil(sum / g)`` (L1), Martello and Toth's L2 and Fekete and
Schepers' dual feasible functions. The exact search is a depth-first branch and bound over
items in decreasing size, on the *histogram* of bin residual capacities (bins with equal
residual are interchangeable, so each residual value is tried once), with three dominance
rules: an item that exactly fills a residual goes there when no identical item follows;
consecutive identical items take non-increasing residuals; and a node is cut when the free
capacity usable by the remaining items is less than their total. It is complete (a finished
search proves infeasibility) and bounded by a node budget.

Notes:
    Only the exact search (when it finishes) and a packing that meets a lower bound prove
    optimality; the greedy packers, GreenMIM's included, do not minimise the number of groups.

References:
    Huang, L. et al. "Green Hierarchical Vision Transformer for Masked Image Modeling."
    NeurIPS 2022.
    Martello, S. and Toth, P. "Lower bounds and reduction procedures for the bin packing
    problem." Discrete Applied Mathematics 28 (1990).
    Fekete, S. and Schepers, J. "New classes of fast lower bounds for bin packing problems."
    Mathematical Programming 91 (2001).
    Korf, R. "A new algorithm for optimal bin packing." AAAI 2002.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from ._jit import CACHE

__all__: list[str] = []

_ONE = np.uint64(1)
INT64_MAX = 2**63 - 1  # a Python int above this would reach the kernels as uint64
_INT64_MAX = np.int64(INT64_MAX)

#: Largest group size for which kernels index arrays by size or residual capacity
#: (counting sort, histograms, best-fit's residual lists, the dual-feasible bound, the
#: knapsack over decreasing sizes, the LP, the branch and bound). Above it the solver uses
#: the O(n log n) kernels only (merge sort, L2 on sorted sizes, best fit with heaps) and
#: the published algorithm, so memory and time do not grow with the group size.
DENSE_CAPACITY = 1 << 12
#: Largest bitset table (rows x words of uint64, 32 MiB) a knapsack kernel may allocate.
MAX_TABLE_WORDS = 1 << 22
#: Most bitset words the published algorithm's forward passes may process in one call
#: (0.3 s with multi-word bitsets, 0.8 s with one-word ones on a 2-core EPYC); beyond it
#: ``strategy="greenmim"`` raises and "auto"/"exact" skip it.
GREENMIM_MAX_WORK = 1 << 27
#: Largest sum of counts the solver accepts (sums stay exact in int64 arithmetic).
MAX_TOTAL = 1 << 62


def _clip(value: int) -> int:
    """A non-negative Python int clipped to the int64 range (one kernel signature)."""
    return min(max(int(value), 0), INT64_MAX)


def kernel_array(values: Any) -> NDArray[np.int64]:
    """``values`` as the one array type the kernels are compiled for.

    numba specialises on dtype, layout, alignment and *writeability*: a read-only array (a
    plan's ``counts``, a broadcast view) or an int32 one would otherwise compile every kernel
    it reaches a second time. Returns int64, C-contiguous, aligned and writeable; a copy only
    when ``values`` is not that already.
    """
    array = values if type(values) is np.ndarray else np.asarray(values)
    flags = array.flags
    if array.dtype != np.int64 or not (flags.c_contiguous and flags.aligned and flags.writeable):
        array = np.array(array, dtype=np.int64, order="C")
    return array


@njit(cache=CACHE, nogil=True)
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


@njit(cache=CACHE, nogil=True)
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


@njit(cache=CACHE, nogil=True)
def _emit_group(alive, m, chosen, order, pos):  # pragma: no cover - jitted
    """Append the chosen items (in increasing position) to ``order``, compact the rest.

    Returns the number of surviving items and the new end of ``order``.
    """
    keep = 0
    for i in range(m):
        item = alive[i]
        if chosen[item]:
            order[pos] = item
            pos += 1
        else:
            alive[keep] = item
            keep += 1
    return keep, pos


@njit(cache=CACHE, nogil=True)
def _greenmim_kernel(weights, capacity, max_work, max_words):  # pragma: no cover - jitted
    """Repeated subset-sum packing of ``weights`` (int64, each in [1, capacity]).

    Returns ``(order, offsets, status, work)``: group ``k`` is
    ``order[offsets[k]:offsets[k+1]]``, item positions in increasing order; groups in packing
    order. ``status`` is 0, or 1 when the forward passes would take more than ``max_work``
    bitset words, or 2 when one pass needs a table of more than ``max_words`` words (then
    nothing is packed); ``work`` is the bitset words processed.
    """
    n = weights.shape[0]
    nwords = capacity // 64 + 1
    top_word = capacity // 64
    top_bit = np.uint64(capacity % 64)
    top_mask = (_ONE << top_bit) | ((_ONE << top_bit) - _ONE)
    order = np.empty(n, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    rows = min(n + 1, max_words // nwords)
    work = 0
    if rows < 2:
        return order[:0], offsets[:1], 2, work
    reach = np.zeros((rows, nwords), dtype=np.uint64)
    alive = np.arange(n)
    chosen = np.zeros(n, dtype=np.bool_)
    alive_total = 0
    for i in range(n):
        alive_total += weights[i]
    m = n
    num_groups = 0
    pos = 0
    while m > 0:
        if alive_total <= capacity:
            # the best sum is the total: the read-back chooses every window left
            for i in range(m):
                order[pos] = alive[i]
                pos += 1
            num_groups += 1
            offsets[num_groups] = pos
            break
        for j in range(nwords):
            reach[0, j] = 0
        reach[0, 0] = _ONE
        end = m
        for i in range(m):
            if i + 1 >= rows:
                return order[:0], offsets[:1], 2, work
            work += nwords
            if work > max_work:
                return order[:0], offsets[:1], 1, work
            _shift_or(reach[i], reach[i + 1], weights[alive[i]], nwords, top_mask)
            if (reach[i + 1, top_word] >> top_bit) & _ONE:
                end = i + 1
                break
        # read back from the last window, skipping when the best sum is reachable without it
        res = _highest_bit(reach[end], nwords)
        alive_total -= res
        i = end
        while i > 0 and res > 0:
            in_prev = (reach[i - 1, res // 64] >> np.uint64(res % 64)) & _ONE
            if in_prev == 0:
                chosen[alive[i - 1]] = True
                res -= weights[alive[i - 1]]
            i -= 1
        m, pos = _emit_group(alive, m, chosen, order, pos)
        num_groups += 1
        offsets[num_groups] = pos
    return order, offsets[: num_groups + 1], 0, work


@njit(cache=CACHE, nogil=True)
def _greenmim_kernel_word(weights, capacity, max_work):  # pragma: no cover - jitted
    """``_greenmim_kernel`` for ``capacity < 64``: each bitset is one uint64 scalar.

    The table is ``n + 1`` words, so only ``max_work`` (status 1) applies.
    """
    n = weights.shape[0]
    full = _ONE << np.uint64(capacity)
    keep_bits = full | (full - _ONE)
    reach = np.zeros(n + 1, dtype=np.uint64)
    alive = np.arange(n)
    chosen = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    alive_total = 0
    for i in range(n):
        alive_total += weights[i]
    m = n
    num_groups = 0
    pos = 0
    work = 0
    reach[0] = _ONE
    while m > 0:
        if alive_total <= capacity:  # every window left fits: one last group
            for i in range(m):
                order[pos] = alive[i]
                pos += 1
            num_groups += 1
            offsets[num_groups] = pos
            break
        end = m
        for i in range(m):
            work += 1
            if work > max_work:
                return order[:0], offsets[:1], 1, work
            prev = reach[i]
            reach[i + 1] = (prev | (prev << np.uint64(weights[alive[i]]))) & keep_bits
            if reach[i + 1] & full:
                end = i + 1
                break
        word = reach[end]
        res = 63
        while (word >> np.uint64(res)) & _ONE == 0:
            res -= 1
        alive_total -= res
        i = end
        while i > 0 and res > 0:
            if (reach[i - 1] >> np.uint64(res)) & _ONE == 0:
                chosen[alive[i - 1]] = True
                res -= weights[alive[i - 1]]
            i -= 1
        m, pos = _emit_group(alive, m, chosen, order, pos)
        num_groups += 1
        offsets[num_groups] = pos
    return order, offsets[: num_groups + 1], 0, work


@njit(cache=CACHE, nogil=True)
def _greenmim_any(weights, capacity, max_work, max_words):  # pragma: no cover - jitted
    """The one-word kernel below 64, the multi-word one from 64 on."""
    if capacity < 64:
        return _greenmim_kernel_word(weights, capacity, max_work)
    return _greenmim_kernel(weights, capacity, max_work, max_words)


class Knapsack(NamedTuple):
    """A run of the published algorithm (``greenmim_knapsack``)."""

    order: NDArray[np.int64]  # item positions, group by group (empty unless status is 0)
    offsets: NDArray[np.int64]  # group boundaries in ``order``
    status: int  # 0 packed; 1 over ``max_work`` bitset words; 2 table over ``max_words``
    work: int  # bitset words processed


def greenmim_knapsack(
    weights: np.ndarray,
    capacity: int,
    max_work: int = GREENMIM_MAX_WORK,
    max_words: int = MAX_TABLE_WORDS,
) -> Knapsack:
    """Run the published algorithm on positive ``weights`` (int64, each ``<= capacity``).

    Groups are over positions into ``weights`` (see ``_greenmim_kernel``). Callers validate;
    this is the thin private entry used by :func:`grouping.solve`.
    """
    weights = kernel_array(weights)
    if weights.shape[0] == 0:
        return Knapsack(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), 0, 0)
    order, offsets, status, work = _greenmim_any(
        weights, int(capacity), _clip(max_work), _clip(max_words)
    )
    return Knapsack(order, offsets, int(status), int(work))


def greenmim_groups(
    weights: np.ndarray,
    capacity: int,
    max_work: int = GREENMIM_MAX_WORK,
    max_words: int = MAX_TABLE_WORDS,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(order, offsets)`` of :func:`greenmim_knapsack`, or None when a limit was hit."""
    run = greenmim_knapsack(weights, capacity, max_work, max_words)
    return None if run.status else (run.order, run.offsets)


@njit(cache=CACHE, nogil=True)
def _decreasing_kernel(sizes, capacity, max_work, max_words):  # pragma: no cover - jitted
    """The repeated knapsack over windows sorted by decreasing count, on the histogram.

    Same groups as the published algorithm applied to the windows in decreasing order of
    count (ties by position), but each forward pass walks the distinct sizes instead of the
    windows, with at most ``capacity // s`` copies of size ``s`` (more copies cannot change the
    reachable sums): O(g log g) words per group instead of O(n). Returns the bin of every item
    the number of bins (``-1`` when the passes would take more than ``max_work``
    bitset words, ``-2`` when the table would exceed ``max_words`` words) and the words
    processed. ``capacity`` must be at most ``DENSE_CAPACITY`` (the histogram has
    ``capacity + 1`` entries).
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
    distinct = 0
    for s in range(1, capacity + 1):
        if remaining[s] > 0:
            distinct += 1
    present = np.empty(distinct, dtype=np.int64)  # the distinct sizes, decreasing
    max_rows = 1
    j = 0
    for s in range(capacity, 0, -1):
        if remaining[s] > 0:
            present[j] = s
            j += 1
            max_rows += min(remaining[s], capacity // s)
    nwords = capacity // 64 + 1
    bins = np.empty(n, dtype=np.int64)
    work = 0
    if max_rows * nwords > max_words:
        return bins, -2, work
    top_word = capacity // 64
    top_bit = np.uint64(capacity % 64)
    top_mask = (_ONE << top_bit) | ((_ONE << top_bit) - _ONE)
    reach = np.zeros((max_rows, nwords), dtype=np.uint64)
    row_size = np.zeros(max_rows, dtype=np.int64)
    take = np.zeros(capacity + 1, dtype=np.int64)
    left = n
    num_bins = 0
    while left > 0:
        for j in range(nwords):
            reach[0, j] = 0
        reach[0, 0] = _ONE
        row = 0
        full = False
        for t in range(distinct):
            s = present[t]
            copies = min(remaining[s], capacity // s)
            for _ in range(copies):
                work += nwords
                if work > max_work:
                    return bins, -1, work
                if nwords == 1:
                    prev = reach[row, 0]
                    reach[row + 1, 0] = (prev | (prev << np.uint64(s))) & top_mask
                    same = reach[row + 1, 0] == prev
                else:
                    _shift_or(reach[row], reach[row + 1], s, nwords, top_mask)
                    same = True
                    for j in range(nwords):
                        if reach[row + 1, j] != reach[row, j]:
                            same = False
                if same:
                    break  # this copy reaches nothing new (nor would the next): it is skipped
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
        for t in range(distinct):
            s = present[t]
            k = take[s]
            if k > 0:
                for u in range(k):
                    bins[bucket[front[s] + u]] = num_bins
                front[s] += k
                remaining[s] -= k
                left -= k
                take[s] = 0
        num_bins += 1
    return bins, num_bins, work


def decreasing_knapsack(
    sizes: np.ndarray,
    capacity: int,
    max_work: int = GREENMIM_MAX_WORK,
    max_words: int = MAX_TABLE_WORDS,
) -> tuple[np.ndarray, int] | None:
    """Bin of every item under the repeated knapsack over decreasing sizes, and the bin count.

    None when ``capacity`` exceeds ``DENSE_CAPACITY`` or the passes would exceed ``max_work``
    bitset words or a table of ``max_words`` words.
    """
    bins, num, _ = decreasing_run(sizes, capacity, max_work, max_words)
    return None if num < 0 else (bins, num)


def decreasing_run(
    sizes: np.ndarray, capacity: int, max_work: int, max_words: int = MAX_TABLE_WORDS
) -> tuple[np.ndarray, int, int]:
    """``(bins, num_bins, work)`` of ``_decreasing_kernel``; ``num_bins < 0`` when skipped."""
    sizes = kernel_array(sizes)
    if sizes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), 0, 0
    if capacity > DENSE_CAPACITY:
        return sizes, -2, 0
    bins, num, work = _decreasing_kernel(sizes, int(capacity), _clip(max_work), _clip(max_words))
    return bins, int(num), int(work)


@njit(cache=CACHE, nogil=True)
def _sort_decreasing(sizes, capacity):  # pragma: no cover - jitted
    """Item positions by decreasing size, ties by increasing position.

    A counting sort up to ``DENSE_CAPACITY``, a (stable) merge sort above it.
    """
    n = sizes.shape[0]
    if capacity > DENSE_CAPACITY:
        return np.argsort(-sizes, kind="mergesort")
    hist = np.zeros(capacity + 2, dtype=np.int64)
    for i in range(n):
        hist[sizes[i]] += 1
    order = np.empty(n, dtype=np.int64)
    _order_from_hist(sizes, capacity, hist, np.empty(capacity + 1, dtype=np.int64), order)
    return order


@njit(cache=CACHE, nogil=True)
def _order_from_hist(sizes, capacity, hist, start, order):  # pragma: no cover - jitted
    """The counting sort's second half: ``order`` = item positions by decreasing size, ties
    by increasing position, from ``hist[s]`` = items of size ``s`` (``s <= capacity``);
    ``start`` is scratch of at least ``capacity + 1`` entries."""
    acc = 0
    for s in range(capacity, -1, -1):
        start[s] = acc
        acc += hist[s]
    for i in range(sizes.shape[0]):
        s = sizes[i]
        order[start[s]] = i
        start[s] += 1


_FFD_SCAN_UP_TO = 128  # few items: a plain scan over the bins beats the segment tree's set-up


@njit(cache=CACHE, nogil=True)
def _first_fit_scan(sizes, order, capacity, bins, residual):  # pragma: no cover - jitted
    """First fit by a plain scan over the bins: items in ``order``, each into the first bin
    with room. Writes ``bins[item]``; ``residual`` is scratch of one entry per item. Returns
    the number of bins. The scan starts past the leading bins too full for the smallest item
    (full windows close their group at once), which no item can enter: the same bins."""
    smallest = capacity
    for i in range(sizes.shape[0]):
        if sizes[i] < smallest:
            smallest = sizes[i]
    num_bins = 0
    first = 0  # bins before it have less room than the smallest item: closed for good
    for t in range(order.shape[0]):
        item = order[t]
        s = sizes[item]
        b = first
        while b < num_bins and residual[b] < s:
            b += 1
        if b == num_bins:
            residual[b] = capacity
            num_bins += 1
        residual[b] -= s
        bins[item] = b
        while first < num_bins and residual[first] < smallest:
            first += 1
    return num_bins


@njit(cache=CACHE, nogil=True)
def _first_fit_decreasing(sizes, capacity):  # pragma: no cover - jitted
    """FFD with a max segment tree over bin residuals: O(n log n). Returns (bin, num_bins)."""
    n = sizes.shape[0]
    order = _sort_decreasing(sizes, capacity)
    bins = np.empty(n, dtype=np.int64)
    if n <= _FFD_SCAN_UP_TO:
        return bins, _first_fit_scan(sizes, order, capacity, bins, np.empty(n, dtype=np.int64))
    leaves = 1
    while leaves < max(n, 1):
        leaves *= 2
    tree = np.full(2 * leaves, -1, dtype=np.int64)  # -1: no bin opened there yet
    num_bins = 0
    for t in range(n):
        item = order[t]
        s = sizes[item]
        if tree[1] >= s:
            node = 1
            while node < leaves:
                if tree[2 * node] >= s:
                    node = 2 * node
                else:
                    node = 2 * node + 1
            b = node - leaves
        else:
            b = num_bins
            num_bins += 1
            node = b + leaves
            tree[node] = capacity
        bins[item] = b
        node = b + leaves
        tree[node] -= s
        node //= 2
        while node >= 1:
            left = tree[2 * node]
            right = tree[2 * node + 1]
            tree[node] = left if left > right else right
            node //= 2
    return bins, num_bins


@njit(cache=CACHE, nogil=True)
def _best_fit_decreasing(sizes, capacity):  # pragma: no cover - jitted
    """BFD: each item into the fullest bin it fits, else a new bin. Returns (bin, num_bins).

    Bins sit in one linked list per residual capacity; an item scans residuals upward from its
    size, so the cost is O(n g). Among bins of equal residual the most recently filled wins.
    """
    n = sizes.shape[0]
    order = _sort_decreasing(sizes, capacity)
    head = np.full(capacity + 1, -1, dtype=np.int64)
    link = np.full(max(n, 1), -1, dtype=np.int64)
    bins = np.empty(n, dtype=np.int64)
    num_bins = 0
    for t in range(n):
        item = order[t]
        s = sizes[item]
        r = s
        while r < capacity and head[r] < 0:
            r += 1
        if r < capacity:
            b = head[r]
            head[r] = link[b]
        else:
            b = num_bins
            num_bins += 1
            r = capacity
        bins[item] = b
        link[b] = head[r - s]
        head[r - s] = b
    return bins, num_bins


@njit(cache=CACHE, nogil=True)
def _heap_push(key_a, key_b, value, size, a, b, v):  # pragma: no cover - jitted
    """Push ``(a, b) -> v`` onto a binary min-heap ordered by ``(a, b)``; returns the size."""
    i = size
    while i > 0:
        parent = (i - 1) // 2
        if key_a[parent] < a or (key_a[parent] == a and key_b[parent] <= b):
            break
        key_a[i] = key_a[parent]
        key_b[i] = key_b[parent]
        value[i] = value[parent]
        i = parent
    key_a[i] = a
    key_b[i] = b
    value[i] = v
    return size + 1


@njit(cache=CACHE, nogil=True)
def _heap_pop(key_a, key_b, value, size):  # pragma: no cover - jitted
    """Remove the smallest entry (read it at index 0 first); returns the new size."""
    size -= 1
    a = key_a[size]
    b = key_b[size]
    v = value[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and (
            key_a[right] < key_a[child]
            or (key_a[right] == key_a[child] and key_b[right] < key_b[child])
        ):
            child = right
        if a < key_a[child] or (a == key_a[child] and b <= key_b[child]):
            break
        key_a[i] = key_a[child]
        key_b[i] = key_b[child]
        value[i] = value[child]
        i = child
    if size > 0:
        key_a[i] = a
        key_b[i] = b
        value[i] = v
    return size


@njit(cache=CACHE, nogil=True)
def _best_fit_heaps(sizes, capacity):  # pragma: no cover - jitted
    """BFD in O(n log n) whatever the capacity: the same bins as ``_best_fit_decreasing``.

    Items come in decreasing size, so a bin that fits the current item fits every later
    one. Bins that fit sit in a min-heap keyed by (residual, -time of their last item), so
    its top is the fullest bin that fits, the most recently filled among equals (the dense
    kernel's choice); the others wait in a max-heap on the residual and move over as the
    items shrink.
    """
    n = sizes.shape[0]
    order = _sort_decreasing(sizes, capacity)
    bins = np.empty(n, dtype=np.int64)
    fit_r = np.empty(max(n, 1), dtype=np.int64)
    fit_t = np.empty(max(n, 1), dtype=np.int64)
    fit_b = np.empty(max(n, 1), dtype=np.int64)
    wait_r = np.empty(max(n, 1), dtype=np.int64)  # keyed by -residual
    wait_t = np.empty(max(n, 1), dtype=np.int64)
    wait_b = np.empty(max(n, 1), dtype=np.int64)
    stamp = np.empty(max(n, 1), dtype=np.int64)
    num_fit = 0
    num_wait = 0
    num_bins = 0
    for t in range(n):
        item = order[t]
        s = sizes[item]
        while num_wait > 0 and -wait_r[0] >= s:
            r, b = -wait_r[0], wait_b[0]
            num_wait = _heap_pop(wait_r, wait_t, wait_b, num_wait)
            num_fit = _heap_push(fit_r, fit_t, fit_b, num_fit, r, -stamp[b], b)
        if num_fit > 0:
            r, b = fit_r[0], fit_b[0]
            num_fit = _heap_pop(fit_r, fit_t, fit_b, num_fit)
        else:
            b = num_bins
            num_bins += 1
            r = capacity
        bins[item] = b
        stamp[b] = t
        if r - s > 0:
            num_wait = _heap_push(wait_r, wait_t, wait_b, num_wait, -(r - s), t, b)
    return bins, num_bins


_BFD_LISTS_UP_TO = 1024  # residual lists scan O(g) per item: heaps are faster above this


@njit(cache=CACHE, nogil=True)
def _best_fit_any(sizes, capacity):  # pragma: no cover - jitted
    """Residual lists up to a group size of 1024, heaps above it (the same bins)."""
    if capacity > _BFD_LISTS_UP_TO:
        return _best_fit_heaps(sizes, capacity)
    return _best_fit_decreasing(sizes, capacity)


@njit(cache=CACHE, nogil=True)
def _lower_bound_sorted(sizes, capacity):  # pragma: no cover - jitted
    """``_lower_bound`` in O(n log n) whatever the capacity (the same value).

    L2's value at ``k`` only grows while ``k`` rises to the next item size (items move from
    J2 to J1, which shrinks the room left for J3), and ``k`` past the largest small size adds
    nothing, so the distinct sizes ``<= C / 2`` are the only ``k`` to try. Needs the sum of
    the sizes below 2**62 (then ``n2 * C < 2 * sum`` stays in range).
    """
    asc = np.sort(sizes)
    n = asc.shape[0]
    prefix = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        prefix[i + 1] = prefix[i] + asc[i]
    total = prefix[n]
    best = (total - 1) // capacity + 1 if total > 0 else 0
    half = capacity // 2
    big = np.searchsorted(asc, half, side="right")  # asc[big:] > C / 2
    if n - big > best:
        best = n - big
    i = 0
    while i < big:
        k = asc[i]
        s3 = prefix[big] - prefix[i]  # J3: k <= s <= C / 2
        hi = np.searchsorted(asc, capacity - k, side="right")  # J1 = asc[hi:], s > C - k
        n1 = n - hi
        n2 = hi - big  # J2: C / 2 < s <= C - k
        s2 = prefix[hi] - prefix[big]
        extra = s3 - (n2 * capacity - s2)
        value = n1 + n2
        if extra > 0:
            value += (extra - 1) // capacity + 1
        if value > best:
            best = value
        while i < big and asc[i] == k:
            i += 1
    return best


@njit(cache=CACHE, nogil=True)
def _lower_bound_any(sizes, capacity):  # pragma: no cover - jitted
    """The histogram kernel up to ``DENSE_CAPACITY``, the sorted one above it."""
    if capacity > DENSE_CAPACITY:
        return _lower_bound_sorted(sizes, capacity)
    return _lower_bound(sizes, capacity)


@njit(cache=CACHE, nogil=True)
def _lower_bound(sizes, capacity):  # pragma: no cover - jitted
    """max(L1, L2) of Martello and Toth for integer sizes in [1, capacity]."""
    hist = np.zeros(capacity + 1, dtype=np.int64)
    total = 0
    for i in range(sizes.shape[0]):
        hist[sizes[i]] += 1
        total += sizes[i]
    cnt = np.empty(capacity + 2, dtype=np.int64)
    return _l2_from_hist(hist, total, capacity, cnt, np.empty(capacity + 2, dtype=np.int64))


@njit(cache=CACHE, nogil=True)
def _l2_from_hist(hist, total, capacity, cnt, sm):  # pragma: no cover - jitted
    """``_lower_bound`` from the histogram of the sizes (``hist[s]``, ``s <= capacity``, none
    at 0) and their sum; ``cnt`` and ``sm`` are scratch of ``capacity + 2`` entries."""
    best = (total + capacity - 1) // capacity
    # prefix counts and sums over sizes
    cnt[0] = 0
    sm[0] = 0
    for s in range(capacity + 1):
        cnt[s + 1] = cnt[s] + hist[s]
        sm[s + 1] = sm[s] + hist[s] * s
    half = capacity // 2  # sizes <= half are "small" (<= C/2)
    for k in range(0, half + 1):
        # J1: s > C - k ; J2: C/2 < s <= C - k ; J3: k <= s <= C/2
        n1 = cnt[capacity + 1] - cnt[capacity - k + 1]
        n2 = cnt[capacity - k + 1] - cnt[half + 1]
        s2 = sm[capacity - k + 1] - sm[half + 1]
        s3 = sm[half + 1] - sm[k] if k <= half else 0
        room = n2 * capacity - s2
        extra = s3 - room
        value = n1 + n2
        if extra > 0:
            value += (extra + capacity - 1) // capacity
        if value > best:
            best = value
    return best


@njit(cache=CACHE, nogil=True)
def _dff_bound(sizes, capacity):  # pragma: no cover - jitted
    """Lower bound from Fekete and Schepers' dual feasible functions, O(g m) on the histogram.

    For every ``k`` in ``[1, g]`` the function ``u_k(x) = x`` if ``(k+1) x / g`` is an integer,
    else ``floor((k+1) x / g) g / k`` maps item sizes to sizes that still fit ``g`` together;
    ``ceil(sum u_k(x) / g)`` bounds the number of bins. Kept integral by scaling with ``k``.
    (Composing with Martello-Toth's size reduction never raised the bound on GreenMIM-realistic
    masks in our measurements, and costs a factor ``g``, so it is left out.)
    """
    hist = np.zeros(capacity + 1, dtype=np.int64)
    for i in range(sizes.shape[0]):
        hist[sizes[i]] += 1
    distinct = 0
    for s in range(1, capacity + 1):
        if hist[s] > 0:
            distinct += 1
    values = np.empty(distinct, dtype=np.int64)
    counts = np.empty(distinct, dtype=np.int64)
    j = 0
    for s in range(1, capacity + 1):
        if hist[s] > 0:
            values[j] = s
            counts[j] = hist[s]
            j += 1
    best = 0
    for k in range(1, capacity + 1):
        num = 0
        for j in range(distinct):
            x = values[j]
            if ((k + 1) * x) % capacity == 0:
                num += counts[j] * x * k
            else:
                num += counts[j] * (((k + 1) * x) // capacity) * capacity
        value = (num + k * capacity - 1) // (k * capacity)
        if value > best:
            best = value
    return best


@njit(cache=CACHE, nogil=True)
def _search(sizes, capacity, num_bins, node_limit, cell_limit):  # pragma: no cover - jitted
    """Can the items be packed into ``num_bins`` bins? Depth-first branch and bound.

    ``sizes`` must be sorted in decreasing order. Returns ``(status, choice, nodes)``: status 1
    = packed (``choice[i]`` is the residual capacity of the bin item ``i`` went into), 0 =
    proven impossible, -1 = budget exhausted: more than ``node_limit`` nodes, or more than
    ``cell_limit`` residual values scanned for candidates (a node scans up to ``capacity``).
    """
    n = sizes.shape[0]
    choice = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return 1, choice, 0
    cnt = np.zeros(capacity + 1, dtype=np.int64)
    cnt[capacity] = num_bins
    suffix = np.zeros(n + 1, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + sizes[i]
    smallest = sizes[n - 1]
    free = num_bins * capacity
    wasted = 0  # residual capacity below the smallest size: unusable
    if free - wasted < suffix[0]:
        return 0, choice, 0
    nxt = np.zeros(n, dtype=np.int64)
    forced = np.zeros(n, dtype=np.bool_)
    nodes = 0
    cells = 0
    i = 0
    nxt[0] = sizes[0]
    while True:
        s = sizes[i]
        # undo this depth's previous placement, if any
        if choice[i] >= 0:
            r = choice[i]
            cnt[r] += 1
            cnt[r - s] -= 1
            free += s
            if r - s < smallest:
                wasted -= r - s
            choice[i] = -1
            if forced[i]:
                forced[i] = False
                i -= 1
                if i < 0:
                    return 0, choice, nodes
                continue
        last_of_run = i == n - 1 or sizes[i + 1] != s
        hi = capacity
        if i > 0 and sizes[i - 1] == s:
            hi = choice[i - 1]
        r = -1
        if nxt[i] == s and last_of_run and cnt[s] > 0:
            r = s
            forced[i] = True
        else:
            for cand in range(nxt[i], hi + 1):
                cells += 1
                if cnt[cand] > 0:
                    r = cand
                    break
            if cells > cell_limit:
                return -1, choice, nodes
        if r < 0:
            i -= 1
            if i < 0:
                return 0, choice, nodes
            continue
        nodes += 1
        if nodes > node_limit:
            return -1, choice, nodes
        cnt[r] -= 1
        cnt[r - s] += 1
        free -= s
        if r - s < smallest:
            wasted += r - s
        choice[i] = r
        nxt[i] = r + 1
        if free - wasted < suffix[i + 1]:
            continue  # cut: undone at the top of the loop, next residual tried
        i += 1
        if i == n:
            return 1, choice, nodes
        choice[i] = -1
        nxt[i] = sizes[i]


@njit(cache=CACHE, nogil=True)
def _bins_from_choices(sizes, capacity, choice):  # pragma: no cover - jitted
    """Replay residual choices into concrete bins (one linked list of bins per residual)."""
    n = sizes.shape[0]
    head = np.full(capacity + 1, -1, dtype=np.int64)
    link = np.full(n, -1, dtype=np.int64)
    bins = np.empty(n, dtype=np.int64)
    num_bins = 0
    for i in range(n):
        r = choice[i]
        s = sizes[i]
        if r == capacity and head[capacity] < 0:
            b = num_bins
            num_bins += 1
        else:
            b = head[r]
            head[r] = link[b]
        bins[i] = b
        link[b] = head[r - s]
        head[r - s] = b
    return bins, num_bins


@njit(cache=CACHE, nogil=True)
def _split_counts(counts):  # pragma: no cover - jitted
    """Positions and sizes of the positive counts, the largest and smallest count, the sum.

    The sum is ``-1`` when it would overflow int64.
    """
    k, largest, smallest, total = _count_positive(counts)
    positions = np.empty(k, dtype=np.int64)
    sizes = np.empty(k, dtype=np.int64)
    _positive_into(counts, positions, sizes)
    return positions, sizes, largest, smallest, total


@njit(cache=CACHE, nogil=True)
def _count_positive(counts):  # pragma: no cover - jitted
    """``(K, largest, smallest, total)`` of ``_split_counts`` (K: positive counts)."""
    k = 0
    largest = 0
    smallest = 0
    total = 0
    for i in range(counts.shape[0]):
        c = counts[i]
        if c > 0:
            k += 1
            if c > largest:
                largest = c
            if total >= 0:
                total = total + c if c <= _INT64_MAX - total else -1
        elif c < smallest:
            smallest = c
    return k, largest, smallest, total


@njit(cache=CACHE, nogil=True)
def _positive_into(counts, positions, sizes):  # pragma: no cover - jitted
    """Write the positions and values of the positive counts (``K`` entries each)."""
    k = 0
    for i in range(counts.shape[0]):
        if counts[i] > 0:
            positions[k] = i
            sizes[k] = counts[i]
            k += 1


@njit(cache=CACHE, nogil=True)
def _group_by_bin(bins, num_bins):  # pragma: no cover - jitted
    """Items grouped by bin (bins in index order, items in increasing position)."""
    order = np.empty(bins.shape[0], dtype=np.int64)
    offsets = np.empty(num_bins + 1, dtype=np.int64)
    _group_by_bin_into(bins, num_bins, order, offsets, np.empty(num_bins, dtype=np.int64))
    return order, offsets


@njit(cache=CACHE, nogil=True)
def _group_by_bin_into(bins, num_bins, order, offsets, fill):  # pragma: no cover - jitted
    """``_group_by_bin`` into ``order`` (one entry per item) and ``offsets`` (``num_bins +
    1``); ``fill`` is scratch of ``num_bins`` entries."""
    n = bins.shape[0]
    for b in range(num_bins + 1):
        offsets[b] = 0
    for i in range(n):
        offsets[bins[i] + 1] += 1
    for b in range(num_bins):
        offsets[b + 1] += offsets[b]
        fill[b] = offsets[b]
    for i in range(n):
        b = bins[i]
        order[fill[b]] = i
        fill[b] += 1


#: Where ``_fast_plan`` writes in its output buffer: a header of ``FAST_HEADER`` values
#: (status, capacity, lower bound, largest, smallest, total, windows, groups), then the
#: counts, the grouped windows and the group offsets.
FAST_HEADER = 8


def fast_buffer_size(num_windows: int) -> int:
    """Length of ``_fast_plan``'s output buffer for ``num_windows`` counts (``3 N + 9``)."""
    return FAST_HEADER + 3 * num_windows + 1


@njit(cache=CACHE, nogil=True)
def _fast_plan(counts, capacity, strategy, max_work, max_words, out):  # pragma: no cover - jitted
    """One call for the cheap strategies, straight from the counts, into one buffer.

    ``counts`` int64 ``[N]``; ``capacity`` the group size, or 0 for the largest count;
    ``strategy`` 0 = GreenMIM's knapsack, 1 = FFD, 2 = BFD; ``max_work`` / ``max_words`` the
    limits of the published algorithm; ``out`` int64 ``[3 N + 9]`` (``fast_buffer_size``).
    Writes ``out[:8] = (status, capacity, lower_bound, largest, smallest, total, K, G)``,
    then ``out[8:8 + N]`` a copy of the counts, ``out[8 + N:8 + N + K]`` the grouped windows
    and ``out[8 + N + K:9 + N + K + G]`` the group offsets (one buffer and no tuple of arrays
    to box: at ~40 windows boxing would cost as much as the packing). Returns ``(status,
    capacity, lower_bound, K, G)`` too (a tuple of ints is cheaper to read than the header;
    ``int()`` costs nothing jitted and gives Python ints under ``NUMBA_DISABLE_JIT``).
    The status is -1 when a count is negative, larger than the capacity, or the sum leaves
    ``[0, MAX_TOTAL]`` (nothing packed, the caller raises), else the published algorithm's
    status (0 = packed; windows and offsets are written only then). When everything fits one
    group, every strategy gives that group (the knapsack's best sum is the total).
    """
    n = counts.shape[0]
    head = FAST_HEADER
    for i in range(n):
        out[head + i] = counts[i]
    k, largest, smallest, total = _count_positive(counts)
    if capacity == 0:
        capacity = max(largest, 1)
    out[1] = capacity
    out[2] = 0
    out[3] = largest
    out[4] = smallest
    out[5] = total
    out[6] = 0
    out[7] = 0
    if smallest < 0 or largest > capacity or total < 0 or total > MAX_TOTAL:
        out[0] = -1
        return -1, int(capacity), 0, 0, 0
    base = head + n
    # FFD on few windows at a dense size (every Swin stage at 224 px): one scratch array for
    # every step instead of a dozen small allocations (about a third of the kernel's time)
    small = strategy == 1 and capacity <= DENSE_CAPACITY and k <= _FFD_SCAN_UP_TO
    w = capacity + 2 if small else 0
    scratch = np.empty(5 * k + 3 * w if small else 2 * k, dtype=np.int64)
    positions = scratch[:k]
    sizes = scratch[k : 2 * k]
    _positive_into(counts, positions, sizes)
    if total <= capacity:
        for i in range(k):
            out[base + i] = positions[i]
        groups = min(k, 1)
        out[base + k] = 0
        if groups:
            out[base + k + 1] = k
        out[0] = 0
        out[2] = groups
        out[6] = k
        out[7] = groups
        return 0, int(capacity), int(groups), int(k), int(groups)
    if small:  # the steps of _lower_bound, _first_fit_decreasing and _group_by_bin
        hist = scratch[2 * k : 2 * k + w]
        cnt = scratch[2 * k + w : 2 * k + 2 * w]
        sm = scratch[2 * k + 2 * w : 2 * k + 3 * w]
        order = scratch[2 * k + 3 * w : 3 * k + 3 * w]
        bins = scratch[3 * k + 3 * w : 4 * k + 3 * w]
        residual = scratch[4 * k + 3 * w : 5 * k + 3 * w]
        for v in range(w):
            hist[v] = 0
        for i in range(k):
            hist[sizes[i]] += 1
        bound = _l2_from_hist(hist, total, capacity, cnt, sm)
        _order_from_hist(sizes, capacity, hist, cnt, order)
        groups = _first_fit_scan(sizes, order, capacity, bins, residual)
        _group_by_bin_into(bins, groups, order, out[base + k : base + k + groups + 1], residual)
    else:
        bound = _lower_bound_any(sizes, capacity)
        if strategy == 0:
            order, offsets, status, _ = _greenmim_any(sizes, capacity, max_work, max_words)
            if status != 0:
                out[0] = status
                out[2] = bound
                return int(status), int(capacity), int(bound), 0, 0
        else:
            if strategy == 1:
                bins, num = _first_fit_decreasing(sizes, capacity)
            else:
                bins, num = _best_fit_any(sizes, capacity)
            order, offsets = _group_by_bin(bins, num)
        groups = offsets.shape[0] - 1
        for i in range(groups + 1):
            out[base + k + i] = offsets[i]
    for i in range(k):
        out[base + i] = positions[order[i]]
    out[0] = 0
    out[2] = bound
    out[6] = k
    out[7] = groups
    return 0, int(capacity), int(bound), int(k), int(groups)


class SplitCounts(NamedTuple):
    """The positive counts of an int64 array (``split_counts``)."""

    positions: NDArray[np.int64]  # where the positive counts are
    sizes: NDArray[np.int64]  # the positive counts
    largest: int  # the largest count (0 if none)
    smallest: int  # the smallest count if negative, else 0
    total: int  # the sum of the positive counts, -1 if it overflows int64


def split_counts(counts: np.ndarray) -> SplitCounts:
    """The positive counts of int64 ``counts`` (1-D), their extremes and their sum."""
    positions, sizes, largest, smallest, total = _split_counts(kernel_array(counts))
    return SplitCounts(positions, sizes, int(largest), int(smallest), int(total))


def group_by_bin(bins: np.ndarray, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, offsets)``: item positions bin by bin, and the bin boundaries."""
    return _group_by_bin(kernel_array(bins), int(num_bins))


FAST_STRATEGIES = {"greenmim": 0, "ffd": 1, "bfd": 2}


class FastPlan(NamedTuple):
    """What ``fast_plan`` returns (see ``_fast_plan``)."""

    windows: NDArray[np.int64]
    offsets: NDArray[np.int64]
    lower_bound: int
    capacity: int
    largest: int
    smallest: int
    total: int
    status: int  # -1 invalid counts, 0 packed, 1 / 2 the published algorithm's limits


def fast_plan(
    counts: np.ndarray,
    capacity: int,
    strategy: str,
    max_work: int = GREENMIM_MAX_WORK,
    max_words: int = MAX_TABLE_WORDS,
) -> FastPlan:
    """A cheap strategy in one kernel call (see ``_fast_plan``; capacity 0 = largest count).

    ``windows`` and ``offsets`` are read-only views of the kernel's one output buffer.
    """
    counts = kernel_array(counts)
    n = counts.shape[0]
    out = np.empty(fast_buffer_size(n), dtype=np.int64)
    _fast_plan(
        counts, int(capacity), FAST_STRATEGIES[strategy], _clip(max_work), _clip(max_words), out
    )
    out.setflags(write=False)
    status, capacity, bound, largest, smallest, total, k, groups = out[:FAST_HEADER].tolist()
    base = FAST_HEADER + n
    if status:  # nothing packed (K = G = 0)
        offsets = np.zeros(1, dtype=np.int64)
    else:
        offsets = out[base + k : base + k + groups + 1]
    return FastPlan(
        out[base : base + k],
        offsets,
        bound,
        capacity,
        largest,
        smallest,
        total,
        status,
    )


def first_fit_decreasing(sizes: np.ndarray, capacity: int) -> tuple[np.ndarray, int]:
    """Bin of every item under FFD, and the number of bins."""
    bins, num = _first_fit_decreasing(kernel_array(sizes), int(capacity))
    return bins, int(num)


def best_fit_decreasing(sizes: np.ndarray, capacity: int) -> tuple[np.ndarray, int]:
    """Bin of every item under BFD, and the number of bins (heaps above ``DENSE_CAPACITY``)."""
    bins, num = _best_fit_any(kernel_array(sizes), int(capacity))
    return bins, int(num)


def lower_bound(sizes: np.ndarray, capacity: int) -> int:
    """max(L1, L2): a proven lower bound on the number of bins (sum below ``MAX_TOTAL``)."""
    sizes = kernel_array(sizes)
    if sizes.shape[0] == 0:
        return 0
    return int(_lower_bound_any(sizes, int(capacity)))


def dff_cost(sizes: np.ndarray, capacity: int) -> int:
    """The work of :func:`dff_bound`: ``g`` times the number of distinct sizes."""
    return int(capacity) * int(np.unique(sizes).shape[0])


def dff_bound(sizes: np.ndarray, capacity: int) -> int:
    """The dual-feasible-function lower bound (stronger than L2 on some inputs, O(g m)).

    0 (no bound) above ``DENSE_CAPACITY``, where its O(g m) cost and its int64 products
    (``sum * g``) are not bounded.
    """
    sizes = kernel_array(sizes)
    if sizes.shape[0] == 0 or capacity > DENSE_CAPACITY:
        return 0
    return int(_dff_bound(sizes, int(capacity)))


#: Residual values the branch and bound may scan per node of its budget (a node scans at most
#: ``g + 1``; a failed scan, at most one per node, backtracks), so below a group size of 128
#: only the node budget binds; 2,000,000 nodes then scan at most about 0.5 s.
SEARCH_CELLS_PER_NODE = 256


def search(
    sizes: np.ndarray, capacity: int, num_bins: int, node_limit: int
) -> tuple[int, np.ndarray | None, int]:
    """Try to pack ``sizes`` (any order) into ``num_bins`` bins.

    Returns ``(status, bins, nodes)``: status 1 with the bin of every item, 0 (proven
    impossible) or -1 (budget exhausted, or a capacity above ``DENSE_CAPACITY``) with
    ``bins=None``. The budget is ``node_limit`` nodes and ``SEARCH_CELLS_PER_NODE`` residual
    values scanned per node. A ``node_limit`` past the int64 range means no limit (it is
    clipped, so the kernel keeps its one signature).
    """
    if capacity > DENSE_CAPACITY:
        return -1, None, 0
    sizes = kernel_array(sizes)
    order = _sort_decreasing(sizes, int(capacity))
    sorted_sizes = np.ascontiguousarray(sizes[order])
    limit = _clip(node_limit)
    cells = _clip(SEARCH_CELLS_PER_NODE * (limit + 1))
    status, choice, nodes = _search(sorted_sizes, int(capacity), int(num_bins), limit, cells)
    if status != 1:
        return int(status), None, int(nodes)
    sorted_bins, _ = _bins_from_choices(sorted_sizes, int(capacity), choice)
    bins = np.empty_like(sorted_bins)
    bins[order] = sorted_bins
    return 1, bins, int(nodes)


def warm_kernels() -> None:
    """Call every kernel of this file once, with the one signature the wrappers pass.

    Each call compiles that specialisation or loads it from numba's on-disk cache. The helpers
    that only other kernels call are called here too: a kernel loaded from the cache does not
    load its callees' dispatchers, and a cold compile gives them the same signature anyway.
    Called by :func:`grouping.warmup`; add every new kernel here (``tests/test_warmup.py``
    fails on a dispatcher left without a signature).
    """
    sizes = np.array([4, 3, 3, 2, 2, 1], dtype=np.int64)  # decreasing; 15 = 3 bins of 5
    words = np.zeros(2, dtype=np.uint64)
    _shift_or(words, np.zeros(2, dtype=np.uint64), 3, 2, _ONE)
    _highest_bit(words, 2)
    items = np.arange(3, dtype=np.int64)
    _emit_group(items, 3, np.zeros(3, dtype=np.bool_), np.empty(3, dtype=np.int64), 0)
    for capacity in (5, 70):  # the one-word (g < 64) and the multi-word bitset kernels
        greenmim_groups(sizes, capacity)
    _greenmim_kernel_word(sizes, 5, GREENMIM_MAX_WORK)
    _greenmim_kernel(sizes, 70, GREENMIM_MAX_WORK, MAX_TABLE_WORDS)
    decreasing_knapsack(sizes, 5)
    _sort_decreasing(sizes, 5)
    first_fit_decreasing(sizes, 5)
    best_fit_decreasing(sizes, 5)
    _best_fit_decreasing(sizes, 5)
    _best_fit_heaps(sizes, 5)
    keys = np.zeros(2, dtype=np.int64)
    size = _heap_push(keys, keys.copy(), keys.copy(), 0, 1, 2, 3)
    _heap_pop(keys, keys.copy(), keys.copy(), size)
    lower_bound(sizes, 5)
    _lower_bound(sizes, 5)
    _lower_bound_sorted(sizes, 5)
    dff_bound(sizes, 5)
    search(sizes, 5, 3, 100)  # packed, so the choices are replayed into bins too
    search(sizes, 5, 2, 100)  # proven impossible
    order = np.arange(6, dtype=np.int64)
    _first_fit_scan(sizes, order, 5, np.empty(6, dtype=np.int64), np.empty(6, dtype=np.int64))
    hist = np.array([0, 1, 2, 2, 1, 0, 0], dtype=np.int64)  # of sizes
    _order_from_hist(sizes, 5, hist, np.empty(7, dtype=np.int64), np.empty(6, dtype=np.int64))
    _l2_from_hist(hist, 15, 5, np.empty(7, dtype=np.int64), np.empty(7, dtype=np.int64))
    counts = np.array([0, 4, 3, 0, 3, 2, 2, 1], dtype=np.int64)
    split_counts(counts)
    _count_positive(counts)
    _positive_into(counts, np.empty(6, dtype=np.int64), np.empty(6, dtype=np.int64))
    bins = np.array([1, 0, 1], dtype=np.int64)
    group_by_bin(bins, 2)
    scratch = np.empty(3, dtype=np.int64)
    _group_by_bin_into(bins, 2, scratch, np.empty(3, dtype=np.int64), np.empty(2, dtype=np.int64))
    for strategy in FAST_STRATEGIES:
        for capacity in (0, 5, 70):
            fast_plan(counts, capacity, strategy)
