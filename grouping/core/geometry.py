"""Stage geometry of a Swin-style hierarchy: grid, width, heads, window and shift per stage.

This is the one place that derives a stage's numbers from an architecture; the model configs
(:class:`grouping.models.swin.SwinConfig`), the solver presets (:mod:`grouping.presets`) and the
benchmarks all call :func:`swin_stages`.

Rules (timm's ``SwinTransformer``): stage ``i`` has the stage-1 grid halved ``i`` times,
``embed_dim * 2**i`` channels and ``num_heads[i]`` heads. Per axis, a grid no larger than the
window makes the window the grid and drops the shift; otherwise the window is ``window_size``
and a shifted block shifts by ``window_size // 2``.

Examples:
    >>> [s.grid for s in swin_stages((56, 56), 7, 96, (3, 6, 12, 24))]
    [(56, 56), (28, 28), (14, 14), (7, 7)]
    >>> swin_stages((56, 56), 7, 96, (3, 6, 12, 24))[3]
    StageGeometry(grid=(7, 7), dim=768, heads=24, window=(7, 7), shift=(0, 0))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .errors import as_int_tuple, check_int, invalid

__all__ = ["StageGeometry", "swin_stages"]


class StageGeometry(NamedTuple):
    """One stage of a Swin-style model.

    Attributes:
        grid: token grid ``(H, W)``.
        dim: channels.
        heads: attention heads.
        window: window ``(wh, ww)`` after clamping to the grid.
        shift: offset ``(sh, sw)`` of the shifted blocks (0 on an axis the window covers).
    """

    grid: tuple[int, int]
    dim: int
    heads: int
    window: tuple[int, int]
    shift: tuple[int, int]


def swin_stages(
    grid: int | tuple[int, int],
    window_size: int,
    embed_dim: int,
    num_heads: Sequence[int],
) -> tuple[StageGeometry, ...]:
    """The geometry of every stage.

    Args:
        grid: stage-1 token grid ``(H, W)`` (an int means square); halved exactly at every
            later stage (it must be divisible by ``2**(stages - 1)``).
        window_size: window side in tokens.
        embed_dim: stage-1 channels.
        num_heads: heads per stage (its length is the number of stages); each divides its
            stage's width.

    Returns:
        One :class:`StageGeometry` per stage.

    Raises:
        GroupingValueError: for a grid that does not halve exactly, non-positive sizes, or
            heads that do not divide a stage's width.
    """
    g = as_int_tuple("grid", grid, 2)
    window = check_int("window_size", window_size, minimum=1)
    embed = check_int("embed_dim", embed_dim, minimum=1)
    heads = as_int_tuple("num_heads", tuple(num_heads), len(tuple(num_heads)))
    if not heads:
        raise invalid("num_heads", "one int per stage (at least one stage)", num_heads)
    last = 2 ** (len(heads) - 1)
    if g[0] % last or g[1] % last:
        raise invalid(
            "grid",
            f"a token grid divisible by 2**(stages - 1) = {last} on every axis (patch merging "
            "halves it exactly)",
            g,
        )
    out = []
    for i, h in enumerate(heads):
        dim = embed * 2**i
        if dim % h:
            raise invalid("num_heads", f"stage {i}: a divisor of its width {dim}", heads)
        sg = (g[0] >> i, g[1] >> i)
        win = tuple(r if r <= window else window for r in sg)
        shift = tuple(0 if r <= w else w // 2 for r, w in zip(sg, win, strict=True))
        out.append(StageGeometry(sg, dim, h, win, shift))  # type: ignore[arg-type]
    return tuple(out)
