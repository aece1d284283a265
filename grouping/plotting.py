"""Plots of a grouping plan and of group-size sweeps (PNG files).

:func:`plot_plan` and :func:`plot_sweep` draw the ``grouping plan`` and ``grouping sweep``
figures, :func:`plot_group_size_cases` the figure of ``bench/group_size.py``
(``docs/figures/group_size.png``).

matplotlib is an optional dependency (the ``bench`` extra); it is imported inside the functions,
so ``import grouping.plotting`` works without it. Figures are drawn with matplotlib's Agg canvas
directly (``matplotlib.figure.Figure``), never through ``pyplot``, so the caller's backend and
open figures are left alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .core.errors import invalid
from .core.plan import GroupingPlan
from .core.windows import window_index

__all__ = [
    "METRIC_PANELS",
    "RECONSTRUCTION_NOTES",
    "group_colors",
    "plot_clips",
    "plot_group_size_cases",
    "plot_metrics",
    "plot_metrics_files",
    "read_metrics",
    "plot_plan",
    "plot_reconstruction",
    "plot_reconstructions",
    "plot_sweep",
]

_INSTALL_HINT = "plotting needs matplotlib: install it with `pip install grouping[bench]`"


def _figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    """A new Agg-backed figure (matplotlib imported here, lazily)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    fig = Figure(figsize=(width, height), layout=layout)
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


_EMPTY = 0.08  # grey level of the tokens of empty windows
_MASKED_SHADE = 0.3  # masked tokens of a grouped window: its group colour times this
_NUMBERED_WINDOWS = 24  # number the groups inside the windows up to this many windows a side


def _plan_image(mask: NDArray[np.bool_], plan: GroupingPlan, ids: NDArray[np.int64]) -> Any:
    """RGB ``[H, W, 3]``: group colour on visible tokens, a dark shade of it on masked ones."""
    colors = group_colors(plan.num_groups)
    group = plan.group_of[ids]  # [H, W], -1 for empty windows
    image = np.full((*mask.shape, 3), _EMPTY)
    grouped = group >= 0
    image[grouped] = colors[group[grouped]]
    image[grouped & ~mask] *= _MASKED_SHADE
    image[~grouped & mask] = 1.0  # cannot happen for a valid plan; shown white if it does
    return image


def _draw_plan(
    ax: Any,
    mask: NDArray[np.bool_],
    plan: GroupingPlan,
    window: int,
    shift: int,
    ids: NDArray[np.int64],
    heading: str | None,
    numbered: bool,
    claim: bool,
) -> None:
    """One panel: the plan's image, window boundaries, group numbers, its numbers as title."""
    h, w = mask.shape
    ax.imshow(_plan_image(mask, plan, ids), extent=(0, w, h, 0), interpolation="nearest")
    xs, ys = _boundaries(w, window, shift), _boundaries(h, window, shift)
    line = max(0.3, min(1.5, 60.0 / max(h, w)))
    for x in xs:
        ax.axvline(x, color="white", linewidth=line)
    for y in ys:
        ax.axhline(y, color="white", linewidth=line)
    if numbered:  # the group number (1 = packed first) at the centre of every grouped window
        group_of = plan.group_of
        size = max(5.0, min(9.0, 64.0 / max(len(xs), len(ys))))
        for r in range(len(ys) - 1):
            for c in range(len(xs) - 1):
                k = int(group_of[ids[ys[r], xs[c]]])
                if k >= 0:
                    ax.text(
                        (xs[c] + xs[c + 1]) / 2,
                        (ys[r] + ys[r + 1]) / 2,
                        str(k + 1),
                        ha="center",
                        va="center",
                        fontsize=size,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8, "lw": 0},
                    )
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    optimal = f", {'optimal' if plan.optimal else 'not proven optimal'}" if claim else ""
    stats = (
        f"g={plan.group_size}, {plan.num_groups} groups (lower bound {plan.lower_bound}"
        f"{optimal}),\n"
        f"padding {100 * plan.padding_fraction:.2f}%"
        + (f", cost {plan.cost / 1e6:.2f} MMAC" if np.isfinite(plan.cost) else "")
    )
    ax.set_title(stats if heading is None else f"{heading}\n{stats}", fontsize=9)


def _plan_legend(fig: Any, numbered: bool) -> None:
    """What the plan panels draw, as a legend under them."""
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    colors = group_colors(4)
    number = "; the number in a window is its group, 1 = packed first" if numbered else ""
    handles = [
        tuple(Patch(fc=c, ec="none") for c in colors),
        tuple(Patch(fc=c * _MASKED_SHADE, ec="none") for c in colors),
        Patch(fc=(_EMPTY,) * 3, ec="none"),
        Line2D([], [], color="white", linewidth=2),
    ]
    labels = [
        f"visible tokens: colour = their window's group, one colour per group{number}",
        "masked tokens of a grouped window: a dark shade of its group's colour",
        "empty window (all tokens masked): in no group",
        "window boundary",
    ]
    legend = fig.legend(
        handles,
        labels,
        handler_map={tuple: HandlerTuple(ndivide=None, pad=0)},
        handlelength=4,
        loc="outside lower center",
        ncols=1,
        fontsize=8,
    )
    legend.get_frame().set_facecolor("0.75")


def plot_plan(
    token_mask: ArrayLike,
    plan: GroupingPlan,
    window: int,
    shift: int,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    baseline: GroupingPlan | None = None,
    labels: tuple[str, str] | None = None,
    dpi: int = 120,
) -> None:
    """Draw a 2-D mask with every window coloured by its group and write it as a PNG.

    Visible tokens take their group's colour, masked tokens a dark shade of it, and tokens of
    empty windows (which belong to no group) are near black; where the window grid is small
    enough, every grouped window shows its group number (1 = packed first). Window boundaries
    are white lines; a legend under the panels says all this, and each panel's title gives its
    group size, groups, lower bound, optimality, padding and cost. With ``baseline`` (e.g. the
    published algorithm's plan of the same mask) the two plans are drawn side by side, the
    baseline on the left.

    Args:
        token_mask: bool ``[H, W]``, True = visible.
        plan: a plan solved for ``window_counts(token_mask, window, shift=shift)``.
        window: window side in tokens.
        shift: partition offset in tokens (``0 <= shift < window``).
        path: the PNG file to write (parent directories are created).
        title: the figure title (e.g. the preset).
        baseline: an optional second plan of the same windows, drawn on the left.
        labels: panel headings ``(baseline's, plan's)``, used only with ``baseline``; when
            given, they say what is known about optimality (e.g. from the other plan's bound)
            and the panel titles no longer repeat each plan's own claim. Default: each plan's
            strategy, with its own claim in the title.
        dpi: resolution of the PNG.

    Raises:
        GroupingValueError: if the mask is not a 2-D bool array or a plan was solved for a
            different number of windows.
        ImportError: if matplotlib is not installed.
    """
    mask = np.asarray(token_mask)
    if mask.dtype != np.bool_ or mask.ndim != 2:
        raise invalid("token_mask", "a 2-D bool array (True = visible)", mask)
    ids = window_index(mask.shape, window, shift=shift)
    num_windows = int(ids.max()) + 1
    plans = [plan] if baseline is None else [baseline, plan]
    for name, p in zip(("plan", "baseline"), plans[::-1], strict=False):
        if p.num_windows != num_windows:
            raise invalid(
                name,
                f"a plan over the {num_windows} windows of this mask (window {window}, "
                f"shift {shift})",
                p,
            )
    h, w = mask.shape
    numbered = max(len(_boundaries(h, window, shift)), len(_boundaries(w, window, shift))) - 1
    numbered = numbered <= _NUMBERED_WINDOWS
    side = 6.0
    panel_w, panel_h = side * min(1.0, w / h), side * min(1.0, h / w)
    fig = _figure(panel_w * len(plans) + 0.4, panel_h + 1.9)
    claim = labels is None
    if baseline is None:
        headings: list[str | None] = [None]
    elif labels is None:
        headings = [f"baseline ({baseline.strategy})", f"plan ({plan.strategy})"]
    else:
        headings = list(labels)
    for k, (p, heading) in enumerate(zip(plans, headings, strict=True)):
        ax = fig.add_subplot(1, len(plans), k + 1)
        _draw_plan(ax, mask, p, window, shift, ids, heading, numbered, claim)
    if title:
        fig.suptitle(title, fontsize=10)
    _plan_legend(fig, numbered)
    _save(fig, path, dpi)


def plot_sweep(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    best: int,
    *,
    title: str | None = None,
    label: str = "library, best packing at each g",
    baseline_label: str = "published GreenMIM (g = max count)",
    baseline_group_size: float | None = None,
    packing_relative: float | None = None,
    dpi: int = 120,
) -> None:
    """Plot attention cost relative to a baseline against group size; mark the optimum.

    Args:
        rows: one mapping per group size with ``"group_size"`` and ``"relative_cost"`` (cost
            over the baseline's cost, e.g. the published GreenMIM plan at g = the largest
            count); optional ``"relative_cost_lo"``/``"relative_cost_hi"`` draw a band (e.g. the
            10-90 % range over many masks) and ``"relative_cost_mean"`` a dashed mean curve.
        path: the PNG file to write (parent directories are created).
        best: the group size to mark as the optimum (must be one of the rows').
        title: the figure title.
        label: legend entry of the curve.
        baseline_label: legend entry of the baseline (the dashed line at 1).
        baseline_group_size: where to mark the baseline's own plan on the line at 1 (its g).
        packing_relative: with ``baseline_group_size``, the relative cost of the curve's
            packing at the baseline's g (marked, so a packing win at that g is visible).
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
    fig = _figure(7.2, 5.6)
    ax = fig.add_subplot()
    many = all("relative_cost_lo" in r and "relative_cost_hi" in r for r in rows)
    if many:
        lo = np.array([float(r["relative_cost_lo"]) for r in rows])
        hi = np.array([float(r["relative_cost_hi"]) for r in rows])
        ax.fill_between(g, lo, hi, color="tab:blue", alpha=0.2, label="10-90 % over masks")
    ax.plot(
        g,
        rel,
        marker="o",
        markersize=3,
        color="tab:blue",
        label=f"{label} (median)" if many else label,
    )
    if all("relative_cost_mean" in r for r in rows):
        mean = np.array([float(r["relative_cost_mean"]) for r in rows])
        ax.plot(g, mean, color="tab:blue", linestyle=":", linewidth=1.2, label=f"{label} (mean)")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label=f"{baseline_label} = 1")
    if baseline_group_size is not None:
        ax.plot(
            [baseline_group_size],
            [1.0],
            marker="s",
            markersize=15,
            markerfacecolor="none",
            markeredgecolor="black",
            markeredgewidth=1.5,
            linestyle="none",
            zorder=4,
            label=f"{baseline_label.split(' (')[0]}'s own plan (g={baseline_group_size:g})",
        )
        if packing_relative is not None:
            if packing_relative < 1.0:  # the packing's win at the baseline's own g
                ax.annotate(
                    "",
                    xy=(baseline_group_size, packing_relative),
                    xytext=(baseline_group_size, 1.0),
                    arrowprops={"arrowstyle": "->", "color": "tab:green", "linewidth": 1.2},
                    zorder=3,
                )
            ax.plot(
                [baseline_group_size],
                [packing_relative],
                marker="D",
                markersize=11,
                color="tab:green",
                linestyle="none",
                zorder=4,
                label=f"library's packing at that g ({100 * (1 - packing_relative):.1f}% saved"
                + (", mean)" if many else ")"),
            )
    k = int(np.flatnonzero(g == best)[0])
    ax.plot(
        [best],
        [rel[k]],
        marker="*",
        markersize=13,
        color="tab:red",
        linestyle="none",
        zorder=5,
        label=f"optimum g={best} ({100 * (1 - rel[k]):.1f}% saved" + (", median)" if many else ")"),
    )
    ax.set_xlabel("group size g (tokens)")
    ax.set_ylabel(f"attention cost / {baseline_label.split(' (')[0]}'s")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, fontsize=7.5)
    if title:
        ax.set_title(title, fontsize=10)
    _save(fig, path, dpi)


def _group_size_panel(ax: Any, case: Mapping[str, Any]) -> None:
    """One case of :func:`plot_group_size_cases`."""
    x = np.asarray(case["offsets"])
    ax.fill_between(
        x,
        case["relative_cost_auto_p10"],
        case["relative_cost_auto_p90"],
        color="tab:blue",
        alpha=0.2,
        lw=0,
        label="auto, 10-90 % of masks",
    )
    ax.plot(x, case["relative_cost_auto_median"], color="tab:blue", lw=1.4, label="auto, median")
    ax.plot(
        x,
        case["relative_cost_greenmim_median"],
        color="tab:orange",
        lw=1,
        ls="--",
        label="published algorithm at g, median",
    )
    ax.axhline(1.0, color="black", lw=0.8, ls=":", label="GreenMIM's choice (g = m)")
    ax.axhline(
        1.0 - case["greenmim_padding_median"],
        color="grey",
        lw=0.8,
        ls="-.",
        label="floor: no padding at g = m (median)",
    )
    o = case["median_curve_optimum"]
    ax.plot(
        [o["offset"]],
        [o["relative_cost"]],
        marker="*",
        ms=13,
        color="red",
        ls="none",
        label=f"optimum of the median: g = m + {o['offset']} "
        f"({100 * (1 - o['relative_cost']):.1f} % saved)",
    )
    s = case["sweep"]
    lo = np.nanmin(case["relative_cost_auto_p10"])
    ax.plot(
        s["offsets"],
        np.full(len(s["offsets"]), lo - 0.01),
        "|",
        color="tab:red",
        alpha=0.4,
        ms=8,
        label=f"per-mask sweep choice (median saving {100 * s['median_saving']:.1f} %)",
    )
    ax.set_title(
        f"{case['label']} ({case['preset']}, C={case['channels']}, {case['masks']} masks, "
        f"~{case['nonempty_median']:.0f} windows)",
        fontsize=9,
    )
    ax.set_xlabel(
        "extra tokens per group over the largest count m "
        f"(median m = {case['largest_count_median']:.0f})"
    )
    ax.set_ylabel("attention cost / GreenMIM's choice")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7, loc="upper left")


def plot_group_size_cases(
    cases: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    cols: int = 2,
    dpi: int = 110,
) -> None:
    """One panel per case of ``bench/group_size.py``: cost against ``g - m`` over many masks.

    Each panel draws the median and the 10-90 % band over the masks of the attention cost
    divided by GreenMIM's choice (the published algorithm at the mask's largest count ``m``),
    against the extra tokens per group ``g - m``; the published algorithm's median at every
    ``g``; the floor no size can beat (no padding at ``g = m``); the optimum of the median
    curve; and where each mask's own sweep chose its size.

    Args:
        cases: the ``"cases"`` of the benchmark's JSON (``docs/results/group_size.json``):
            mappings with ``offsets``, ``relative_cost_auto_median`` / ``_p10`` / ``_p90``,
            ``relative_cost_greenmim_median``, ``greenmim_padding_median``,
            ``median_curve_optimum``, ``sweep`` (``offsets``, ``median_saving``), and
            ``label``, ``preset``, ``channels``, ``masks``, ``nonempty_median``,
            ``largest_count_median`` for the titles.
        path: the PNG file to write (parent directories are created).
        cols: panels per row.
        dpi: resolution of the PNG.

    Raises:
        GroupingValueError: if ``cases`` is empty.
        ImportError: if matplotlib is not installed.
    """
    if len(cases) == 0:
        raise invalid("cases", "at least one case", cases)
    rows = -(-len(cases) // cols)
    fig = _figure(6.2 * cols, 4.4 * rows, layout=None)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, case in zip(axes.ravel(), cases, strict=False):
        _group_size_panel(ax, case)
    for ax in axes.ravel()[len(cases) :]:
        ax.set_visible(False)
    fig.tight_layout()
    _save(fig, path, dpi)


def plot_reconstructions(
    columns: Mapping[str, ArrayLike],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    note: str = "",
    dpi: int = 100,
) -> None:
    """The reconstruction grid: one row per image, one column per entry of ``columns``.

    Args:
        columns: ``{title: pictures}``, each float ``[N, H, W, C]`` (``C`` = 1 or 3) in
            ``[0, 1]``, the same ``N`` for all.
        path: the PNG to write.
        title: the figure's title.
        note: a line under the title (e.g. how the prediction was un-normalised).
        dpi: resolution.
    """
    arrays = {name: np.asarray(value, dtype=np.float64) for name, value in columns.items()}
    if not arrays or len({a.shape[0] for a in arrays.values()}) != 1:
        raise invalid(
            "columns", "pictures [N, H, W, C] with one N", {k: a.shape for k, a in arrays.items()}
        )
    rows = next(iter(arrays.values())).shape[0]
    cols = len(arrays)
    import textwrap

    head = [line for text in (title, note) if text for line in textwrap.wrap(text, 16 * cols)]
    top = 0.35 + 0.17 * len(head)  # inches above the grid: the title lines and the headers
    height = 2.0 * rows + top
    fig = _figure(2.0 * cols, height, layout=None)
    fig.subplots_adjust(
        left=0.02, right=0.98, bottom=0.02 / height, top=1 - top / height, wspace=0.04, hspace=0.04
    )
    for c, (name, pictures) in enumerate(arrays.items()):
        for r in range(rows):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            picture = np.clip(pictures[r], 0.0, 1.0)
            ax.imshow(
                picture[..., 0] if picture.shape[-1] == 1 else picture,
                cmap="gray",
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    if head:
        fig.suptitle("\n".join(head), fontsize=9, y=1 - 0.05 / height, va="top")
    _save(fig, path, dpi)


#: The panels of :func:`plot_metrics`: ``(title, keys, y label, log scale)``.
METRIC_PANELS: tuple[tuple[str, tuple[str, ...], str, bool], ...] = (
    ("training loss", ("loss",), "loss", True),
    ("learning rate", ("lr",), "lr", False),
    ("throughput", ("samples_per_s",), "samples / s", False),
    ("validation accuracy", ("val_top1", "val_top5"), "fraction", False),
    ("validation loss", ("val_loss",), "loss", False),
)


def plot_metrics(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    dpi: int = 100,
) -> list[str]:
    """The curves of one or more metrics files (``grouping pretrain`` / ``finetune``
    ``--metrics``), overlaid run by run, one panel per quantity present.

    Args:
        runs: ``{label: records}``, each record a metrics object with ``step`` (and any of
            ``loss``, ``lr``, ``samples_per_s``, ``val_top1``, ``val_top5``, ``val_loss``).
        path: the PNG to write.
        title: the figure's title.
        dpi: resolution.

    Returns:
        The titles of the panels drawn (a panel appears when some run has its quantity).
    """
    panels = [
        panel
        for panel in METRIC_PANELS
        if any(key in r for records in runs.values() for r in records for key in panel[1])
    ]
    if not panels:
        raise invalid("runs", "records with step and loss, lr, ... (metrics files)", list(runs))
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = _figure(4.2 * ncols, 3.2 * nrows)
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in grid[len(panels) :]:
        ax.set_visible(False)
    axes = grid[: len(panels)]
    colors = group_colors(max(len(runs), 1))
    for ax, (name, keys, ylabel, log) in zip(axes, panels, strict=True):
        for color, (label, records) in zip(colors, runs.items(), strict=False):
            for key, style in zip(keys, ("-", "--"), strict=False):
                points = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
                if not points:
                    continue
                steps, values = zip(*points, strict=True)
                marker = "o" if key.startswith("val_") else None
                text = label if len(keys) == 1 else f"{label} {key}"
                ax.plot(steps, values, style, color=color, marker=marker, ms=3, lw=1.2, label=text)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if log and all(
            r[k] > 0 for records in runs.values() for r in records for k in keys if k in r
        ):
            ax.set_yscale("log")
        if ylabel == "fraction":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if len(runs) > 1 or len(keys) > 1:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path, dpi)
    return [p[0] for p in panels]


#: How the prediction was turned into a picture, by ``Reconstruction.stats``.
RECONSTRUCTION_NOTES = {
    "true": "norm_pix_loss: the prediction un-normalised with the true patches' mean and "
    "variance (MAE's visualisation; hidden information)",
    "visible": "norm_pix_loss: the prediction un-normalised with the visible neighbours' "
    "mean and variance (no hidden information)",
    "none": "raw-pixel targets: the prediction as it is",
}


def plot_reconstruction(
    rec: Any, path: str | os.PathLike[str], *, title: str = "", mask_ratio: float | None = None
) -> None:
    """The grid of a :class:`~grouping.models.reconstruct.Reconstruction`: per image the
    original, the masked input (hidden pixels grey), the reconstruction and the reconstruction
    with the visible pixels pasted back; the note under the title says how it was
    un-normalised."""
    from .models.reconstruct import masked_picture

    def nhwc(x: Any) -> Any:
        return x.permute(0, 2, 3, 1).numpy()

    masked = "masked" if mask_ratio is None else f"masked ({mask_ratio:.0%})"
    seen = nhwc(masked_picture(rec))
    groups = getattr(rec, "groups", None)
    if groups is not None and seen.shape[-1] == 3:  # GreenMIM: windows tinted by group
        ids = groups.numpy()
        colors = group_colors(max(int(ids.max()) + 1, 1))[:, :3]
        tint = colors[np.clip(ids, 0, None)]  # B, H, W, 3
        blend = 0.55 * seen[..., :3] + 0.45 * tint
        seen = np.where((ids >= 0)[..., None], blend, seen)
        masked += ", groups"
    kinds = {
        "original": nhwc(rec.original),
        masked: seen,
        "reconstruction": nhwc(rec.reconstruction),
        "+ visible pasted": nhwc(rec.pasted),
    }
    note = RECONSTRUCTION_NOTES[rec.stats]
    frames = int(getattr(rec, "frames", 1))
    if frames == 1:
        plot_reconstructions(kinds, path, title=title, note=note)
        return
    # video: one column per frame; per video four rows (original, masked, reconstruction,
    # pasted), in that order
    stacked = np.stack(list(kinds.values()), axis=1)  # B*T, 4, H, W, C
    videos = stacked.shape[0] // frames
    per = stacked.reshape(videos, frames, *stacked.shape[1:])  # V, T, 4, H, W, C
    columns = {f"frame {t}": per[:, t].reshape(-1, *stacked.shape[2:]) for t in range(frames)}
    rows = " / ".join(kinds)
    plot_reconstructions(columns, path, title=title, note=f"rows per clip: {rows}. {note}")


def read_metrics(path: str, option: str = "METRICS.jsonl") -> list[dict[str, Any]]:
    """The records of a metrics file: one JSON object with a ``step`` per line (blank lines
    skipped).

    Raises:
        GroupingValueError: naming ``option`` and the file (and the line) for a missing file,
            a line that is no JSON object with a step, or a file without records.
    """
    if not os.path.isfile(path):
        raise invalid(option, "a metrics file (JSON lines)", path, "no such file")
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise invalid(
                    option,
                    "JSON lines of metrics records (objects with a step)",
                    f"{path}, line {number}: {line.strip()[:60]!r}",
                )
            records.append(record)
    if not records:
        raise invalid(option, "a metrics file with at least one record", f"{path} (empty)")
    return records


def plot_metrics_files(paths: Sequence[str], out: str, *, title: str = "") -> list[str]:
    """Read the metrics files ``paths`` (:func:`read_metrics`) and draw them overlaid into
    ``out`` (:func:`plot_metrics`, written atomically); return the panels drawn."""
    from ._files import write_atomic

    runs: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        label = os.path.basename(path)
        while label in runs:  # two files of one name in different folders
            label = os.path.join(os.path.basename(os.path.dirname(path)), label)
        runs[label] = read_metrics(path)
    panels: list[str] = []

    def write(tmp: str) -> None:
        panels.extend(plot_metrics(runs, tmp, title=title))

    write_atomic(out, write)
    return panels


def plot_clips(rec: Any, path: str | os.PathLike[str], *, title: str = "") -> None:
    """The grid of a :class:`~grouping.models.reconstruct.ClipReconstruction`: two rows per
    clip (the input, the reconstruction), one column per frame and a last column with the
    audio as an image (one row per audio patch, scaled by the input's range); the labels,
    true and predicted, under the title."""
    video = np.concatenate(
        [np.stack([v, r]) for v, r in zip(rec.video.numpy(), rec.video_rec.numpy(), strict=True)]
    )  # 2B, T, C, H, W: input, reconstruction, clip by clip
    pictures = np.clip(video * 0.5 + 0.5, 0.0, 1.0).transpose(0, 1, 3, 4, 2)  # 2B, T, H, W, C
    columns = {f"frame {t}": pictures[:, t] for t in range(pictures.shape[1])}
    audio = []
    for original, decoded in zip(rec.audio.numpy(), rec.audio_rec.numpy(), strict=True):
        lo, hi = float(original.min()), float(original.max())
        side = int(np.sqrt(original.size))
        while original.size % side:
            side -= 1
        for wave in (original, decoded):
            audio.append(((wave - lo) / max(hi - lo, 1e-12)).reshape(side, -1)[..., None])
    columns["audio"] = np.stack(audio)
    labels = ", ".join(
        f"clip {k}: label {int(t)}, predicted {int(p)}"
        for k, (t, p) in enumerate(zip(rec.label, rec.predicted, strict=True))
    )
    note = f"rows per clip: input / reconstruction (label hidden from the encoder). {labels}"
    plot_reconstructions(columns, path, title=title, note=note)
