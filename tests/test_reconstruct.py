"""grouping reconstruct and grouping plot: pixels predicted per family, un-normalisation, the
trivial predictor, the grid, the curves, and bad input as one-line errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from tiny_configs import HIERA_TINY, HIP_TINY, SWIN_TINY

from grouping.cli import main
from grouping.core.errors import GroupingValueError
from grouping.models import create_model
from grouping.models.layers import patchify
from grouping.models.mae import normalize_patches
from grouping.models.reconstruct import (
    PixelPrediction,
    masked_picture,
    predict_pixels,
    reconstruct,
)
from grouping.train import TrainConfig, train

VIDEO = dict(input_size=(8, 64, 64), embed_dim=8, num_heads=1, stages=(1, 1, 1, 1))
FAMILIES = {
    "greenmim_swin_tiny": SWIN_TINY,
    "simmim_swin_tiny": SWIN_TINY,
    "mae_hiera_tiny_224": HIERA_TINY,
    "mae_hiera_base_16x224": VIDEO,
    "hip_mini": HIP_TINY,
}


def _batch(model, n=3, ratio=0.6, seed=0):
    images = torch.randn(n, *model.input_shape, generator=torch.Generator().manual_seed(seed))
    preparer = model.preparer()
    masks = np.stack([preparer.draw_mask(ratio, rng=seed + i) for i in range(n)])
    return images, model.prepare(masks, batch=n)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_loss_in_pixels_is_the_models_own(name) -> None:
    """predict_pixels's prediction, target and visibility give back the model's loss: the
    patches are where the model scores them."""
    torch.manual_seed(0)
    model = create_model(name, **FAMILIES[name]).eval()
    images, step = _batch(model)
    pred = predict_pixels(model, images, step)
    assert pred.inputs.shape[0] == images.shape[0] * pred.frames
    b, length = pred.visible.shape
    assert pred.pred.shape == pred.target.shape == (b, length, pred.patch**2 * images.shape[1])
    assert length == pred.grid[0] * pred.grid[1] and 0 < pred.visible.float().mean() < 1
    rec = reconstruct(pred)
    assert rec.loss == pytest.approx(float(pred.loss), rel=1e-5)
    # the pasted picture equals the input exactly where the encoder saw it
    seen = rec.visible.expand_as(rec.pasted)
    assert torch.equal(rec.pasted[seen], rec.original[seen])
    assert torch.equal(rec.pasted[~seen], rec.reconstruction[~seen])
    grey = masked_picture(rec)
    assert torch.equal(grey[seen], rec.original[seen]) and bool((grey[~seen] == 0.5).all())
    # GreenMIM: the stage-1 group of every visible pixel, -1 exactly where hidden
    if name == "greenmim_swin_tiny":
        assert rec.groups is not None and rec.groups.shape == (b, *images.shape[2:])
        assert torch.equal(rec.groups >= 0, rec.visible[:, 0])
        layout = step.layouts[0][0]
        assert int(rec.groups.max()) + 1 <= layout.index.shape[0]
    else:
        assert rec.groups is None


def _hand(images: torch.Tensor, visible: torch.Tensor, patch: int, normalized: bool):
    target = patchify(images, patch)
    if normalized:
        target = normalize_patches(target)
    grid = (images.shape[2] // patch, images.shape[3] // patch)
    return target, grid


def test_true_statistics_undo_the_normalisation_exactly() -> None:
    """A prediction equal to the normalised target, un-normalised with the true statistics,
    is the image; one patch computed by hand."""
    images = torch.rand(2, 3, 8, 8)
    visible = torch.tensor([[True, False, False, True], [False, True, True, True]])
    target, grid = _hand(images, visible, 4, True)
    pred = PixelPrediction(
        images, 1, target.clone(), target, visible, 4, grid, True, torch.tensor(0.0)
    )
    rec = reconstruct(pred, stats="true")
    torch.testing.assert_close(rec.reconstruction, images.clamp(0, 1), atol=1e-5, rtol=0)
    assert rec.loss == 0.0 and rec.psnr_masked > 80
    # by hand: patch 1 of image 0 predicted as +1 everywhere -> mean + std of the true patch
    ones = target.clone()
    ones[0, 1] = 1.0
    rec = reconstruct(
        PixelPrediction(images, 1, ones, target, visible, 4, grid, True, torch.tensor(0.0))
    )
    true = images[0, :, 0:4, 4:8].permute(1, 2, 0).reshape(-1)  # (p, q, c) of patch 1
    value = float(true.mean() + (true.var() + 1e-6) ** 0.5)
    torch.testing.assert_close(
        rec.reconstruction[0, :, 0:4, 4:8], torch.full((3, 4, 4), min(value, 1.0))
    )


def test_visible_statistics_use_the_visible_neighbours_only() -> None:
    """stats='visible': a masked patch gets the mean of its visible 8-neighbours' means and
    variances (of all visible patches when it has none), never its own."""
    images = torch.rand(1, 1, 6, 6)
    images[..., 4:6, 4:6] = 5.0  # the masked corner patch: far from its neighbours
    visible = torch.ones(1, 9, dtype=torch.bool)
    visible[0, 8] = False
    target, grid = _hand(images, visible, 2, True)
    zeros = torch.zeros_like(target)
    rec = reconstruct(
        PixelPrediction(images, 1, zeros, target, visible, 2, grid, True, torch.tensor(0.0)),
        stats="visible",
        mean=(0.0,),
        std=(1.0,),
    )
    patches = patchify(images, 2)[0]  # 9, 4
    expected = patches[[4, 5, 7]].mean(dim=-1).mean()  # the neighbours of patch 8
    torch.testing.assert_close(
        rec.reconstruction[0, 0, 4:6, 4:6], torch.full((2, 2), float(expected))
    )
    # a masked patch with no visible neighbour: every visible patch's statistics
    lonely = torch.zeros(1, 9, dtype=torch.bool)
    lonely[0, 0] = True
    rec = reconstruct(
        PixelPrediction(images, 1, zeros, target, lonely, 2, grid, True, torch.tensor(0.0)),
        stats="visible",
        mean=(0.0,),
        std=(1.0,),
    )
    torch.testing.assert_close(
        rec.reconstruction[0, 0, 4:6, 4:6], torch.full((2, 2), float(patches[0].mean()))
    )


def test_trivial_loss_against_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    visible = torch.from_numpy(rng.random((2, 16)) < 0.4)
    visible[:, 0] = True
    visible[:, 1] = False
    pred = torch.from_numpy(rng.standard_normal((2, 16, 3)).astype(np.float32))
    raw = images.flatten(2).transpose(1, 2)  # B, 16, 3: 1-pixel patches
    rec = reconstruct(
        PixelPrediction(images, 1, pred, raw, visible, 1, (4, 4), False, torch.tensor(0.0))
    )
    x, v = raw.numpy(), visible.numpy()
    losses = []
    for b in range(2):
        mean = x[b][v[b]].mean(axis=0)  # the visible pixels' mean, per channel
        for i in np.flatnonzero(~v[b]):
            losses.append(((x[b, i] - mean) ** 2).mean())
    assert rec.loss_trivial == pytest.approx(float(np.mean(losses)), rel=1e-5)
    assert rec.stats == "none"
    # normalised targets: the trivial predictor is zero, its loss the targets' mean square
    target = normalize_patches(patchify(images, 2))
    vis = torch.tensor([[True, False, True, False], [False, False, True, True]])
    rec = reconstruct(
        PixelPrediction(images, 1, target * 0.5, target, vis, 2, (2, 2), True, torch.tensor(0.0))
    )
    direct = float((target[~vis] ** 2).mean())
    assert rec.loss_trivial == pytest.approx(direct, rel=1e-5)
    assert rec.loss == pytest.approx(direct / 4, rel=1e-5)


# -- the commands -----------------------------------------------------------------------------


def _pretrain(folder, name, overrides, **kw) -> str:
    train(
        TrainConfig(
            model=name,
            overrides=dict(overrides),
            steps=1,
            batch_size=2,
            checkpoint=str(folder),
            progress=False,
            log=None,
            **kw,
        )
    )
    return str(folder)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> str:
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (70, 90, 3)).astype(np.uint8)).save(root / f"{i}.png")
    return str(root)


@pytest.fixture(scope="module")
def swin(tmp_path_factory) -> str:
    return _pretrain(tmp_path_factory.mktemp("swin"), "greenmim_swin_tiny", SWIN_TINY)


@pytest.mark.parametrize(
    "name", ["greenmim_swin_tiny", "mae_hiera_tiny_224", "mae_hiera_base_16x224", "hip_mini"]
)
def test_reconstruct_writes_the_grid_and_the_numbers(name, images, tmp_path, capsys) -> None:
    from PIL import Image

    ckpt = _pretrain(tmp_path / "ck", name, FAMILIES[name])
    out, js = tmp_path / "rec.png", tmp_path / "rec.json"
    video = name == "mae_hiera_base_16x224"  # synthetic clips: a row of frames per clip
    data = [] if video else ["--data", images]
    argv = ["reconstruct", "--checkpoint", ckpt, *data, "--images", "3"]
    assert main([*argv, "--out", str(out), "--json", str(js), "--seed", "1"]) == 0
    summary = json.loads(js.read_text())
    assert summary["images"] == 3 and summary["model"] == name and summary["step"] == 1
    assert summary["stats"] == ("none" if name == "hip_mini" else "true")
    for key in ("loss", "loss_trivial", "psnr", "psnr_masked"):
        assert np.isfinite(summary[key])
    width, height = Image.open(out).size
    if video:  # four frames a row, four rows a clip
        assert height > width * 2
    else:
        assert width > height / 3 * 4 * 0.8  # four columns, three rows
    assert "grouping reconstruct: wrote" in capsys.readouterr().out
    # the same seed gives the same numbers
    assert main([*argv, "--out", str(out), "--json", str(tmp_path / "b.json"), "--seed", "1"]) == 0
    assert json.loads((tmp_path / "b.json").read_text()) == summary


def test_reconstruct_without_data_and_with_visible_statistics(swin, tmp_path) -> None:
    from grouping.cli.reconstruct import compute

    rec, summary = compute(swin, images=2, stats="visible", mask_ratio=0.5)
    assert rec.original.shape == (2, 3, 64, 64) and summary["stats"] == "visible"
    assert summary["mask_ratio"] == 0.5 and "synthetic" in summary["source"]
    assert rec.visible.float().mean().item() == pytest.approx(0.5)


def _metrics(path, finetune: bool) -> str:
    with open(path, "w") as f:
        for step in range(1, 5):
            record = {"step": step, "loss": 1.0 / step, "lr": 1e-3, "samples_per_s": 10.0}
            if finetune and step % 2 == 0:
                record.update(val_top1=0.5, val_top5=0.9, val_loss=0.7)
            f.write(json.dumps(record) + "\n")
    return str(path)


def test_plot_with_and_without_validation(tmp_path) -> None:
    from grouping.plotting import plot_metrics_files as plot_files

    pre, ft = _metrics(tmp_path / "pre.jsonl", False), _metrics(tmp_path / "ft.jsonl", True)
    assert plot_files([pre], str(tmp_path / "a.png")) == [
        "training loss",
        "learning rate",
        "throughput",
    ]
    panels = plot_files([pre, ft], str(tmp_path / "b.png"))
    assert panels[-2:] == ["validation accuracy", "validation loss"]
    assert main(["plot", ft, "--out", str(tmp_path / "c.png")]) == 0
    assert all((tmp_path / n).stat().st_size > 1000 for n in ("a.png", "b.png", "c.png"))


def _bad_inputs(tmp_path, swin) -> dict[str, str]:
    """A metrics file with a line that is not JSON, an empty one, a classifier checkpoint
    (made by hand: no run needed) and a --save encoder file (no decoder)."""
    from grouping.train.checkpoint import FORMAT, save_checkpoint

    (tmp_path / "notes.jsonl").write_text('{"step": 1, "loss": 1.0}\nthis is not json\n')
    (tmp_path / "empty.jsonl").write_text("")
    arch = dict(num_classes=3, img_size=64, window_size=4)
    clf = create_model("swin_tiny_patch4_window7_224", **arch)
    run = {"model": "swin_tiny_patch4_window7_224", "overrides": arch}
    state = {"format": FORMAT, "run": run, "step": 1, "model": clf.state_dict()}
    save_checkpoint(str(tmp_path / "clf.pt"), state)
    encoder = create_model("greenmim_swin_tiny", **SWIN_TINY).encoder_state_dict()
    torch.save(encoder, tmp_path / "enc.pt")
    return {"swin": swin, "clf": str(tmp_path / "clf.pt"), "enc": str(tmp_path / "enc.pt")}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plot", "{notes}", "--out", "{png}"], "METRICS.jsonl: expected JSON lines"),
        (["plot", "{empty}", "--out", "{png}"], "at least one record"),
        (["plot", "{tmp}/none.jsonl", "--out", "{png}"], "no such file"),
        (["reconstruct", "--checkpoint", "{swin}", "--images", "0", "--out", "{png}"], "--images"),
        (["reconstruct", "--checkpoint", "{clf}", "--out", "{png}"], "masked image model"),
        (["reconstruct", "--checkpoint", "{enc}", "--out", "{png}"], "with its decoder"),
        (["reconstruct", "--checkpoint", "{swin}", "--out", "{tmp}/no/x.png"], "--out"),
        (["reconstruct", "--checkpoint", "{swin}", "--out", "{tmp}/x.jpg"], "--out"),
        (
            ["reconstruct", "--checkpoint", "{swin}", "--mask-ratio", "1", "--out", "{png}"],
            "--mask-ratio",
        ),
        (
            ["reconstruct", "--checkpoint", "{swin}", "--data", "{tmp}/nowhere", "--out", "{png}"],
            "--data",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(argv, message, swin, tmp_path, capsys) -> None:
    made = _bad_inputs(tmp_path, swin)
    png = tmp_path / "earlier.png"
    png.write_bytes(b"earlier")
    names = {"tmp": str(tmp_path), "png": str(png), "notes": str(tmp_path / "notes.jsonl")}
    names.update(empty=str(tmp_path / "empty.jsonl"), **made)
    rc = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and "\n" not in err and "Traceback" not in err, err
    assert png.read_bytes() == b"earlier"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_predict_pixels_refuses_other_models() -> None:
    clf = create_model("swin_tiny_patch4_window7_224", num_classes=3, img_size=64, window_size=4)
    with pytest.raises(GroupingValueError, match="model: expected a pixel-predicting"):
        predict_pixels(clf, torch.zeros(1, 3, 64, 64), None)


def test_visualize_every_draws_grids_and_leaves_the_run_alone(tmp_path) -> None:
    """--visualize-every 2 writes recon_STEP.png at steps 2 and 4 into the checkpoint folder,
    the run's losses are those of a run without it, and the metrics file gets its curves."""
    common = dict(
        model="greenmim_swin_tiny",
        overrides=dict(SWIN_TINY),
        steps=4,
        batch_size=2,
        per_sample=True,
        progress=False,
        log=None,
    )
    plain = train(TrainConfig(**common, checkpoint=str(tmp_path / "a")))  # type: ignore[arg-type]
    shown = train(
        TrainConfig(
            **common,  # type: ignore[arg-type]
            checkpoint=str(tmp_path / "b"),
            visualize_every=2,
            metrics=str(tmp_path / "m.jsonl"),
        )
    )
    assert shown["losses"] == plain["losses"]
    grids = sorted(n for n in os.listdir(tmp_path / "b") if n.startswith("recon_"))
    assert grids == ["recon_00000002.png", "recon_00000004.png"]
    records = [json.loads(line) for line in open(tmp_path / "m.jsonl")]
    assert ["recon_loss" in r for r in records] == [False, True, False, True]
    assert (tmp_path / "m.png").stat().st_size > 1000
    with pytest.raises(GroupingValueError, match="--visualize-every: expected a --checkpoint"):
        train(TrainConfig(**common, visualize_every=2))  # type: ignore[arg-type]


def test_clips_of_the_multimodal_autoencoder(tmp_path) -> None:
    """The multimodal autoencoder decodes whole clips with the label hidden: its loss is the
    model's on that step, the trivial loss is computed directly, and the command draws it."""
    from dataclasses import replace

    from grouping.models.multimodal import _full_step, multimodal_loss
    from grouping.models.reconstruct import reconstruct_clips
    from grouping.train.data import SyntheticClips

    ckpt = _pretrain(tmp_path / "mm", "perceiver_multimodal_autoencoder", {})
    from grouping.models.export import model_from_checkpoint
    from grouping.train.checkpoint import latest_checkpoint, load_checkpoint

    model = model_from_checkpoint(load_checkpoint(latest_checkpoint(ckpt))).model
    source = SyntheticClips(**model.clip_spec, seed=0)
    samples = [source[i, i][0] for i in range(2)]
    clips = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    rec = reconstruct_clips(model, clips)
    step = replace(_full_step(model.config, "cpu"), label_hidden=torch.ones(1, 1, dtype=torch.bool))
    assert rec.loss == pytest.approx(float(model(clips, step).loss.detach()), rel=1e-6)
    b, t, c, h, w = clips["image"].shape
    pixels = clips["image"].permute(0, 1, 3, 4, 2).reshape(b, -1, c)
    patches = clips["audio"].reshape(b, -1, model.config.samples_per_patch)
    trivial = {
        "image": pixels.mean(1, keepdim=True).expand_as(pixels),
        "audio": patches.mean((1, 2), keepdim=True).expand_as(patches),
        "label": torch.zeros(b, model.config.num_labels),
    }
    targets = {"image": pixels, "audio": patches, "label": clips["label"].argmax(-1)}
    assert rec.loss_trivial == pytest.approx(
        float(multimodal_loss(model.config, trivial, targets)[0])
    )
    assert rec.video_rec.shape == clips["image"].shape and rec.audio_rec.shape == (
        b,
        clips["audio"].shape[1],
    )
    js = tmp_path / "mm.json"
    out = tmp_path / "mm.png"
    assert (
        main(
            [
                "reconstruct",
                "--checkpoint",
                ckpt,
                "--images",
                "2",
                "--out",
                str(out),
                "--json",
                str(js),
            ]
        )
        == 0
    )
    summary = json.loads(js.read_text())
    assert (
        summary["loss"] == pytest.approx(rec.loss, rel=1e-6) and 0 <= summary["label_accuracy"] <= 1
    )
    assert out.stat().st_size > 1000


def test_grid_geometry(swin, tmp_path, monkeypatch) -> None:
    """The grid is one row per image and four columns (original, masked, reconstruction,
    pasted); a video is one column per frame and four rows per clip."""
    import grouping.plotting as plotting
    from grouping.cli.reconstruct import compute

    seen = {}

    def spy(columns, path, **kw):
        seen["columns"] = {k: np.asarray(v).shape for k, v in columns.items()}

    monkeypatch.setattr(plotting, "plot_reconstructions", spy)
    rec, summary = compute(swin, images=3)
    plotting.plot_reconstruction(rec, tmp_path / "x.png", mask_ratio=summary["mask_ratio"])
    shapes = list(seen["columns"].values())
    assert len(shapes) == 4 and all(s == (3, 64, 64, 3) for s in shapes)
    assert (
        list(seen["columns"])[0] == "original" and list(seen["columns"])[-1] == "+ visible pasted"
    )
    video = _pretrain(tmp_path / "v", "mae_hiera_base_16x224", VIDEO)
    rec, summary = compute(video, images=2)
    plotting.plot_reconstruction(rec, tmp_path / "v.png", mask_ratio=summary["mask_ratio"])
    assert list(seen["columns"]) == [f"frame {t}" for t in range(4)]
    assert all(s == (8, 64, 64, 3) for s in seen["columns"].values())  # 2 clips x 4 rows
