"""Tiny model configurations shared by the tests (a few thousand parameters, 64 px inputs)."""

from __future__ import annotations

from typing import Any

#: ``create_model("greenmim_swin_tiny", **SWIN_TINY)``: 8 x 8 stage-1 tokens, 4 x 4 windows,
#: 16-token mask units, a small decoder.
SWIN_TINY: dict[str, Any] = dict(
    img_size=64,
    window_size=4,
    embed_dim=16,
    depths=(1, 1, 1),
    num_heads=(1, 2, 2),
    mask_unit=16,
    decoder_dim=32,
    decoder_heads=2,
)

#: ``create_model("mae_hiera_tiny_224", **HIERA_TINY)``: 64 x 64 inputs, one block a stage.
HIERA_TINY: dict[str, Any] = dict(input_size=(64, 64), embed_dim=8, stages=(1, 1, 1, 1))
