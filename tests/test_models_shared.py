"""The shared model pieces: layers, position embeddings, the MAE head, the step protocol, the
registry, and the adapter's dense window attention, each against a plain statement."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from naive_attention import naive_shifted_window_attention

from grouping.adapter import (
    GroupedWindowAttention,
    dense_window_attention,
    map_tensors,
    shifted_window_mask,
    window_relative_index,
)
from grouping.core.errors import GroupingValueError
from grouping.core.geometry import swin_stages
from grouping.models import create_model, list_models, model_info
from grouping.models.layers import (
    Attention,
    Block,
    CrossAttention,
    DropPath,
    PatchEmbed,
    attend,
    gather_visible,
    patchify,
    place_visible,
    unpatchify,
)
from grouping.models.mae import MAEHead, masked_mse, normalize_patches
from grouping.models.pos_embed import resample_pos_embed, sincos_1d, sincos_2d, sincos_3d

# -- gather / place ------------------------------------------------------------------------------


@settings(max_examples=30)
@given(
    batch=st.integers(1, 4),
    length=st.integers(1, 12),
    data=st.data(),
    per_sample=st.booleans(),
)
def test_gather_and_place_visible_match_loops(batch, length, data, per_sample) -> None:
    n = data.draw(st.integers(0, length))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    rows = [np.sort(rng.choice(length, n, replace=False)) for _ in range(batch)]
    index = torch.from_numpy(np.stack(rows) if per_sample else rows[0]).long()
    x = torch.randn(batch, length, 3, dtype=torch.float64)
    got = gather_visible(x, index)
    for b in range(batch):
        for i in range(n):
            pos = index[b, i] if per_sample else index[i]
            assert torch.equal(got[b, i], x[b, pos])
    fill = torch.full((1, length, 3), -5.0, dtype=torch.float64)
    full = place_visible(fill, got, index)
    for b in range(batch):
        positions = set((index[b] if per_sample else index).tolist())
        for p in range(length):
            expected = x[b, p] if p in positions else fill[0, p]
            assert torch.equal(full[b, p], expected)


def test_gather_and_place_reject_a_bad_index() -> None:
    x = torch.randn(2, 5, 3)
    with pytest.raises(GroupingValueError, match="index"):
        gather_visible(x, torch.zeros(3, 2, dtype=torch.long))  # batch 3 for 2 samples
    with pytest.raises(GroupingValueError, match="index"):
        gather_visible(x, torch.zeros(2, dtype=torch.float32))
    with pytest.raises(GroupingValueError, match="index"):
        place_visible(x[:1], x, torch.zeros(2, 1, 1, dtype=torch.long))


def test_place_visible_gradients_reach_fill_and_tokens() -> None:
    fill = torch.randn(1, 1, 4, requires_grad=True)
    x = torch.randn(2, 2, 4, requires_grad=True)
    out = place_visible(fill.expand(1, 5, 4), x, torch.tensor([[0, 3], [1, 4]]))
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert torch.equal(fill.grad, torch.full_like(fill, 6.0))  # 2 samples x 3 masked places


# -- patches --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, kernel", [((2, 3, 8, 12), 4), ((2, 2, 4, 6, 6), (2, 3, 3))])
@pytest.mark.parametrize("per_sample", [False, True])
def test_patch_embed_visible_path_equals_the_convolution(shape, kernel, per_sample) -> None:
    torch.manual_seed(0)
    embed = PatchEmbed(shape[1], 5, kernel, norm_eps=1e-5).double()
    x = torch.randn(*shape, dtype=torch.float64)
    full = embed(x)  # B, *grid, E
    flat = full.reshape(shape[0], -1, 5)
    length = flat.shape[1]
    if per_sample:
        index = torch.stack([torch.randperm(length)[:3].sort().values for _ in range(shape[0])])
    else:
        index = torch.tensor([0, 2, length - 1])
    torch.testing.assert_close(embed.forward_visible(x, index), gather_visible(flat, index))


def test_overlapping_patch_embed_has_no_visible_path() -> None:
    embed = PatchEmbed(3, 8, 7, stride=4, padding=3)
    assert embed(torch.randn(1, 3, 16, 16)).shape == (1, 4, 4, 8)
    with pytest.raises(GroupingValueError, match="non-overlapping"):
        embed.forward_visible(torch.randn(1, 3, 16, 16), torch.tensor([0]))


def test_patchify_orders_and_round_trip() -> None:
    x = torch.randn(2, 3, 8, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 6, 48)
    # MAE's order: patch (1, 2) pixel (dh, dw, c) at (dh * 4 + dw) * 3 + c
    assert p[1, 1 * 3 + 2, (2 * 4 + 1) * 3 + 0] == x[1, 0, 4 + 2, 8 + 1]
    q = patchify(x, 4, channels_last=False)  # (c, dh, dw): a convolution's weight order
    assert q[1, 5, 2 * 16 + 3 * 4 + 1] == x[1, 2, 4 + 3, 8 + 1]
    assert torch.equal(unpatchify(p, 4, (2, 3)), x)


# -- attention and blocks --------------------------------------------------------------------------


def _naive_attention(q, k, v, heads):
    b, m, c = q.shape
    d = c // heads
    out = torch.empty(b, m, v.shape[-1], dtype=q.dtype)
    dv = v.shape[-1] // heads
    for bi in range(b):
        for h in range(heads):
            qh, kh = q[bi, :, h * d : (h + 1) * d], k[bi, :, h * d : (h + 1) * d]
            w = torch.softmax(qh @ kh.T / math.sqrt(d), dim=-1)
            out[bi, :, h * dv : (h + 1) * dv] = w @ v[bi, :, h * dv : (h + 1) * dv]
    return out


def test_attention_equals_the_formula() -> None:
    torch.manual_seed(0)
    attn = Attention(8, 2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    q, k, v = attn.qkv(x).split(8, dim=-1)
    expected = attn.proj(_naive_attention(q, k, v, 2))
    torch.testing.assert_close(attn(x), expected)
    names = {n for n, _ in attn.named_parameters()}
    assert names == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}  # timm's


def test_cross_attention_widths_and_formula() -> None:
    torch.manual_seed(0)
    attn = CrossAttention(6, 10, 2, qk_channels=8, v_channels=4, out_dim=7).double()
    queries = torch.randn(2, 3, 6, dtype=torch.float64)
    inputs = torch.randn(2, 5, 10, dtype=torch.float64)
    expected = attn.proj(_naive_attention(attn.q(queries), attn.k(inputs), attn.v(inputs), 2))
    out = attn(queries, inputs)
    assert out.shape == (2, 3, 7)
    torch.testing.assert_close(out, expected)
    # a boolean mask hides keys
    mask = torch.tensor([[True, True, False, False, False]])  # [1, N]: every query
    hidden = attn(queries, inputs, attn_mask=mask)
    torch.testing.assert_close(hidden, attn(queries, inputs[:, :2]))
    with pytest.raises(GroupingValueError, match="num_heads"):
        CrossAttention(6, 10, 3, qk_channels=8)


@pytest.mark.parametrize("mask", ["none", "keys", "empty_row"])
def test_attend_pads_narrow_query_heads_onto_the_flash_kernel(mask) -> None:
    from torch.profiler import ProfilerActivity, profile

    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(2, 4, 6, 8, generator=gen).requires_grad_() for _ in range(2))
    v = torch.randn(2, 4, 6, 32, generator=gen).requires_grad_()  # d_qk 8 < d_v 32
    attn_mask = None
    if mask == "keys":
        attn_mask = torch.tensor([[True, True, False, True, False, True]])  # [1, N]
    elif mask == "empty_row":  # a query that may attend to nothing gets zeros, as SDPA's
        attn_mask = torch.rand(2, 4, 6, 6, generator=gen) < 0.7
        attn_mask[1, 2, 3] = False
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        got = attend(q, k, v, attn_mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # the math path
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    g = torch.randn(got.shape, generator=gen)
    grads = torch.autograd.grad((got * g).sum(), (q, k, v))
    for a, b in zip(grads, torch.autograd.grad((expected * g).sum(), (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if mask == "none":  # the flash kernel ran: no probabilities stored
        names = {e.key for e in prof.key_averages()}
        assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names, names
    # wide value heads are not padded (the wider score products would cost more)
    wide = torch.randn(2, 4, 6, 64, generator=gen)
    torch.testing.assert_close(
        attend(q[..., :4], k[..., :4], wide),
        F.scaled_dot_product_attention(q[..., :4], k[..., :4], wide),
    )


def test_block_is_pre_norm_residual_and_drop_path_drops_samples() -> None:
    torch.manual_seed(0)
    blk = Block(8, 2, mlp_ratio=2.0, drop_path=0.0).double().eval()
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    y = x + blk.attn(blk.norm1(x))
    torch.testing.assert_close(blk(x), y + blk.mlp(blk.norm2(y)))
    drop = DropPath(0.5).train()
    torch.manual_seed(1)
    out = drop(torch.ones(64, 3))
    rows = {tuple(r.tolist()) for r in out}
    assert rows <= {(0.0, 0.0, 0.0), (2.0, 2.0, 2.0)} and len(rows) == 2
    assert torch.equal(drop.eval()(torch.ones(4, 3)), torch.ones(4, 3))
    with pytest.raises(GroupingValueError, match="drop_path"):
        DropPath(1.0)


# -- position embeddings ---------------------------------------------------------------------------


def test_sincos_tables_follow_mae() -> None:
    table = sincos_2d(8, (2, 3))
    # MAE: first half embeds the column w, second half the row h; omega_k = 1 / 10000^(k / 2)
    for h in range(2):
        for w in range(3):
            row = table[h * 3 + w]
            omega = 1.0 / 10000 ** (np.arange(2) / 2.0)
            expected = np.concatenate(
                [np.sin(w * omega), np.cos(w * omega), np.sin(h * omega), np.cos(h * omega)]
            )
            np.testing.assert_allclose(row, expected)
    video = sincos_3d(16, (2, 2, 3))
    np.testing.assert_allclose(video[1 * 6 + 4, :4], sincos_1d(4, np.array([1.0]))[0])
    np.testing.assert_allclose(video[1 * 6 + 4, 4:], sincos_2d(12, (2, 3))[4])
    for bad in (lambda: sincos_1d(3, np.zeros(2)), lambda: sincos_2d(6, (2, 2))):
        with pytest.raises(GroupingValueError, match="dim"):
            bad()


def test_resample_pos_embed() -> None:
    pos = torch.randn(1, 1 + 12, 4)
    assert resample_pos_embed(pos, (3, 4), (3, 4), num_prefix_tokens=1) is pos
    out = resample_pos_embed(pos, (3, 4), (6, 8), num_prefix_tokens=1)
    assert out.shape == (1, 1 + 48, 4) and torch.equal(out[:, :1], pos[:, :1])
    grid = pos[:, 1:].reshape(1, 3, 4, 4).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 8), mode="bicubic", antialias=True)  # timm's
    torch.testing.assert_close(out[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 48, 4))
    video = resample_pos_embed(torch.randn(1, 2 * 3 * 4, 4), (2, 3, 4), (4, 3, 4))
    assert video.shape == (1, 48, 4)
    with pytest.raises(GroupingValueError, match="pos_embed"):
        resample_pos_embed(pos, (3, 3), (6, 6))


# -- the MAE head ----------------------------------------------------------------------------------


class _Head(MAEHead, torch.nn.Module):
    def __init__(self, pos_embed: str) -> None:
        torch.nn.Module.__init__(self)
        self.init_mae_head(
            in_dim=6, grid=(2, 3), patch_dim=5, dim=8, depth=2, num_heads=2, pos_embed=pos_embed
        )


def test_mae_head_names_positions_and_placement() -> None:
    fixed, learned = _Head("sincos"), _Head("learned")
    names = set(dict(fixed.named_parameters()))
    assert {
        "decoder_embed.weight",
        "mask_token",
        "decoder_norm.weight",
        "decoder_pred.bias",
    } <= names
    assert "decoder_blocks.1.attn.qkv.weight" in names
    assert "decoder_pos_embed" not in fixed.state_dict()  # derived: not saved
    assert "decoder_pos_embed" in dict(learned.named_parameters())  # Hiera's: learned
    torch.testing.assert_close(
        fixed.decoder_pos_embed[0], torch.from_numpy(sincos_2d(8, (2, 3))).float()
    )
    latent = torch.randn(2, 2, 8)
    full = fixed.place_latents(latent, torch.tensor([[0, 5], [1, 2]]))
    assert torch.equal(full[0, 5], latent[0, 1]) and torch.equal(full[1, 0], fixed.mask_token[0, 0])
    assert fixed.decode(full).shape == (2, 6, 5)


def test_masked_mse_and_normalized_targets() -> None:
    pred, target = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    masked = torch.tensor([[True, False, True, False], [False, False, True, True]])
    expected = ((pred - target) ** 2).mean(-1)[masked].mean()
    torch.testing.assert_close(masked_mse(pred, target, masked), expected)
    assert float(masked_mse(pred, target, torch.zeros(1, 4, dtype=torch.bool))) == 0.0
    t = normalize_patches(target)
    torch.testing.assert_close(t.mean(-1), torch.zeros(2, 4), atol=1e-6, rtol=0)


# -- the step protocol and the tensor tree ---------------------------------------------------------


def test_map_tensors_walks_nested_structures() -> None:
    @dataclasses.dataclass(frozen=True)
    class Inner:
        a: torch.Tensor
        n: int

    tree = {"x": (torch.zeros(2), [torch.ones(1), 3]), "inner": Inner(torch.zeros(1), 4)}
    out = map_tensors(tree, lambda t: t + 1)
    assert torch.equal(out["x"][0], torch.ones(2)) and out["x"][1][1] == 3
    assert torch.equal(out["inner"].a, torch.ones(1)) and out["inner"].n == 4
    same = {"k": np.zeros(2), "n": (1, "s")}
    assert map_tensors(same, lambda t: t + 1) is same


def test_pack_tensors_round_trips_every_tensor_of_a_step() -> None:
    from grouping.adapter import pack_tensors
    from grouping.adapter.tensors import _map

    model = create_model("greenmim_swin_tiny", img_size=64, window_size=4)
    step = model.preparer()(model.sample_mask(3, 0.5, rng=0, per_sample=True), batch=3)
    packed = pickle_round_trip(pack_tensors(step))
    out = packed.unpack()
    ours, theirs = [], []
    _map(step, theirs.append, (torch.Tensor,))
    _map(out, ours.append, (torch.Tensor,))
    assert len(ours) == len(theirs) > 20
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
        assert a.untyped_storage().data_ptr() == packed.buffer.untyped_storage().data_ptr()
    empty = pack_tensors({"e": torch.zeros(0, 3), "s": torch.tensor(2.5)}).unpack()
    assert empty["e"].shape == (0, 3) and float(empty["s"]) == 2.5


def pickle_round_trip(value):
    import pickle

    return pickle.loads(pickle.dumps(value))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs cuda")
def test_step_pin_memory_and_non_blocking_copy_on_cuda() -> None:
    model = create_model("greenmim_swin_tiny", img_size=64, window_size=4)
    step = model.preparer()(model.preparer().draw_mask(0.75, rng=0)).pin_memory()
    assert step.embed_index.is_pinned()
    moved = step.to("cuda", non_blocking=True)
    assert moved.layouts[0][0].index.is_cuda


# -- the registry ----------------------------------------------------------------------------------


def test_registry_lists_without_torch_and_builds_every_model() -> None:
    code = (
        "import sys; from grouping import models; names = models.list_models(); "
        "print('torch' in sys.modules, len(names))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"
    for name in list_models():
        info = model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        config = model.config
        for key, value in info.kwargs.items():
            assert getattr(config, key) == value, (name, key)
        # what pretrain feeds it (images or clips); HiP's class bottleneck reads datasets
        assert hasattr(model, "input_shape") or hasattr(model, "clip_spec") or not info.pretrain
        if info.pretrain:  # trained by grouping pretrain: the step protocol
            assert hasattr(model, "preparer") and hasattr(model, "mask_grid")


def test_registry_errors_and_read_only_entries() -> None:
    with pytest.raises(GroupingValueError, match="greenmim_swin_tiny"):
        model_info("swin_huge")
    info = model_info("greenmim_swin_tiny")
    with pytest.raises(TypeError):
        info.kwargs["embed_dim"] = 1  # type: ignore[index]
    with pytest.raises(GroupingValueError, match="window_size"):
        create_model("greenmim_swin_tiny", img_size=96, window_size=5)
    assert list_models(family="simmim") == ["simmim_swin_base", "simmim_swin_tiny"]


def test_stage_geometry_is_shared_by_configs_and_presets() -> None:
    from grouping.presets import get_preset

    preset = get_preset("swin-b-224-w14")
    arch = model_info("greenmim_swin_base_w14").kwargs
    stages = swin_stages((56, 56), 14, arch["embed_dim"], arch["num_heads"])
    assert preset.stages == stages
    for i, s in enumerate(stages):
        assert preset.grid(i) == s.grid and preset.window(i) == s.window[0]
        assert preset.shift(i) == s.shift[0] and preset.channels(i) == s.dim
    with pytest.raises(GroupingValueError, match="grid"):
        swin_stages((50, 50), 7, 96, (3, 6, 12, 24))
    with pytest.raises(GroupingValueError, match="num_heads"):
        swin_stages((56, 56), 7, 96, (5, 6, 12, 24))


# -- the dense window attention (the adapter's, the baseline's) ------------------------------------


@pytest.mark.parametrize("impl", ["explicit", "sdpa"])
@pytest.mark.parametrize("shift", [0, 2])
def test_dense_window_attention_equals_swin_reference(shift: int, impl: str) -> None:
    torch.manual_seed(0)
    attn = GroupedWindowAttention(8, 2, 4, attn_impl=impl).double()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    x = torch.randn(2, 8, 12, 8, dtype=torch.float64)
    expected = naive_shifted_window_attention(attn, x, 4, shift)
    torch.testing.assert_close(dense_window_attention(x, attn, shift), expected)
    # precomputed buffers give the same result
    got = dense_window_attention(
        x,
        attn,
        shift,
        bias_index=window_relative_index(4),
        region_mask=shifted_window_mask((8, 12), 4, shift),
    )
    torch.testing.assert_close(got, expected)


def test_dense_window_attention_bad_input() -> None:
    attn = GroupedWindowAttention(8, 2, 4)
    with pytest.raises(GroupingValueError, match="divisible"):
        dense_window_attention(torch.randn(1, 6, 8, 8), attn)
    with pytest.raises(GroupingValueError, match="x"):
        dense_window_attention(torch.randn(1, 8, 8, 4), attn)
    with pytest.raises(GroupingValueError, match="shift"):
        shifted_window_mask((8, 8), 4, 4)
    assert shifted_window_mask((8, 8), 4, 0) is None


def test_every_pretraining_model_follows_the_loop_protocol() -> None:
    """What the training loop relies on, and nothing else: the registry's data kind, the
    step protocol, the encoder's weights, a named output with the loss first."""
    for name in list_models(pretrain=True):
        info = model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        assert info.data in ("images", "clips"), name
        assert hasattr(model, "input_shape" if info.data == "images" else "clip_spec"), name
        assert callable(model.preparer) and callable(model.encoder_state_dict), name
        assert 0 < len(model.encoder_state_dict()) <= len(model.state_dict()), name
        if info.classifier is not None:
            assert not model_info(info.classifier).pretrain
            assert model_info(info.classifier).family in (info.family, "swin"), name
