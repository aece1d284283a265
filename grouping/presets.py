"""Named model/input presets (Swin at several resolutions) and the window counts they produce.

A preset fixes what the grouping problem of one Swin stage depends on: image size, patch size,
window size, the widths and depths of the stages, and the mask unit. Stages are numbered from 0
(stage 0 is the first Swin stage, "stage 1" in the Swin and GreenMIM papers). At stage ``k``:

* the token grid is ``(image_size // patch_size) // 2**k`` on each side (patch merging halves it);
* the channels are ``embed_dim * 2**k``;
* a mask unit of ``mask_unit_px`` pixels covers ``mask_unit_px // patch_size // 2**k`` tokens
  on each side (32 px = 8x8 tokens at stage 0 for patch size 4);
* the window is ``min(window_size, grid)`` and a shifted block shifts by ``window // 2``, except
  where the grid is no larger than the window (one window, no shift), as Swin does.

The stage numbers come from :func:`grouping.core.geometry.swin_stages` (the function the model
configs use too), and the architectures from the model registry (``greenmim_swin_base`` and
``greenmim_swin_tiny``). Unlike a model config, a preset allows partial border windows (the
solver's partition), so windows need not divide the grid. No torch is imported.

Examples:
    >>> p = get_preset("swin-b-224-w7")
    >>> p.grid(0), p.channels(0), p.mask_unit_tokens(0)
    ((56, 56), 128, 8)
    >>> p.grid(3), p.channels(3), p.mask_unit_tokens(3)
    ((7, 7), 1024, 1)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .core.errors import check_int, check_mask_ratio, invalid
from .core.geometry import StageGeometry, swin_stages
from .models.registry import model_info

__all__ = ["PRESETS", "Preset", "get_preset", "preset_counts", "preset_names", "swin_preset"]


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A Swin-style hierarchical transformer on square images, with its masking unit.

    Attributes:
        name: the preset's name, e.g. ``"swin-b-224-w7"``.
        image_size: image side in pixels.
        patch_size: patch-embedding stride in pixels (4 for Swin).
        window_size: attention window side in tokens, the same at every stage.
        embed_dim: channels of stage 0; stage ``k`` has ``embed_dim * 2**k``.
        depths: blocks per stage; its length is the number of stages.
        num_heads: attention heads per stage.
        mask_unit_px: side in pixels of the square that masking keeps or removes together.
        description: one line for listings.
    """

    name: str
    image_size: int
    patch_size: int = 4
    window_size: int
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    mask_unit_px: int = 32
    description: str = ""

    def __post_init__(self) -> None:
        for attr in ("image_size", "patch_size", "window_size", "embed_dim", "mask_unit_px"):
            check_int(attr, getattr(self, attr), minimum=1)
        if len(self.depths) == 0 or len(self.depths) != len(self.num_heads):
            raise invalid(
                "num_heads", f"one entry per stage ({len(self.depths)} stages)", self.num_heads
            )
        if self.image_size % self.patch_size:
            raise invalid(
                "image_size", f"a multiple of the patch size {self.patch_size}", self.image_size
            )
        tokens = self.image_size // self.patch_size
        last = 2 ** (self.num_stages - 1)
        if tokens % last:
            raise invalid(
                "image_size",
                f"a token grid ({tokens}) divisible by 2**{self.num_stages - 1} = {last} so that "
                "every patch merging halves it exactly",
                self.image_size,
            )

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.depths)

    def _stage(self, stage: Any) -> int:
        stage = check_int("stage", stage, minimum=0)
        if stage >= self.num_stages:
            raise invalid(
                "stage", f"a stage in [0, {self.num_stages - 1}] for preset {self.name!r}", stage
            )
        return stage

    @property
    def stages(self) -> tuple[StageGeometry, ...]:
        """The geometry of every stage (:func:`grouping.core.geometry.swin_stages`)."""
        side = self.image_size // self.patch_size
        return swin_stages((side, side), self.window_size, self.embed_dim, self.num_heads)

    def grid(self, stage: int = 0) -> tuple[int, int]:
        """Token grid ``(H, W)`` at ``stage``."""
        return self.stages[self._stage(stage)].grid

    def channels(self, stage: int = 0) -> int:
        """Channels ``C`` at ``stage``: ``embed_dim * 2**stage``."""
        return self.stages[self._stage(stage)].dim

    def heads(self, stage: int = 0) -> int:
        """Attention heads at ``stage``."""
        return self.stages[self._stage(stage)].heads

    def window(self, stage: int = 0) -> int:
        """Window side in tokens at ``stage``: ``min(window_size, grid side)``, as Swin does."""
        return self.stages[self._stage(stage)].window[0]

    def shift(self, stage: int = 0, shifted: bool = True) -> int:
        """Partition offset of a (shifted) block at ``stage``: ``window // 2`` or 0.

        A stage whose grid fits in one window never shifts (Swin sets the shift to 0 there).
        """
        return self.stages[self._stage(stage)].shift[0] if shifted else 0

    def mask_unit_tokens(self, stage: int = 0, mask_unit_px: int | None = None) -> int:
        """Side in tokens of a mask unit at ``stage``: ``mask_unit_px // patch_size // 2**stage``.

        Raises:
            GroupingValueError: if the mask unit is not a whole number of tokens (at least one)
                at this stage, or does not tile the token grid.
        """
        stage = self._stage(stage)
        px = self.mask_unit_px if mask_unit_px is None else mask_unit_px
        px = check_int("mask_unit_px", px, minimum=1)
        token_px = self.patch_size * 2**stage
        if px % token_px:
            raise invalid(
                "mask_unit_px",
                f"a multiple of the token size at stage {stage} ({token_px} px = patch "
                f"{self.patch_size} * 2**{stage}) so that a mask unit is a whole number of "
                "tokens, at least one",
                px,
                "use a larger mask unit or an earlier stage",
            )
        unit = px // token_px
        side = self.grid(stage)[0]
        if side % unit:
            raise invalid(
                "mask_unit_px",
                f"a mask unit that tiles the {side}x{side} token grid of stage {stage} "
                f"(image {self.image_size} px divisible by the mask unit)",
                px,
            )
        return unit

    def summary(self, stage: int = 0) -> str:
        """One line: image, stage grid, window, channels."""
        h, w = self.grid(stage)
        return (
            f"{self.name}: {self.image_size} px, patch {self.patch_size}, stage {stage}: "
            f"{h}x{w} tokens, window {self.window(stage)}, C={self.channels(stage)}, "
            f"{self.heads(stage)} heads"
        )


def _swin(name: str, image_size: int, window_size: int, size: str = "b") -> Preset:
    model = "greenmim_swin_base" if size == "b" else "greenmim_swin_tiny"
    arch = model_info(model).kwargs  # the registered architecture: one home for its numbers
    return Preset(
        name=name,
        image_size=image_size,
        window_size=window_size,
        embed_dim=arch["embed_dim"],
        depths=tuple(arch["depths"]),
        num_heads=tuple(arch["num_heads"]),
        description=f"Swin-{size.upper()}, {image_size} px, window {window_size}, 32 px mask units",
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _swin("swin-b-224-w7", 224, 7),
        _swin("swin-b-224-w14", 224, 14),
        _swin("swin-b-192-w6", 192, 6),
        _swin("swin-b-1024-w7", 1024, 7),
        _swin("swin-b-2048-w7", 2048, 7),
        _swin("swin-t-224-w7", 224, 7, size="t"),
    )
}
"""The named presets, by name."""


def swin_preset(image_size: int, window_size: int, *, size: str = "b") -> Preset:
    """Swin-B (``size="b"``) or Swin-T (``"t"``) at any image and window size.

    The named preset where one exists (``swin-b-224-w7`` ...), else an unnamed one with the
    registered architecture's widths (patch 4, 32 px mask units). Windows are clipped to the
    stage grid and shifts dropped where the grid fits in one window, as Swin does
    (:meth:`Preset.window` / :meth:`Preset.shift`).

    Examples:
        >>> swin_preset(224, 7) is PRESETS["swin-b-224-w7"]
        True
        >>> p = swin_preset(512, 16)
        >>> p.name, p.channels(0), p.grid(3)
        ('swin-b-512-w16', 128, (16, 16))
    """
    if size not in ("b", "t"):
        raise invalid("size", "'b' (Swin-B) or 't' (Swin-T)", size)
    name = f"swin-{size}-{image_size}-w{window_size}"
    return PRESETS[name] if name in PRESETS else _swin(name, image_size, window_size, size)


def preset_names() -> list[str]:
    """Names of the presets, in definition order."""
    return list(PRESETS)


def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name`` (a :class:`Preset` is returned as is).

    Raises:
        GroupingValueError: for an unknown name; the message lists the known ones.
    """
    if isinstance(name, Preset):
        return name
    if isinstance(name, str) and name.lower() in PRESETS:
        return PRESETS[name.lower()]
    raise invalid("preset", "one of " + ", ".join(PRESETS), name)


def preset_counts(
    preset: str | Preset,
    *,
    stage: int = 0,
    mask_ratio: float = 0.75,
    mask_unit_px: int | None = None,
    shift: bool = False,
    seed: int | np.random.Generator | None = 0,
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Draw one batch-shared mask for ``preset`` and count visible tokens per window at ``stage``.

    The mask is drawn over the grid of mask units with :func:`grouping.batch_mask` (GreenMIM:
    one mask for the whole batch), upsampled to the stage's tokens with
    :func:`grouping.upsample_mask`, and counted with :func:`grouping.window_counts` over the
    stage's window partition, offset by ``window // 2`` when ``shift`` (see :meth:`Preset.shift`).

    Args:
        preset: a preset or its name.
        stage: stage index, from 0.
        mask_ratio: fraction of mask units removed, in ``[0, 1)``.
        mask_unit_px: mask-unit side in pixels; default ``preset.mask_unit_px``.
        shift: count over the shifted-window partition.
        seed: ``numpy.random.Generator``, int seed or None; the same seed gives the same mask.

    Returns:
        ``(token_mask, counts)``: bool ``[H, W]`` (True = visible) at the stage, and int64
        ``[Wh, Ww]`` visible tokens per window (row-major window grid, empty windows included;
        flatten it for :func:`grouping.solve`).
    """
    import grouping as gp  # the package namespace: masking and solving live in the core

    p = get_preset(preset)
    if not isinstance(shift, (bool, np.bool_, numbers.Integral)):
        raise invalid("shift", "a bool", shift)
    ratio = check_mask_ratio(mask_ratio)
    unit = p.mask_unit_tokens(stage, mask_unit_px)
    h, w = p.grid(stage)
    unit_mask = gp.batch_mask((h // unit, w // unit), ratio, rng=seed)
    token_mask = np.asarray(gp.upsample_mask(unit_mask, unit), dtype=bool)
    assert token_mask.shape == (h, w), (token_mask.shape, (h, w))
    counts = gp.window_counts(token_mask, p.window(stage), shift=p.shift(stage, bool(shift)))
    return token_mask, counts
