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

#: ``create_model("hip_mini", **HIP_TINY)`` (or ``"hip_mini_classifier"``): 8 x 8 raw-pixel
#: tokens in 4 groups, widths 8 / 16 / 8.
HIP_TINY: dict[str, Any] = dict(
    img_size=8,
    num_groups=(4, 1, 4),
    num_self_attends_per_block=(1, 1, 1),
    z_index_dim=(4, 4, 4),
    num_z_channels=(8, 16, 8),
    num_self_attend_heads=(2, 2, 2),
    num_embedding_channels=8,
)
