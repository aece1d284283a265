"""Slow, obviously-correct reference implementations of the solver (plain Python).

These are the oracles of the test suite and the baseline of ``bench/solver.py``. They favour
literal readability over speed; never use them in a training loop.

* :func:`greenmim_reference`: the published GreenMIM algorithm, stated plainly: a table DP
  ``K[i][w]`` per group, read back from the last window, windows removed, repeat.
* :func:`ffd_reference`, :func:`bfd_reference`: first/best-fit decreasing with lists.
* :func:`l2_reference`: Martello and Toth's lower bound, straight from its definition.
* :func:`min_groups_reference`: the minimum number of groups by exhaustive search (tiny
  inputs only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "bfd_reference",
    "ffd_reference",
    "greenmim_reference",
    "l2_reference",
    "min_groups_reference",
]


def _knapsack(capacity: int, weights: list[int]) -> tuple[int, list[int]]:
    """0-1 knapsack with value = weight; returns (best sum, chosen indices in increasing order)."""
    n = len(weights)
    table = [[0] * (capacity + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        wt = weights[i - 1]
        for w in range(capacity + 1):
            table[i][w] = table[i - 1][w]
            if wt <= w:
                table[i][w] = max(table[i][w], wt + table[i - 1][w - wt])
    best = res = table[n][capacity]
    w = capacity
    chosen = []
    for i in range(n, 0, -1):
        if res <= 0:
            break
        if res == table[i - 1][w]:
            continue  # reachable without window i-1: skip it (keeps earlier windows)
        chosen.append(i - 1)
        res -= weights[i - 1]
        w -= weights[i - 1]
    return best, chosen[::-1]


def greenmim_reference(counts: Sequence[int], group_size: int) -> list[list[int]]:
    """The published GreenMIM grouping: groups of window indices, in packing order.

    Windows with a zero count are left out (the published code never terminates on them).
    Every count must be ``<= group_size``.
    """
    remaining = [i for i, c in enumerate(counts) if c > 0]
    weights = [int(counts[i]) for i in remaining]
    groups = []
    while weights:
        _, chosen = _knapsack(group_size, weights)
        assert chosen, "a count exceeds the group size"
        groups.append([remaining[i] for i in chosen])
        picked = set(chosen)
        remaining = [r for i, r in enumerate(remaining) if i not in picked]
        weights = [w for i, w in enumerate(weights) if i not in picked]
    return groups


def _decreasing(counts: Sequence[int]) -> list[int]:
    items = [i for i, c in enumerate(counts) if c > 0]
    return sorted(items, key=lambda i: (-counts[i], i))


def ffd_reference(counts: Sequence[int], group_size: int) -> list[list[int]]:
    """First-fit decreasing: each window into the first group with room."""
    groups: list[list[int]] = []
    fills: list[int] = []
    for i in _decreasing(counts):
        for k, fill in enumerate(fills):
            if fill + counts[i] <= group_size:
                groups[k].append(i)
                fills[k] += counts[i]
                break
        else:
            groups.append([i])
            fills.append(counts[i])
    return [sorted(g) for g in groups]


def bfd_reference(counts: Sequence[int], group_size: int) -> list[list[int]]:
    """Best-fit decreasing: each window into the fullest group with room (any among ties)."""
    groups: list[list[int]] = []
    fills: list[int] = []
    for i in _decreasing(counts):
        fitting = [k for k, fill in enumerate(fills) if fill + counts[i] <= group_size]
        if fitting:
            k = max(fitting, key=lambda k: fills[k])
            groups[k].append(i)
            fills[k] += counts[i]
        else:
            groups.append([i])
            fills.append(counts[i])
    return [sorted(g) for g in groups]


def l2_reference(counts: Sequence[int], group_size: int) -> int:
    """max(ceil(sum / g), L2) with L2 from Martello and Toth's definition."""
    sizes = [int(c) for c in counts if c > 0]
    if not sizes:
        return 0
    c = group_size
    best = math.ceil(sum(sizes) / c)
    for k in range(0, c // 2 + 1):
        j1 = [s for s in sizes if s > c - k]
        j2 = [s for s in sizes if c / 2 < s <= c - k]
        j3 = [s for s in sizes if k <= s <= c / 2]
        value = len(j1) + len(j2) + max(0, math.ceil((sum(j3) - (len(j2) * c - sum(j2))) / c))
        best = max(best, value)
    return best


def min_groups_reference(counts: Sequence[int], group_size: int) -> int:
    """The minimum number of groups, by trying every assignment (use <= 10 windows)."""
    sizes = sorted((int(c) for c in counts if c > 0), reverse=True)
    best = len(sizes)

    def place(i: int, fills: list[int]) -> None:
        nonlocal best
        if len(fills) >= best:
            return
        if i == len(sizes):
            best = len(fills)
            return
        for k in range(len(fills)):
            if fills[k] + sizes[i] <= group_size:
                fills[k] += sizes[i]
                place(i + 1, fills)
                fills[k] -= sizes[i]
        fills.append(sizes[i])
        place(i + 1, fills)
        fills.pop()

    place(0, [])
    return best
