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
