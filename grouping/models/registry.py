"""The model registry: every named model, its entry point and its architecture, without torch.

One table (:data:`_MODELS`) names every model the library builds. Each entry says where its
entry point lives (imported only when the model is created), the architecture arguments it is
built with (plain literals, so that the command line, the solver presets and the docs can read
them without importing torch), and whether ``grouping pretrain`` trains it.

Examples:
    >>> from grouping import models
    >>> "greenmim_swin_tiny" in models.list_models()
    True
    >>> models.model_info("greenmim_swin_base").kwargs["depths"]
    (2, 2, 18, 2)
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from ..core.errors import invalid

__all__ = ["ModelInfo", "create_model", "list_models", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """A registered model.

    Attributes:
        name: the registry name (``grouping pretrain --model NAME``).
        family: ``"swin"``, ``"simmim"``, ...
        entry: ``"module:function"``, the function called as ``function(**kwargs,
            **overrides)``.
        kwargs: the architecture the name stands for (read-only).
        pretrain: True if ``grouping pretrain`` trains it (a masked-modelling model whose
            ``forward(inputs, mask=step)`` returns the loss first).
        summary: one line for listings.
        size_arg: the architecture argument that sets the input size (``--img-size``).
        mask_ratio: the default mask ratio of ``grouping pretrain`` (the paper's).
        data: what it trains on: ``"images"`` (``model.input_shape`` is ``(C, H, W)`` or
            ``(C, T, H, W)``; synthetic images or an image folder), ``"clips"`` (video,
            audio and label; ``model.clip_spec`` holds the ``SyntheticClips`` arguments) or
            ``"modalities"`` (a dict of ``[B, N, C]`` token arrays, a plain HiP's input).
        classifier: for a pretraining model, the registered classifier of the same family
            that fine-tuning builds around its encoder (None: none registered).
    """

    name: str
    family: str
    entry: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    pretrain: bool = True
    summary: str = ""
    size_arg: str = "img_size"
    mask_ratio: float = 0.75
    data: Literal["images", "clips", "modalities"] = "images"
    classifier: str | None = None


# Swin architectures (timm's SwinTransformer fields). Swin-T: timm's swin_tiny_patch4_window7_224
# (LayerNorm eps 1e-5); Swin-B: GreenMIM's green_mim_swin_base_patch4_dec512b1 (eps 1e-6).
_SWIN_T = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7)
_SWIN_B = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=7)

# Hiera (facebookresearch/hiera): the official factories' arguments. MAE uses q_pool=2.
_HIERA = {
    "tiny": dict(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2)),
    "small": dict(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2)),
    "base": dict(embed_dim=96, num_heads=1, stages=(2, 3, 16, 3)),
    "base_plus": dict(embed_dim=112, num_heads=2, stages=(2, 3, 16, 3)),
    "large": dict(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4)),
    "huge": dict(embed_dim=256, num_heads=4, stages=(2, 6, 36, 4)),
}
_HIERA_VIDEO = dict(
    num_classes=400,
    input_size=(16, 224, 224),
    q_stride=(1, 2, 2),
    mask_unit_size=(1, 8, 8),
    patch_kernel=(3, 7, 7),
    patch_stride=(2, 4, 4),
    patch_padding=(1, 3, 3),
    sep_pos_embed=True,
)


def _hiera_models() -> list[ModelInfo]:
    out = []
    for size, arch in _HIERA.items():
        video = size not in ("tiny", "small")
        for mae in (False, True):
            names = [f"hiera_{size}_224"] + ([f"hiera_{size}_16x224"] if video else [])
            for name in names:
                kwargs = {**arch, **(_HIERA_VIDEO if "16x" in name else {})}
                if mae:
                    kwargs["q_pool"] = 2
                    name = "mae_" + name
                out.append(
                    ModelInfo(
                        name,
                        "hiera",
                        f"grouping.models.hiera:{name}",
                        kwargs,
                        pretrain=mae,
                        summary=("MAE " if mae else "")
                        + f"Hiera-{size.replace('_plus', '+').title()}"
                        + (", video 16x224" if "16x" in name else ", 224 px"),
                        size_arg="input_size",
                        mask_ratio=0.6 if "16x" not in name else 0.9,
                        classifier=name[len("mae_") :] if mae else None,
                    )
                )
    return out


# Perceiver IO for images (transformers' PerceiverForImageClassificationFourier layout): the
# ImageNet model of the paper, and a small one for tests.
_PERCEIVER = (
    ModelInfo(
        "perceiver_io_imagenet",
        "perceiver",
        "grouping.models.perceiver:perceiver_io",
        dict(
            image_size=224,
            num_classes=1000,
            num_latents=512,
            d_latents=1024,
            num_blocks=8,
            num_self_attends_per_block=6,
            num_self_attention_heads=8,
            num_cross_attention_heads=1,
            qk_channels=256,
            v_channels=1024,
            prep_type="pixels",
            num_bands=64,
        ),
        pretrain=False,
        summary="Perceiver IO, ImageNet: 512 x 1024 latents, 8 x 6 self-attention, Fourier 64",
        size_arg="image_size",
    ),
    ModelInfo(
        "perceiver_io_small",
        "perceiver",
        "grouping.models.perceiver:perceiver_io",
        dict(
            image_size=32,
            num_classes=10,
            num_latents=16,
            d_latents=32,
            num_blocks=2,
            num_self_attends_per_block=2,
            num_self_attention_heads=2,
            num_cross_attention_heads=1,
            prep_type="patches",
            spatial_downsample=4,
            num_bands=4,
        ),
        pretrain=False,
        summary="a small Perceiver IO for tests (32 px, 16 x 32 latents)",
        size_arg="image_size",
    ),
    ModelInfo(
        "perceiver_multimodal_autoencoder",
        "perceiver",
        "grouping.models.multimodal:perceiver_multimodal_autoencoder",
        dict(frames=4, image_size=32, audio_samples_per_frame=64, num_labels=10),
        summary="Perceiver IO multimodal autoencoding (video + audio + label), small clips",
        size_arg="image_size",
        mask_ratio=0.75,
        data="clips",
    ),
)

# HiP (google-deepmind/hierarchical_perceiver): the official variants as group-wise masked
# auto-encoders of raw pixels (``grouping.models.hip.hip_16()`` etc. build the plain module).
_HIP = (
    *(
        ModelInfo(
            f"hip_{variant.lower()}",
            "hip",
            "grouping.models.hip:mae_hip",
            dict(variant=variant, img_size=224, in_chans=3),
            summary=f"HiP-{variant}, group-wise MAE on 224 x 224 raw pixels (50,176 tokens)",
            mask_ratio=0.85,
            classifier=f"hip_{variant.lower()}_classifier",
        )
        for variant in ("16", "256", "Mini", "16x3")
    ),
    *(
        ModelInfo(
            f"hip_{variant.lower()}_classifier",
            "hip",
            "grouping.models.hip:hip_classifier",
            dict(variant=variant, img_size=224, in_chans=3, num_classes=1000),
            pretrain=False,
            summary=f"HiP-{variant}'s encoder half, the class bottleneck's label read-out",
        )
        for variant in ("16", "256", "Mini", "16x3")
    ),
    ModelInfo(
        "hip_class_bottleneck_mini",
        "hip",
        "grouping.models.hip:hip_class_bottleneck_mini",
        pretrain=False,
        summary="HiP-Mini with labels through the processor (the official test's datasets)",
        data="modalities",
    ),
)

_MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        *_hiera_models(),
        *_PERCEIVER,
        *_HIP,
        ModelInfo(
            "greenmim_swin_tiny",
            "swin",
            "grouping.models.swin:greenmim_swin",
            {**_SWIN_T, "norm_eps": 1e-5},
            summary="GreenMIM Swin-T (timm swin_tiny_patch4_window7_224), MAE decoder 512x1",
            classifier="swin_tiny_patch4_window7_224",
        ),
        ModelInfo(
            "greenmim_swin_base",
            "swin",
            "grouping.models.swin:greenmim_swin",
            {**_SWIN_B, "norm_eps": 1e-6},
            summary="GreenMIM Swin-B, window 7 (green_mim_swin_base_patch4_dec512b1)",
            classifier="swin_base_patch4_window7_224",
        ),
        ModelInfo(
            "greenmim_swin_base_w14",
            "swin",
            "grouping.models.swin:greenmim_swin",
            {**_SWIN_B, "window_size": 14, "norm_eps": 1e-6},
            summary="GreenMIM Swin-B, window 14 (green_mim_swin_base_patch4_win14_dec512b1)",
            classifier="swin_base_patch4_window7_224",
        ),
        ModelInfo(
            "simmim_swin_tiny",
            "simmim",
            "grouping.models.simmim:simmim_swin",
            {**_SWIN_T, "norm_eps": 1e-5},
            summary="dense SimMIM-style baseline of greenmim_swin_tiny (every token encoded)",
            classifier="swin_tiny_patch4_window7_224",
        ),
        ModelInfo(
            "simmim_swin_base",
            "simmim",
            "grouping.models.simmim:simmim_swin",
            {**_SWIN_B, "norm_eps": 1e-6},
            summary="dense SimMIM-style baseline of greenmim_swin_base",
            classifier="swin_base_patch4_window7_224",
        ),
        # timm's Swin classifiers (timm's names and LayerNorm eps 1e-5): what fine-tuning
        # builds around a GreenMIM / SimMIM encoder (with the checkpoint's architecture)
        ModelInfo(
            "swin_tiny_patch4_window7_224",
            "swin",
            "grouping.models.swin:swin_classifier",
            {**_SWIN_T, "norm_eps": 1e-5, "num_classes": 1000},
            pretrain=False,
            summary="Swin-T classifier (timm's SwinTransformer names)",
        ),
        ModelInfo(
            "swin_base_patch4_window7_224",
            "swin",
            "grouping.models.swin:swin_classifier",
            {**_SWIN_B, "norm_eps": 1e-5, "num_classes": 1000},
            pretrain=False,
            summary="Swin-B classifier (timm's SwinTransformer names)",
        ),
    )
}


def list_models(*, pretrain: bool | None = None, family: str | None = None) -> list[str]:
    """Registered model names, sorted; no torch import.

    Args:
        pretrain: only models that ``grouping pretrain`` trains (True) or does not (False).
        family: only this family (``"swin"``, ...).
    """
    return sorted(
        name
        for name, info in _MODELS.items()
        if (pretrain is None or info.pretrain == pretrain)
        and (family is None or info.family == family)
    )


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; a clear error listing the names otherwise."""
    if not isinstance(name, str) or name not in _MODELS:
        raise invalid("name", "a registered model: " + ", ".join(list_models()), name)
    info = _MODELS[name]
    return replace(info, kwargs=MappingProxyType(dict(info.kwargs)))


def create_model(name: str, **overrides: Any) -> Any:
    """Build the model registered as ``name``.

    Args:
        name: a name from :func:`list_models`.
        **overrides: architecture arguments to change (e.g. ``img_size=192``,
            ``window_size=14``); validated by the model.

    Returns:
        The model (an ``nn.Module``); this imports torch.
    """
    info = model_info(name)
    module, function = info.entry.split(":")
    build = getattr(importlib.import_module(module), function)
    return build(**{**info.kwargs, **overrides})
