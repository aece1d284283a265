"""Export of weights (``grouping.models.export``): the exports load into the recorded key lists
of timm's ``SwinTransformer`` / ``Hiera`` and the official ``Hiera`` /
``MaskedAutoencoderHiera`` (fixtures recorded by ``tests/fixtures/record_export.py``), with
exactly the classifier head missing; into the real classes, with equal outputs, where timm and
hiera-transformer are installed; safetensors round trips; refusals are one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_configs import HIERA_TINY, SWIN_TINY

from grouping.core.errors import GroupingValueError
from grouping.models import create_model
from grouping.models import export as E
from grouping.models import hiera as H
from grouping.models.pos_embed import sincos_2d
from grouping.train.checkpoint import FORMAT, load_checkpoint, save_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"


def _cases(name: str) -> dict[str, Any]:
    with open(FIXTURES / f"export_{name}.json") as f:
        return json.load(f)["cases"]


SWIN = _cases("timm_swin")
HIERA = _cases("hiera")
MAE_BLOCK = _cases("mae_block")["block"]


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def _recorded(entry: dict[str, Any], *, without_head: bool = True) -> dict[str, list[int]]:
    head = set(entry["head"]) if without_head else set()
    return {k: shape for k, shape in entry["state"] if k not in head}


def _build(grouping: dict[str, Any], meta: bool = True) -> torch.nn.Module:
    if not meta:
        return create_model(grouping["model"], **grouping["overrides"])
    with torch.device("meta"):
        return create_model(grouping["model"], **grouping["overrides"])


def _perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values in every parameter (biases and norms too), so that every one matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _mae_hiera(case: str, meta: bool = False) -> H.MaskedAutoencoderHiera:
    entry = HIERA[case]
    if entry["grouping"] is not None:
        return _build(entry["grouping"], meta)  # type: ignore[return-value]
    with torch.device("meta" if meta else "cpu"):
        return H.MaskedAutoencoderHiera(**entry["kwargs"], **entry["decoder_kwargs"])


# -- the recorded key lists ----------------------------------------------------------------------


# SimMIM shares GreenMIM's encoder; there is no SimMIM preset with window 14
SWIN_MODELS = [(case, "greenmim") for case in SWIN] + [
    (case, "simmim") for case in SWIN if not case.endswith("w14")
]


@pytest.mark.parametrize(("case", "family"), SWIN_MODELS)
def test_swin_export_has_timm_keys_and_shapes(case: str, family: str) -> None:
    entry = SWIN[case]
    grouping = dict(entry["grouping"], model=entry["grouping"]["model"].replace("greenmim", family))
    state = E.export_state_dict(_build(grouping), to="timm")
    # timm 1.0's relative_position_index and attn_mask are non-persistent: not in state_dict
    assert entry["persistent_buffers"] == []
    assert "relative_position_index" in entry["non_persistent_buffers"]
    assert entry["head"] == ["head.fc.weight", "head.fc.bias"]
    assert _shapes(state) == _recorded(entry)  # same keys, order and shapes; head missing
    assert E.export_state_dict(_build(grouping), to="auto").keys() == state.keys()


@pytest.mark.parametrize("case", sorted(HIERA))
def test_hiera_export_has_official_and_timm_keys(case: str) -> None:
    entry = HIERA[case]
    model = _mae_hiera(case, meta=True)
    official = E.export_state_dict(model, to="official")
    assert entry["official"]["head"] == ["head.projection.weight", "head.projection.bias"]
    assert entry["official"]["persistent_buffers"] == []
    assert sorted(_shapes(official).items()) == sorted(_recorded(entry["official"]).items())
    # with the decoder: the official MaskedAutoencoderHiera's state_dict, nothing missing
    full = E.export_state_dict(model, to="official", with_decoder=True)
    assert _shapes(full) == _recorded(entry["official_mae"], without_head=False)
    timm_state = E.export_state_dict(model, to="timm")
    assert entry["timm"]["head"] == ["head.fc.weight", "head.fc.bias"]
    assert sorted(_shapes(timm_state).items()) == sorted(_recorded(entry["timm"]).items())
    assert E.export_state_dict(model, to="auto").keys() == official.keys()


@pytest.mark.parametrize("case", ["image", "video"])
def test_hiera_classifier_keeps_its_head(case: str) -> None:
    entry = HIERA[case]
    with torch.device("meta"):
        model = H.Hiera(**entry["kwargs"])
    official = E.export_state_dict(model, to="official")
    assert _shapes(official) == _recorded(entry["official"], without_head=False)
    timm_state = E.export_state_dict(model, to="timm")
    assert sorted(_shapes(timm_state).items()) == sorted(
        _recorded(entry["timm"], without_head=False).items()
    )


def test_exports_rename_and_never_change_values() -> None:
    model = create_model("mae_hiera_tiny_224", **HIERA_TINY)
    own = model.state_dict()
    official = E.export_state_dict(model, to="official")
    timm_state = E.export_state_dict(model, to="timm")
    assert torch.equal(official["norm.weight"], own["encoder_norm.weight"])
    assert torch.equal(timm_state["head.norm.bias"], own["encoder_norm.bias"])
    for key, value in official.items():
        if not key.startswith("norm."):
            assert torch.equal(value, own[key]), key
    swin = create_model("greenmim_swin_tiny", **SWIN_TINY)
    state = E.export_state_dict(swin, to="timm")
    assert all(torch.equal(v, swin.encoder.state_dict()[k]) for k, v in state.items())


# -- the decoder ---------------------------------------------------------------------------------


def _mae_decoder_names(depth: int) -> list[str]:
    """MAE's decoder keys (facebookresearch/mae's order), with timm's ViT Block inside."""
    block = [k for k, _ in MAE_BLOCK["state"]]
    return [
        "decoder_embed.weight",
        "decoder_embed.bias",
        "mask_token",
        "decoder_pos_embed",
        *(f"decoder_blocks.{i}.{k}" for i in range(depth) for k in block),
        "decoder_norm.weight",
        "decoder_norm.bias",
        "decoder_pred.weight",
        "decoder_pred.bias",
    ]


def test_swin_with_decoder_adds_maes_decoder_keys() -> None:
    model = create_model("greenmim_swin_tiny", **SWIN_TINY)
    encoder = E.export_state_dict(model, to="timm")
    full = E.export_state_dict(model, to="timm", with_decoder=True)
    assert list(full)[: len(encoder)] == list(encoder)
    decoder = {k: v for k, v in full.items() if k not in encoder}
    depth = model.config.decoder_depth
    assert list(decoder) == _mae_decoder_names(depth)
    d, grid = SWIN_TINY["decoder_dim"], model.config.stage_grids[-1]
    assert MAE_BLOCK["kwargs"]["dim"] == d  # the recorded block has this decoder's width
    block_shapes = dict(MAE_BLOCK["state"])
    for i in range(depth):
        for key, shape in block_shapes.items():
            assert list(decoder[f"decoder_blocks.{i}.{key}"].shape) == shape
    assert list(decoder["mask_token"].shape) == [1, 1, d]
    # GreenMIM's fixed table (a non-persistent buffer of the model), computed into the export
    assert "decoder_pos_embed" not in model.state_dict()
    table = torch.from_numpy(sincos_2d(d, grid)).float()[None]
    assert torch.equal(decoder["decoder_pos_embed"], table)
    assert list(table.shape) == [1, math.prod(grid), d]  # no class-token slot, as GreenMIM


def test_simmim_with_decoder_adds_its_mask_token() -> None:
    model = create_model("simmim_swin_tiny", **SWIN_TINY)
    green = E.export_state_dict(model.mae, to="timm", with_decoder=True)
    full = E.export_state_dict(model, to="timm", with_decoder=True)
    assert list(full) == [*green, "encoder.mask_token"]
    assert torch.equal(full["encoder.mask_token"], model.mask_token.reshape(1, 1, -1))


def test_hiera_with_decoder_is_the_official_mae_state() -> None:
    model = create_model("mae_hiera_tiny_224", **HIERA_TINY)
    full = E.export_state_dict(model, to="official", with_decoder=True)
    assert full.keys() == model.state_dict().keys()
    decoder = [k for k in full if E._is_decoder(k)]
    assert sorted(decoder) == sorted(_mae_decoder_names(model.config.decoder_depth))
    assert sorted(E.export_state_dict(model, to="grouping", with_decoder=True)) == sorted(full)


def test_grouping_names_are_the_libraries() -> None:
    swin = create_model("greenmim_swin_tiny", **SWIN_TINY)
    assert E.export_state_dict(swin, to="grouping").keys() == swin.encoder_state_dict().keys()
    assert E.export_state_dict(swin, to="grouping", with_decoder=True).keys() == (
        swin.state_dict().keys()
    )
    with torch.device("meta"):
        hip = create_model("hip_mini")
    for with_decoder in (False, True):  # one U-Net: the whole model either way
        state = E.export_state_dict(hip, to="auto", with_decoder=with_decoder)
        assert state.keys() == hip.state_dict().keys()


# -- checkpoints ---------------------------------------------------------------------------------


def _checkpoint(tmp_path: Path, name: str, overrides: dict[str, Any]) -> tuple[Any, dict]:
    model = _perturbed(create_model(name, **overrides))
    path = tmp_path / "ckpt_00000001.pt"
    save_checkpoint(
        str(path),
        {
            "format": FORMAT,
            "run": {"model": name, "overrides": overrides},
            "model": model.state_dict(),
        },
    )
    return model, load_checkpoint(str(path))


def test_model_from_checkpoint_rebuilds_the_model(tmp_path: Path) -> None:
    model, ckpt = _checkpoint(tmp_path, "greenmim_swin_tiny", SWIN_TINY)
    loaded = E.model_from_checkpoint(ckpt)
    assert loaded.name == "greenmim_swin_tiny" and loaded.overrides == SWIN_TINY
    assert not loaded.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    direct = E.export_state_dict(model, to="timm")
    from_ckpt = E.export_state_dict(ckpt, to="timm")
    assert direct.keys() == from_ckpt.keys()
    assert all(torch.equal(direct[k], from_ckpt[k]) for k in direct)


def test_export_checkpoint_metadata(tmp_path: Path) -> None:
    import grouping

    _, ckpt = _checkpoint(tmp_path, "mae_hiera_tiny_224", HIERA_TINY)
    out = E.export_checkpoint(ckpt, to="auto", with_decoder=True)
    assert out.metadata == {
        "format": "pt",
        "grouping_model": "mae_hiera_tiny_224",
        "grouping_overrides": json.dumps(HIERA_TINY, sort_keys=True),
        "names": "official",
        "contents": "encoder+decoder",
        "grouping_version": grouping.__version__,
    }
    assert E.export_checkpoint(ckpt, to="timm").metadata["contents"] == "encoder"


# -- safetensors ---------------------------------------------------------------------------------


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model = _perturbed(create_model("greenmim_swin_tiny", **SWIN_TINY))
    state = E.export_state_dict(model, to="timm", with_decoder=True)
    path = tmp_path / "swin.safetensors"
    E.save_safetensors(state, path, {"names": "timm"})
    back = E.load_safetensors(path)
    assert back.metadata == {"names": "timm"}
    assert list(back.state) == sorted(state)  # safetensors stores names sorted
    for key, value in state.items():
        assert back.state[key].dtype == value.dtype
        assert torch.equal(back.state[key], value), key


def test_safetensors_shared_and_strided_tensors(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    state = {
        "tied.a": base,
        "tied.b": base,  # the same tensor twice (tied weights)
        "view": base[1:],  # a view into a larger storage
        "transposed": base.t(),  # not contiguous
        "mask": torch.tensor([True, False]),
        "index": torch.arange(3),
    }
    path = tmp_path / "shared.safetensors"
    E.save_safetensors(state, path)
    back = E.load_safetensors(path)
    assert back.metadata == {}
    for key, value in state.items():
        assert back.state[key].dtype == value.dtype
        assert torch.equal(back.state[key], value), key
    assert torch.equal(base, torch.arange(12.0).reshape(3, 4))  # the input is not changed


# -- refusals ------------------------------------------------------------------------------------


def _swin() -> torch.nn.Module:
    with torch.device("meta"):
        return create_model("greenmim_swin_tiny", **SWIN_TINY)


def _hip() -> torch.nn.Module:
    with torch.device("meta"):
        return create_model("hip_mini")


def _perceiver() -> torch.nn.Module:
    with torch.device("meta"):
        return create_model("perceiver_io_small")


def _hiera_classifier() -> torch.nn.Module:
    with torch.device("meta"):
        return H.Hiera(**HIERA["image"]["kwargs"])


def _unknown_checkpoint() -> dict[str, Any]:
    return {"format": FORMAT, "run": {"model": "vit_mystery", "overrides": {}}, "model": {}}


def _wrong_weights() -> dict[str, Any]:
    swin = create_model("greenmim_swin_tiny", **SWIN_TINY)
    return {
        "run": {"model": "greenmim_swin_tiny", "overrides": {}},  # the overrides forgotten
        "model": swin.state_dict(),
    }


BAD_EXPORTS = [
    (_hip, dict(to="timm"), "to", "received 'timm'. There is no HiP model in timm"),
    (_hip, dict(to="official"), "to", "received 'official'. The official HiP is a JAX"),
    (_perceiver, dict(to="timm"), "to", "There is no Perceiver IO model in timm"),
    (_swin, dict(to="official"), "to", "one of 'timm', 'grouping', 'auto' for GreenMIMSwin"),
    (_swin, dict(to="onnx"), "to", "one of 'timm', 'official', 'grouping', 'auto'"),
    (_swin, dict(to="timm", with_decoder="yes"), "with_decoder", "True or False"),
    (
        lambda: _mae_hiera("tiny", meta=True),
        dict(to="timm", with_decoder=True),
        "with_decoder",
        "use to='official'",
    ),
    (
        _hiera_classifier,
        dict(to="official", with_decoder=True),
        "with_decoder",
        "a classifier has no decoder",
    ),
    (_unknown_checkpoint, dict(to="timm"), "checkpoint", "registered model .* 'vit_mystery'"),
    (lambda: {"model": {}}, dict(to="timm"), "checkpoint", "a grouping training checkpoint"),
    (lambda: 3, dict(to="timm"), "checkpoint", "received 'int'"),
    (_wrong_weights, dict(to="timm"), "checkpoint", "of another shape"),
]


@pytest.mark.parametrize(("build", "options", "argument", "match"), BAD_EXPORTS)
def test_bad_export_is_one_line_naming_the_argument(
    build: Any, options: dict[str, Any], argument: str, match: str
) -> None:
    with pytest.raises(GroupingValueError, match=f"^{argument}: expected .*{match}") as info:
        E.export_state_dict(build(), **options)
    assert "\n" not in str(info.value)


def test_bad_safetensors_arguments(tmp_path: Path) -> None:
    state = {"w": torch.ones(2)}
    with pytest.raises(GroupingValueError, match="^metadata: expected a dict of str to str"):
        E.save_safetensors(state, tmp_path / "a.safetensors", {"step": 3})  # type: ignore[dict-item]
    with pytest.raises(GroupingValueError, match="^state: expected a dict of str to torch.Tensor"):
        E.save_safetensors({"w": np.ones(2)}, tmp_path / "a.safetensors")  # type: ignore[dict-item]
    with pytest.raises(GroupingValueError, match="^path: expected an existing safetensors file"):
        E.load_safetensors(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(GroupingValueError, match="^path: expected a readable safetensors") as info:
        E.load_safetensors(garbage)
    assert "\n" not in str(info.value)


# -- the real classes (where timm / hiera-transformer are installed; not in CI) -------------------


@pytest.mark.parametrize("case", ["tiny", "swin_tiny"])
def test_swin_export_loads_into_timm_with_equal_features(case: str) -> None:
    timm = pytest.importorskip("timm", reason="timm is not installed (the key lists are checked)")
    from timm.models.swin_transformer import SwinTransformer

    entry = SWIN[case]
    model = _perturbed(_build(entry["grouping"], meta=False))
    if entry["build"].startswith("timm.create_model"):
        theirs = timm.create_model(entry["build"].split("'")[1], pretrained=False)
    else:
        theirs = SwinTransformer(**entry["kwargs"])
    result = theirs.load_state_dict(E.export_state_dict(model, to="timm"), strict=False)
    assert sorted(result.missing_keys) == sorted(entry["head"])
    assert result.unexpected_keys == []
    theirs.eval()
    x = torch.randn(2, 3, *model.config.img_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(
            model.encoder.forward_dense(x), theirs.forward_features(x), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("case", ["tiny", "image", "video"])
def test_hiera_export_loads_into_the_official_classes(case: str) -> None:
    hiera = pytest.importorskip(
        "hiera", reason="hiera-transformer is not installed (the key lists are checked)"
    )
    entry = HIERA[case]
    model = _perturbed(_mae_hiera(case))
    clf = hiera.Hiera(**entry["kwargs"])
    result = clf.load_state_dict(E.export_state_dict(model, to="official"), strict=False)
    assert sorted(result.missing_keys) == sorted(entry["official"]["head"])
    assert result.unexpected_keys == []
    mae = hiera.MaskedAutoencoderHiera(**entry["kwargs"], **entry["decoder_kwargs"])
    mae.load_state_dict(E.export_state_dict(model, to="official", with_decoder=True), strict=True)
    x = torch.randn(2, 3, *model.config.input_size, generator=torch.Generator().manual_seed(2))
    mask = mae.get_random_mask(x, 0.6)
    with torch.no_grad():
        ours, theirs = model(x, mask=mask), mae(x, mask=mask)
        torch.testing.assert_close(ours.loss, theirs[0], rtol=1e-4, atol=1e-5)
        # the classifier's features: the official's last stage equals our encoder's
        clf.eval()
        _, inter = clf(x, return_intermediates=True)
        _, ours_inter = model.forward_tokens(x, None, return_intermediates=True)
        torch.testing.assert_close(ours_inter[-1], inter[-1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ["tiny", "image"])
def test_hiera_export_loads_into_timm(case: str) -> None:
    pytest.importorskip("timm", reason="timm is not installed (the key lists are checked)")
    from timm.models.hiera import Hiera as TimmHiera

    entry = HIERA[case]
    model = _perturbed(_mae_hiera(case))
    theirs = TimmHiera(**entry["timm"]["timm_kwargs"])
    result = theirs.load_state_dict(E.export_state_dict(model, to="timm"), strict=False)
    assert sorted(result.missing_keys) == sorted(entry["timm"]["head"])
    assert result.unexpected_keys == []
