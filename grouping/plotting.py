"""Plots of a grouping plan and of a group-size sweep (PNG files).

matplotlib is an optional dependency (the ``bench`` extra); it is imported inside the functions,
so ``import grouping.plotting`` works without it. Figures are drawn with matplotlib's Agg canvas
directly (``matplotlib.figure.Figure``), never through ``pyplot``, so the caller's backend and
open figures are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .core.errors import invalid
from .core.plan import GroupingPlan
from .core.windows import window_index

__all__ = ["group_colors", "plot_plan", "plot_sweep"]

_INSTALL_HINT = "plotting needs matplotlib: install it with `pip install grouping[bench]`"


def _figure(width: float, height: float) -> Any:
    """A new Agg-backed figure (matplotlib imported here, lazily)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str], dpi: int) -> None:
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")


def group_colors(num_groups: int) -> NDArray[np.float64]:
    """``num_groups`` distinct RGB colours, float ``[num_groups, 3]`` in ``[0, 1]``.

    Hues step by the golden ratio so that neighbouring group indices get distant hues; lightness
    and saturation cycle so that far-apart groups with close hues still differ.
    """
    k = np.arange(num_groups, dtype=np.float64)
    hue = (k * 0.618033988749895) % 1.0
    sat = 0.55 + 0.35 * ((k % 3) / 2.0)
    val = 0.95 - 0.2 * ((k // 3) % 2)
    # HSV -> RGB, vectorised.
    i = np.floor(hue * 6.0)
    f = hue * 6.0 - i
    p = val * (1.0 - sat)
    q = val * (1.0 - f * sat)
    t = val * (1.0 - (1.0 - f) * sat)
    i = i.astype(np.int64) % 6
    r = np.choose(i, [val, q, p, p, t, val])
    g = np.choose(i, [t, val, val, q, p, p])
    b = np.choose(i, [p, p, t, val, val, q])
    return np.stack([r, g, b], axis=-1)


def _boundaries(side: int, window: int, shift: int) -> list[int]:
    """Window boundaries along one axis, grid edges included (DESIGN.md partition)."""
    inner = range(shift if shift else window, side, window)
    return [0, *inner, side]


def plot_plan(
    token_mask: ArrayLike,
    plan: GroupingPlan,
    window: int,
    shift: int,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: int = 120,
) -> None:
    """Draw a 2-D mask with every window coloured by its group and write it as a PNG.

    Visible tokens take their group's colour, masked tokens a dark shade of it, and tokens of
    empty windows (which belong to no group) are near black. Window boundaries are drawn as
    lines; the title gives group size, groups, the lower bound, optimality and padding.

    Args:
        token_mask: bool ``[H, W]``, True = visible.
        plan: a plan solved for ``window_counts(token_mask, window, shift=shift)``.
        window: window side in tokens.
        shift: partition offset in tokens (``0 <= shift < window``).
        path: the PNG file to write (parent directories are created).
        title: a first title line (e.g. the preset); the plan's numbers follow it.
        dpi: resolution of the PNG.

    Raises:
        GroupingValueError: if the mask is not a 2-D bool array or the plan was solved for a
            different number of windows.
        ImportError: if matplotlib is not installed.
    """
    mask = np.asarray(token_mask)
    if mask.dtype != np.bool_ or mask.ndim != 2:
        raise invalid("token_mask", "a 2-D bool array (True = visible)", mask)
    ids = window_index(mask.shape, window, shift=shift)
    num_windows = int(ids.max()) + 1
    if plan.num_windows != num_windows:
        raise invalid(
            "plan",
            f"a plan over the {num_windows} windows of this mask (window {window}, shift {shift})",
            plan,
        )
    colors = group_colors(plan.num_groups)
    group = plan.group_of[ids]  # [H, W], -1 for empty windows
    image = np.full((*mask.shape, 3), 0.08)
    grouped = group >= 0
    image[grouped] = colors[group[grouped]]
    image[grouped & ~mask] *= 0.3
    image[~grouped & mask] = 1.0  # cannot happen for a valid plan; shown white if it does

    h, w = mask.shape
    side = 7.0
    fig = _figure(side * min(1.0, w / h) + 0.4, side * min(1.0, h / w) + 0.8)
    ax = fig.add_subplot()
    ax.imshow(image, extent=(0, w, h, 0), interpolation="nearest")
    line = max(0.3, min(1.5, 60.0 / max(h, w)))
    for x in _boundaries(w, window, shift):
        ax.axvline(x, color="white", linewidth=line)
    for y in _boundaries(h, window, shift):
        ax.axhline(y, color="white", linewidth=line)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    numbers = (
        f"g={plan.group_size}, {plan.num_groups} groups (lower bound {plan.lower_bound}, "
        f"{'optimal' if plan.optimal else 'not proven optimal'}), "
        f"padding {100 * plan.padding_fraction:.2f}%"
    )
    ax.set_title(numbers if title is None else f"{title}\n{numbers}", fontsize=10)
    _save(fig, path, dpi)


def plot_sweep(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    best: int,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> None:
    """Plot attention cost relative to GreenMIM's choice against group size; mark the optimum.

    Args:
        rows: one mapping per group size with ``"group_size"`` and ``"relative_cost"`` (cost
            over the cost at g = the largest count, GreenMIM's choice); optional
            ``"relative_cost_lo"``/``"relative_cost_hi"`` draw a band (e.g. the 10-90 % range
            over many masks).
        path: the PNG file to write (parent directories are created).
        best: the group size to mark as the optimum (must be one of the rows').
        title: the figure title.
        dpi: resolution of the PNG.

    Raises:
        GroupingValueError: if ``rows`` is empty or ``best`` is not among its group sizes.
        ImportError: if matplotlib is not installed.
    """
    if len(rows) == 0:
        raise invalid("rows", "at least one row", rows)
    g = np.array([int(r["group_size"]) for r in rows])
    rel = np.array([float(r["relative_cost"]) for r in rows])
    if best not in g:
        raise invalid("best", f"one of the rows' group sizes {g.min()}..{g.max()}", best)
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    if all("relative_cost_lo" in r and "relative_cost_hi" in r for r in rows):
        lo = np.array([float(r["relative_cost_lo"]) for r in rows])
        hi = np.array([float(r["relative_cost_hi"]) for r in rows])
        ax.fill_between(g, lo, hi, color="tab:blue", alpha=0.2, label="10-90 % over masks")
    ax.plot(g, rel, marker="o", markersize=3, color="tab:blue", label="cost / GreenMIM's")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="GreenMIM (g = max count)")
    k = int(np.flatnonzero(g == best)[0])
    ax.plot(
        [best],
        [rel[k]],
        marker="*",
        markersize=14,
        color="tab:red",
        linestyle="none",
        label=f"optimum g={best} ({100 * (1 - rel[k]):.1f}% saved)",
    )
    ax.set_xlabel("group size g (tokens)")
    ax.set_ylabel("attention cost relative to g = max count")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    _save(fig, path, dpi)
