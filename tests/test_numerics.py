"""Numerics under autocast: no NaN or inf in the grouped attention and in every model's masked
path, in bf16 and fp16, with fully padded groups, empty windows and all-masked-but-one inputs.

Every case runs the forward under ``torch.autocast("cpu", dtype)`` and the backward after it,
and checks the output, the loss and every gradient for finiteness.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_configs import SWIN_TINY

import grouping as gp
from grouping.adapter import GroupedWindowAttention, window_layout
from grouping.models import create_model
from grouping.models import hip as H

DTYPES = [torch.bfloat16, torch.float16]


def _assert_finite(module: torch.nn.Module, *tensors: torch.Tensor) -> None:
    for t in tensors:
        assert torch.isfinite(t.float()).all(), "non-finite output"
    for name, p in module.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), f"non-finite gradient of {name}"


def _one_visible(shape: tuple[int, ...], at: int = 0) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask.flat[at] = True
    return mask


TOKEN_MASKS = {
    # one visible token on the 8 x 8 grid: every window but one empty, groups mostly padding
    "all_masked_but_one": _one_visible((8, 8), at=27),
    # uneven windows, two of them empty
    "empty_windows": np.array(
        [[1, 1, 1, 1, 0, 0, 0, 0]] * 3
        + [[1, 0, 0, 0, 0, 0, 0, 0]]
        + [[0] * 8] * 2
        + [[0, 0, 0, 0, 1, 1, 0, 0]] * 2,
        dtype=bool,
    ),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(TOKEN_MASKS))
@pytest.mark.parametrize("mode", ["grouped", "mask"])
@pytest.mark.parametrize("shift", [0, 2])
def test_grouped_window_attention_is_finite_under_autocast(dtype, case, mode, shift) -> None:
    mask = TOKEN_MASKS[case]
    # a group size far above every window count: groups that are almost all padding
    layout = window_layout(mask, 4, shift=shift, group_size=16, mode=mode)
    torch.manual_seed(0)
    attn = GroupedWindowAttention(16, 2, 4)
    x = torch.randn(2, int(mask.sum()), 16, requires_grad=True)
    with torch.autocast("cpu", dtype=dtype):
        y = attn(x, layout)
    assert y.dtype == dtype  # autocast really ran the attention in low precision
    y.float().square().sum().backward()
    _assert_finite(attn, y, x.grad)


def _step_and_check(model: torch.nn.Module, images, step, dtype) -> None:
    model.zero_grad()
    with torch.autocast("cpu", dtype=dtype):
        out = model(images, step)
    assert out[1].dtype == dtype  # the prediction came out of low-precision layers
    loss = out[0]
    loss.float().backward()
    _assert_finite(model, loss)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["greenmim_swin_tiny", "simmim_swin_tiny"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_swin_masked_path_is_finite_under_autocast(dtype, name, per_sample) -> None:
    torch.manual_seed(0)
    model = create_model(name, **SWIN_TINY)
    grid = model.mask_grid
    # all mask units masked but one (different ones per sample)
    masks = (
        np.stack([_one_visible(grid, at=i) for i in range(2)]) if per_sample else _one_visible(grid)
    )
    step = model.prepare(masks)
    _step_and_check(model, torch.randn(2, 3, 64, 64), step, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_hiera_masked_path_is_finite_under_autocast(dtype) -> None:
    torch.manual_seed(0)
    model = create_model(
        "mae_hiera_tiny_224", input_size=(64, 64), embed_dim=8, stages=(1, 1, 1, 1)
    )
    units = model.config.num_mask_units
    mask = np.zeros((2, units), dtype=bool)
    mask[0, 0] = mask[1, units - 1] = True  # one kept unit per sample
    model.zero_grad()
    with torch.autocast("cpu", dtype=dtype):
        loss, pred, label, _ = model(torch.randn(2, 3, 64, 64), mask=torch.from_numpy(mask))
    assert pred.dtype == dtype
    loss.float().backward()
    _assert_finite(model, loss, pred)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mask_padding", [False, True])
def test_hip_masked_path_is_finite_under_autocast(dtype, mask_padding) -> None:
    # 5 x 1 pixels in 4 groups: runs of 2 -> [0 1] [2 3] [4 -] [- -]: a group of padding only
    torch.manual_seed(0)
    model = H.mae_hip(
        "Mini",
        img_size=(5, 1),
        num_groups=(4, 1, 4),
        num_self_attends_per_block=(1, 1, 1),
        z_index_dim=(4, 4, 4),
        num_z_channels=(8, 16, 8),
        num_self_attend_heads=(2, 2, 2),
        num_embedding_channels=8,
        mask_padding=mask_padding,
    )
    assert model.mask_grid == (4, 2)
    mask = np.zeros((2, 4, 2), dtype=bool)
    mask[0, :, 0] = True  # one visible slot per group (a padding slot in the last group)
    mask[1, :, 1] = True  # padding slots visible in the last two groups
    step = model.prepare(mask)
    _step_and_check(model, torch.randn(2, 3, 5, 1), step, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_perceiver_multimodal_masked_path_is_finite_under_autocast(dtype) -> None:
    from grouping.train.data import SyntheticClips

    torch.manual_seed(0)
    small = dict(
        frames=2,
        image_size=16,
        audio_samples_per_frame=32,
        num_labels=4,
        d_latents=32,
        num_latents=16,
        output_num_channels=32,
    )
    model = create_model("perceiver_multimodal_autoencoder", **small)
    cfg = model.config
    draws = np.zeros((2, cfg.num_pixels + cfg.num_audio_patches + 1), dtype=bool)
    draws[:, 0] = draws[:, cfg.num_pixels] = True  # one decoded query per modality
    draws[:, -1] = True  # the label hidden
    step = model.prepare(draws)
    clips = SyntheticClips(**model.clip_spec, seed=0)
    samples = [clips[(p, p)][0] for p in range(2)]
    inputs = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    model.zero_grad()
    with torch.autocast("cpu", dtype=dtype):
        loss, outputs, metrics = model(inputs, mask=step)
    assert any(v.dtype == dtype for v in outputs.values())
    loss.float().backward()
    _assert_finite(model, loss, *metrics.values())


def test_one_visible_token_solves_to_one_group() -> None:
    counts = gp.window_counts(TOKEN_MASKS["all_masked_but_one"], 4)
    plan = gp.solve(counts.ravel(), 16)
    assert plan.num_groups == 1 and plan.optimal
