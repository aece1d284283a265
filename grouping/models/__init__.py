"""Models built on the adapter: GreenMIM Swin (``swin``), with MAE pretraining (``pretrain``).

Models take masks (or prepared steps) as inputs; they never solve a grouping inside a block.
"""

from .swin import (
    PRESETS,
    GreenMIMSwin,
    SimMIMSwin,
    SwinConfig,
    SwinEncoder,
    SwinStep,
    create_model,
    greenmim_swin_base,
    greenmim_swin_tiny,
    preset_config,
)

__all__ = [
    "PRESETS",
    "GreenMIMSwin",
    "SimMIMSwin",
    "SwinConfig",
    "SwinEncoder",
    "SwinStep",
    "create_model",
    "greenmim_swin_base",
    "greenmim_swin_tiny",
    "preset_config",
]
