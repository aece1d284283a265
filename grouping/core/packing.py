"""Bin packing kernels: first/best-fit decreasing, lower bounds and an exact search.

Windows are items (size = visible count), groups are bins of capacity ``g``. All kernels take
int64 sizes in ``[1, g]`` and return the bin of every item; the wrappers in ``solve.py`` turn
that into groups.

Notes:
    First-fit and best-fit decreasing are greedy: they use at most ``11/9 OPT + 6/9`` bins
    (Dosa 2007) but are not necessarily minimal. The lower bound is the best of
    ``ceil(sum / g)`` (L1) and Martello and Toth's L2. The exact search is a depth-first
    branch and bound over items in decreasing size, on the *histogram* of bin residual
    capacities (bins with equal residual are interchangeable, so each residual value is tried
    once), with three dominance rules: an item that exactly fills a residual goes there when
    no identical item follows; consecutive identical items take non-increasing residuals; and a
    node is cut when the free capacity usable by the remaining items is less than their total.
    It is complete (a finished search proves infeasibility) and bounded by a node budget.

References:
    Martello, S. and Toth, P. "Lower bounds and reduction procedures for the bin packing
    problem." Discrete Applied Mathematics 28 (1990).
    Korf, R. "A new algorithm for optimal bin packing." AAAI 2002 (bin-oriented search and the
    dominance of exact fits).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__: list[str] = []


@njit(cache=True, nogil=True)
def _sort_decreasing(sizes, capacity):  # pragma: no cover - jitted
    """Item positions by decreasing size, ties by increasing position (counting sort)."""
    n = sizes.shape[0]
    hist = np.zeros(capacity + 2, dtype=np.int64)
    for i in range(n):
        hist[sizes[i]] += 1
    start = np.zeros(capacity + 2, dtype=np.int64)
    acc = 0
    for s in range(capacity, -1, -1):
        start[s] = acc
        acc += hist[s]
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        s = sizes[i]
        order[start[s]] = i
        start[s] += 1
    return order


@njit(cache=True, nogil=True)
def _first_fit_decreasing(sizes, capacity):  # pragma: no cover - jitted
    """FFD with a max segment tree over bin residuals: O(n log n). Returns (bin, num_bins)."""
    n = sizes.shape[0]
    order = _sort_decreasing(sizes, capacity)
    leaves = 1
    while leaves < max(n, 1):
        leaves *= 2
    tree = np.full(2 * leaves, -1, dtype=np.int64)  # -1: no bin opened there yet
    bins = np.empty(n, dtype=np.int64)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _lower_bound(sizes, capacity):  # pragma: no cover - jitted
    """max(L1, L2) of Martello and Toth for integer sizes in [1, capacity]."""
    hist = np.zeros(capacity + 1, dtype=np.int64)
    total = 0
    for i in range(sizes.shape[0]):
        hist[sizes[i]] += 1
        total += sizes[i]
    best = (total + capacity - 1) // capacity
    # prefix counts and sums over sizes
    cnt = np.zeros(capacity + 2, dtype=np.int64)
    sm = np.zeros(capacity + 2, dtype=np.int64)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _search(sizes, capacity, num_bins, node_limit):  # pragma: no cover - jitted
    """Can the items be packed into ``num_bins`` bins? Depth-first branch and bound.

    ``sizes`` must be sorted in decreasing order. Returns ``(status, choice, nodes)``: status 1
    = packed (``choice[i]`` is the residual capacity of the bin item ``i`` went into), 0 =
    proven impossible, -1 = node budget exhausted.
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
                if cnt[cand] > 0:
                    r = cand
                    break
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


@njit(cache=True, nogil=True)
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


def sort_decreasing(sizes: np.ndarray, capacity: int) -> np.ndarray:
    """Positions of ``sizes`` by decreasing size, ties by position (int64)."""
    return _sort_decreasing(np.ascontiguousarray(sizes, dtype=np.int64), int(capacity))


def first_fit_decreasing(sizes: np.ndarray, capacity: int) -> tuple[np.ndarray, int]:
    """Bin of every item under FFD, and the number of bins."""
    bins, num = _first_fit_decreasing(np.ascontiguousarray(sizes, dtype=np.int64), int(capacity))
    return bins, int(num)


def best_fit_decreasing(sizes: np.ndarray, capacity: int) -> tuple[np.ndarray, int]:
    """Bin of every item under BFD, and the number of bins."""
    bins, num = _best_fit_decreasing(np.ascontiguousarray(sizes, dtype=np.int64), int(capacity))
    return bins, int(num)


def lower_bound(sizes: np.ndarray, capacity: int) -> int:
    """max(L1, L2): a proven lower bound on the number of bins."""
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    if sizes.shape[0] == 0:
        return 0
    return int(_lower_bound(sizes, int(capacity)))


def dff_bound(sizes: np.ndarray, capacity: int) -> int:
    """The dual-feasible-function lower bound (stronger than L2 on some inputs, O(g m))."""
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    if sizes.shape[0] == 0:
        return 0
    return int(_dff_bound(sizes, int(capacity)))


def search(
    sizes: np.ndarray, capacity: int, num_bins: int, node_limit: int
) -> tuple[int, np.ndarray | None, int]:
    """Try to pack ``sizes`` (any order) into ``num_bins`` bins.

    Returns ``(status, bins, nodes)``: status 1 with the bin of every item, 0 (proven
    impossible) or -1 (budget exhausted) with ``bins=None``.
    """
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    order = _sort_decreasing(sizes, int(capacity))
    sorted_sizes = np.ascontiguousarray(sizes[order])
    status, choice, nodes = _search(sorted_sizes, int(capacity), int(num_bins), int(node_limit))
    if status != 1:
        return int(status), None, int(nodes)
    sorted_bins, _ = _bins_from_choices(sorted_sizes, int(capacity), choice)
    bins = np.empty_like(sorted_bins)
    bins[order] = sorted_bins
    return 1, bins, int(nodes)
