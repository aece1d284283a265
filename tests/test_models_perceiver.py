"""Perceiver IO: equal to transformers' PerceiverModel (random small configs, both decoders,
with and without a pre-processor), Fourier features against the formula, weight sharing,
sub-sampled decoding, the multimodal pieces, the registry and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grouping.core.errors import GroupingValueError
from grouping.models import create_model
from grouping.models import perceiver as P
from grouping.models.layers import CrossAttention

hf = pytest.importorskip("transformers.models.perceiver.modeling_perceiver")
from transformers import PerceiverConfig  # noqa: E402

# -- Fourier features ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dims, bands, res, concat, sine",
    [
        ((4, 6), 3, None, True, False),
        ((5,), 2, (9,), False, False),
        ((2, 3, 4), 2, (4, 6, 8), True, True),
    ],
)
def test_fourier_features_are_the_formula(dims, bands, res, concat, sine) -> None:
    got = P.fourier_features(dims, bands, max_resolution=res, concat_pos=concat, sine_only=sine)
    res = dims if res is None else res
    d = len(dims)
    rows = []
    for idx in np.ndindex(*dims):
        pos = [-1 + 2 * i / (n - 1) if n > 1 else -1.0 for i, n in zip(idx, dims, strict=True)]
        freqs = [np.linspace(1, r / 2, bands) for r in res]
        sines = [math.sin(math.pi * f * p) for p, fs in zip(pos, freqs, strict=True) for f in fs]
        cosines = [math.cos(math.pi * f * p) for p, fs in zip(pos, freqs, strict=True) for f in fs]
        rows.append((pos if concat else []) + sines + ([] if sine else cosines))
    expected = torch.tensor(rows, dtype=torch.float32)
    assert got.shape == (math.prod(dims), (d if concat else 0) + d * bands * (1 if sine else 2))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_fourier_features_reject_no_bands() -> None:
    with pytest.raises(GroupingValueError, match="num_bands"):
        P.fourier_features((4, 4), 0)


# -- equal to transformers -------------------------------------------------------------------------


def _config(**changes) -> PerceiverConfig:
    base = dict(
        num_latents=6,
        d_latents=16,
        d_model=12,
        num_blocks=2,
        num_self_attends_per_block=2,
        num_self_attention_heads=2,
        num_cross_attention_heads=1,
        image_size=16,
        num_labels=5,
    )
    return PerceiverConfig(**{**base, **changes})


def _randomize(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def _classification(config: PerceiverConfig) -> object:
    return hf.PerceiverClassificationDecoder(
        config,
        num_channels=config.d_latents,
        trainable_position_encoding_kwargs=dict(num_channels=config.d_latents, index_dims=1),
        use_query_residual=True,
    )


def _basic(config: PerceiverConfig) -> object:
    return hf.PerceiverBasicDecoder(
        config,
        output_num_channels=7,
        output_index_dims=(4, 4),
        num_channels=24,
        position_encoding_type="trainable",
        trainable_position_encoding_kwargs=dict(num_channels=24, index_dims=16),
        num_heads=2,
        widening_factor=2,
    )


def _patches(config: PerceiverConfig) -> object:
    return hf.PerceiverImagePreprocessor(
        config,
        prep_type="patches",
        spatial_downsample=4,
        position_encoding_type="fourier",
        fourier_position_encoding_kwargs=dict(
            num_bands=3, max_resolution=(16, 16), concat_pos=True, sine_only=False
        ),
    )


def _conv1x1(config: PerceiverConfig) -> object:
    return hf.PerceiverImagePreprocessor(
        config,
        prep_type="conv1x1",
        spatial_downsample=2,
        out_channels=10,
        position_encoding_type="trainable",
        concat_or_add_pos="concat",
        project_pos_dim=6,
        trainable_position_encoding_kwargs=dict(num_channels=10, index_dims=64),
    )


CASES = {
    "raw_inputs_classification": (None, _classification, (2, 9, 12)),
    "raw_inputs_basic": (None, _basic, (2, 9, 12)),
    "patches_fourier_classification": (_patches, _classification, (2, 3, 16, 16)),
    "conv1x1_trainable_basic": (_conv1x1, _basic, (2, 3, 16, 16)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("activation", ["gelu", "gelu_new"])
def test_from_transformers_equals_perceiver_model(case: str, activation: str) -> None:
    pre, dec, shape = CASES[case]
    config = _config(hidden_act=activation)
    torch.manual_seed(0)
    theirs = hf.PerceiverModel(
        config,
        decoder=dec(config),
        input_preprocessor=None if pre is None else pre(config),
    ).eval()
    _randomize(theirs)
    ours = P.from_transformers(theirs).eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        out = theirs(inputs=x)
        logits = ours(x)
        latents = ours.encode(x)
    scale = float(out.logits.abs().max())
    torch.testing.assert_close(logits, out.logits, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(
        latents,
        out.last_hidden_state,
        rtol=1e-5,
        atol=1e-5 * float(out.last_hidden_state.abs().max()),
    )
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_from_transformers_rejects_what_it_cannot_reproduce() -> None:
    config = _config()
    fourier_basic = hf.PerceiverBasicDecoder(
        config,
        output_num_channels=3,
        output_index_dims=(4, 4),
        num_channels=config.d_model,
        position_encoding_type="fourier",
        fourier_position_encoding_kwargs=dict(num_bands=2, max_resolution=(4, 4)),
    )
    with pytest.raises(GroupingValueError, match="trainable"):
        P.from_transformers(hf.PerceiverModel(config, decoder=fourier_basic))
    with pytest.raises(GroupingValueError, match="PerceiverModel"):
        P.from_transformers(torch.nn.Linear(2, 2))


# -- concatenated positions kept apart -------------------------------------------------------------


def _assert_rel(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5) -> None:
    """Equal within ``rtol`` of each element and of the largest magnitude (float32 rounding)."""
    scale = float(expected.detach().abs().max()) or 1.0
    torch.testing.assert_close(got, expected, rtol=rtol, atol=rtol * scale)


def _assert_grads_rel(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Every gradient within 1e-5 relative; one that is zero in exact arithmetic (a key bias,
    which adds the same score to every key of a query) is rounding noise on both sides: both
    below 1e-6 of the largest gradient."""
    largest = max(float(g.abs().max()) for g in expected.values())
    for name, g in expected.items():
        if float(g.abs().max()) < 1e-6 * largest:
            assert float(got[name].abs().max()) < 1e-6 * largest, name
        else:
            _assert_rel(got[name], g)


def _backward(out: torch.Tensor, leaves: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gradients of ``sum(out * g)`` (a fixed random ``g``) w.r.t. each leaf (zeros if unused)."""
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out.dtype)
    names = list(leaves)
    grads = torch.autograd.grad((out * g).sum(), [leaves[k] for k in names], allow_unused=True)
    return {
        k: torch.zeros_like(leaves[k]) if d is None else d
        for k, d in zip(names, grads, strict=True)
    }


def _mask(kind: str, b: int, h: int, n: int, m: int) -> torch.Tensor | None:
    gen = torch.Generator().manual_seed(3)
    if kind == "none":
        return None
    if kind == "padding":  # the encoder's input_mask: [B, 1, 1, M], True = attend
        keep = torch.ones(b, m, dtype=torch.bool)
        keep[0, m // 2 :] = False
        return keep[:, None, None, :]
    if kind == "empty_rows":  # per query and head, one query that may attend to nothing
        keep = torch.rand(b, h, n, m, generator=gen) < 0.6
        keep[1, 0, 2] = False
        return keep
    return torch.randn(1, h, n, m, generator=gen)  # additive float


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("mask", ["none", "padding", "empty_rows", "additive"])
@pytest.mark.parametrize("table", ["fourier", "trainable"])
def test_concat_cross_attention_equals_the_materialised_inputs(heads, mask, table) -> None:
    torch.manual_seed(0)
    b, n, m, c = 3, 5, 24, 3
    if table == "fourier":
        t = P.fourier_features((4, 6), 3)  # [24, 14] in [-1, 1], no gradient
    else:  # a table far from zero mean: the variance must not cancel
        t = (torch.randn(m, 14) * 2 + 3).requires_grad_()
    layer = P.PerceiverAttention(
        8, c + t.shape[1], num_heads=heads, qk_channels=4, v_channels=6, widening_factor=2
    )
    _randomize(layer)
    x = torch.randn(b, n, 8, requires_grad=True)
    feats = torch.randn(b, m, c, requires_grad=True)
    inputs = P.ConcatInputs(feats, t)
    attn_mask = _mask(mask, b, heads, n, m)
    leaves = {"x": x, "features": feats, **dict(layer.named_parameters())}
    if t.requires_grad:
        leaves["table"] = t
    got = layer(x, inputs, attn_mask)
    expected = layer(x, inputs.materialize(), attn_mask)
    _assert_rel(got, expected)
    expected_grads = _backward(expected, leaves)
    _assert_grads_rel(_backward(got, leaves), expected_grads)
    assert float(expected_grads["features"].abs().max()) > 0


def test_concat_cross_attention_with_dropout_is_the_formula() -> None:
    torch.manual_seed(0)
    attn = CrossAttention(8, 17, 2, qk_channels=4, v_channels=6, attn_drop=0.3)
    norm = torch.nn.LayerNorm(17)
    _randomize(attn)
    _randomize(norm, seed=1)
    q, feats, t = torch.randn(2, 5, 8), torch.randn(2, 24, 3), P.fourier_features((4, 6), 3)
    torch.manual_seed(11)
    got = P.concat_cross_attention(attn, norm, q, P.ConcatInputs(feats, t), dropout_p=0.3)
    kv = norm(P.ConcatInputs(feats, t).materialize())
    heads = lambda y: y.reshape(2, y.shape[1], 2, -1).transpose(1, 2)  # noqa: E731
    qh, kh, vh = heads(attn.q(q)), heads(attn.k(kv)), heads(attn.v(kv))
    probs = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(2), dim=-1)
    torch.manual_seed(11)
    probs = torch.nn.functional.dropout(probs, 0.3)  # the same draw: the first after the seed
    expected = attn.proj((probs @ vh).transpose(1, 2).reshape(2, 5, 6))
    _assert_rel(got, expected)


def _image_model(case: str) -> P.PerceiverIO:
    """A small PerceiverIO whose inputs take (or, for ``add``, do not take) the factored path."""
    options = {
        "fourier_concat": dict(prep_type="pixels", spatial_downsample=1, num_bands=3),
        "trainable_concat_projected": dict(
            prep_type="conv1x1",
            spatial_downsample=2,
            out_channels=5,
            position_encoding="trainable",
            num_pos_channels=7,
            project_pos_dim=6,
        ),
        "fourier_add": dict(
            prep_type="patches", spatial_downsample=2, concat_or_add_pos="add", project_pos_dim=12
        ),
        "decoder_concat": dict(prep_type="patches", spatial_downsample=2, num_bands=2),
    }[case]
    pre = P.ImagePreprocessor((3, 8, 8), max_resolution=(8, 8), **options)
    enc = P.PerceiverEncoder(4, 16, pre.num_channels, num_blocks=2, num_self_attention_heads=2)
    if case == "decoder_concat":  # queries: the inputs without positions, then positions
        dec = P.BasicDecoder(
            16,
            3,
            output_index_dims=pre.index_dims,
            num_channels=pre.feature_channels + 6,
            num_pos_channels=6,
            concat_preprocessed_input=True,
        )
    else:
        dec = P.ClassificationDecoder(16, 5, use_query_residual=True)
    model = P.PerceiverIO(enc, dec, pre)
    _randomize(model)
    return model


def _materialised_forward(model: P.PerceiverIO, x: torch.Tensor) -> torch.Tensor:
    inputs, raw = model.preprocess(x)  # the public, materialised inputs
    assert isinstance(inputs, torch.Tensor)
    z = model.encoder(inputs)
    if isinstance(model.decoder, P.ClassificationDecoder):
        return model.decoder(z)
    return model.decoder(z, model.decoder.queries(z.shape[0], raw))


@pytest.mark.parametrize(
    "case", ["fourier_concat", "trainable_concat_projected", "fourier_add", "decoder_concat"]
)
def test_perceiver_io_keeps_concatenated_positions_apart_with_the_same_results(case) -> None:
    torch.manual_seed(0)
    model = _image_model(case)
    pre = model.input_preprocessor
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    factored, raw = pre.forward_factored(x)
    direct, raw_direct = pre(x)  # called directly: the concatenated tensor, as before
    assert isinstance(direct, torch.Tensor) and torch.equal(raw, raw_direct)
    if pre.concat_or_add_pos == "concat":
        assert isinstance(factored, P.ConcatInputs) and factored.shape == direct.shape
        assert torch.equal(direct, torch.cat([raw, pre.positions(2)], dim=-1))
    else:  # added positions are mixed into every channel: nothing to keep apart
        assert isinstance(factored, torch.Tensor) and torch.equal(factored, direct)
    got, expected = model(x), _materialised_forward(model, x)
    _assert_rel(got, expected)
    _assert_rel(model.encode(x), model.encoder(model.preprocess(x)[0]))
    # float32: every gradient within 1e-5 of the largest (a small gradient that sums cancelling
    # terms carries ~5e-5 of its own size in rounding on the materialised path too)
    leaves = {"x": x, **dict(model.named_parameters())}
    got_grads, expected_grads = _backward(got, leaves), _backward(expected, leaves)
    largest = max(float(g.abs().max()) for g in expected_grads.values())
    for name, g in expected_grads.items():
        torch.testing.assert_close(got_grads[name], g, rtol=1e-5, atol=1e-5 * largest)
    # float64: the algebra is exact, every gradient within 1e-9 of its own size
    model, x = model.double(), x.detach().double().requires_grad_()
    leaves = {"x": x, **dict(model.named_parameters())}
    got, expected = model(x), _materialised_forward(model, x)
    got_grads, expected_grads = _backward(got, leaves), _backward(expected, leaves)
    largest = max(float(g.abs().max()) for g in expected_grads.values())
    for name, g in expected_grads.items():
        scale = max(float(g.abs().max()), 1e-6 * largest)  # a key bias: zero up to rounding
        torch.testing.assert_close(got_grads[name], g, rtol=1e-9, atol=1e-9 * scale)


# -- structure -------------------------------------------------------------------------------------


def test_self_attention_weights_are_shared_across_blocks() -> None:
    one = P.PerceiverEncoder(4, 8, 6, num_blocks=1, num_self_attends_per_block=2)
    three = P.PerceiverEncoder(4, 8, 6, num_blocks=3, num_self_attends_per_block=2)
    assert sum(p.numel() for p in one.parameters()) == sum(p.numel() for p in three.parameters())
    three.load_state_dict(one.state_dict())
    x = torch.randn(2, 5, 6)
    with torch.no_grad():
        z = one.cross_attention(one.latents[None].expand(2, -1, -1), x)
        for _ in range(3):
            for layer in one.self_attends:
                z = layer(z)
        torch.testing.assert_close(three(x), z)


@pytest.mark.parametrize("kind", ["trainable", "fourier"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_subsampled_decoding_equals_full_decoding_at_those_positions(kind, per_sample) -> None:
    torch.manual_seed(0)
    dec = P.BasicDecoder(
        16,
        3,
        output_index_dims=(4, 5),
        position_encoding=kind,
        num_channels=10 if kind == "fourier" else 12,  # Fourier: 2 + 2 * 2 * 2 channels
        num_bands=2,
    )
    z = torch.randn(2, 6, 16)
    full = dec(z, dec.queries(2))
    pos = torch.tensor([[0, 7, 19], [3, 4, 5]]) if per_sample else torch.tensor([1, 2, 18])
    part = dec(z, dec.queries(2, positions=pos))
    for b in range(2):
        rows = pos[b] if per_sample else pos
        torch.testing.assert_close(part[b], full[b, rows])


def test_gelu_tanh_option_differs_from_exact() -> None:
    torch.manual_seed(0)
    exact = P.PerceiverAttention(8, 6, activation="gelu")
    tanh = P.PerceiverAttention(8, 6, activation="gelu_tanh")
    tanh.load_state_dict(exact.state_dict())
    x, y = torch.randn(2, 3, 8), torch.randn(2, 4, 6)
    difference = float((exact(x, y) - tanh(x, y)).detach().abs().max())
    assert 0 < difference < 1e-2
    with pytest.raises(GroupingValueError, match="activation"):
        P.PerceiverAttention(8, activation="relu")


def test_multimodal_preprocessor_and_decoder() -> None:
    torch.manual_seed(0)
    video = P.ImagePreprocessor(
        (2, 3, 8, 8), spatial_downsample=4, temporal_downsample=1, num_bands=2
    )
    audio = P.AudioPreprocessor(48, 16, num_bands=3)
    pre = P.MultimodalPreprocessor(
        {"image": video, "audio": audio, "label": None},
        vector_channels={"label": 5},
        mask_probs={"label": 1.0},
        min_padding_size=4,
    )
    inputs = {
        "image": torch.randn(2, 2, 3, 8, 8),
        "audio": torch.randn(2, 48),
        "label": torch.randn(2, 5),
    }
    x, sizes, raw = pre(inputs)
    assert sizes == {"audio": 3, "image": 8, "label": 1} and list(sizes) == sorted(sizes)
    assert x.shape == (2, 12, pre.num_channels)
    torch.testing.assert_close(x[:, -1], pre.mask["label"].expand(2, -1))  # always hidden
    decoder = P.MultimodalDecoder(
        16,
        {
            "audio": P.BasicDecoder(
                16, 1, output_index_dims=3, position_encoding_only=True, num_channels=8
            ),
            "image": P.BasicDecoder(
                16, 1, output_index_dims=(2, 2, 2), position_encoding_only=True, num_channels=6
            ),
        },
        output_num_channels=4,
    )
    out = decoder(torch.randn(2, 5, 16), positions={"image": torch.tensor([0, 5])})
    assert out["audio"].shape == (2, 3, 4) and out["image"].shape == (2, 2, 4)
    with pytest.raises(GroupingValueError, match="inputs"):
        pre({"image": inputs["image"], "audio": inputs["audio"], "text": inputs["label"]})
    with pytest.raises(GroupingValueError, match="positions"):
        decoder(torch.randn(2, 5, 16), positions={"text": torch.tensor([0])})


def test_registered_configs() -> None:
    model = create_model("perceiver_io_small")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with torch.device("meta"):
        big = create_model("perceiver_io_imagenet")
    assert big.encoder.latents.shape == (512, 1024) and len(big.encoder.self_attends) == 6
    assert big.encoder.num_blocks == 8 and big.input_preprocessor.positions.table.shape == (
        224 * 224,
        258,
    )


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: create_model("perceiver_io_small")(torch.randn(2, 1, 32, 32)), "inputs"),
        (lambda: create_model("perceiver_io_small")(torch.randn(2, 3, 16, 16)), "inputs"),
        (lambda: P.ImagePreprocessor((3, 10, 10), spatial_downsample=4), "input_shape"),
        (lambda: P.PerceiverEncoder(4, 8, 6)(torch.randn(2, 5, 7)), "inputs"),
        (
            lambda: P.PerceiverIO(
                P.PerceiverEncoder(4, 8, 6),
                None,
                P.ImagePreprocessor((3, 8, 8), spatial_downsample=2, num_bands=1),
            ),
            "encoder",
        ),
        (lambda: P.AudioPreprocessor(50, 16), "samples_per_patch"),
        (lambda: P.PositionEncoding("learned", (4,)), "position_encoding"),
        (lambda: P.ConcatInputs(torch.zeros(2, 5, 3), torch.zeros(4, 2)), "table"),
        (lambda: P.ConcatInputs(torch.zeros(5, 3), torch.zeros(5, 2)), "features"),
    ],
)
def test_bad_input(build, match) -> None:
    with pytest.raises(GroupingValueError, match=match):
        build()


# -- multimodal autoencoding ---------------------------------------------------------------------

SMALL_AE = dict(
    frames=2,
    image_size=16,
    audio_samples_per_frame=32,
    num_labels=4,
    d_latents=32,
    num_latents=16,
    output_num_channels=32,
)


def _clips(n: int, seed: int = 0) -> dict:
    from grouping.train.data import SyntheticClips

    data = SyntheticClips(2, 16, 3, 64, 4, seed=seed)
    items = [data[(p, p)][0] for p in range(n)]
    return {k: torch.stack([x[k] for x in items]) for k in items[0]}


def test_multimodal_autoencoder_shapes_steps_and_metrics() -> None:
    torch.manual_seed(0)
    model = P.perceiver_multimodal_autoencoder(**SMALL_AE)
    inputs = _clips(3)
    prep = model.preparer()
    draw = prep.draw_mask(0.75, rng=0)
    assert draw.shape == model.mask_grid and draw[: 2 * 16 * 16].sum() == int(512 * 0.25)
    step = prep(draw)  # one draw shared by the batch
    loss, out, metrics = model(inputs, mask=step)
    assert out["image"].shape == (3, 128, 3) and out["audio"].shape == (3, 1, 16)
    assert out["label"].shape == (3, 4) and set(metrics) == {
        "psnr_image",
        "psnr_audio",
        "label_accuracy",
    }
    # full decoding (no step) decodes every pixel and audio patch
    _, full, _ = model(inputs)
    assert full["image"].shape == (3, 512, 3) and full["audio"].shape == (3, 4, 16)
    # sub-sampled decoding equals full decoding at the chosen positions when the label is shown
    shown = prep(np.concatenate([draw[:-1], [False]]))
    _, part, _ = model(inputs, mask=shown)
    torch.testing.assert_close(
        part["image"], full["image"][:, shown.image_positions], rtol=1e-5, atol=1e-5
    )
    per_sample = prep(np.stack([prep.draw_mask(0.5, rng=i) for i in range(3)]), batch=3)
    assert model(inputs, mask=per_sample)[1]["image"].shape == (3, 256, 3)
    with pytest.raises(GroupingValueError, match="inputs"):
        model({"image": inputs["image"], "audio": inputs["audio"]})


def test_multimodal_autoencoder_loss_decreases_on_a_fixed_set() -> None:
    torch.manual_seed(0)
    model = P.perceiver_multimodal_autoencoder(**SMALL_AE)
    inputs = _clips(8)
    step = model.preparer()(model.preparer().draw_mask(0.5, rng=1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses, psnrs = [], []
    for _ in range(30):
        loss, _, metrics = model(inputs, mask=step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        psnrs.append(float(metrics["psnr_image"]))
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses
    assert psnrs[-1] > psnrs[0]


def test_pretrain_trains_the_multimodal_autoencoder_with_psnr_in_the_metrics(tmp_path) -> None:
    from grouping.cli import main

    metrics = tmp_path / "m.jsonl"
    argv = [
        "pretrain",
        "--model",
        "perceiver_multimodal_autoencoder",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--no-progress",
        "--threads",
        "1",
        "--per-sample",
        "--metrics",
        str(metrics),
        *[f"--set={k}={v}" for k, v in SMALL_AE.items()],
    ]
    assert main(argv) == 0
    import json

    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all("psnr_image" in r and "psnr_audio" in r for r in records)
