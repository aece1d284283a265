"""Hiera and MAE-Hiera: equal to the official code (fixtures recorded by
``tests/fixtures/record_hiera.py`` from PyPI ``hiera-transformer`` 0.1.4), the core's layout,
masking, checkpoints, the registry and errors."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from naive_layout import hiera_reroll, hiera_unroll

from grouping.core.errors import GroupingValueError
from grouping.models import create_model, list_models, model_info
from grouping.models import hiera as H

FIXTURES = Path(__file__).parent / "fixtures"
CASES = ("image", "video")


def _fixture(case: str) -> dict:
    return torch.load(FIXTURES / f"hiera_{case}.pt", weights_only=True)


def _close(ours: torch.Tensor, theirs: torch.Tensor, rtol: float = 1e-5) -> None:
    """Within ``rtol`` relative to the reference's scale (elementwise relative error is
    meaningless where values cross zero)."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = float(theirs.abs().max()) or 1.0
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=rtol * scale)


# -- equal to the official code ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_classifier_equals_official(case: str) -> None:
    f = _fixture(case)
    model = H.Hiera(**f["kwargs"])
    model.load_state_dict(f["clf_state"], strict=True)  # the official keys and shapes
    model.eval()
    with torch.no_grad():
        logits, inter = model(f["x"], return_intermediates=True)
        # the one deliberate difference: logits in eval mode (the official applies softmax)
        _close(logits.softmax(-1), f["probs"])
        assert len(inter) == len(f["intermediates"])
        for ours, theirs in zip(inter, f["intermediates"], strict=True):
            _close(ours, theirs)
        tokens, inter = model(f["x"], mask=f["mask"], return_intermediates=True)
        _close(tokens, f["masked_tokens"])
        for ours, theirs in zip(inter, f["masked_intermediates"], strict=True):
            _close(ours, theirs)
        # the prepared step gives the same as the official boolean mask
        step = model.prepare(f["mask"])
        _close(model(f["x"], step), f["masked_tokens"])


@pytest.mark.parametrize("case", CASES)
def test_mae_equals_official_with_gradients(case: str) -> None:
    f = _fixture(case)
    model = H.MaskedAutoencoderHiera(**f["kwargs"], **f["mae_kwargs"])
    model.load_state_dict(f["mae_state"], strict=True)
    model.train()
    loss, pred, label, mask = model(f["x"], mask=f["mae_mask"])
    _close(loss.detach(), f["loss"])
    _close(pred.detach(), f["pred"])
    _close(label, f["label"])
    assert torch.equal(mask, f["returned_mask"])
    loss.backward()
    grads = f["grads"]
    assert set(grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        # fused attention kernels reorder sums: 1e-3 relative per parameter tensor
        error = float((p.grad - grads[name]).norm() / grads[name].norm().clamp_min(1e-30))
        assert error < 1e-3, (name, error)


def test_factories_match_the_official_parameter_counts_and_keys() -> None:
    table = json.loads((FIXTURES / "hiera_factories.json").read_text())
    assert sorted(table) == sorted(list_models(family="hiera"))
    for name, official in table.items():
        with torch.device("meta"):
            model = getattr(H, name)()
        shapes = sorted((k, list(v.shape)) for k, v in model.state_dict().items())
        digest = hashlib.sha256(json.dumps(shapes).encode()).hexdigest()
        assert sum(p.numel() for p in model.parameters()) == official["params"], name
        assert digest == official["keys"], name
        assert model_info(name).pretrain == name.startswith("mae_")


# -- the core's layout ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_unroll_and_reroll_buffers_are_the_core_layout_and_hiera_steps(case: str) -> None:
    model = H.Hiera(**_fixture(case)["kwargs"])
    lay = model.config.layout
    grid = list(lay.grids[0])
    assert torch.equal(model.unroll_index, torch.from_numpy(lay.unroll_index(0)))
    # against Hiera's literal view/permute steps on an arange
    schedule = [model.config.q_stride] * (len(model.config.stages) - 1)
    x = np.arange(math.prod(grid)).reshape(1, -1, 1)
    assert np.array_equal(hiera_unroll(x, grid, schedule)[0, :, 0], lay.unroll_index(0))
    # a naive reshape oracle: reroll(unroll(x)) is the identity at stage 0
    t = torch.arange(math.prod(grid), dtype=torch.float32).reshape(1, -1, 1)
    back = model._reroll(t.index_select(1, model.unroll_index), 0, None)
    assert torch.equal(back.reshape(-1), t.reshape(-1))
    np.testing.assert_array_equal(
        hiera_reroll(x[:, lay.unroll_index(0)], grid, schedule).reshape(-1), x.reshape(-1)
    )
    # derived index tensors are non-persistent: not in the state_dict
    assert not any("index" in k for k in model.state_dict())


def test_masked_forward_equals_unmasked_restricted_to_kept_units() -> None:
    """In the mask-unit attention stages a unit sees only itself, so the masked pass equals
    the unmasked pass on the same (pixel-masked) input, restricted to the kept units."""
    f = _fixture("image")
    model = H.Hiera(**f["kwargs"]).double().eval()
    model.load_state_dict({k: v.double() for k, v in f["clf_state"].items()})
    x = f["x"].double()
    mask = f["mask"]
    step = model.prepare(mask)
    units = mask.view(2, 1, *model.mask_spatial_shape).double()
    x0 = x * F.interpolate(units, size=x.shape[2:])  # what the masked patch embedding sees
    with torch.no_grad():
        _, masked = model(x, step, return_intermediates=True)
        _, full = model(x0, return_intermediates=True)
    lay = model.config.layout
    for stage, use in enumerate(model.config.mask_unit_attn):
        if not use or stage > 1:  # global attention from here on mixes units
            break
        grid, mu = lay.grids[stage], lay.mask_units[stage]
        ids = torch.from_numpy(lay.mask_unit_ids(stage))  # [*grid]
        for b in range(2):
            kept = torch.nonzero(mask[b]).reshape(-1)
            for j, unit in enumerate(kept):
                cells = full[stage][b][ids == unit]  # row-major cells of the unit
                torch.testing.assert_close(masked[stage][b, j].reshape(-1, cells.shape[-1]), cells)
        assert grid[0] % mu[0] == 0


def test_forward_has_no_data_dependent_shapes() -> None:
    """On the meta device (no data at all) the prepared masked pass runs: nothing in forward
    reads the mask's values on the host or makes a shape from them."""
    f = _fixture("image")
    model = H.MaskedAutoencoderHiera(**f["kwargs"], **f["mae_kwargs"])
    step = model.prepare(f["mae_mask"])
    meta = model.to("meta")
    loss, pred, label, mask = meta(torch.empty_like(f["x"], device="meta"), mask=step.to("meta"))
    assert loss.device.type == "meta" and pred.shape == label.shape
    assert mask.shape == f["mae_mask"].shape


def test_random_masks_keep_equal_counts_and_steps_pickle() -> None:
    import pickle

    model = H.MaskedAutoencoderHiera(
        **_fixture("image")["kwargs"], **_fixture("image")["mae_kwargs"]
    )
    x = torch.zeros(5, 3, 96, 128)
    mask = model.get_random_mask(x, 0.6)
    assert mask.shape == (5, 12) and mask.sum(1).tolist() == [int(12 * 0.4)] * 5
    sampled = model.sample_mask(5, 0.6, rng=0)
    assert sampled.sum(1).tolist() == [4] * 5
    step = pickle.loads(pickle.dumps(model.preparer()(sampled, batch=5)))
    assert step.keep_index.shape == (5, 4 * 64) and step.num_kept == 4
    shared = model.prepare(sampled[0])  # one mask for the batch
    assert shared.batch is None and shared.keep_index.dim() == 1
    with torch.no_grad():
        a = model(x[:2] + 1, mask=shared)[0]
        b = model(x[:2] + 1, mask=np.stack([sampled[0]] * 2))[0]
    torch.testing.assert_close(a, b)


def test_mae_loss_decreases_over_20_steps() -> None:
    torch.manual_seed(0)
    f = _fixture("image")
    model = H.MaskedAutoencoderHiera(**f["kwargs"], **f["mae_kwargs"])
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 96), torch.linspace(-1, 1, 128), indexing="ij")
    images = torch.stack(
        [torch.stack([torch.sin(3 * xx + k), torch.cos(2 * yy - k), xx * yy * k]) for k in range(4)]
    )
    step = model.prepare(model.sample_mask(4, 0.6, rng=1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = model(images, mask=step)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    f = _fixture("image")
    grads = []
    for enable in (False, True):
        model = H.MaskedAutoencoderHiera(**f["kwargs"], **f["mae_kwargs"])
        model.load_state_dict(f["mae_state"])
        model.set_grad_checkpointing(enable)
        model(f["x"], mask=f["mae_mask"])[0].backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


# -- checkpoints ---------------------------------------------------------------------------------


def test_checkpoints_official_timm_and_resampled(tmp_path) -> None:
    f = _fixture("image")
    path = tmp_path / "official.pth"
    torch.save({"model_state": f["clf_state"]}, path)
    model = H.load_checkpoint(H.Hiera(**f["kwargs"]), path)
    with torch.no_grad():
        _close(model.eval()(f["x"]).softmax(-1), f["probs"])
    # timm's names: head.fc / head.norm
    timm = {
        k.replace("head.projection.", "head.fc.").replace("norm.", "head.norm.", 1)
        if k.startswith(("norm.", "head."))
        else k: v
        for k, v in f["clf_state"].items()
    }
    assert "head.fc.weight" in timm and "head.norm.weight" in timm
    torch.save(timm, tmp_path / "timm.pth")
    again = H.load_checkpoint(H.Hiera(**f["kwargs"]), tmp_path / "timm.pth")
    assert torch.equal(again.norm.weight, model.norm.weight)
    # another input size: the position embedding is resampled (square checkpoint grid)
    square = {**f["kwargs"], "input_size": (128, 128)}
    src = H.Hiera(**square)
    torch.save({"model_state": src.state_dict()}, tmp_path / "square.pth")
    bigger = H.load_checkpoint(
        H.Hiera(**{**square, "input_size": (192, 256)}), tmp_path / "square.pth"
    )
    assert bigger.pos_embed.shape == (1, 48 * 64, 8)
    # an MAE checkpoint loads into the classifier (decoder ignored), as the official allows
    torch.save({"model_state": f["mae_state"]}, tmp_path / "mae.pth")
    H.load_checkpoint(H.Hiera(**{**f["kwargs"], "q_pool": 2}), tmp_path / "mae.pth")


def test_factories_pretrained_and_checkpoint(tmp_path) -> None:
    with pytest.raises(GroupingValueError, match="hiera_tiny_224.pth"):
        H.hiera_tiny_224(pretrained=True)
    tiny = dict(input_size=(64, 64), embed_dim=8, stages=(1, 1, 1, 1))
    model = H.hiera_tiny_224(**tiny)
    assert model.config.stages == (1, 1, 1, 1) and model.config.num_heads == 1
    torch.save({"model_state": model.state_dict()}, tmp_path / "c.pth")
    loaded = H.hiera_tiny_224(checkpoint=str(tmp_path / "c.pth"), **tiny)
    assert torch.equal(loaded.pos_embed, model.pos_embed)
    assert create_model("mae_hiera_tiny_224", **tiny).config.q_pool == 2


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_size=(100, 128)), "input_size"),  # 25 tokens: not whole 8-token units
        (dict(input_size=(96, 128), mask_unit_size=(4, 4)), "mask_unit_size"),
        (dict(input_size=(96, 128), mask_unit_attn=(True, False)), "mask_unit_attn"),
        (dict(input_size=(96, 128), q_pool=4), "q_pool"),
        (dict(input_size=(96, 128), num_heads=3), "num_heads"),
        (dict(input_size=(96, 128), sep_pos_embed=True), "sep_pos_embed"),
    ],
)
def test_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(GroupingValueError, match=match):
        H.Hiera(embed_dim=8, stages=(1, 2, 1, 1), **kwargs)


def test_bad_input() -> None:
    f = _fixture("image")
    model = H.MaskedAutoencoderHiera(**f["kwargs"], **f["mae_kwargs"])
    x = f["x"]
    cases = [
        (lambda: model(x[:, :1]), "in_chans|3"),
        (lambda: model(torch.randn(2, 3, 96, 96)), "input_size"),
        (lambda: model(x, mask=torch.ones(2, 11, dtype=torch.bool)), "mask"),
        (lambda: model(x, mask=torch.ones(2, 12)), "bool"),
        (
            lambda: model(
                x, mask=torch.tensor([[True] * 6 + [False] * 6, [True] * 5 + [False] * 7])
            ),
            "equal keep counts",
        ),
        (lambda: model(x, mask=model.prepare(model.sample_mask(3, 0.5, rng=0))), "batch of 2"),
        (
            lambda: model.load_state_dict(
                H.MaskedAutoencoderHiera(
                    **{**f["kwargs"], "embed_dim": 16}, **f["mae_kwargs"]
                ).state_dict()
            ),
            "state_dict",
        ),
        (lambda: model.load_state_dict({}), "state_dict"),
        (lambda: model.preparer(strategy="ffd"), "options"),
        (lambda: model.sample_mask(2, 0.5, rng=-1), "rng"),
    ]
    for call, match in cases:
        with pytest.raises(GroupingValueError, match=match):
            call()
