"""Models built on the adapter, and the registry that names them.

Shared pieces live in one file each: ``layers`` (MLP, the activation table, stochastic depth,
attention, cross-attention, transformer block, patch embedding, visible-token gather/place),
``pos_embed`` (sin-cos and learned position embeddings), ``mae`` (the MAE decoder head and
loss), ``step`` (the prepared-step protocol). Each family has its own file: ``swin``
(GreenMIM), ``simmim`` (the dense baseline), ``hiera`` (Hiera and MAE-Hiera, as the official
code), ``perceiver`` (Perceiver IO's blocks and models), ``multimodal`` (Perceiver IO's
video + audio + label autoencoder), ``hip`` (HiP on Perceiver IO's blocks, and its group-wise
MAE).

Models take prepared steps (or masks, the slow path) as inputs; no grouping is solved inside a
block. ``list_models()``, ``model_info()`` and ``create_model()`` come from the torch-free
``registry``; the model classes are imported lazily, so ``import grouping.models`` (and the
command line) does not import torch until a model is used.

Examples:
    >>> from grouping import models
    >>> models.list_models(family="swin")[:3]
    ['greenmim_swin_base', 'greenmim_swin_base_w14', 'greenmim_swin_tiny']
    >>> models.list_models(family="hip", pretrain=True)[:2]
    ['hip_16', 'hip_16x3']
"""

from __future__ import annotations

import importlib
from typing import Any

from .registry import ModelInfo, create_model, list_models, model_info

_LAZY = {
    "GreenMIMSwin": "swin",
    "SwinConfig": "swin",
    "SwinEncoder": "swin",
    "SwinStep": "swin",
    "greenmim_swin_base": "swin",
    "greenmim_swin_tiny": "swin",
    "SimMIMSwin": "simmim",
    "SimMIMStep": "simmim",
    "Preparer": "step",
    "Step": "step",
}

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
