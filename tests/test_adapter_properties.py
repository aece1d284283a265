"""Structural properties of window layouts over random masks, windows, shifts and grids."""

from __future__ import annotations

from typing import NamedTuple

import networkx as nx
import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from naive_attention import window_key

import grouping as gp
from grouping.adapter import group_tokens, ungroup_tokens, varlen_offsets, window_layout


class LayoutCase(NamedTuple):
    mask: np.ndarray  # bool [H, W] or [B, H, W]
    window: tuple[int, int]
    shift: tuple[int, int]
    group_size: int | str | None
    mode: str


@st.composite
def layout_cases(draw) -> LayoutCase:
    height = draw(st.integers(1, 10))
    width = draw(st.integers(1, 10))
    window = (draw(st.integers(1, min(height, 4))), draw(st.integers(1, min(width, 4))))
    shift = (draw(st.integers(0, window[0] - 1)), draw(st.integers(0, window[1] - 1)))
    batch = draw(st.sampled_from([None, 1, 2, 3]))
    keep = draw(st.integers(0, height * width))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    masks = []
    for _ in range(batch or 1):
        m = np.zeros(height * width, dtype=bool)
        m[rng.permutation(height * width)[:keep]] = True
        masks.append(m.reshape(height, width))
    mask = masks[0] if batch is None else np.stack(masks)
    group_size = draw(st.sampled_from([None, "sweep", "max+"]))
    if group_size == "max+":
        counts = gp.window_counts(mask, window, shift=shift)
        group_size = max(int(counts.max()), 1) + draw(st.integers(0, 6))
    mode = draw(st.sampled_from(["auto", "grouped", "mask"]))
    return LayoutCase(mask, window, shift, group_size, mode)


def build(case: LayoutCase):
    return window_layout(
        case.mask,
        case.window,
        shift=case.shift,
        group_size=case.group_size,
        channels=8,
        mode=case.mode,
    )


def token_keys(case: LayoutCase) -> list[tuple[int, tuple[int, int]]]:
    """(sample, window key) of every token in the layout's flattened numbering."""
    masks = case.mask[None] if case.mask.ndim == 2 else case.mask
    keys = []
    for b, m in enumerate(masks):
        hs, ws = np.nonzero(m)
        keys += [
            (b, window_key(h, w, case.window, case.shift)) for h, w in zip(hs, ws, strict=True)
        ]
    return keys


@given(layout_cases())
def test_every_token_in_exactly_one_slot_and_inverse_restores_order(case):
    layout = build(case)
    gp.check_plan(layout.plan)
    num_tokens = len(token_keys(case))
    assert layout.num_tokens == num_tokens
    index = layout.index.reshape(-1)
    real = index[index >= 0]
    assert torch.equal(torch.sort(real).values, torch.arange(num_tokens))
    assert torch.equal(layout.padding.reshape(-1), index < 0)
    assert torch.equal(index[layout.inverse], torch.arange(num_tokens))
    assert torch.equal(layout.group_sizes, (~layout.padding).sum(1))
    assert layout.identity == (index.numel() == num_tokens and bool(torch.all(real.diff() == 1)))
    # group then ungroup is the identity on the tokens
    rows = 2 if layout.shared else None
    batch = rows or layout.batch
    x = torch.randn(batch, layout.num_visible, 3)
    if num_tokens:
        groups = group_tokens(x, layout)
        assert torch.all(groups[layout.padding.repeat(rows or 1, 1)] == 0)
        assert torch.equal(ungroup_tokens(groups, layout), x)


@given(layout_cases())
def test_attention_mask_is_block_diagonal_per_window(case):
    layout = build(case)
    keys = token_keys(case)
    index = layout.index
    wid = layout.window_ids
    for k in range(layout.num_groups):
        real = [int(t) for t in index[k] if t >= 0]
        slots = [keys[t] for t in real]
        # the slot windows agree with an independent window computation
        same = torch.tensor([[a == b for b in slots] for a in slots], dtype=torch.bool)
        n = len(real)
        if layout.mode == "grouped":
            # tokens first, padding last; each window one contiguous run of slots
            assert not bool(layout.padding[k, :n].any()) and bool(layout.padding[k, n:].all())
            runs = [w for i, w in enumerate(wid[k, :n].tolist()) if i == 0 or w != wid[k, i - 1]]
            assert len(runs) == len(set(runs))
        real_slots = torch.nonzero(~layout.padding[k]).reshape(-1)
        sub = layout.attn_mask[k][real_slots][:, real_slots]
        assert torch.equal(sub, same)
        assert not bool(layout.attn_mask[k][layout.padding[k]].any())
        assert not bool(layout.attn_mask[k][:, layout.padding[k]].any())
        # kernel mask: padding slots attend to themselves only
        eye = torch.eye(layout.group_size, dtype=torch.bool)
        pad = layout.padding[k]
        assert torch.equal(layout.kernel_mask[k], layout.attn_mask[k] | (eye & pad[:, None]))
    # relative position index: in range, the formula on true coordinates, 0 where masked
    (wh, ww), table = layout.window, layout.table_size
    rel = layout.rel_index
    assert torch.all(rel[~layout.attn_mask] == 0)
    assert torch.all((rel >= 0) & (rel < table))
    masks = case.mask[None] if case.mask.ndim == 2 else case.mask
    coords = np.concatenate([np.argwhere(m) for m in masks]) if keys else np.zeros((0, 2))
    for k, i, j in torch.nonzero(layout.attn_mask).tolist()[:200]:
        (hi, wi), (hj, wj) = coords[int(index[k, i])], coords[int(index[k, j])]
        assert int(rel[k, i, j]) == (hi - hj + wh - 1) * (2 * ww - 1) + (wi - wj + ww - 1)


@given(layout_cases())
def test_attend_graph_components_are_the_windows(case):
    """networkx: the graph 'token i may attend token j' splits into exactly the windows."""
    layout = build(case)
    keys = token_keys(case)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(keys)))
    for k, i, j in torch.nonzero(layout.attn_mask).tolist():
        graph.add_edge(int(layout.index[k, i]), int(layout.index[k, j]))
    components = {frozenset(c) for c in nx.connected_components(graph)}
    expected: dict[tuple[int, tuple[int, int]], set[int]] = {}
    for t, key in enumerate(keys):
        expected.setdefault(key, set()).add(t)
    assert components == {frozenset(c) for c in expected.values()}
    # the varlen segments are the same sets
    varlen = varlen_offsets(layout)
    bounds = varlen.cu_seqlens.tolist()
    segments = {
        frozenset(varlen.order[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    }
    assert segments == components
