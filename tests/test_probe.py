"""``grouping probe``: DINO's k-NN and MAE's linear probe on frozen features, tiny models on
tiny generated ImageFolder trees."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from tiny_configs import HIERA_TINY, SWIN_TINY

from grouping.cli import main
from grouping.models import create_model
from grouping.train import TrainConfig, train
from grouping.train.config import ProbeConfig
from grouping.train.probe import (
    Features,
    epoch_lr,
    extract_features,
    knn_probe,
    linear_probe,
    probe,
    probe_features,
)

pil = pytest.importorskip("PIL.Image")

SWIN = "swin_tiny_patch4_window7_224"
SWIN_ARGS = ["--model", SWIN, *[f"--set={k}={v!r}".replace(" ", "") for k, v in SWIN_TINY.items()]]
KEYS = {"method", "top1", "top5", "num_train", "num_val", "num_classes", "feature_dim"}
COLOURS = ((210, 40, 40), (40, 190, 60), (50, 60, 220))


def _image(cls: int, rng: np.random.Generator) -> np.ndarray:
    """A 64 x 64 image of class ``cls``: its colour and stripes of its own orientation."""
    yy, xx = np.mgrid[:64, :64] / 64
    stripes = np.sin(2 * np.pi * 4 * (xx if cls == 1 else yy if cls == 2 else xx + yy))
    img = np.asarray(COLOURS[cls], np.float32) + 50 * stripes[..., None]
    img = img + rng.normal(0, 25, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _make_folder(root, *, train: int = 6, val: int = 3, classes: int = 3) -> str:
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pil.fromarray(_image(c, rng)).save(folder / f"{i}.png")
    return str(root)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return _make_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def checkpoint(folder, tmp_path_factory) -> str:
    """A one-step ``grouping pretrain`` checkpoint of the tiny GreenMIM Swin."""
    directory = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig(
        model="greenmim_swin_tiny",
        overrides=dict(SWIN_TINY),
        data=os.path.join(folder, "train"),
        steps=1,
        batch_size=4,
        lr=1e-2,
        threads=1,
        checkpoint=str(directory),
        progress=False,
        log=None,
    )
    train(cfg)
    (path,) = directory.glob("ckpt_*.pt")
    return str(path)


def _cfg(folder: str, **changes: object) -> ProbeConfig:
    base = dict(init="random", model=SWIN, overrides=dict(SWIN_TINY), data=folder, k=5)
    base.update(epochs=20, warmup_epochs=2, device="cpu", threads=1, log=None)
    return ProbeConfig(**{**base, **changes})  # type: ignore[arg-type]


def _width(name: str, **overrides: object) -> int:
    """The feature width of a classifier, read off one forward."""
    model = create_model(name, **overrides).eval()
    with torch.no_grad():
        return model.forward_features(torch.zeros(1, *model.input_shape)).shape[1]


def _cli(argv: list[str]) -> int:
    return main(["probe", "--device", "cpu", "--threads", "1", *argv])


# -- the command ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["knn", "linear"])
def test_probe_command_writes_the_result_and_is_deterministic(method, folder, tmp_path) -> None:
    argv = [*SWIN_ARGS, "--data", folder, "--method", method, "--k", "5", "--epochs", "10"]
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert _cli([*argv, "--json", str(first)]) == 0
    assert _cli([*argv, "--json", str(second)]) == 0
    text = first.read_text()
    assert text.count("\n") == 1  # one JSON line, as DINO's and MAE's logs
    result = json.loads(text)
    assert set(result) == KEYS | {"settings"}
    assert result == json.loads(second.read_text())  # the probe is deterministic
    assert result["method"] == method
    assert (result["num_train"], result["num_val"], result["num_classes"]) == (18, 9, 3)
    assert result["feature_dim"] == _width(SWIN, **SWIN_TINY)
    assert 0 <= result["top1"] <= result["top5"] == 1.0  # 3 classes: top-5 holds them all
    settings = result["settings"]
    assert settings["model"] == SWIN and settings["init"] == "random"
    assert settings["image_size"] == [64, 64] and settings["seed"] == 0
    if method == "knn":
        assert (settings["k"], settings["temperature"]) == (5, 0.07)
    else:
        assert settings["optimizer"] == "sgd" and settings["epochs"] == 10
        assert settings["batch_size"] == 18 and settings["steps"] == 10  # one batch of all
        assert math.isclose(settings["lr"], 0.1 * 18 / 256)  # MAE's rule, blr * B / 256


def test_knn_with_one_neighbour_on_the_training_images_is_exact(folder, tmp_path) -> None:
    out = tmp_path / "r.json"
    argv = ["--data", folder, "--val", os.path.join(folder, "train"), "--k", "1"]
    assert _cli([*SWIN_ARGS, *argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["top1"] == 1.0 and result["num_val"] == result["num_train"] == 18


def test_probe_of_a_pretrain_checkpoint_reads_its_encoder(folder, checkpoint, tmp_path) -> None:
    pretrained = probe_features(_cfg(folder, init=checkpoint, model=None, overrides={}))
    random = probe_features(_cfg(folder))
    assert pretrained.initial.name == SWIN  # the checkpoint's classifier
    assert "greenmim_swin_tiny" in pretrained.initial.source
    assert pretrained.train.features.shape == random.train.features.shape
    assert not torch.allclose(pretrained.train.features, random.train.features, atol=1e-4)
    assert torch.equal(pretrained.train.labels, random.train.labels)
    out = tmp_path / "r.json"
    assert _cli(["--init", checkpoint, "--data", folder, "--k", "5", "--json", str(out)]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert settings["init"] == os.path.abspath(checkpoint) and settings["model"] == SWIN


def test_probe_leaves_the_global_generator_alone_and_hiera_probes(folder) -> None:
    state = torch.get_rng_state()
    cfg = _cfg(folder, model="hiera_tiny_224", overrides=dict(HIERA_TINY), method="linear")
    first, second = probe(cfg), probe(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    assert first == second and first["feature_dim"] == _width("hiera_tiny_224", **HIERA_TINY)
    assert probe(_cfg(folder, model="hiera_tiny_224", overrides=dict(HIERA_TINY)))["top1"] >= 0


def test_perceiver_features_are_the_mean_of_the_latents(folder) -> None:
    torch.manual_seed(0)
    model = create_model("perceiver_io_small").eval()
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), model.encode(x).mean(dim=1))
    result = probe(_cfg(folder, model="perceiver_io_small", overrides={}))
    assert result["feature_dim"] == model.encoder.latents.shape[1]
    assert result["settings"]["image_size"] == [32, 32]


# -- bad input: one line naming the argument, exit 2, an earlier result kept ----------------------


def _bad(kind: str, folder: str, checkpoint: str, tmp) -> tuple[list[str], str]:
    if kind == "no train/val":
        (tmp / "flat" / "a").mkdir(parents=True)
        return ["--data", str(tmp / "flat")], "--data"
    if kind == "one class":
        root = _make_folder(tmp / "one", classes=1)
        return ["--data", root], "--data"
    if kind == "empty class":
        root = _make_folder(tmp / "empty", classes=2)
        (tmp / "empty" / "val" / "class2").mkdir()
        (tmp / "empty" / "train" / "class2").mkdir()
        return ["--data", root], "empty class folder"
    if kind == "broken image":
        root = _make_folder(tmp / "broken", classes=2)
        (tmp / "broken" / "val" / "class1" / "broken.png").write_bytes(b"not a png")
        return ["--data", root], "broken.png"
    if kind == "another family":
        return ["--data", folder, "--init", checkpoint, "--model", "hiera_tiny_224"], "--init"
    if kind == "k above the images":
        return ["--data", folder, "--k", "19"], "--k"
    return ["--data", folder, "--method", "linear", "--batch-size", "1"], "--batch-size"


@pytest.mark.parametrize(
    "kind",
    [
        "no train/val",
        "one class",
        "empty class",
        "broken image",
        "another family",
        "k above the images",
        "batch of one",
    ],
)
def test_bad_input_is_one_line_and_keeps_the_earlier_result(
    kind, folder, checkpoint, tmp_path, capsys
) -> None:
    out = tmp_path / "earlier.json"
    out.write_text('{"earlier": true}\n')
    argv, message = _bad(kind, folder, checkpoint, tmp_path)
    model = [] if "--init" in argv else SWIN_ARGS
    assert _cli([*model, "--k", "5", *argv, "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert out.read_text() == '{"earlier": true}\n'
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".probe-")] == []


def test_a_json_path_in_a_missing_folder_is_refused_before_the_probe(folder, capsys) -> None:
    assert _cli([*SWIN_ARGS, "--data", folder, "--json", "/nonexistent/dir/r.json"]) == 2
    assert "--json" in capsys.readouterr().err


# -- the pieces ---------------------------------------------------------------------------------


def test_extract_features_in_order_and_in_eval_mode(folder) -> None:
    from grouping.train.data import LabeledImageFolder

    torch.manual_seed(0)
    model = create_model(SWIN, **SWIN_TINY).train()
    data = LabeledImageFolder(os.path.join(folder, "val"), 64, crop_pct=0.875)
    out = extract_features(model, data, batch_size=4)
    assert out.features.dtype == torch.float32 and out.features.shape == (
        9,
        _width(SWIN, **SWIN_TINY),
    )
    assert out.labels.dtype == torch.int64 and out.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert model.training  # the mode is restored
    images = torch.stack([data[(i, i)][0] for i in range(len(data))])
    with torch.no_grad():
        expected = model.eval().forward_features(images)
    assert torch.allclose(out.features, expected, atol=1e-5)


def test_epoch_lr_is_maes_adjust_learning_rate() -> None:
    def mae(epoch: float, lr: float, epochs: int, warmup: int, min_lr: float) -> float:
        if epoch < warmup:
            return lr * epoch / warmup
        t = (epoch - warmup) / (epochs - warmup)
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))

    for epoch in np.linspace(0, 9, 37):
        got = epoch_lr(epoch, base_lr=0.3, epochs=9, warmup_epochs=3, min_lr=0.01)
        assert math.isclose(got, mae(epoch, 0.3, 9, 3, 0.01), abs_tol=1e-12)
    assert epoch_lr(0.0, base_lr=1.0, epochs=5) == 1.0  # no warm-up: the peak at once


def test_linear_probe_separates_separable_features_with_either_optimizer() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    centres = torch.randn(3, 16, generator=g) * 3
    x = centres[labels] + 0.3 * torch.randn(60, 16, generator=g)
    tr, va = Features(x[:45], labels[:45]), Features(x[45:], labels[45:])
    sgd = linear_probe(tr, va, num_classes=3, epochs=30, batch_size=16, lr=0.1)
    assert sgd.top1 == 1.0 and sgd.steps == 30 * 2 and sgd.batch_size == 16
    lars = linear_probe(tr, va, num_classes=3, epochs=100, batch_size=16, optimizer="lars", lr=5.0)
    assert lars.top1 == 1.0 and lars.loss < 0.1
    again = [linear_probe(tr, va, num_classes=3, epochs=5, warmup_epochs=1, seed=1) for _ in "ab"]
    assert again[0] == again[1]
    with pytest.raises(ValueError, match="warmup_epochs"):
        linear_probe(tr, va, num_classes=3, epochs=5)  # MAE's 10 warm-up epochs
    assert knn_probe(tr, va, k=3).top1 == 1.0


@pytest.mark.parametrize(
    "name, value",
    [
        ("method", "svm"),
        ("optimizer", "adam"),
        ("k", 0),
        ("temperature", 0.0),
        ("epochs", 0),
        ("warmup_epochs", 30),
        ("lr", -1.0),
        ("weight_decay", -1.0),
        ("img_size", 0),
        ("data", None),
    ],
)
def test_config_errors_name_the_option(name, value, folder) -> None:
    with pytest.raises(ValueError, match="--" + name.replace("_", "-")):
        _cfg(folder, **{name: value}).validate()
