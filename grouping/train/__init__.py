"""The training package: data, the masking collator, the loop, checkpoints, torchrun/DDP.

``data`` (image folder and synthetic images addressed by stream position, the sampler),
``collate`` (masks drawn and steps prepared in DataLoader workers), ``schedule`` (MAE's
learning rate), ``checkpoint`` (atomic, ``weights_only`` loading), ``distributed`` (torchrun
set-up and reductions, the only reader of the rank), ``config`` (:class:`TrainConfig`,
torch-free), ``engine`` (the optimizer-step loop every training command shares,
:func:`train_steps`), ``loop`` (:func:`train`: set-up, metrics, checkpoints). Names are
imported lazily: building the command line does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TrainConfig": "config",
    "train": "loop",
    "train_steps": "engine",
    "pretrain_forward": "engine",
    "MaskingCollator": "collate",
    "TrainBatch": "collate",
    "ImageFolder": "data",
    "StreamSampler": "data",
    "SyntheticClips": "data",
    "SyntheticImages": "data",
    "UnreadableImageError": "data",
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "latest_checkpoint": "checkpoint",
    "cosine_lr": "schedule",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
