"""grouping.train.recipe against the published code it follows.

Reference outputs come from ``tests/fixtures/record_recipe.py`` (run once in a scratch venv
with timm 1.0.31 and the published MAE, SimMIM and DINO files): ``recipe_lrd.json`` (MAE's
``param_groups_lrd`` on a timm ViT, SimMIM's Swin fine-tuning groups, timm's Swin layer map)
and ``recipe_tensors.pt`` (timm's Mixup / CutMix with scripted draws, its losses, MAE's LARS,
DINO's ``knn_classifier``). The rest are hand computations and Hypothesis properties.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_configs import HIERA_TINY, SWIN_TINY
from torch import nn

from grouping import GroupingValueError
from grouping.models import hiera, hip, perceiver
from grouping.models.swin import SwinConfig, SwinEncoder
from grouping.train import recipe
from grouping.train.recipe import (
    LARS,
    LinearProbeHead,
    MixParams,
    Mixup,
    box_lam,
    cutmix_box,
    finetune_loss,
    knn_classify,
    label_smoothing_cross_entropy,
    layer_ids,
    mix_images,
    mixup_target,
    num_layers,
    param_groups_lrd,
    soft_target_cross_entropy,
)

FIXTURES = Path(__file__).parent / "fixtures"
LRD = json.loads((FIXTURES / "recipe_lrd.json").read_text())
REF = torch.load(FIXTURES / "recipe_tensors.pt", weights_only=True)
FAST = settings(max_examples=25, deadline=None)


def _named_module(shapes: list, frozen: tuple[str, ...] = ()) -> nn.Module:
    """A module whose parameters have the recorded names and shapes, in the recorded order."""
    root = nn.Module()
    for name, shape in shapes:
        *path, leaf = name.split(".")
        mod = root
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, nn.Module())
            mod = getattr(mod, part)
        mod.register_parameter(leaf, nn.Parameter(torch.zeros(shape), name not in frozen))
    assert [n for n, _ in root.named_parameters()] == [n for n, _ in shapes]
    return root


def _names(model: nn.Module, groups: list[dict]) -> list[dict]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [
        dict(
            params=[names[id(p)] for p in g["params"]],
            lr_scale=g["lr_scale"],
            weight_decay=g["weight_decay"],
        )
        for g in groups
    ]


# -- layer-wise decay: the published groups ------------------------------------------------------


def test_lrd_vit_equals_mae_param_groups_lrd():
    case = LRD["vit"]
    model = _named_module(case["shapes"], tuple(case["frozen"]))
    kw = dict(weight_decay=case["weight_decay"], layer_decay=case["layer_decay"], family="vit")
    groups = param_groups_lrd(model, no_weight_decay=case["no_weight_decay"], **kw)
    assert _names(model, groups) == case["groups"]  # names, order, scales and decays exactly
    # the default no_weight_decay list is timm's VisionTransformer.no_weight_decay()
    assert _names(model, param_groups_lrd(model, **kw)) == case["groups"]
    assert [g["group_name"] for g in groups][:2] == ["layer_0_no_decay", "layer_0_decay"]


def test_lrd_swin_equals_simmim_finetune_groups():
    """SimMIM's get_swin_layer groups (what GreenMIM fine-tunes with), on timm's names."""
    case = LRD["swin"]
    model = _named_module(case["shapes"])
    groups = param_groups_lrd(
        model, weight_decay=case["weight_decay"], layer_decay=case["layer_decay"], family="swin"
    )
    assert _names(model, groups) == case["groups"]
    assert num_layers(model, family="swin") == sum(case["depths"]) + 1


def test_lrd_swin_differs_from_timm_only_at_merges_and_final_norm():
    """timm's param_groups_layer_decay flattens the blocks the same way, but puts stage s's
    patch merging with stage s's first block (SimMIM, and here: stage s-1's last) and the
    final norm with the last block (SimMIM, MAE and here: with the head)."""
    case = LRD["swin"]
    ids = layer_ids(_named_module(case["shapes"]), family="swin")
    timm_ids = case["timm_layer_map"]
    assert set(ids) == set(timm_ids)
    for name, ours in ids.items():
        if re.match(r"layers\.\d+\.downsample\.", name):
            assert ours == timm_ids[name] - 1, name
        elif name.startswith("norm."):
            assert ours == timm_ids[name] + 1, name
        else:
            assert ours == timm_ids[name], name


# -- layer-wise decay: each family's order -------------------------------------------------------


def test_lrd_swin_encoder_order():
    enc = SwinEncoder(SwinConfig(**{k: v for k, v in SWIN_TINY.items() if "decoder" not in k}))
    ids = layer_ids(enc)  # depths (1, 1, 1)
    assert num_layers(enc) == 4
    expect = {
        "patch_embed.": 0,
        "layers.0.blocks.0.": 1,
        "layers.1.downsample.": 1,
        "layers.1.blocks.0.": 2,
        "layers.2.downsample.": 2,
        "layers.2.blocks.0.": 3,
        "norm.": 4,
    }
    for name, layer in ids.items():
        (prefix,) = [p for p in expect if name.startswith(p)]
        assert layer == expect[prefix], name
    groups = param_groups_lrd(enc, weight_decay=0.05, layer_decay=0.5)
    for g in groups:  # relative position tables are kept from weight decay (timm, SimMIM)
        for p in g["params"]:
            if p.ndim > 1 and g["weight_decay"] == 0.0:
                assert any(
                    p is q
                    for n, q in enc.named_parameters()
                    if n.endswith("relative_position_bias_table")
                )


def test_lrd_hiera_order_and_no_weight_decay():
    model = hiera.hiera_tiny_224(**HIERA_TINY, num_classes=3)
    ids = layer_ids(model)
    n_blocks = sum(HIERA_TINY["stages"])
    assert num_layers(model) == n_blocks + 1
    for name, layer in ids.items():
        if name == "pos_embed" or name.startswith("patch_embed."):
            assert layer == 0
        elif m := re.match(r"blocks\.(\d+)\.", name):
            assert layer == int(m.group(1)) + 1
        else:
            assert name.split(".")[0] in ("norm", "head") and layer == n_blocks + 1
    # the same ids as MAE's get_layer_id_for_vit on these names (Hiera keeps ViT's names)
    assert ids == layer_ids(model, family="vit")
    groups = param_groups_lrd(model, weight_decay=0.05, layer_decay=0.75)
    (pos_group,) = [g for g in groups if any(p is model.pos_embed for p in g["params"])]
    assert pos_group["weight_decay"] == 0.0 and pos_group["group_name"] == "layer_0_no_decay"


def test_lrd_hiera_video_positions_are_embeddings():
    """Separate space and time positions are layer 0 (MAE's list, which names only
    ``pos_embed``, would put them with the head)."""
    with torch.device("meta"):  # the registry's video configuration, tiny
        model = hiera.hiera_base_16x224(
            input_size=(4, 32, 32), embed_dim=8, num_heads=1, stages=(1, 1, 1, 1)
        )
    ids = layer_ids(model)
    assert ids["pos_embed_spatial"] == ids["pos_embed_temporal"] == 0


def test_lrd_mae_wrapper_is_refused_with_the_parameter_named():
    model = hiera.mae_hiera_tiny_224(**HIERA_TINY)
    with pytest.raises(GroupingValueError, match=r"model: .*received 'mask_token'"):
        layer_ids(model)


def test_lrd_hip_order():
    with torch.device("meta"):  # names and shapes only: building HiP's weights takes seconds
        model = hip.hip_mini()
        bottleneck_model = hip.hip_class_bottleneck_mini(label_modalities=["imagenet_label"])
    ids = layer_ids(model)
    top = model.num_blocks + 1
    assert num_layers(model) == top
    for name, layer in ids.items():
        head = name.split(".")[0]
        if head in ("embed", "pos_emb", "position_encoding_linear"):
            assert layer == 0, name
        elif m := re.match(r"blocks\.(\d+)\.", name):
            assert layer == int(m.group(1)) + 1, name
        else:
            assert head in ("unembed", "reconstruction_head") and layer == top, name
    bottleneck = layer_ids(bottleneck_model)
    for name, layer in bottleneck.items():
        if name.startswith(("label_embed.", "label_pos_emb.")):
            assert layer == 0
        elif name.startswith(("label_head.", "label_unembed.")):
            assert layer == top


def test_lrd_perceiver_order():
    model = perceiver.perceiver_io(
        image_size=8, num_classes=3, num_latents=4, d_latents=16, num_blocks=2,
        num_self_attends_per_block=3, num_self_attention_heads=1, num_bands=2,
    )  # fmt: skip
    ids = layer_ids(model)
    assert num_layers(model) == 3 + 2
    assert ids["encoder.latents"] == 0
    for name, layer in ids.items():
        if name.startswith("encoder.cross_attention."):
            assert layer == 1
        elif m := re.match(r"encoder\.self_attends\.(\d+)\.", name):
            assert layer == int(m.group(1)) + 2
        elif name.startswith("decoder."):
            assert layer == 5
        else:
            assert name == "encoder.latents", name
    auto = perceiver.perceiver_multimodal_autoencoder()
    ids = layer_ids(auto)
    top = num_layers(auto)
    assert all(ids[n] == 0 for n in ids if n.startswith("input_preprocessor."))
    assert all(ids[n] == top for n in ids if n.split(".")[0] in ("image_head", "label_head"))


def test_lrd_unknown_names_and_families_are_errors():
    model = hiera.hiera_tiny_224(**HIERA_TINY)
    model.extra = nn.Linear(2, 2)
    with pytest.raises(GroupingValueError, match=r"received 'extra\.weight'"):
        param_groups_lrd(model, weight_decay=0.05, layer_decay=0.75)
    with pytest.raises(GroupingValueError, match=r"^model: .*pass family="):
        layer_ids(nn.Linear(2, 2))
    with pytest.raises(GroupingValueError, match=r"^family: "):
        layer_ids(model, family="resnet")  # type: ignore[arg-type]


def test_lrd_explicit_layer_ids():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    groups = param_groups_lrd(
        model,
        weight_decay=0.1,
        layer_decay=0.5,
        layer_ids={"0.weight": 0, "0.bias": 0, "1.weight": 2, "1.bias": 2},
    )
    assert [(g["group_name"], g["lr_scale"], g["weight_decay"]) for g in groups] == [
        ("layer_0_decay", 0.25, 0.1),
        ("layer_0_no_decay", 0.25, 0.0),
        ("layer_2_decay", 1.0, 0.1),
        ("layer_2_no_decay", 1.0, 0.0),
    ]
    with pytest.raises(GroupingValueError, match=r"^layer_ids: .*received '1\.weight'"):
        param_groups_lrd(
            model, weight_decay=0.1, layer_decay=0.5, layer_ids={"0.weight": 0, "0.bias": 0}
        )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(weight_decay=0.05, layer_decay=0.0), "layer_decay"),
        (dict(weight_decay=0.05, layer_decay=1.5), "layer_decay"),
        (dict(weight_decay=0.05, layer_decay=True), "layer_decay"),
        (dict(weight_decay=0.05, layer_decay="0.75"), "layer_decay"),
        (dict(weight_decay=-0.1, layer_decay=0.75), "weight_decay"),
        (dict(weight_decay=0.05, layer_decay=0.75, num_layers=3), "num_layers"),
    ],
)
def test_lrd_bad_arguments(kwargs, name):
    model = hiera.hiera_tiny_224(**HIERA_TINY)
    with pytest.raises(GroupingValueError, match=rf"^{name}: "):
        param_groups_lrd(model, **kwargs)


@FAST
@given(
    depth=st.integers(1, 6),
    decay=st.floats(0.01, 1.0),
    frozen=st.integers(0, 6),
)
def test_lrd_scales_are_monotone_in_the_layer(depth, decay, frozen):
    shapes = [["cls_token", [1, 1, 4]], ["patch_embed.proj.weight", [4, 3]]]
    shapes += [[f"blocks.{i}.fc.{k}", [4, 4] if k == "weight" else [4]]
               for i in range(depth) for k in ("weight", "bias")]  # fmt: skip
    shapes += [["norm.weight", [4]], ["head.weight", [2, 4]], ["head.bias", [2]]]
    model = _named_module(shapes, frozen=(f"blocks.{frozen}.fc.weight",))
    groups = param_groups_lrd(model, weight_decay=0.05, layer_decay=decay, family="vit")
    layers = [int(g["group_name"].split("_")[1]) for g in groups]
    scales = [g["lr_scale"] for g in groups]
    order = np.argsort(layers, kind="stable")
    assert all(np.diff(np.asarray(scales)[order]) >= 0)
    assert all(s == decay ** (depth + 1 - i) for s, i in zip(scales, layers, strict=True))
    assert scales[layers.index(depth + 1)] == 1.0
    # every trainable parameter exactly once; frozen ones left out
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)


# -- mixup / cutmix ------------------------------------------------------------------------------


class _Scripted:
    """A stand-in Generator that returns the draws timm's patched numpy returned."""

    def __init__(self, rand, beta, randint):
        self.rand, self.beta_, self.randint = list(rand), list(beta), list(randint)

    def random(self):
        return self.rand.pop(0)

    def beta(self, a, b):
        return self.beta_.pop(0)

    def integers(self, low, high):
        value = self.randint.pop(0)
        assert low <= value < high
        return value


@pytest.mark.parametrize("case", sorted(REF["mixup"]["cases"]))
def test_mixup_equals_timm(case):
    ref = REF["mixup"]["cases"][case]
    mix = Mixup(**ref["kwargs"])
    mix.rng = _Scripted(*ref["draws"])
    images = REF["mixup"]["images"].clone()
    out, targets = mix(images, REF["mixup"]["target"])
    assert torch.equal(images, REF["mixup"]["images"])  # not changed in place (timm does)
    assert torch.equal(out, ref["images"])
    assert torch.allclose(targets, ref["target"], rtol=0, atol=1e-7)
    assert not (mix.rng.rand or mix.rng.beta_ or mix.rng.randint)  # every draw used, in order


def test_cutmix_box_and_lam_equal_timm():
    for ref in REF["mixup"]["boxes"]:
        box = cutmix_box(ref["shape"], ref["lam"], tuple(ref["center"]))
        assert list(box) == ref["box"]
        assert box_lam(ref["shape"], box) == ref["corrected"]


def test_mixup_target_equals_timm():
    target = REF["mixup"]["target"]
    for key, ref in REF["mixup"]["mixup_target"].items():
        lam, smoothing = map(float, key.split("_"))
        assert torch.allclose(mixup_target(target, 5, lam, smoothing), ref, rtol=0, atol=1e-7)


@FAST
@given(
    labels=st.lists(st.integers(0, 6), min_size=1, max_size=9),
    lam=st.floats(0.0, 1.0),
    smoothing=st.floats(0.0, 1.0),
)
def test_mixed_targets_sum_to_one(labels, lam, smoothing):
    y = mixup_target(torch.tensor(labels), 7, lam, smoothing)
    assert y.shape == (len(labels), 7) and bool((y >= 0).all())
    assert torch.allclose(y.sum(1), torch.ones(len(labels)), atol=1e-6)


@FAST
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    lam=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_corrected_lam_is_the_exact_share_kept(h, w, lam, data):
    center = (data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1)))
    box = cutmix_box((h, w), lam, center)
    images = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 2, h, w)  # image i is all i
    mixed = mix_images(images, MixParams(box_lam((h, w), box), box))
    kept = (mixed == images).float().mean(dim=(1, 2, 3))  # per image
    assert torch.allclose(kept, torch.full((4,), box_lam((h, w), box)), atol=1e-6)
    y0, y1, x0, x1 = box
    assert 0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w


def test_mixup_draws_are_reproducible_and_explicit():
    x, t = torch.randn(6, 3, 16, 16), torch.arange(6)
    a = Mixup(0.8, 1.0, num_classes=6, rng=7)
    b = Mixup(0.8, 1.0, num_classes=6, rng=np.random.default_rng(7))
    before = np.random.get_state()  # noqa: NPY002 (the global state stays untouched)
    for _ in range(5):
        (xa, ya), (xb, yb) = a(x, t), b(x, t)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    after = np.random.get_state()  # noqa: NPY002
    assert all(np.array_equal(u, v) for u, v in zip(before, after, strict=True))
    per_step = [
        Mixup(0.8, 1.0, num_classes=6)(x, t, rng=np.random.default_rng((3, s))) for s in range(2)
    ]
    again = Mixup(0.8, 1.0, num_classes=6)(x, t, rng=np.random.default_rng((3, 1)))
    assert torch.equal(per_step[1].images, again.images)
    # prob 0: never mixed (smoothed one-hot targets); switch_prob 1: always CutMix
    never = Mixup(0.8, 1.0, prob=0.0, num_classes=6, rng=0)
    out = never(x, t)
    assert torch.equal(out.images, x) and torch.equal(out.targets, mixup_target(t, 6, 1.0, 0.1))
    always = Mixup(0.8, 1.0, switch_prob=1.0, num_classes=6, rng=0)
    assert all(always.draw(x.shape).box is not None for _ in range(20))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: Mixup(0.0, 0.0), "mixup_alpha"),
        (lambda: Mixup(-1.0), "mixup_alpha"),
        (lambda: Mixup(cutmix_alpha=-1.0), "cutmix_alpha"),
        (lambda: Mixup(prob=1.5), "prob"),
        (lambda: Mixup(switch_prob=-0.1), "switch_prob"),
        (lambda: Mixup(num_classes=0), "num_classes"),
        (lambda: Mixup(rng=-1), "rng"),
        (lambda: Mixup(num_classes=4)(torch.randn(1, 3, 8, 8), torch.tensor([0])), "images"),
        (lambda: Mixup(num_classes=4)(torch.randn(3, 3, 8, 8), torch.arange(3)), "images"),
        (lambda: Mixup(num_classes=4)(torch.randn(2, 8, 8).long(), torch.arange(2)), "images"),
        (lambda: Mixup(num_classes=4)(torch.randn(2, 3, 8, 8), torch.arange(3)), "target"),
        (lambda: Mixup(num_classes=4)(torch.randn(2, 3, 8, 8), torch.tensor([0, 4])), "target"),
        (lambda: mixup_target(torch.tensor([0.5]), 3), "target"),
        (lambda: mixup_target(torch.tensor([0]), 3, lam=1.5), "lam"),
        (lambda: cutmix_box((8, 8), 0.5, (8, 0)), "center"),
        (lambda: cutmix_box((8, 8), 1.5, (0, 0)), "lam"),
    ],
)
def test_mixup_bad_arguments(call, name):
    with pytest.raises(GroupingValueError, match=rf"^{name}: "):
        call()


def test_odd_batch_error_says_why():
    with pytest.raises(GroupingValueError, match=r"even batch with mixup/cutmix.*drop_last"):
        Mixup(num_classes=4)(torch.randn(1, 3, 8, 8), torch.tensor([0]))


# -- losses --------------------------------------------------------------------------------------


def test_losses_equal_timm():
    ref = REF["losses"]
    got = soft_target_cross_entropy(ref["logits"], ref["soft"])
    assert torch.allclose(got, torch.tensor(ref["soft_target"]), rtol=1e-6, atol=0)
    assert torch.allclose(
        recipe.SoftTargetCrossEntropy()(ref["logits"], ref["soft"]), got, rtol=0, atol=0
    )
    for s, value in ref["smoothing"].items():
        loss = label_smoothing_cross_entropy(ref["logits"], ref["hard"], float(s))
        assert torch.allclose(loss, torch.tensor(value), rtol=1e-6, atol=0), s
        module = recipe.LabelSmoothingCrossEntropy(float(s))
        assert torch.equal(module(ref["logits"], ref["hard"]), loss)
    # smoothing 0 is plain cross-entropy; one-hot soft targets too
    plain = nn.functional.cross_entropy(ref["logits"], ref["hard"])
    assert torch.allclose(label_smoothing_cross_entropy(ref["logits"], ref["hard"], 0.0), plain)
    one_hot = mixup_target(ref["hard"], 5)
    assert torch.allclose(soft_target_cross_entropy(ref["logits"], one_hot), plain)


def test_finetune_loss_is_maes_choice():
    assert isinstance(finetune_loss(mixup=True, smoothing=0.1), recipe.SoftTargetCrossEntropy)
    smooth = finetune_loss(mixup=False, smoothing=0.1)
    assert isinstance(smooth, recipe.LabelSmoothingCrossEntropy) and smooth.smoothing == 0.1
    assert isinstance(finetune_loss(mixup=False), nn.CrossEntropyLoss)


_LOGITS = torch.randn(2, 3)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: soft_target_cross_entropy(_LOGITS, torch.randn(2, 4)), "target"),
        (lambda: soft_target_cross_entropy(torch.randn(3), torch.randn(3)), "logits"),
        (lambda: label_smoothing_cross_entropy(_LOGITS, torch.tensor([0, 3])), "target"),
        (lambda: label_smoothing_cross_entropy(_LOGITS, torch.tensor([0])), "target"),
        (lambda: label_smoothing_cross_entropy(_LOGITS, torch.arange(2), 1.0), "smoothing"),
        (lambda: recipe.LabelSmoothingCrossEntropy(-0.1), "smoothing"),
    ],
)
def test_loss_bad_arguments(call, name):
    with pytest.raises(GroupingValueError, match=rf"^{name}: "):
        call()


# -- LARS ----------------------------------------------------------------------------------------


def test_lars_equals_mae():
    ref = REF["lars"]
    params = {k: nn.Parameter(v.clone()) for k, v in ref["init"].items()}
    opt = LARS(
        [
            dict(params=[params["weight"], params["zero"], params["still"]], weight_decay=0.05),
            dict(params=[params["bias"], params["nograd"]], weight_decay=0.0, lr=ref["lr_bias"]),
        ],
        lr=ref["lr"],
        weight_decay=0.01,
        momentum=ref["momentum"],
    )
    for grads, after in zip(ref["grads"], ref["after"], strict=True):
        for k, g in grads.items():
            params[k].grad = g.clone()
        opt.step()
        for k, p in params.items():
            assert torch.allclose(p, after[k], rtol=1e-6, atol=1e-7), k  # equal here, bit for bit
    assert torch.equal(params["nograd"], ref["init"]["nograd"])


def test_lars_closure_and_bad_arguments():
    p = nn.Parameter(torch.ones(2, 2))
    opt = LARS([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 4.0
    for kwargs, name in [
        (dict(lr=-1.0), "lr"),
        (dict(momentum=1.5), "momentum"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(trust_coefficient=0.0), "trust_coefficient"),
    ]:
        with pytest.raises(GroupingValueError, match=rf"^{name}: "):
            LARS([p], **kwargs)


# -- linear probe head ---------------------------------------------------------------------------


def test_linear_probe_head_is_maes():
    torch.manual_seed(0)
    head = LinearProbeHead(64, 10)
    bn, fc = head[0], head[1]
    assert isinstance(bn, nn.BatchNorm1d) and not bn.affine and bn.eps == 1e-6
    assert fc.weight.shape == (10, 64) and bool((fc.bias == 0).all())
    assert (
        0.008 < float(fc.weight.detach().std()) < 0.012
        and float(fc.weight.detach().abs().max()) <= 2.0
    )
    assert set(head.state_dict()) == {
        "0.running_mean", "0.running_var", "0.num_batches_tracked", "1.weight", "1.bias",
    }  # fmt: skip
    x = torch.randn(8, 64)
    head.train()
    expect = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-6) @ fc.weight.T
    assert torch.allclose(head(x), expect + fc.bias, atol=1e-5)
    with pytest.raises(GroupingValueError, match=r"^num_classes: "):
        LinearProbeHead(4, 0)


# -- k-NN ----------------------------------------------------------------------------------------


def test_knn_equals_dino():
    ref = REF["knn"]
    args = (ref["train"], ref["train_labels"], ref["test"], ref["test_labels"])
    for key, (top1, top5) in ref["results"].items():
        k, t = key.split("_")
        for chunk in (3, 256, 1000):
            got = knn_classify(*args, k=int(k), temperature=float(t), num_classes=10,
                               chunk_size=chunk)  # fmt: skip
            assert got.top1 * 100 == pytest.approx(top1, abs=1e-9), (key, chunk)
            assert got.top5 * 100 == pytest.approx(top5, abs=1e-9), (key, chunk)
    # features need not come normalised: they are normalised here
    scaled = knn_classify(3 * ref["train"], ref["train_labels"], 0.5 * ref["test"],
                          ref["test_labels"], k=20)  # fmt: skip
    assert scaled == knn_classify(*args, k=20)


@FAST
@given(
    n=st.integers(1, 40),
    d=st.integers(4, 12),
    classes=st.integers(1, 6),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_knn_on_its_own_training_set(n, d, classes, k, seed):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=gen)
    res = knn_classify(feats, labels, feats, labels, k=1, chunk_size=7)
    assert res.top1 == 1.0 and res.top5 == 1.0
    kk = min(k, n)
    res = knn_classify(feats, labels, feats, labels, k=kk, num_classes=classes)
    assert 0.0 <= res.top1 <= res.top5 <= 1.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(k=0), "k"),
        (dict(k=5), "k"),
        (dict(temperature=0.0), "temperature"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(num_classes=1), "num_classes"),
        (dict(test_features=torch.randn(3, 5)), "test_features"),
        (dict(train_labels=torch.zeros(4)), "train_labels"),
        (dict(test_labels=torch.tensor([0, -1, 1])), "test_labels"),
    ],
)
def test_knn_bad_arguments(kwargs, name):
    args = dict(
        train_features=torch.randn(4, 3),
        train_labels=torch.tensor([0, 1, 2, 1]),
        test_features=torch.randn(3, 3),
        test_labels=torch.tensor([0, 1, 1]),
        k=2,
    )
    args.update(kwargs)
    with pytest.raises(GroupingValueError, match=rf"^{name}: "):
        knn_classify(**args)
