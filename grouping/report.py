"""What the ``grouping`` command and the benchmarks in ``bench/`` both report (torch-free).

* :func:`cost_table`: attention cost against group size for many masks of one problem, one
  :func:`grouping.sweep_group_sizes` per mask (``budget="per_size"``, so every cell is what
  ``solve(counts, g)`` finds), as a :class:`CostTable` of ``[masks, sizes]`` arrays. ``grouping
  sweep`` summarises it by group size, ``bench/group_size.py`` by the distance from each
  mask's largest count.
* :func:`write_json`: a result as indented JSON (numpy values converted; optionally rounded,
  with nan as null, as the benchmarks write them).

Printing and plotting stay with each caller (:mod:`grouping.plotting` holds the plots).

Examples:
    >>> import numpy as np
    >>> t = cost_table([np.array([3, 2, 2]), np.array([4, 1, 0])], 8, 6)
    >>> t.group_sizes.tolist(), t.num_groups.tolist()
    ([3, 4, 5, 6], [[3, 2, 2, 2], [0, 2, 1, 1]])
    >>> t.fits.tolist()[1]
    [False, True, True, True]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .core.errors import invalid
from .core.solve import Strategy, solve, sweep_group_sizes

__all__ = ["CostTable", "cost_table", "write_json"]


class CostTable(NamedTuple):
    """Attention cost against group size, one row per mask (:func:`cost_table`).

    A mask does not fit a size below its largest window count (no window is split); its cells
    there hold 0 groups and a nan cost.

    Attributes:
        group_sizes: int64 ``[S]``, consecutive sizes from the smallest largest count.
        num_groups: int64 ``[M, S]``, groups at each size (0 where the mask does not fit).
        lower_bounds: int64 ``[M, S]``, the proven lower bound on them (0 there too).
        costs: float64 ``[M, S]``, ``attention_cost(num_groups, g, channels)`` (nan there).
        tokens: int64 ``[M]``, visible tokens of each mask.
        largest: int64 ``[M]``, each mask's largest window count (the first size it fits).
    """

    group_sizes: NDArray[np.int64]
    num_groups: NDArray[np.int64]
    lower_bounds: NDArray[np.int64]
    costs: NDArray[np.float64]
    tokens: NDArray[np.int64]
    largest: NDArray[np.int64]

    @property
    def fits(self) -> NDArray[np.bool_]:
        """bool ``[M, S]``: the mask can be grouped at the size."""
        return self.group_sizes[None, :] >= self.largest[:, None]

    @property
    def optimal(self) -> NDArray[np.bool_]:
        """bool ``[M, S]``: the groups are proven minimal (False where it does not fit)."""
        return self.fits & (self.num_groups == self.lower_bounds)

    @property
    def padding_fraction(self) -> NDArray[np.float64]:
        """float64 ``[M, S]``: padding slots over all slots, as ``GroupingPlan`` computes it
        (nan where it does not fit)."""
        slots = self.num_groups * self.group_sizes[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (slots - self.tokens[:, None]) / slots
        return np.where(self.fits, out, np.nan)

    def at_offsets(self, values: ArrayLike, offsets: ArrayLike) -> NDArray[Any]:
        """``values[i, j]`` (``[M, S]``, e.g. ``costs``) at the sizes ``largest[i] + offsets``:
        ``[M, len(offsets)]``, every mask from its own largest count (GreenMIM's choice)."""
        cols = self.largest[:, None] - self.group_sizes[0] + np.asarray(offsets)[None, :]
        return np.take_along_axis(np.asarray(values), cols, axis=1)


def cost_table(
    counts: Sequence[ArrayLike], channels: int, high: int, *, strategy: Strategy = "auto"
) -> CostTable:
    """The cost of every mask at every group size from the smallest largest count to ``high``.

    Each mask is swept from its own largest count ``m`` to ``high`` by
    :func:`grouping.sweep_group_sizes` with ``budget="per_size"`` (``max_group_size=high``,
    ``extra=high - m``): every cell is what ``solve(counts, g, strategy=strategy)`` finds at
    that size, computed once. Sizes one sweep does not reach (past ``SWEEP_MAX_SIZES``, or past
    the sum of the counts, where one group holds everything) are solved one by one.

    Args:
        counts: ``M`` arrays of visible tokens per window (any shape, flattened), each with
            at least one visible token.
        channels: ``C`` of the cost model.
        high: the largest size, at least every mask's largest count.
        strategy: the packing strategy at every size.

    Returns:
        A :class:`CostTable`.

    Raises:
        GroupingValueError: for no masks, an empty mask, or ``high`` below a largest count
            (and as :func:`grouping.sweep_group_sizes`).
    """
    flats = [np.asarray(c).ravel() for c in counts]
    if not flats:
        raise invalid("counts", "at least one mask's counts", counts)
    largest = np.array([int(c.max()) if c.size else 0 for c in flats], dtype=np.int64)
    if largest.min() < 1:
        raise invalid("counts", "masks with at least one visible token each", counts)
    low = int(largest.min())
    sizes = np.arange(low, int(high) + 1, dtype=np.int64)
    shape = (len(flats), sizes.size)
    num = np.zeros(shape, dtype=np.int64)
    bounds = np.zeros(shape, dtype=np.int64)
    costs = np.full(shape, np.nan)
    for i, c in enumerate(flats):
        m = int(largest[i])
        sweep = sweep_group_sizes(
            c,
            channels,
            strategy=strategy,
            max_group_size=high,
            extra=int(high) - m,
            budget="per_size",
        )
        cols = sweep.group_sizes - low
        num[i, cols] = sweep.num_groups
        bounds[i, cols] = sweep.lower_bounds
        costs[i, cols] = sweep.costs
        for j in range(m - low + sweep.group_sizes.size, sizes.size):  # what the sweep left
            plan = solve(c, int(sizes[j]), strategy=strategy, channels=channels)
            num[i, j], bounds[i, j], costs[i, j] = plan.num_groups, plan.lower_bound, plan.cost
    tokens = np.array([int(c.sum()) for c in flats], dtype=np.int64)
    return CostTable(sizes, num, bounds, costs, tokens, largest)


# ----------------------------------------------------------------------------------------------
# JSON


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _rounded(value: Any, digits: int) -> Any:
    """Floats to ``digits`` significant digits and nan/inf to None, all the way down."""
    if isinstance(value, (float, np.floating)):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return [_rounded(v, digits) for v in value.tolist()]
    return value


def write_json(
    path: str | os.PathLike[str],
    data: dict[str, Any],
    *,
    indent: int = 2,
    digits: int | None = None,
) -> Path:
    """Write ``data`` as indented JSON, creating the parent folders; return the path.

    numpy scalars and arrays become plain numbers and lists. With ``digits``, every float is
    rounded to that many significant digits and nan/inf become null (what the benchmarks
    write); without, floats are written exactly (nan as ``NaN``).
    """
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    if digits is not None:
        data = _rounded(data, digits)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent, default=_json_default)
        f.write("\n")
    return path
