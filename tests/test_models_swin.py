"""GreenMIM Swin: the grouped encoder against dense and window-by-window references (float64),
the MAE decoder's placement of latents, the loss, training, state_dict, presets and errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from naive_swin import NaiveSwin, naive_visible_forward

import grouping.models.layers as layers
import grouping.models.swin as swin
from grouping.core.errors import GroupingValueError
from grouping.core.masking import sample_masks, upsample_mask
from grouping.models import (
    GreenMIMSwin,
    SimMIMSwin,
    SwinConfig,
    SwinEncoder,
    SwinStep,
    create_model,
    greenmim_swin_base,
    greenmim_swin_tiny,
    model_info,
)


def preset_config(name: str, **overrides: object) -> SwinConfig:
    """The config a registered name stands for (its registry kwargs), with overrides."""
    return SwinConfig(**{**model_info(name).kwargs, **overrides})


# Small configs: 3 stages, 16 px mask units = 4x4 stage-1 tokens = one final token.
TINY = dict(
    img_size=64,
    embed_dim=16,
    depths=(2, 2, 2),
    num_heads=(2, 2, 4),
    window_size=4,
    mask_unit=16,
    decoder_dim=32,
    decoder_heads=2,
)
CONFIGS = {
    "square": SwinConfig(**TINY),
    # per-axis clamping: stage 3 is 4x8 tokens, window (4, 4), shift (0, 2)
    "wide": SwinConfig(**{**TINY, "img_size": (64, 128)}),
    # 4 stages, 32 px units (GreenMIM's geometry at a small size); partial shifted windows
    "four_stages": SwinConfig(
        img_size=128,
        embed_dim=8,
        depths=(2, 2, 2, 2),
        num_heads=(2, 2, 4, 4),
        window_size=4,
        mask_unit=32,
        decoder_dim=32,
        decoder_heads=2,
    ),
    # a mask unit of 2x2 final tokens
    "big_units": SwinConfig(**{**TINY, "img_size": 128, "mask_unit": 32}),
}


def _reference(config: SwinConfig) -> NaiveSwin:
    return NaiveSwin(
        img_size=config.img_size,
        patch_size=config.patch_size,
        in_chans=config.in_chans,
        embed_dim=config.embed_dim,
        depths=config.depths,
        num_heads=config.num_heads,
        window_size=config.window_size,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
        norm_eps=config.norm_eps,
    )


def _pair(config: SwinConfig, seed: int = 0) -> tuple[SwinEncoder, NaiveSwin]:
    """A float64 encoder with perturbed weights and the reference holding the same weights."""
    torch.manual_seed(seed)
    enc = SwinEncoder(config).double()
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ref = _reference(config).double()
    ref.load_state_dict(enc.state_dict(), strict=True)
    return enc, ref


def _images(config: SwinConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.in_chans, *config.img_size, generator=gen, dtype=torch.float64)


# -- the encoder against the references ----------------------------------------------------------


def test_state_dict_has_timm_names_and_shapes() -> None:
    config = CONFIGS["four_stages"]
    enc, ref = _pair(config)
    ours = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours == theirs
    for name in (
        "patch_embed.proj.weight",
        "patch_embed.norm.weight",
        "layers.0.blocks.0.attn.qkv.weight",
        "layers.0.blocks.1.attn.relative_position_bias_table",
        "layers.0.blocks.0.mlp.fc1.weight",
        "layers.1.downsample.norm.weight",
        "layers.1.downsample.reduction.weight",
        "norm.bias",
    ):
        assert name in ours
    assert not any(k.startswith(("head", "layers.0.downsample")) for k in ours)
    assert "layers.1.downsample.reduction.bias" not in ours  # timm: no bias
    # clamped windows: stage 4 is 4x4 tokens with window 4 -> 7x7 table
    assert ours["layers.3.blocks.1.attn.relative_position_bias_table"] == (49, 4)


@pytest.mark.parametrize("impl", ["explicit", "sdpa"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_unmasked_encoder_equals_dense_reference(name: str, impl: str) -> None:
    config = CONFIGS[name]
    enc, ref = _pair(config)
    for block in enc.modules():
        if isinstance(block, swin.SwinBlock):
            block.attn.attn_impl = impl  # both the grouped and the dense path follow it
    x = _images(config)
    expected = ref(x)  # B, Hf, Wf, C
    flat = expected.reshape(x.shape[0], -1, expected.shape[-1])
    torch.testing.assert_close(enc(x), flat, rtol=0, atol=1e-10)
    torch.testing.assert_close(enc.forward_dense(x), expected, rtol=0, atol=1e-10)


def test_references_agree_with_nothing_masked() -> None:
    config = CONFIGS["wide"]
    _, ref = _pair(config)
    x = _images(config)
    dense = ref(x)
    loops = naive_visible_forward(ref, x, np.ones(config.grid, dtype=bool))
    for b, (feats, _) in enumerate(loops):
        torch.testing.assert_close(feats, dense[b].reshape(-1, dense.shape[-1]), rtol=0, atol=1e-10)


def _masks(config: SwinConfig, per_sample: bool, seed: int, ratio: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if per_sample:
        return sample_masks(2, config.unit_grid, ratio, rng=rng)
    return sample_masks(1, config.unit_grid, ratio, rng=rng)[0]


@pytest.mark.parametrize("per_sample", [False, True], ids=["shared", "per_sample"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_masked_encoder_equals_visible_reference(name: str, per_sample: bool) -> None:
    config = CONFIGS[name]
    enc, ref = _pair(config)
    x = _images(config)
    for seed in range(2):
        mask = _masks(config, per_sample, seed)
        out = enc(x, mask)
        expected = naive_visible_forward(ref, x, upsample_mask(mask, config.unit_tokens))
        for b, (feats, _) in enumerate(expected):
            torch.testing.assert_close(out[b], feats, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "options",
    [
        dict(group_size="sweep"),
        dict(group_size=40, strategy="ffd"),
        dict(strategy="greenmim"),
        dict(layout_mode="mask"),
        dict(layout_mode="grouped"),
    ],
    ids=["sweep", "fixed_ffd", "greenmim", "mask_mode", "grouped_mode"],
)
def test_masked_encoder_with_other_plans(options: dict) -> None:
    config = CONFIGS["square"]
    enc, ref = _pair(config)
    x = _images(config)
    mask = _masks(config, True, seed=3, ratio=0.75)
    step = enc.prepare(mask, batch=2, **options)  # solver settings are prepare's
    if "layout_mode" in options:
        assert {lay.mode for pair in step.layouts for lay in pair} == {options["layout_mode"]}
    out = enc(x, step)
    expected = naive_visible_forward(ref, x, upsample_mask(mask, config.unit_tokens))
    for b, (feats, _) in enumerate(expected):
        torch.testing.assert_close(out[b], feats, rtol=0, atol=1e-10)


def test_masked_encoder_gradients_equal_reference() -> None:
    config = CONFIGS["square"]
    enc, ref = _pair(config)
    x = _images(config)
    mask = _masks(config, True, seed=5)
    weight = torch.randn(2, int(mask[0].sum()), config.num_features, dtype=torch.float64)
    (enc(x, mask) * weight).sum().backward()
    expected = naive_visible_forward(ref, x, upsample_mask(mask, config.unit_tokens))
    sum(((feats * weight[b]).sum() for b, (feats, _) in enumerate(expected))).backward()
    theirs = dict(ref.named_parameters())
    for name, p in enc.named_parameters():
        assert theirs[name].grad is not None, name
        torch.testing.assert_close(p.grad, theirs[name].grad, rtol=1e-9, atol=1e-9, msg=name)


def test_patch_merging_concatenates_in_timm_order() -> None:
    # one visible 2x2 block whose children carry their (dh, dw) in the channels
    mask = np.ones((1, 2, 2), dtype=bool)
    index = swin._merge_index(mask)
    assert index.tolist() == [[[0, 2, 1, 3]]]  # (0,0), (1,0), (0,1), (1,1) in row-major ranks
    merge = swin.PatchMerging(2, 1e-5)
    x = torch.tensor([[[0.0, 0], [0, 1], [1, 0], [1, 1]]])  # row-major (dh, dw)
    dense = x.reshape(1, 2, 2, 2)
    seen = {}
    merge.norm = torch.nn.Identity()
    merge.reduction = torch.nn.Identity()
    seen["sparse"] = merge(x, torch.from_numpy(index.reshape(-1)))  # shared: [4 * N']
    seen["per_sample"] = merge(x, torch.from_numpy(index.reshape(1, -1)))  # [B, 4 * N']
    seen["dense"] = merge.forward_dense(dense).reshape(1, 1, 8)
    expected = torch.tensor([[[0.0, 0, 1, 0, 0, 1, 1, 1]]])
    assert all(torch.equal(seen[k], expected) for k in ("sparse", "per_sample", "dense"))


def test_layouts_are_built_once_outside_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    config = CONFIGS["square"]
    enc, _ = _pair(config)
    mask = _masks(config, False, seed=0)
    step = enc.prepare(mask, batch=2)
    assert isinstance(step, SwinStep)
    # stages 1-2 shift, stage 3 (4x4 tokens, window 4) does not: one layout reused
    assert step.layouts[0][0] is not step.layouts[0][1]
    assert step.layouts[2][0] is step.layouts[2][1]
    assert step.num_visible == (128, 32, 8)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a layout was built inside forward")

    monkeypatch.setattr(swin, "window_layout", forbidden)
    x = _images(config)
    out = enc(x, step)
    assert out.shape == (2, 8, config.num_features)


# -- MAE ------------------------------------------------------------------------------------------


def test_decoder_places_every_latent_at_its_own_unit() -> None:
    config = CONFIGS["big_units"]  # 2x2 final tokens per unit, per-sample masks
    model = GreenMIMSwin(config).double()
    x = _images(config)
    mask = _masks(config, True, seed=7, ratio=0.75)
    final = upsample_mask(mask, config.unit_tokens >> (config.num_stages - 1))  # B, Hf, Wf
    hf, wf = final.shape[-2:]

    def encoder(images: torch.Tensor, step: SwinStep) -> torch.Tensor:
        # latents that carry the (h, w) of the final token they belong to, computed from the
        # mask independently of the step's indices
        codes = [torch.tensor(np.argwhere(final[b]), dtype=torch.float64) for b in range(2)]
        lat = torch.zeros(2, len(codes[0]), config.num_features, dtype=torch.float64)
        lat[..., :2] = torch.stack(codes) + 1  # +1: never equal to a zero mask token
        return lat

    model.encoder.forward = encoder  # type: ignore[method-assign]
    with torch.no_grad():
        model.decoder_embed.weight.zero_()
        model.decoder_embed.weight[:2, :2] = torch.eye(2, dtype=torch.float64)
        model.decoder_embed.bias.zero_()
        model.mask_token.fill_(-7.0)
    captured = {}
    model.decoder_blocks[0].register_forward_pre_hook(
        lambda mod, args: captured.setdefault("x", args[0])
    )
    _, _, returned = model(x, mask)
    assert torch.equal(returned, torch.from_numpy(mask))
    tokens = (captured["x"] - model.decoder_pos_embed).reshape(2, hf, wf, -1)
    for b in range(2):
        for h in range(hf):
            for w in range(wf):
                if final[b, h, w]:
                    assert tokens[b, h, w, :2].tolist() == pytest.approx([h + 1, w + 1])
                    assert tokens[b, h, w, 2:].abs().max() < 1e-12
                else:
                    assert tokens[b, h, w].tolist() == pytest.approx([-7.0] * tokens.shape[-1])


def test_place_latents_shared_and_per_sample_agree() -> None:
    config = CONFIGS["square"]
    model = GreenMIMSwin(config).double()
    mask = _masks(config, False, seed=1)
    shared = model.encoder.prepare(mask, batch=2)
    stacked = model.encoder.prepare(np.stack([mask, mask]), batch=2)
    lat = torch.randn(2, int(mask.sum()), config.decoder_dim, dtype=torch.float64)
    a = model.place_latents(lat, shared.final_index)  # index [N]
    b = model.place_latents(lat, stacked.final_index)  # index [B, N]
    assert torch.equal(a, b)
    flat = mask.reshape(-1)
    assert torch.equal(a[:, flat], lat)


def test_loss_only_on_masked_units_and_norm_pix() -> None:
    config = CONFIGS["square"]
    model = GreenMIMSwin(config).double()
    x = _images(config)
    mask = _masks(config, True, seed=2)
    step = model.encoder.prepare(mask, batch=2)
    pred = torch.randn(2, 16, config.decoder_patch**2 * 3, dtype=torch.float64)
    base = model.loss(x, pred, step)
    visible = torch.from_numpy(mask.reshape(2, -1))
    bumped = pred + 5.0 * visible[..., None]
    assert torch.equal(model.loss(x, bumped, step), base)
    assert not torch.equal(model.loss(x, pred + 5.0 * ~visible[..., None], step), base)
    # norm-pix target by hand
    target = layers.patchify(x, config.decoder_patch)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    per = ((pred - target) ** 2).mean(-1)
    torch.testing.assert_close(base, per[~visible].mean())
    # patchify / unpatchify round trip
    grid = config.stage_grids[-1]
    p = layers.patchify(x, config.decoder_patch)
    assert torch.equal(layers.unpatchify(p, config.decoder_patch, grid), x)


def test_forward_shapes_and_masks() -> None:
    config = CONFIGS["square"]
    model = GreenMIMSwin(config)
    x = _images(config).float()
    loss, pred, mask = model(x, mask_ratio=0.75, rng=0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert pred.shape == (2, 16, 16 * 16 * 3)
    assert mask.shape == (2, 4, 4) and torch.equal(mask[0], mask[1]) and int(mask[0].sum()) == 4
    _, _, mask = model(x, mask_ratio=0.75, rng=0, per_sample=True)
    assert mask.sum((1, 2)).tolist() == [4, 4]
    _, _, again = model(x, mask_ratio=0.75, rng=0, per_sample=True)
    assert torch.equal(mask, again)  # same seed, same masks
    # nothing masked: loss 0 on no patches, still differentiable
    loss, _, mask = model(x, np.ones(config.unit_grid, dtype=bool))
    assert mask.all() and float(loss.detach()) == 0.0
    loss.backward()


def test_mae_loss_decreases_over_20_steps() -> None:
    config = CONFIGS["square"].replace(norm_pix_loss=False)
    torch.manual_seed(0)
    model = GreenMIMSwin(config)
    # four smooth, fixed images
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    images = torch.stack(
        [torch.stack([torch.sin(3 * xx + k), torch.cos(2 * yy - k), xx * yy * k]) for k in range(4)]
    )
    eval_mask = sample_masks(1, config.unit_grid, 0.75, rng=123)[0]

    def evaluate() -> float:
        with torch.no_grad():
            return float(model(images, eval_mask)[0])

    before = evaluate()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(20):
        loss, _, _ = model(images, mask_ratio=0.75, rng=rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    after = evaluate()
    # on a fixed evaluation mask, and on the training masks (new every step)
    assert after < 0.85 * before, (before, after)
    assert np.mean(losses[-5:]) < 0.85 * losses[0], losses


def test_state_dict_round_trip() -> None:
    config = CONFIGS["square"]
    torch.manual_seed(0)
    model = GreenMIMSwin(config)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    other = GreenMIMSwin(config)
    other.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    x = _images(config).float()
    mask = _masks(config, False, seed=0)
    with torch.no_grad():
        a, pa, _ = model(x, mask)
        b, pb, _ = other(x, mask)
    assert torch.equal(a, b) and torch.equal(pa, pb)
    # the encoder's weights alone load into the timm-named reference
    ref = _reference(config)
    ref.load_state_dict(model.encoder.state_dict(), strict=True)
    assert "decoder_pos_embed" not in model.state_dict()  # fixed, derived: not saved


def test_dense_baseline_shares_weights() -> None:
    config = CONFIGS["square"]
    mae = GreenMIMSwin(config)
    dense = SimMIMSwin(mae)
    ours = {id(p) for p in mae.parameters()}
    extra = [n for n, p in dense.named_parameters() if id(p) not in ours]
    assert extra == ["mask_token"]
    x = _images(config).float()
    loss, pred, mask = dense(x, mask_ratio=0.75, rng=0)
    assert torch.isfinite(loss) and pred.shape == (2, 16, 768) and int(mask[0].sum()) == 4
    loss.backward()
    assert dense.mask_token.grad is not None and mae.encoder.norm.weight.grad is not None
    # the same mask through both models gives the same loss when nothing is masked
    full = np.ones(config.unit_grid, dtype=bool)
    with torch.no_grad():
        torch.testing.assert_close(dense(x, full)[1], mae(x, full)[1], rtol=1e-4, atol=1e-5)


# -- presets and parameter counts ----------------------------------------------------------------


def _encoder_params(config: SwinConfig) -> int:
    """Swin's parameter count by formula (timm's SwinTransformer without the head)."""
    e, p, c = config.embed_dim, config.patch_size, config.in_chans
    total = c * p * p * e + e + 2 * e  # patch_embed.proj + patch_embed.norm
    hidden = config.mlp_ratio
    for i, ((window, _), dim, heads) in enumerate(
        zip(config.stage_windows, config.stage_dims, config.num_heads, strict=True)
    ):
        if i > 0:
            total += 2 * (2 * dim) + (2 * dim) * dim  # downsample norm(4C) + reduction(4C->2C)
        table = (2 * window[0] - 1) * (2 * window[1] - 1) * heads
        block = 2 * dim + 3 * dim * dim + 3 * dim + dim * dim + dim + table + 2 * dim
        block += int(hidden * dim) * dim + int(hidden * dim) + int(hidden * dim) * dim + dim
        total += config.depths[i] * block
    return total + 2 * config.num_features


def _decoder_params(config: SwinConfig) -> int:
    d, out = config.decoder_dim, config.decoder_patch**2 * config.in_chans
    block = 12 * d * d + 13 * d
    return config.num_features * d + d + d + config.decoder_depth * block + 2 * d + d * out + out


@pytest.mark.parametrize(
    "build, encoder_count",
    [
        (greenmim_swin_tiny, 27_519_354),  # timm swin_tiny_patch4_window7_224 minus its head
        (greenmim_swin_base, 86_743_224),  # timm swin_base_patch4_window7_224 minus its head
        (lambda: greenmim_swin_base(window_size=14), None),
    ],
    ids=["tiny", "base_w7", "base_w14"],
)
def test_preset_parameter_counts(build, encoder_count: int | None) -> None:
    with torch.device("meta"):
        model = build()
    config = model.config
    enc = sum(p.numel() for p in model.encoder.parameters())
    assert enc == _encoder_params(config)
    if encoder_count is not None:
        assert enc == encoder_count
    dec = sum(p.numel() for p in model.parameters()) - enc
    assert dec == _decoder_params(config)


def test_preset_geometry() -> None:
    tiny = preset_config("greenmim_swin_tiny")
    assert tiny.norm_eps == 1e-5 and tiny.unit_grid == (7, 7) and tiny.decoder_patch == 32
    assert tiny.stage_windows[0] == ((7, 7), (3, 3)) and tiny.stage_windows[3] == ((7, 7), (0, 0))
    base14 = preset_config("greenmim_swin_base", window_size=14)
    assert base14.norm_eps == 1e-6
    assert [w for w, _ in base14.stage_windows] == [(14, 14), (14, 14), (14, 14), (7, 7)]
    assert [s for _, s in base14.stage_windows] == [(7, 7), (7, 7), (0, 0), (0, 0)]
    other = preset_config("greenmim_swin_tiny", img_size=448)
    assert other.unit_grid == (14, 14) and other.stage_grids[-1] == (14, 14)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(img_size=60), "img_size"),
        (dict(img_size=72), "mask_unit"),  # 72 = 18 tokens, not whole 16 px units
        (dict(mask_unit=8), r"2\*\*\(stages - 1\)"),
        (dict(mask_unit=12), "mask_unit"),
        (dict(img_size=96, window_size=5), "window_size"),
        (dict(num_heads=(2, 2)), "num_heads"),
        (dict(num_heads=(3, 2, 4)), "num_heads"),
        (dict(decoder_dim=30), "decoder_dim"),
        (dict(patch_size=0), "patch_size"),
    ],
)
def test_bad_config(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SwinConfig(**{**TINY, **changes})


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(layout_mode="dense"), "layout_mode"),
        (dict(strategy="fastest"), "strategy"),
        (dict(group_size=0), "group_size"),
        (dict(window=3), "window"),
    ],
)
def test_bad_solver_settings(options: dict, match: str) -> None:
    model = GreenMIMSwin(CONFIGS["square"])
    with pytest.raises((ValueError, TypeError), match=match):
        model.preparer(**options)
    with pytest.raises((ValueError, TypeError), match=match):
        model.prepare(_masks(CONFIGS["square"], False, seed=0), **options)


def test_bad_preset() -> None:
    with pytest.raises(ValueError, match="window_size"):
        greenmim_swin_base(window_size=9)
    with pytest.raises(ValueError, match="name"):
        create_model("swin_huge")


@pytest.mark.parametrize(
    "images, mask, match",
    [
        (torch.randn(2, 1, 64, 64), None, "in_chans=3"),
        (torch.randn(2, 3, 32, 32), None, "images"),
        (torch.randn(3, 64, 64), None, "images"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.long), None, "images"),
        (torch.randn(2, 3, 64, 64), np.ones((16, 16), dtype=bool), "mask-unit grid"),
        (torch.randn(2, 3, 64, 64), np.ones((4, 4), dtype=np.int64), "bool"),
        (torch.randn(2, 3, 64, 64), np.ones((3, 4, 4), dtype=bool), "batch"),
        (torch.randn(2, 3, 64, 64), np.zeros((4, 4), dtype=bool), "at least one visible"),
        (
            torch.randn(2, 3, 64, 64),
            np.stack([np.eye(4, dtype=bool), np.ones((4, 4), dtype=bool)]),
            "equal visible counts",
        ),
    ],
)
def test_bad_input(images: torch.Tensor, mask: np.ndarray | None, match: str) -> None:
    model = GreenMIMSwin(CONFIGS["square"])
    with pytest.raises(GroupingValueError, match=match):
        model(images, mask)


def test_step_for_another_batch_is_rejected() -> None:
    model = GreenMIMSwin(CONFIGS["square"])
    step = model.encoder.prepare(sample_masks(3, (4, 4), 0.5, rng=0))
    with pytest.raises(ValueError, match="batch"):
        model(torch.randn(2, 3, 64, 64), step)


# -- the step protocol ----------------------------------------------------------------------------


def test_step_pickles_moves_and_preparer_matches_prepare() -> None:
    import pickle

    model = GreenMIMSwin(CONFIGS["square"])
    mask = _masks(CONFIGS["square"], True, seed=4)
    prep = model.preparer(strategy="ffd")
    step = pickle.loads(pickle.dumps(prep))(mask, batch=2)  # as in a DataLoader worker
    direct = model.prepare(mask, batch=2, strategy="ffd")
    assert step.batch == 2 and step.embed_index.shape == direct.embed_index.shape
    for a, b in zip(step.layouts, direct.layouts, strict=True):
        assert torch.equal(a[0].index, b[0].index) and torch.equal(a[1].rel_index, b[1].rel_index)
    again = pickle.loads(pickle.dumps(step))
    x = _images(CONFIGS["square"]).float()
    with torch.no_grad():
        assert torch.equal(model(x, again)[0], model(x, direct)[0])
    # .to() moves every tensor, layouts included; the same device returns the step itself
    assert step.to("cpu") is step
    moved = step.to("meta")
    assert moved.device.type == "meta" and moved.layouts[0][1].device.type == "meta"
    assert moved.merge_index[0] is None and moved.token_masks is step.token_masks
    with pytest.raises(ValueError, match="cpu"):
        model(x, moved)
    # the preparer holds no weights
    assert len(pickle.dumps(prep)) < 10_000


def test_no_profiling_fields_in_steps_and_no_solver_settings_in_configs() -> None:
    import dataclasses

    fields = {f.name for f in dataclasses.fields(SwinStep)}
    assert not any("time" in f or f.endswith("_s") for f in fields), fields
    config_fields = {f.name for f in dataclasses.fields(SwinConfig)}
    assert not config_fields & {"group_size", "strategy", "layout_mode"}
