"""Grouped window attention against the window-by-window reference, masks, modes and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from naive_attention import naive_shifted_window_attention, naive_window_attention, window_key

import grouping as gp
from grouping.adapter import (
    GroupedWindowAttention,
    additive_mask,
    block_mask,
    default_attention_impl,
    group_tokens,
    grouped_attention,
    relative_position_bias,
    token_attention_mask,
    ungroup_tokens,
    varlen_offsets,
    window_layout,
)
from grouping.core.errors import GroupingValueError

TOL = 1e-9


def random_mask(grid, keep, batch=None, *, seed=0, empty=None):
    """Bool mask ``[H, W]`` or ``[B, H, W]`` with ``keep`` visible tokens per sample.

    ``empty`` (a pair of slices) is a region kept fully masked, so some windows are empty.
    """
    rng = np.random.default_rng(seed)
    allowed = np.ones(grid, dtype=bool)
    if empty is not None:
        allowed[empty] = False
    candidates = np.flatnonzero(allowed.ravel())
    masks = []
    for _ in range(1 if batch is None else batch):
        mask = np.zeros(grid[0] * grid[1], dtype=bool)
        mask[rng.choice(candidates, size=keep, replace=False)] = True
        masks.append(mask.reshape(grid))
    return masks[0] if batch is None else np.stack(masks)


def make_module(dim, heads, window, *, impl="auto", seed=0):
    torch.manual_seed(seed)
    module = GroupedWindowAttention(dim, heads, window, attn_impl=impl).double()
    with torch.no_grad():  # a bias large enough to matter
        module.relative_position_bias_table.normal_(0.0, 0.5)
    return module


def grads(module, x, out, weight):
    params = [x, *module.parameters()]
    return torch.autograd.grad((out * weight).sum(), params)


# grid, window, shift, keep, batch (None = batch-shared), group_size, empty region
CASES = {
    "shared-8x8-w4": ((8, 8), 4, 0, 24, None, None, None),
    "shared-8x8-w4-shifted-sweep": ((8, 8), 4, 2, 24, None, "sweep", None),
    "shared-14x10-w4-partial": ((14, 10), 4, 2, 50, None, 24, None),
    "shared-9x7-w(3,2)-nonsquare": ((9, 7), (3, 2), (1, 1), 30, None, None, None),
    "per-sample-8x8-w4": ((8, 8), 4, 0, 20, 3, None, None),
    "per-sample-10x14-w4-shifted": ((10, 14), 4, 2, 40, 2, 20, None),
    "per-sample-9x9-w3-shift1-sweep": ((9, 9), 3, 1, 30, 2, "sweep", None),
    "empty-windows-shared": ((8, 8), 2, 1, 20, None, 6, (slice(0, 4), slice(0, 5))),
    "empty-windows-per-sample": ((8, 10), 3, 1, 25, 2, None, (slice(2, 8), slice(0, 4))),
}


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
@pytest.mark.parametrize("mode", ["grouped", "mask"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_matches_window_by_window_reference(case, mode, impl):
    grid, window, shift, keep, batch, group_size, empty = CASES[case]
    mask = random_mask(grid, keep, batch, seed=len(case), empty=empty)
    dim, heads = 8, 2
    layout = window_layout(
        mask, window, shift=shift, group_size=group_size, channels=dim, mode=mode
    )
    assert layout.mode == mode
    module = make_module(dim, heads, window, impl=impl)
    b = batch or 2
    x = torch.randn(b, keep, dim, dtype=torch.float64, requires_grad=True)
    out = module(x, layout)
    ref = naive_window_attention(module, x, mask, window, shift)
    assert out.shape == (b, keep, dim)
    torch.testing.assert_close(out, ref, atol=TOL, rtol=0)
    weight = torch.randn_like(out)
    for got, want in zip(grads(module, x, out, weight), grads(module, x, ref, weight), strict=True):
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("shift", [0, 2])
def test_all_visible_equals_swin_roll_and_mask(shift):
    """With no token masked, grouped attention is Swin's shifted window attention."""
    grid, window, dim = (8, 8), 4, 8
    module = make_module(dim, 2, window)
    x_full = torch.randn(2, *grid, dim, dtype=torch.float64)
    layout = window_layout(np.ones(grid, dtype=bool), window, shift=shift, mode="grouped")
    out = module(x_full.reshape(2, -1, dim), layout).reshape(2, *grid, dim)
    ref = naive_shifted_window_attention(module, x_full, window, shift)
    torch.testing.assert_close(out, ref, atol=TOL, rtol=0)


def test_large_logits_do_not_leak_across_windows():
    """Logits ~1e3 apart: an additive -100 mask would leak weight, -inf does not."""
    mask = random_mask((8, 8), 30, seed=3)
    layout = window_layout(mask, 4, shift=2, group_size=32, mode="grouped")
    assert layout.plan.group_lengths.max() > 1  # groups mix windows
    module = make_module(8, 2, 4)
    x = 40.0 * torch.randn(2, 30, 8, dtype=torch.float64)
    for impl in ("sdpa", "explicit"):
        module.attn_impl = impl
        ref = naive_window_attention(module, x, mask, 4, 2)
        torch.testing.assert_close(module(x, layout), ref, atol=TOL, rtol=0)


def test_padding_gives_no_nan_and_no_leak():
    mask = random_mask((8, 8), 21, seed=5)
    layout = window_layout(mask, 4, shift=2, group_size=16, mode="grouped")
    assert bool(layout.padding.any())
    assert not bool(layout.attn_mask[layout.padding].any())  # padding rows attend nowhere
    module = make_module(8, 2, 4)
    q, k, v = (torch.randn(2, layout.num_groups, 2, 16, 4, dtype=torch.float64) for _ in range(3))
    bias = relative_position_bias(module.relative_position_bias_table, layout)
    for impl in ("sdpa", "explicit"):
        out = grouped_attention(q, k, v, layout, bias, impl=impl)
        assert torch.isfinite(out).all()
        # garbage in the padding slots changes no real slot
        pad = layout.padding[None, :, None, :, None]  # [1, G, 1, g, 1]
        k2 = torch.where(pad, 1e6 * torch.randn_like(k), k)
        v2 = torch.where(pad, 1e6 * torch.randn_like(v), v)
        out2 = grouped_attention(q, k2, v2, layout, bias, impl=impl)
        real = ~layout.padding[None, :, None, :, None]
        torch.testing.assert_close(out2 * real, out * real, atol=0, rtol=0)
    # gradients are finite and nothing flows through padding slots
    x = torch.randn(2, 21, 8, dtype=torch.float64, requires_grad=True)
    out = module(x, layout)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


def test_gradcheck_tiny():
    mask = random_mask((4, 5), 9, batch=2, seed=1)
    layout = window_layout(mask, 2, shift=1, group_size=5, mode="grouped")
    module = make_module(4, 2, 2)
    names = [name for name, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in module.parameters())
    x = torch.randn(2, 9, 4, dtype=torch.float64, requires_grad=True)

    def f(x, *params):
        state = dict(zip(names, params, strict=True))
        return torch.func.functional_call(module, state, (x, layout))

    assert torch.autograd.gradcheck(f, (x, *params))


def test_modes_agree_and_auto_follows_the_cost_model():
    dim = 64
    for grid, window, keep in [((14, 14), 7, 49), ((16, 16), 4, 64), ((12, 12), 3, 36)]:
        mask = random_mask(grid, keep, seed=keep)
        auto = window_layout(mask, window, shift=window // 2, channels=dim)
        grouped_cost = gp.attention_cost(auto.plan.num_groups, auto.plan.group_size, dim)
        if auto.mode == "mask":
            solved = window_layout(mask, window, shift=window // 2, channels=dim, mode="grouped")
            grouped_cost = solved.grouped_cost
        assert auto.grouped_cost == pytest.approx(grouped_cost)
        assert auto.mask_cost == pytest.approx(gp.attention_cost(1, keep, dim))
        assert auto.mode == ("mask" if auto.mask_cost < auto.grouped_cost else "grouped")
    # a small stage (GreenMIM's regime) goes to masking mode, a large one stays grouped
    small = window_layout(random_mask((14, 14), 49, seed=0), 7, channels=512)
    large = window_layout(random_mask((56, 56), 784, seed=0), 7, channels=128)
    assert (small.mode, large.mode) == ("mask", "grouped")
    assert small.identity and small.plan.strategy == "mask"
    # without channels there is no cost to compare: grouped
    assert window_layout(random_mask((14, 14), 49, seed=0), 7).mode == "grouped"


def test_group_ungroup_roundtrip_and_batch_folding():
    mask = random_mask((8, 8), 20, seed=2)
    layout = window_layout(mask, 4, shift=2, group_size=12, mode="grouped")
    x = torch.randn(3, 20, 5)
    groups = group_tokens(x, layout)
    assert groups.shape == (3 * layout.num_groups, 12, 5)
    pad = layout.padding.repeat(3, 1)  # [3G, g], sample-major
    assert torch.all(groups[pad] == 0)
    torch.testing.assert_close(ungroup_tokens(groups, layout), x, atol=0, rtol=0)
    for b in range(3):  # sample b's groups are rows b*G .. (b+1)*G
        sample = groups[b * layout.num_groups : (b + 1) * layout.num_groups]
        real = ~layout.padding
        assert torch.equal(sample[real], x[b, layout.index[real]])


def test_layout_metadata():
    mask = torch.from_numpy(random_mask((10, 12), 30, batch=2, seed=4))
    layout = window_layout(mask, 4, shift=2, group_size=20)
    assert layout.batch == 2 and not layout.shared
    assert (layout.grid, layout.window, layout.shift) == ((10, 12), (4, 4), (2, 2))
    assert layout.num_visible == 30 and layout.num_tokens == 60
    assert layout.num_windows == 3 * 4  # rows cut at 2, 6 (10 rows); columns at 2, 6, 10
    assert layout.device == torch.device("cpu")
    assert torch.equal(layout.group_sizes, (~layout.padding).sum(1))
    assert torch.equal(layout.group_sizes.cpu(), torch.from_numpy(layout.plan.fills))
    gp.check_plan(layout.plan, gp.window_counts(mask.numpy(), 4, shift=2))
    assert layout.to("cpu") is layout
    assert "grouped" in repr(layout)


def test_additive_mask():
    layout = window_layout(random_mask((8, 8), 20, seed=6), 4, group_size=12, mode="grouped")
    add = additive_mask(layout, torch.float64)
    assert torch.equal(add == 0, layout.kernel_mask)
    assert torch.all(torch.isinf(add[~layout.kernel_mask]))


@pytest.mark.parametrize("batch", [None, 2])
def test_block_mask_matches_dense_mask(batch):
    from torch.nn.attention.flex_attention import create_mask, flex_attention

    mask = random_mask((8, 8), 24, batch, seed=7)
    layout = window_layout(mask, 4, shift=2, group_size=18, mode="grouped")
    rows = 3 if batch is None else 1
    bm = block_mask(layout, None if batch else rows, block_size=16)
    num_groups, g = layout.num_groups, layout.group_size
    assert bm.shape == (rows * num_groups, 1, g, g)
    dense = create_mask(bm.mask_mod, rows * num_groups, None, g, g, device="cpu")[:, 0]
    assert torch.equal(dense, layout.attn_mask.repeat(rows, 1, 1))
    # every block that holds an allowed pair is marked in the block-level mask
    blocks = bm.to_dense()[:, 0].bool()  # [R*G, nq, nkv]
    nb = blocks.shape[-1]
    padded = torch.zeros(rows * num_groups, nb * 16, nb * 16, dtype=torch.bool)
    padded[:, :g, :g] = dense
    occupied = padded.reshape(-1, nb, 16, nb, 16).any(dim=(2, 4))
    assert torch.all(blocks | ~occupied)
    # FlexAttention with the relative bias as score_mod reproduces the module's attention
    module = make_module(8, 2, 4)
    bias = relative_position_bias(module.relative_position_bias_table, layout)  # [G, H, g, g]
    q, k, v = (torch.randn(rows, num_groups, 2, g, 4, dtype=torch.float64) for _ in range(3))
    want = grouped_attention(q, k, v, layout, bias, impl="explicit")
    safe = block_mask(layout, None if batch else rows, block_size=16, padding_self=True)

    def score_mod(score, b, h, i, j):
        return score + bias[b % num_groups, h, i, j]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = flex_attention(
            *(t.reshape(rows * num_groups, 2, g, 4) for t in (q, k, v)),
            score_mod=score_mod,
            block_mask=safe,
        )
    torch.testing.assert_close(got.reshape_as(want), want, atol=TOL, rtol=0)


@pytest.mark.parametrize("batch", [None, 3])
def test_varlen_offsets_match_dense_mask(batch):
    mask = random_mask((9, 10), 30, batch, seed=8, empty=(slice(0, 3), slice(0, 3)))
    layout = window_layout(mask, 3, shift=1, group_size=12)
    rows = 2 if batch is None else None
    varlen = varlen_offsets(layout, rows)
    total = 30 * (batch or 2)
    assert varlen.cu_seqlens.dtype == torch.int32
    assert int(varlen.cu_seqlens[-1]) == total
    assert torch.equal(torch.sort(varlen.order).values, torch.arange(total))
    lengths = torch.diff(varlen.cu_seqlens)
    assert torch.all(lengths > 0) and varlen.max_seqlen == int(lengths.max())
    counts = gp.window_counts(np.broadcast_to(mask, (batch or 2, 9, 10)), 3, shift=1).ravel()
    assert torch.equal(varlen.windows, torch.from_numpy(np.flatnonzero(counts)))
    # block-diagonal mask of the segments, mapped back to token order
    segment = torch.repeat_interleave(torch.arange(lengths.shape[0]), lengths.long())
    packed = segment[:, None] == segment[None, :]
    dense = torch.zeros(total, total, dtype=torch.bool)
    dense[varlen.order[:, None], varlen.order[None, :]] = packed
    assert torch.equal(dense, token_attention_mask(layout, rows))


@pytest.mark.parametrize("batch", [None, 2])
def test_token_attention_mask_is_same_sample_same_window(batch):
    grid, window, shift = (7, 9), 3, 1
    mask = random_mask(grid, 25, batch, seed=9)
    layout = window_layout(mask, window, shift=shift, group_size=10)
    rows = 2 if batch is None else None
    keys = []
    for b in range(batch or 2):
        m = mask if batch is None else mask[b]
        hs, ws = np.nonzero(m)
        keys += [(b, window_key(h, w, (3, 3), (1, 1))) for h, w in zip(hs, ws, strict=True)]
    want = torch.tensor([[a == c for c in keys] for a in keys])
    assert torch.equal(token_attention_mask(layout, rows), want)


def test_empty_mask_and_tensor_mask_device():
    layout = window_layout(np.zeros((4, 4), dtype=bool), 2, channels=8)
    assert layout.num_groups == 0 and layout.num_visible == 0
    module = make_module(8, 2, 2)
    out = module(torch.zeros(2, 0, 8, dtype=torch.float64), layout)
    assert out.shape == (2, 0, 8)
    mask = torch.ones(4, 4, dtype=torch.bool)
    assert window_layout(mask, 2).device == mask.device


def _x(shape):
    return torch.randn(*shape, dtype=torch.float64)


def _layout(**kwargs):
    mask = kwargs.pop("mask", random_mask((8, 8), 16, seed=0))
    return window_layout(mask, kwargs.pop("window", 4), **kwargs)


unequal = random_mask((8, 8), 16, batch=2, seed=0)
unequal[1, 0, 0] = not unequal[1, 0, 0]

BAD_LAYOUTS = [
    ("token_mask", lambda: _layout(mask=unequal)),
    ("token_mask", lambda: _layout(mask=np.ones((8, 8), dtype=np.int64))),
    ("token_mask", lambda: _layout(mask=torch.ones(8, 8))),
    ("token_mask", lambda: _layout(mask=np.ones(8, dtype=bool))),
    ("token_mask", lambda: _layout(mask=np.ones((1, 2, 8, 8), dtype=bool))),
    ("window", lambda: _layout(window=9)),
    ("window", lambda: _layout(window=(4, 0))),
    ("shift", lambda: _layout(shift=4)),
    ("mode", lambda: _layout(mode="dense")),
    ("group_size", lambda: _layout(group_size=0)),
]


@pytest.mark.parametrize(
    "name, build", BAD_LAYOUTS, ids=[f"{i}-{n}" for i, (n, _) in enumerate(BAD_LAYOUTS)]
)
def test_bad_layout_arguments(name, build):
    with pytest.raises(GroupingValueError, match=f"^{name}: expected"):
        build()


BAD_CALLS = [
    ("x_vis", lambda m, shared, per: m(_x((2, 15, 8)), shared)),  # token count
    ("x_vis", lambda m, shared, per: m(_x((3, 16, 8)), per)),  # batch of a per-sample layout
    ("x_vis", lambda m, shared, per: m(_x((2, 16, 12)), shared)),  # channels
    ("x_vis", lambda m, shared, per: m(_x((16, 8)), shared)),  # rank
    ("layout", lambda m, shared, per: m(_x((2, 16, 8)), shared.to("meta"))),  # device
    ("layout", lambda m, shared, per: m(_x((2, 16, 8)), _layout(window=2))),  # window size
    ("layout", lambda m, shared, per: m(_x((2, 16, 8)), None)),
]


@pytest.mark.parametrize(
    "name, call", BAD_CALLS, ids=[f"{i}-{n}" for i, (n, _) in enumerate(BAD_CALLS)]
)
def test_bad_forward_arguments(name, call):
    module = make_module(8, 2, 4)
    shared = _layout()
    per = _layout(mask=random_mask((8, 8), 16, batch=2, seed=1))
    with pytest.raises(GroupingValueError, match=f"^{name}: expected"):
        call(module, shared, per)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dim": 10, "num_heads": 3}, "num_heads"),
        ({"dim": 0, "num_heads": 1}, "dim"),
        ({"window_size": 0}, "window_size"),
        ({"attn_impl": "flash"}, "attn_impl"),
    ],
)
def test_bad_module_arguments(kwargs, name):
    args = {"dim": 8, "num_heads": 2, "window_size": 4, **kwargs}
    with pytest.raises(GroupingValueError, match=f"^{name}: expected"):
        GroupedWindowAttention(**args)


def test_auto_attention_path_per_device():
    assert default_attention_impl("cpu") == "explicit"  # measured: docs/adapter.md
    assert default_attention_impl("cuda") == "sdpa"
    module = GroupedWindowAttention(8, 2, 4)
    assert module.attn_impl == "auto"
    module.attn_impl = "sdpa"
    assert "sdpa" in repr(module)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        _layout(window=9)


def test_grouped_attention_without_bias_paths_agree():
    layout = window_layout(random_mask((8, 8), 20, seed=11), 4, shift=2, group_size=12)
    q, k, v = (torch.randn(2, layout.num_groups, 2, 12, 4, dtype=torch.float64) for _ in range(3))
    sdpa = grouped_attention(q, k, v, layout, impl="sdpa")
    explicit = grouped_attention(q, k, v, layout, impl="explicit")
    torch.testing.assert_close(sdpa, explicit, atol=TOL, rtol=0)
    with pytest.raises(GroupingValueError, match="^impl: expected"):
        grouped_attention(q, k, v, layout, impl="flash")
