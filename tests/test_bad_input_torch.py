"""Bad input across the torch layers: one table of invalid calls of the adapter, the models and
the training package (wrong dtype, device mismatch, shape mismatch, a step prepared for another
batch, bad constructor arguments), each of which must raise the library's ``ValueError``
subclass naming the argument. A second device is the ``meta`` device, which every machine has.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
import torch
from tiny_configs import HIERA_TINY, SWIN_TINY

import grouping as gp
from grouping.adapter import (
    GroupedWindowAttention,
    additive_mask,
    group_tokens,
    token_attention_mask,
    ungroup_tokens,
    varlen_offsets,
    window_layout,
)
from grouping.core.errors import GroupingValueError
from grouping.models import create_model
from grouping.models import hip as H
from grouping.models import perceiver as P
from grouping.models.layers import (
    Attention,
    CrossAttention,
    PatchEmbed,
    gather_visible,
    patchify,
    place_visible,
    unpatchify,
)
from grouping.train import MaskingCollator, StreamSampler, SyntheticImages, TrainConfig, cosine_lr
from grouping.train.data import ImageFolder, SyntheticClips

META = torch.device("meta")
MASK = gp.upsample_mask(gp.batch_mask((2, 2), 0.5, rng=0), 4)  # 8 x 8 tokens, 32 visible
HIP = dict(
    num_groups=(4, 1, 4),
    num_self_attends_per_block=(1, 1, 1),
    z_index_dim=(4, 4, 4),
    num_z_channels=(8, 16, 8),
    num_self_attend_heads=(2, 2, 2),
    num_embedding_channels=8,
)


@functools.cache
def layout(per_sample: bool = False):
    if per_sample:
        masks = np.stack([gp.upsample_mask(gp.batch_mask((2, 2), 0.5, rng=i), 4) for i in range(2)])
        return window_layout(masks, 4)
    return window_layout(MASK, 4)


@functools.cache
def swin():
    torch.manual_seed(0)
    return create_model("greenmim_swin_tiny", **SWIN_TINY)


@functools.cache
def hiera():
    torch.manual_seed(0)
    return create_model("mae_hiera_tiny_224", **HIERA_TINY)


@functools.cache
def hip_mae():
    torch.manual_seed(0)
    return H.mae_hip("Mini", img_size=8, **HIP)


@functools.cache
def perceiver():
    torch.manual_seed(0)
    return create_model("perceiver_io_small")


def _swin_step(batch: int):
    model = swin()
    return model.prepare(model.sample_mask(batch, 0.75, rng=0, per_sample=True))


def _hip_step(batch: int):
    model = hip_mae()
    prep = model.preparer()
    return model.prepare(np.stack([prep.draw_mask(0.5, rng=i) for i in range(batch)]))


X = torch.randn(2, 32, 16)
IMG = torch.randn(2, 3, 64, 64)

CASES: list[tuple[str, Callable[[], object], str]] = [
    # -- adapter --
    ("window_layout: float mask", lambda: window_layout(MASK.astype(float), 4), "token_mask"),
    ("window_layout: 1-D mask", lambda: window_layout(MASK.ravel(), 4), "token_mask"),
    ("window_layout: window > grid", lambda: window_layout(MASK, 16), "window"),
    ("window_layout: bad mode", lambda: window_layout(MASK, 4, mode="fast"), "mode"),
    ("attention: heads do not divide", lambda: GroupedWindowAttention(16, 3, 4), "num_heads"),
    ("attention: bad impl", lambda: GroupedWindowAttention(16, 2, 4, attn_impl="x"), "attn_impl"),
    (
        "attention: wrong channels",
        lambda: GroupedWindowAttention(16, 2, 4)(torch.randn(2, 32, 8), layout()),
        "x_vis",
    ),
    (
        "attention: wrong token count",
        lambda: GroupedWindowAttention(16, 2, 4)(torch.randn(2, 31, 16), layout()),
        "x_vis",
    ),
    (
        "attention: 2-D input",
        lambda: GroupedWindowAttention(16, 2, 4)(torch.randn(32, 16), layout()),
        "x_vis",
    ),
    (
        "attention: int input",
        lambda: GroupedWindowAttention(16, 2, 4)(torch.ones(2, 32, 16, dtype=torch.long), layout()),
        "x_vis",
    ),
    (
        "attention: layout on another device",
        lambda: GroupedWindowAttention(16, 2, 4)(X, layout().to(META)),
        "layout",
    ),
    ("attention: window mismatch", lambda: GroupedWindowAttention(16, 2, 2)(X, layout()), "layout"),
    (
        "attention: per-sample layout, other batch",
        lambda: GroupedWindowAttention(16, 2, 4)(torch.randn(3, 32, 16), layout(True)),
        "x_vis",
    ),
    ("attention: not a layout", lambda: GroupedWindowAttention(16, 2, 4)(X, MASK), "layout"),
    ("group_tokens: wrong count", lambda: group_tokens(torch.randn(2, 30, 16), layout()), "x_vis"),
    (
        "ungroup_tokens: wrong shape",
        lambda: ungroup_tokens(torch.randn(3, 5, 16), layout()),
        "x_groups",
    ),
    ("additive_mask: int dtype", lambda: additive_mask(layout(), torch.long), "dtype"),
    ("varlen_offsets: per-sample, other batch", lambda: varlen_offsets(layout(True), 3), "batch"),
    ("token_attention_mask: bad batch", lambda: token_attention_mask(layout(), 0), "batch"),
    # -- shared layers --
    ("Attention: heads do not divide", lambda: Attention(10, 3), "num_heads"),
    (
        "CrossAttention: heads do not divide v",
        lambda: CrossAttention(8, 8, 2, v_channels=5),
        "num_heads",
    ),
    (
        "CrossAttention: wrong query width",
        lambda: CrossAttention(8, 6, 2)(torch.randn(1, 3, 7), torch.randn(1, 4, 6)),
        "queries",
    ),
    (
        "CrossAttention: wrong input width",
        lambda: CrossAttention(8, 6, 2)(torch.randn(1, 3, 8), torch.randn(1, 4, 5)),
        "inputs",
    ),
    (
        "CrossAttention: batch mismatch",
        lambda: CrossAttention(8, 6, 2)(torch.randn(1, 3, 8), torch.randn(2, 4, 6)),
        "inputs",
    ),
    ("PatchEmbed: wrong channels", lambda: PatchEmbed(3, 8, 4)(torch.randn(1, 2, 16, 16)), "x"),
    (
        "PatchEmbed.forward_visible: size not a multiple",
        lambda: PatchEmbed(3, 8, 4).forward_visible(torch.randn(1, 3, 18, 16), torch.tensor([0])),
        "x",
    ),
    (
        "PatchEmbed.forward_visible: index out of range",
        lambda: PatchEmbed(3, 8, 4).forward_visible(
            torch.randn(1, 3, 16, 16), torch.tensor([0, 16])
        ),
        "index",
    ),
    ("gather_visible: float index", lambda: gather_visible(X, torch.zeros(4)), "index"),
    ("gather_visible: out of range", lambda: gather_visible(X, torch.tensor([0, 32])), "index"),
    (
        "gather_visible: index batch mismatch",
        lambda: gather_visible(X, torch.zeros(3, 4, dtype=torch.long)),
        "index",
    ),
    (
        "place_visible: shape mismatch",
        lambda: place_visible(torch.zeros(2, 64, 16), torch.randn(2, 5, 16), torch.arange(4)),
        "x",
    ),
    ("patchify: not divisible", lambda: patchify(torch.randn(1, 3, 10, 10), 4), "images"),
    ("unpatchify: wrong count", lambda: unpatchify(torch.randn(1, 5, 48), 4, (2, 2)), "patches"),
    # -- Swin (GreenMIM) --
    ("swin: step for another batch", lambda: swin()(IMG, _swin_step(3)), "mask"),
    ("swin: step on another device", lambda: swin()(IMG, _swin_step(2).to(META)), "mask"),
    ("swin: wrong image size", lambda: swin()(torch.randn(2, 3, 32, 32), _swin_step(2)), "images"),
    (
        "swin: int images",
        lambda: swin()(torch.ones(2, 3, 64, 64, dtype=torch.uint8), _swin_step(2)),
        "images",
    ),
    ("swin: raw mask of the wrong grid", lambda: swin()(IMG, np.ones((3, 3), bool)), "mask"),
    (
        "swin: mask unit does not divide the image",
        lambda: create_model("greenmim_swin_tiny", **{**SWIN_TINY, "mask_unit": 24}),
        "mask_unit",
    ),
    # -- Hiera --
    ("hiera: wrong image size", lambda: hiera()(torch.randn(2, 3, 32, 32)), "x"),
    (
        "hiera: mask of the wrong length",
        lambda: hiera()(torch.randn(2, 3, 64, 64), mask=torch.ones(2, 5, dtype=torch.bool)),
        "mask",
    ),
    (
        "hiera: mask for another batch",
        lambda: hiera()(
            torch.randn(2, 3, 64, 64),
            mask=torch.ones(3, hiera().config.num_mask_units, dtype=torch.bool),
        ),
        "mask",
    ),
    (
        "hiera: float mask",
        lambda: hiera()(
            torch.randn(2, 3, 64, 64), mask=torch.ones(2, hiera().config.num_mask_units)
        ),
        "mask",
    ),
    (
        "hiera: bad mask ratio",
        lambda: hiera()(torch.randn(2, 3, 64, 64), mask_ratio=1.5),
        "mask_ratio",
    ),
    # -- Perceiver IO --
    ("perceiver: wrong channel count", lambda: perceiver()(torch.randn(2, 4, 32, 32)), "inputs"),
    ("perceiver: wrong index dims", lambda: perceiver()(torch.randn(2, 3, 16, 32)), "inputs"),
    ("perceiver: bands < 1", lambda: P.fourier_features((4, 4), 0), "num_bands"),
    (
        "perceiver AE: unknown modality",
        lambda: create_model(
            "perceiver_multimodal_autoencoder",
            frames=2,
            image_size=16,
            audio_samples_per_frame=32,
            num_labels=4,
        )({"image": torch.randn(1, 2, 3, 16, 16), "smell": torch.randn(1, 2)}),
        "inputs",
    ),
    # -- HiP --
    (
        "hip: step for another batch",
        lambda: hip_mae()(torch.randn(2, 3, 8, 8), _hip_step(3)),
        "mask",
    ),
    (
        "hip: step on another device",
        lambda: hip_mae()(torch.randn(2, 3, 8, 8), _hip_step(2).to(META)),
        "mask",
    ),
    ("hip: wrong image size", lambda: hip_mae()(torch.randn(2, 3, 8, 9), _hip_step(2)), "images"),
    ("hip: unknown modality", lambda: hip_mae().hip({"audio": torch.randn(2, 64, 3)}), "inputs"),
    ("hip: wrong channels", lambda: hip_mae().hip({"image": torch.randn(2, 64, 4)}), "inputs"),
    # -- training package --
    (
        "collator: mask ratio 1",
        lambda: MaskingCollator(swin().preparer(), 1.0, per_sample=True, seed=0, global_batch=2),
        "mask_ratio",
    ),
    ("sampler: batch 0", lambda: StreamSampler(None, 0, 3), "batch_size"),
    ("sampler: rank >= world", lambda: StreamSampler(None, 2, 3, rank=2, world_size=2), "rank"),
    ("synthetic images: 1-D size", lambda: SyntheticImages((4,)), "size"),
    ("synthetic images: 0 channels", lambda: SyntheticImages(8, 0), "channels"),
    ("synthetic clips: 0 frames", lambda: SyntheticClips(0, 16, 3, 64, 4), "frames"),
    ("image folder: missing", lambda: ImageFolder("/nonexistent/folder", 8), "data"),
    ("cosine_lr: step 0", lambda: cosine_lr(0, base_lr=1.0, total_steps=3), "step"),
    (
        "cosine_lr: warm-up > total",
        lambda: cosine_lr(1, base_lr=1.0, total_steps=3, warmup_steps=4),
        "warmup_steps",
    ),
    ("train config: unknown model", lambda: TrainConfig(model="resnet50").validate(), "--model"),
    ("train config: batch 0", lambda: TrainConfig(batch_size=0).validate(), "batch"),
    ("train config: negative workers", lambda: TrainConfig(workers=-1).validate(), "workers"),
]


@pytest.mark.parametrize(
    ("call", "name"), [(c, n) for _, c, n in CASES], ids=[i for i, _, _ in CASES]
)
def test_bad_input_is_a_clear_error(call, name) -> None:
    with pytest.raises(GroupingValueError) as info:
        call()
    message = str(info.value)
    assert name in message.split(":")[0] or message.startswith(name), message
    assert "expected" in message, message
