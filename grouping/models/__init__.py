"""Models built on the adapter: GreenMIM Swin with an MAE decoder (``swin``), and the
``grouping pretrain`` subcommand (``pretrain``).

Models take masks (or prepared steps) as inputs; no grouping is solved inside a block. Names are
imported lazily, so ``import grouping.models`` (and the command line) does not import torch
until a model is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_SWIN = (
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
)

__all__ = list(_SWIN)


def __getattr__(name: str) -> Any:
    if name in _SWIN:
        return getattr(importlib.import_module(".swin", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
