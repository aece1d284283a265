"""HiP: equal to the official Haiku code (fixtures recorded by ``tests/fixtures/record_hip.py``
from google-deepmind/hierarchical_perceiver), the published parameter counts and trees, the
core's groups, group-wise masked auto-encoding, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import grouping as gp
from grouping.core.errors import GroupingValueError
from grouping.models import create_model, list_models, model_info
from grouping.models import hip as H
from grouping.train.loop import TrainConfig, train

FIXTURES = Path(__file__).parent / "fixtures"
FORWARD = np.load(FIXTURES / "hip_forward.npz")
CASES = sorted({k.split("|")[0] for k in FORWARD.keys()})
TREES = json.loads((FIXTURES / "hip_params.json").read_text())["cases"]

# a tiny HiP for the masked path and the training run
TINY = dict(
    num_groups=(4, 1, 4),
    num_self_attends_per_block=(1, 1, 1),
    z_index_dim=(8, 8, 8),
    num_z_channels=(16, 32, 16),
    num_self_attend_heads=(2, 2, 2),
    num_embedding_channels=8,
)


def _tree(case: str) -> dict[str, dict[str, np.ndarray]]:
    tree: dict[str, dict[str, np.ndarray]] = {}
    for key in FORWARD.keys():
        if key.startswith(f"{case}|param|"):
            _, _, path, name = key.split("|")
            tree.setdefault(path, {})[name] = FORWARD[key]
    return tree


def _official_model(case: str) -> tuple[H.HiP, dict]:
    cfg = json.loads(str(FORWARD[f"{case}|config"]))
    cls = H.HiP if cfg["class"] == "HiP" else H.HiPClassBottleneck
    datasets = {d: {m: tuple(s) for m, s in mods.items()} for d, mods in cfg["datasets"].items()}
    model = cls(**cfg["kwargs"], datasets=datasets)
    H.load_haiku_params(model, _tree(case))
    return model.eval(), datasets


def _close(ours: torch.Tensor, theirs: np.ndarray, rtol: float = 1e-4) -> None:
    """Within ``rtol`` of the reference's scale."""
    ref = torch.from_numpy(theirs)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = float(ref.abs().max()) if ref.numel() else 1.0
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=rtol * (scale or 1.0))


# -- equal to the official code ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_forward_equals_official(case: str) -> None:
    model, datasets = _official_model(case)
    for ds, mods in datasets.items():
        inputs = {m: torch.from_numpy(FORWARD[f"{case}|input|{ds}|{m}"]) for m in mods}
        with torch.no_grad():
            out = model(inputs)
        assert set(out) == {"input_reconstruction", "latents"}
        for kind in out:
            expected = {
                k.split("|")[-1]
                for k in FORWARD.keys()
                if k.startswith(f"{case}|output|{ds}|{kind}|")
            }
            assert set(out[kind]) == expected
            for m, value in out[kind].items():
                _close(value, FORWARD[f"{case}|output|{ds}|{kind}|{m}"])


def test_fixture_cases_cover_the_options() -> None:
    configs = {c: json.loads(str(FORWARD[f"{c}|config"])) for c in CASES}
    kwargs = [c["kwargs"] for c in configs.values()]
    assert {"HiP", "HiPClassBottleneck"} == {c["class"] for c in configs.values()}
    assert {k.get("regroup_type") for k in kwargs} >= {"reshape", "transpose_reshape"}
    assert any(k.get("processor_index_dim_eval") for k in kwargs)
    assert any(k.get("num_position_encoding_channels") is None for k in kwargs)
    assert any(len(c["datasets"]) > 1 for c in configs.values())  # one model, two datasets
    assert any(
        n % 2 for c in configs.values() for mods in c["datasets"].values() for n, _ in mods.values()
    )


FACTORIES = {
    "HiP-16": (H.hip_16, 99_224_996),
    "HiP-256": (H.hip_256, 95_585_188),
    "HiP-Mini": (H.hip_mini, 18_709_668),
    "HiPClassBottleneck-Mini": (H.hip_class_bottleneck_mini, 21_114_788),
}


@pytest.mark.parametrize("case", sorted(FACTORIES))
def test_parameter_counts_and_tree_equal_official(case: str) -> None:
    factory, published = FACTORIES[case]
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = factory()
    assert sum(p.numel() for p in model.parameters()) == published == TREES[case]["count"]
    state = model.state_dict()
    ours = {}
    for key, (path, name, transposed) in H.haiku_names(model).items():
        shape = tuple(state[key].shape)
        ours[(path, name)] = shape[::-1] if transposed else shape
    theirs = {(p, n): tuple(s) for p, n, s in TREES[case]["params"]}
    assert ours == theirs
    assert len(H.haiku_names(model)) == len(state)


def test_load_haiku_params_errors() -> None:
    model, _ = _official_model("hip")
    tree = _tree("hip")
    missing = {p: dict(v) for p, v in tree.items()}
    path = next(p for p in missing if "query_inputs" in p)
    del missing[path]
    with pytest.raises(H.HaikuParamsError, match="expected an entry .*query_inputs"):
        H.load_haiku_params(model, missing)
    bad = {p: dict(v) for p, v in tree.items()}
    bad[path]["pos_embs"] = bad[path]["pos_embs"][:, :3]
    with pytest.raises(H.HaikuParamsError, match="expected shape"):
        H.load_haiku_params(model, bad)
    extra = {**tree, "perceiver/other": {"w": np.zeros(2)}}
    with pytest.raises(H.HaikuParamsError, match="1 more"):
        H.load_haiku_params(model, extra)
    H.load_haiku_params(model, extra, strict=False)
    with pytest.raises(H.HaikuParamsError, match="params: expected a mapping"):
        H.load_haiku_params(model, [1, 2])


# -- the core's groups inside the model ----------------------------------------------------------


@pytest.mark.parametrize("dims", [(37, 5), (20,), (3, 9, 1)])
def test_group_and_ungroup_tokens_are_the_core_maps(dims) -> None:
    layout = gp.group_layout(5, dims)
    x = torch.randn(2, sum(dims), 3)
    grouped = H.group_tokens(x, torch.from_numpy(layout.index))
    np.testing.assert_array_equal(grouped.numpy(), gp.group_array(x.numpy(), layout))
    torch.testing.assert_close(H.ungroup_tokens(grouped, torch.from_numpy(layout.inverse)), x)


@pytest.mark.parametrize("kind", gp.REGROUP_TYPES)
def test_regroup_is_the_core_index(kind) -> None:
    x = torch.randn(2, 4, 6, 3)
    for out_groups in (1, 2, 3, 8, 24):
        index = torch.from_numpy(gp.regroup_index(4, 6, out_groups, kind))
        expected = x.reshape(2, 24, 3)[:, index]
        torch.testing.assert_close(H.regroup(x, out_groups, kind), expected)


# -- masking, padding, train / eval ---------------------------------------------------------------


def _mae(**overrides) -> H.HiPMAE:
    torch.manual_seed(0)
    return H.mae_hip("Mini", img_size=(6, 10), **{**TINY, **overrides})


def test_masked_path_equals_the_unmasked_model_when_nothing_is_masked() -> None:
    model = _mae().eval()
    for p in model.parameters():  # the un-embedding starts at zero: give it weights
        torch.nn.init.normal_(p, std=0.3) if p.dim() > 1 else None
    images = torch.randn(2, 3, 6, 10)
    g, length = model.mask_grid
    every = torch.arange(length).expand(1, g, length)
    step = H.HiPStep(every, every, torch.from_numpy(~model.hip.layout([60]).padding)[None], None)
    with torch.no_grad():
        _, pred, target = model(images, step)
        full = model.hip({"image": model.tokens(images)})["input_reconstruction"]["image"]
    layout = model.hip.layout([60])
    torch.testing.assert_close(H.ungroup_tokens(pred, torch.from_numpy(layout.inverse)), full)
    torch.testing.assert_close(
        H.ungroup_tokens(target, torch.from_numpy(layout.inverse)), model.tokens(images)
    )


def test_groupwise_masks_encode_fewer_keys_and_score_masked_real_tokens() -> None:
    model = _mae()
    g, length = model.mask_grid
    assert (g, length) == (4, 15)
    prep = model.preparer()
    masks = np.stack([prep.draw_mask(0.6, rng=i) for i in range(3)])
    assert (masks.sum(-1) == 6).all()  # int(15 * 0.4) per group
    step = prep(masks, batch=3)
    assert step.visible.shape == (3, 4, 6) and step.masked.shape == (3, 4, 9)
    seen = []
    handle = model.hip.blocks[0].projector.norm_kv.register_forward_hook(
        lambda m, i, o: seen.append(o.shape)
    )
    loss, pred, target = model(torch.randn(3, 3, 6, 10), step)
    handle.remove()
    assert seen == [torch.Size([3, 4, 6, 8])]  # the first cross-attention reads 6 keys a group
    assert pred.shape == target.shape == (3, 4, 9, 3) and loss.ndim == 0
    shared = prep(masks[0])
    assert shared.batch is None and shared.visible.shape == (1, 4, 6)
    model(torch.randn(5, 3, 6, 10), shared)  # one mask for any batch


def test_mae_loss_decreases_on_a_fixed_batch() -> None:
    model = _mae()
    images = torch.randn(4, 3, 6, 10)
    step = model.prepare(np.stack([model.preparer().draw_mask(0.6, rng=i) for i in range(4)]))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = model(images, step)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_padding_scored_only_where_real_and_masked_out_of_attention() -> None:
    # 37 tokens in 4 groups: run 10, so the last group holds 7 tokens and 3 padding slots.
    torch.manual_seed(0)
    hip = H.HiP(**{**H.VARIANTS["Mini"], **TINY}, modalities={"x": (37, 3)}, mask_padding=True)
    layout = hip.layout([37])
    assert layout.padding.sum() == 3
    z = torch.randn(2, 4, 10, 8)
    key_mask = torch.from_numpy(~layout.padding)[None].expand(2, -1, -1)
    proj = hip.blocks[0].projector.eval()
    junk = z.clone()
    junk[:, 3, 7:] = 1e3 * torch.randn(2, 3, 8)  # anything at the padding slots
    with torch.no_grad():
        masked = proj(z, key_mask=key_mask)
        torch.testing.assert_close(proj(junk, key_mask=key_mask), masked)
        assert not torch.allclose(proj(junk), proj(z))  # the official: padding takes part
    out = hip({"x": torch.randn(2, 37, 3)})
    assert torch.isfinite(out["input_reconstruction"]["x"]).all()
    cfg = H.HiPMAEConfig(4, 10, tuple(int(s) for s in np.flatnonzero(layout.padding)))
    mask = gp.groupwise_masks(1, 4, 10, 0.5, rng=0)[0]
    step = H.prepare_hip(cfg, mask)
    real = ~layout.padding
    expected = np.take_along_axis(real, step.masked[0].numpy(), axis=-1)
    np.testing.assert_array_equal(step.scored[0].numpy(), expected)


def test_a_group_of_padding_only_gives_zeros_not_nan() -> None:
    hip = H.HiP(**{**H.VARIANTS["Mini"], **TINY}, modalities={"x": (5, 2)}, mask_padding=True)
    assert hip.layout([5]).index.tolist()[-1] == [-1, -1]  # run 2: [0 1] [2 3] [4 -] [- -]
    z = torch.randn(1, 4, 2, 8)
    out = hip.blocks[0].projector(z, key_mask=torch.from_numpy(~hip.layout([5]).padding)[None])
    assert torch.isfinite(out).all()


def test_processor_latents_are_subsampled_at_train_time_only() -> None:
    hip = H.HiP(
        **{**H.VARIANTS["Mini"], **TINY}, modalities={"x": (20, 2)}, processor_index_dim_train=4
    )
    assert hip.blocks[1].projector.query_inputs.shape == (8, 32)
    x = {"x": torch.randn(2, 20, 2)}
    seen = []
    hip.blocks[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    hip.train()(x)
    hip.eval()(x)
    assert seen == [torch.Size([2, 1, 4, 32]), torch.Size([2, 1, 8, 32])]
    with torch.no_grad():
        a, b = hip(x), hip(x)
    torch.testing.assert_close(a["latents"]["x"], b["latents"]["x"])


def test_drop_path_is_per_sample_without_rescaling() -> None:
    layer = H.HiPSelfAttention(8, 2, drop_path_rate=0.5)
    x = torch.zeros(64, 1, 1, 8)
    kept = layer._drop_path(torch.ones_like(x))
    assert set(kept.unique().tolist()) <= {0.0, 1.0}  # no 1 / keep_prob
    assert kept.flatten(1).std(1).max() == 0  # one decision per sample
    assert layer.eval()._drop_path(torch.ones_like(x)).eq(1).all()


# -- registry, training ---------------------------------------------------------------------------


def test_registry_and_pretrain_run(tmp_path) -> None:
    assert {"hip_16", "hip_256", "hip_mini", "hip_16x3", "hip_class_bottleneck_mini"} <= set(
        list_models(family="hip")
    )
    assert model_info("hip_16").mask_ratio == 0.85 and model_info("hip_16").pretrain
    model = create_model("hip_mini", img_size=8, **TINY)
    assert isinstance(model, H.HiPMAE) and model.input_shape == (3, 8, 8)
    config = TrainConfig(
        model="hip_mini",
        overrides=dict(img_size=8, **TINY),
        steps=2,
        batch_size=2,
        per_sample=True,
        workers=1,
        threads=1,
        progress=False,
        log=None,
        metrics=str(tmp_path / "m.jsonl"),
    )
    summary = train(config)
    assert summary["steps_run"] == 2 and all(np.isfinite(summary["losses"]))


# -- bad input ------------------------------------------------------------------------------------


def _tiny(**changes):
    return H.HiP(**{**H.VARIANTS["Mini"], **TINY, **changes})


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: _tiny(num_groups=(1, 1, 1), modalities={"a": (4, 1), "b": (4, 1)}),
            "num_groups: expected at least one first-level group per modality",
        ),
        (
            lambda: _tiny(num_groups=(4, 3, 4), modalities={"a": (8, 1)}),
            "num_groups: expected 1 group in the middle",
        ),
        (
            lambda: _tiny(
                num_groups=(3, 2, 1, 2, 3),
                num_self_attends_per_block=(1,) * 5,
                z_index_dim=(3,) * 5,
                num_z_channels=(16,) * 5,
                num_self_attend_heads=(2,) * 5,
                num_cross_attend_heads=(1,) * 5,
                cross_attend_widening_factor=(1,) * 5,
                self_attend_widening_factor=(1,) * 5,
                modalities={"a": (8, 1)},
            ),
            "num_groups: expected a group count for block 1 that divides",
        ),
        (
            lambda: _tiny(num_groups=(4, 1), modalities={"a": (8, 1)}),
            "num_self_attends_per_block: expected 2 entries",
        ),
        (lambda: _tiny(modalities={"a": (8, 1)}, regroup_type="shuffle"), "regroup_type"),
        (lambda: _tiny(modalities={"a": (8, 1)}, activation_name="tanh"), "activation_name"),
        (
            lambda: _tiny(modalities={"a": (8, 0)}),
            r"modalities\['a'\]: expected \(num_tokens, channels\)",
        ),
        (lambda: _tiny(), "exactly one of modalities"),
        (lambda: _tiny(modalities={"a": (8, 1)}, datasets={"d": {"a": (8, 1)}}), "exactly one of"),
        (
            lambda: _tiny(datasets={"d": {"a": (8, 1)}, "e": {"a": (9, 1)}}),
            "the shape another dataset",
        ),
        (
            lambda: _tiny(modalities={"a": (8, 1)}, num_self_attend_heads=(3, 2, 3)),
            "num_self_attend_heads: expected a divisor",
        ),
        (
            lambda: _tiny(
                modalities={"a": (8, 1)}, processor_index_dim_train=4, processor_index_dim_eval=16
            ),
            "processor_index_dim_train",
        ),
        (
            lambda: _tiny(modalities={"a": (8, 1)}, processor_index_dim_eval=2),
            "processor_index_dim_eval: expected at least",
        ),
        (lambda: _tiny(modalities={"a": (8, 1)}, dropout_prob=1.5), "dropout_prob"),
        (lambda: H.mae_hip("32"), "variant"),
        (lambda: H.HiPMAE(_tiny(modalities={"a": (8, 1)}), 4, 3), "hip: expected a HiP built with"),
    ],
)
def test_bad_construction_is_a_clear_error(build, match) -> None:
    with pytest.raises(GroupingValueError, match=match):
        build()


def test_bad_forward_input_is_a_clear_error() -> None:
    hip = _tiny(datasets={"d": {"a": (8, 2), "b": (4, 1)}, "e": {"c": (6, 3)}})
    good = {"a": torch.randn(2, 8, 2), "b": torch.randn(2, 4, 1)}
    hip(good)
    cases = [
        ({"z": torch.randn(2, 8, 2)}, "modalities the model was built for"),
        ({"a": torch.randn(2, 8, 2)}, "the modalities of one dataset"),
        (
            {"a": torch.randn(2, 8, 3), "b": torch.randn(2, 4, 1)},
            r"inputs\['a'\]: expected a tensor \[B, 8, 2\]",
        ),
        ({"a": torch.randn(2, 7, 2), "b": torch.randn(2, 4, 1)}, r"inputs\['a'\]"),
        ({"a": torch.randn(2, 8, 2), "b": torch.randn(3, 4, 1)}, "the batch"),
        ({"a": torch.ones(2, 8, 2, dtype=torch.long), "b": torch.randn(2, 4, 1)}, "floating-point"),
        ({}, "a non-empty dict"),
    ]
    for inputs, match in cases:
        with pytest.raises(GroupingValueError, match=match):
            hip(inputs)
    model = _mae()
    step = model.prepare(model.preparer().draw_mask(0.5, rng=0))
    with pytest.raises(GroupingValueError, match="images: expected a tensor"):
        model(torch.randn(2, 3, 6, 11), step)
    with pytest.raises(GroupingValueError, match="mask: expected a HiPStep"):
        model(torch.randn(2, 3, 6, 10), np.ones((4, 15), bool))
    per_sample = model.prepare(np.stack([model.preparer().draw_mask(0.5, rng=i) for i in range(3)]))
    with pytest.raises(GroupingValueError, match="a step prepared for a batch of 2"):
        model(torch.randn(2, 3, 6, 10), per_sample)
    with pytest.raises(GroupingValueError, match="the same number of visible slots"):
        model.prepare(np.ones((4, 15), bool))
    with pytest.raises(GroupingValueError, match="mask: expected a bool mask"):
        model.prepare(np.ones((4, 14), bool))
    with pytest.raises(GroupingValueError, match="options"):
        model.preparer(group_size=4)


def test_layout_buffers_refill_after_meta_construction() -> None:
    """The layout buffers are derived (not in state_dict): after a meta-device build and
    to_empty, refill_layout_buffers gives the buffers and the forward of a CPU build."""
    ref = _mae()
    with torch.device("meta"):
        model = H.mae_hip("Mini", img_size=(6, 10), **TINY)
    model = model.to_empty(device="cpu")
    model.load_state_dict(ref.state_dict())
    model.hip.refill_layout_buffers()
    for (name, got), want in zip(model.named_buffers(), ref.buffers(), strict=True):
        assert torch.equal(got, want), name
    x = torch.randn(2, 3, 6, 10)
    out = model(x)
    assert out.loss is out[0] and torch.equal(out.loss, ref(x).loss)


def test_hip_classifier_is_the_class_bottlenecks_label_read_out() -> None:
    """HiPClassifier's logits are HiPClassBottleneck's label output for zero labels, with the
    same weights; it keeps no decoder half, and layer-wise decay places every parameter."""
    from tiny_configs import HIP_TINY

    from grouping.train.recipe import layer_ids

    arch = {k: v for k, v in HIP_TINY.items() if k != "img_size"}
    net = H.hip_classifier("Mini", img_size=8, num_classes=5, **arch).eval()
    full = H.HiPClassBottleneck(
        **{**H.VARIANTS["Mini"], **H._SHARED_DEFAULTS, **arch},
        modalities={"image": (64, 3), "label": (1, 5)},
        label_modalities=("label",),
    ).eval()
    missing, unexpected = full.load_state_dict(net.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(net.decoder_prefixes) for k in missing), missing
    images = torch.rand(2, 3, 8, 8)
    tokens = images.flatten(2).transpose(1, 2)
    out = full({"image": tokens, "label": torch.zeros(2, 1, 5)})["input_reconstruction"]
    torch.testing.assert_close(net(images), out["label"][:, 0], rtol=0, atol=0)
    assert len(net.blocks) == net.processor_index + 1 and not hasattr(net, "reconstruction_head")
    assert net.forward_features(images).shape == (2, 16)
    ids = layer_ids(net)
    assert ids["embed.image.weight"] == 0 and ids["blocks.1.projector.query_inputs"] == 2
    assert ids["label_unembed.label.weight"] == 3
    with pytest.raises(GroupingValueError, match="images: expected a tensor"):
        net(torch.rand(2, 3, 4, 4))
