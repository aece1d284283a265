"""grouping finetune: the classifier from --init, the recipe's run, evaluation, resume, errors.

Tiny models (tests/tiny_configs.py) on tiny generated ImageFolder trees, on the CPU.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from tiny_configs import HIERA_TINY, HIP_TINY, SWIN_TINY

from grouping.cli import main
from grouping.core.errors import GroupingValueError
from grouping.train import TrainConfig, train
from grouping.train.checkpoint import load_checkpoint
from grouping.train.config import FinetuneConfig
from grouping.train.finetune import ClassCollator, finetune
from grouping.train.initial import build_classifier

SWIN_ARCH = {k: v for k, v in SWIN_TINY.items() if not k.startswith("decoder")}
CLASSES = ("cat", "dog", "eel")


def _folder(root, per_class=(8, 4), size=(72, 80), classes=CLASSES) -> str:
    """FOLDER/train and FOLDER/val of coloured noise, one colour channel raised per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), per_class, strict=True):
        for k, name in enumerate(classes):
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 60, (*size, 3)).astype(np.uint8)
                pixels[..., k % 3] += 180
                Image.fromarray(pixels).save(os.path.join(root, split, name, f"{i}.png"))
    return str(root)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return _folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def swin_ckpt(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("swin_ckpt")
    train(
        TrainConfig(
            model="greenmim_swin_tiny",
            overrides=dict(SWIN_TINY),
            steps=1,
            batch_size=2,
            checkpoint=str(folder),
            progress=False,
            log=None,
        )
    )
    return str(folder / "ckpt_00000001.pt")


def _config(data: str, **changes) -> FinetuneConfig:
    base = dict(
        init="random",
        model="swin_tiny_patch4_window7_224",
        overrides=dict(SWIN_ARCH),
        data=data,
        steps=4,
        batch_size=4,
        lr=1e-3,
        threads=1,
        progress=False,
        log=None,
    )
    return FinetuneConfig(**{**base, **changes})  # type: ignore[arg-type]


# -- the classifier of --init -------------------------------------------------------------------


def test_pretrain_checkpoint_gives_its_encoder_and_a_new_head(swin_ckpt) -> None:
    from grouping.models.export import model_from_checkpoint

    initial = build_classifier(swin_ckpt, model=None, overrides={}, num_classes=3)
    assert initial.name == "swin_tiny_patch4_window7_224"
    assert initial.notes == ["new head: head.fc.weight, head.fc.bias"]
    assert not {"mask_unit", "decoder_dim", "decoder_heads"} & set(initial.overrides)
    encoder = model_from_checkpoint(load_checkpoint(swin_ckpt)).model.encoder_state_dict()
    state = initial.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in encoder.items())
    assert state["head.fc.weight"].shape == (3, 64)


def test_hiera_checkpoint_and_plain_state_dicts(tmp_path) -> None:
    train(
        TrainConfig(
            model="mae_hiera_tiny_224",
            overrides=dict(HIERA_TINY),
            steps=1,
            batch_size=2,
            checkpoint=str(tmp_path / "ck"),
            save=str(tmp_path / "enc.pt"),
            progress=False,
            log=None,
        )
    )
    from_ckpt = build_classifier(
        str(tmp_path / "ck" / "ckpt_00000001.pt"), model=None, overrides={}, num_classes=4
    )
    assert from_ckpt.name == "hiera_tiny_224" and "q_pool" not in from_ckpt.overrides
    from_save = build_classifier(
        str(tmp_path / "enc.pt"), model="hiera_tiny_224", overrides=HIERA_TINY, num_classes=4
    )
    a, b = from_ckpt.model.state_dict(), from_save.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("head."))
    assert from_save.notes == ["new head: head.projection.weight, head.projection.bias"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(model="hiera_tiny_224"), "--init: expected a checkpoint of the hiera family"),
        (dict(model="greenmim_swin_tiny"), "--model: expected a classifier"),
        (dict(model="hip_class_bottleneck_mini"), "--model: expected an image classifier of"),
    ],
)
def test_init_of_another_family_or_model_is_refused(swin_ckpt, kwargs, match) -> None:
    with pytest.raises(GroupingValueError, match=match):
        build_classifier(swin_ckpt, overrides={}, num_classes=3, **kwargs)


def test_weights_of_another_architecture_are_refused(tmp_path, swin_ckpt) -> None:
    state = build_classifier(swin_ckpt, model=None, overrides={}, num_classes=3).model.state_dict()
    torch.save({k: v for k, v in state.items() if "layers.1" not in k}, tmp_path / "cut.pt")
    with pytest.raises(GroupingValueError, match=r"--init: expected weights .* missing"):
        build_classifier(
            str(tmp_path / "cut.pt"),
            model="swin_tiny_patch4_window7_224",
            overrides=SWIN_ARCH,
            num_classes=3,
        )


def test_hip_checkpoint_gives_its_encoder_half_and_a_label_head(tmp_path) -> None:
    """A HiP pretraining checkpoint builds hip_*_classifier: the MAE's HiP up to the processor
    (the decoder half set apart, named in the notes), only the label modules new."""
    from grouping.models.export import model_from_checkpoint

    train(
        TrainConfig(
            model="hip_mini",
            overrides=dict(HIP_TINY),
            steps=1,
            batch_size=2,
            checkpoint=str(tmp_path / "ck"),
            progress=False,
            log=None,
        )
    )
    path = str(tmp_path / "ck" / "ckpt_00000001.pt")
    initial = build_classifier(path, model=None, overrides={}, num_classes=3, drop_path=0.1)
    assert initial.name == "hip_mini_classifier"
    assert initial.overrides["drop_path_rate"] == 0.1 and initial.overrides["num_classes"] == 3
    assert initial.notes[0].startswith("not used from --init (the decoder half): ")
    assert initial.notes[1].startswith("new head: label_embed.label.weight")
    mae = model_from_checkpoint(load_checkpoint(path)).model.state_dict()
    state = initial.model.state_dict()
    assert all(torch.equal(v, mae["hip." + k]) for k, v in state.items() if "label" not in k)
    assert {k for k in state if f"hip.{k}" not in mae} == {
        k for k in state if k.startswith("label_")
    }
    assert initial.model(torch.zeros(2, 3, 8, 8)).shape == (2, 3)


def test_hip_and_perceiver_fine_tune(data, tmp_path) -> None:
    """HiP and Perceiver IO fine-tune through the same run (--img-size sets each family's
    size argument); every parameter gets a gradient, so DDP needs no unused-parameter scan."""
    hip = finetune(_config(data, model="hip_mini_classifier", overrides=dict(HIP_TINY), steps=2))
    perceiver = finetune(
        _config(data, model="perceiver_io_small", overrides={}, img_size=16, steps=2)
    )
    for summary in (hip, perceiver):
        assert len(summary["losses"]) == 2 and np.isfinite(summary["losses"]).all()
        assert 0 <= summary["last"]["val_top1"] <= summary["last"]["val_top5"] <= 1
    net = build_classifier(
        "random", model="hip_mini_classifier", overrides=HIP_TINY, num_classes=3
    ).model
    net(torch.rand(2, 3, 8, 8)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_official_hiera_and_timm_swin_files(tmp_path) -> None:
    """An official Hiera checkpoint ({"model_state": ...}, a 1000-class head) and a timm Swin
    state_dict load into --model with only the head re-initialised."""
    from grouping.models import create_model
    from grouping.models.export import export_state_dict

    hiera_arch = {k: v for k, v in HIERA_TINY.items()}
    official = create_model("hiera_tiny_224", **hiera_arch).state_dict()  # 1000 classes
    torch.save({"model_state": official}, tmp_path / "hiera.pth")
    initial = build_classifier(
        str(tmp_path / "hiera.pth"), model="hiera_tiny_224", overrides=hiera_arch, num_classes=3
    )
    assert initial.notes == [
        "head of another class count re-initialised: head.projection.weight, head.projection.bias"
    ]
    state = initial.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in official.items() if "head" not in k)
    swin = create_model("swin_tiny_patch4_window7_224", **SWIN_ARCH, num_classes=3)
    torch.save({"model": export_state_dict(swin, to="timm")}, tmp_path / "swin.pth")
    again = build_classifier(
        str(tmp_path / "swin.pth"),
        model="swin_tiny_patch4_window7_224",
        overrides=SWIN_ARCH,
        num_classes=3,
    )
    assert again.notes == []
    assert all(torch.equal(v, swin.state_dict()[k]) for k, v in again.model.state_dict().items())


# -- the run --------------------------------------------------------------------------------------


def test_finetune_learns_evaluates_and_keeps_last_and_best(data, swin_ckpt, tmp_path) -> None:
    ck = tmp_path / "ft"
    summary = finetune(
        _config(
            data,
            init=swin_ckpt,
            model=None,
            overrides={},
            steps=12,
            eval_every=4,
            checkpoint=str(ck),
            metrics=str(tmp_path / "m.jsonl"),
        )
    )
    assert [e["step"] for e in summary["evals"]] == [4, 8, 12]
    assert summary["last"]["val_top1"] > 0.9  # three colours: easy
    assert summary["losses"][-1] < summary["losses"][0]
    records = [json.loads(line) for line in open(tmp_path / "m.jsonl")]
    assert [("val_top1" in r) for r in records] == [s % 4 == 0 for s in range(1, 13)]
    for r in records:
        if "val_top1" in r:
            assert 0 <= r["val_top1"] <= r["val_top5"] <= 1 and r["val_images"] == 12
    assert json.load(open(ck / "classes.json")) == list(CLASSES)
    best, last = load_checkpoint(str(ck / "best.pt")), load_checkpoint(str(ck / "last.pt"))
    assert best["eval"]["val_top1"] == summary["best"]["val_top1"] and last["step"] == 12
    # a fine-tuned checkpoint is an --init: the classifier itself, head included
    again = build_classifier(str(ck / "last.pt"), model=None, overrides={}, num_classes=3)
    assert all(torch.equal(v, last["model"][k]) for k, v in again.model.state_dict().items())
    with pytest.raises(GroupingValueError, match="--data: expected 3 classes"):
        build_classifier(str(ck / "last.pt"), model=None, overrides={}, num_classes=4)


def test_layer_decay_scales_the_learning_rate_per_block(data) -> None:
    from grouping.train import loop

    seen = {}
    optimizer = loop._optimizer

    def spy(groups, cfg, device, betas=(0.9, 0.95)):
        opt = optimizer(groups, cfg, device, betas=betas)
        seen["opt"], seen["betas"] = opt, betas
        return opt

    loop._optimizer, original = spy, loop._optimizer
    import grouping.train.finetune as ft

    ft._optimizer = spy
    try:
        finetune(_config(data, steps=1, layer_decay=0.5))
    finally:
        ft._optimizer = original
        loop._optimizer = original
    groups = seen["opt"].param_groups
    scales = sorted({g["lr_scale"] for g in groups})
    assert scales[-1] == 1.0 and scales[0] == 0.5**4  # 3 blocks + embeddings + head
    assert all(g["lr"] == pytest.approx(1e-3 * g["lr_scale"]) for g in groups)
    assert seen["betas"] == (0.9, 0.999)


def test_resume_after_a_kill_equals_the_straight_run(data, tmp_path, monkeypatch) -> None:
    from grouping.train import loop

    common = dict(steps=6, eval_every=3, mixup=0.8, cutmix=1.0)
    straight = finetune(_config(data, checkpoint=str(tmp_path / "a"), **common))
    save = loop._save

    def save_then_die(cfg, ctx, model, optimizer, step, identity, extra=None) -> None:
        save(cfg, ctx, model, optimizer, step, identity, extra)
        if step == 3:
            raise KeyboardInterrupt("killed after step 3")

    monkeypatch.setattr(loop, "_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        finetune(_config(data, checkpoint=str(tmp_path / "b"), save_every=3, **common))
    monkeypatch.undo()
    rest = finetune(_config(data, checkpoint=str(tmp_path / "b"), resume=True, **common))
    assert rest["start_step"] == 3
    first = load_checkpoint(str(tmp_path / "b" / "ckpt_00000003.pt"))["extra"]["evals"]
    assert [e["step"] for e in rest["evals"]] == [3, 6] and rest["evals"][0] == first[0]
    np.testing.assert_allclose(rest["losses"], straight["losses"][3:], rtol=1e-6)
    assert rest["evals"][-1] == pytest.approx(straight["evals"][-1])


def test_workers_and_accumulation_give_the_same_run(data) -> None:
    """The data, the crops and the mixing are functions of the stream position: 0 or 2
    workers give the same run, and batch 2 x 2 accumulation steps follows batch 4."""
    common = dict(steps=3, drop_path=0.0, mixup=0.0, smoothing=0.1)
    base = finetune(_config(data, **common))["losses"]
    assert finetune(_config(data, workers=2, **common))["losses"] == base
    accumulated = finetune(_config(data, batch_size=2, accum_steps=2, **common))["losses"]
    np.testing.assert_allclose(accumulated, base, rtol=1e-5)


def test_collator_mixes_by_position() -> None:
    collate = ClassCollator(3, smoothing=0.1, mixup=0.8, cutmix=1.0, seed=0, global_batch=4)
    samples = [(torch.full((3, 8, 8), float(i)), 8 + i, i % 3) for i in range(4)]
    a, b = collate(samples), collate(samples)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert a.global_step == 2 and a.labels.tolist() == [0, 1, 2, 0]
    torch.testing.assert_close(a.targets.sum(1), torch.ones(4))
    plain = ClassCollator(3, smoothing=0.1, seed=0, global_batch=4)(samples)
    assert plain.targets[0].tolist() == pytest.approx([1 - 0.1 + 0.1 / 3, 0.1 / 3, 0.1 / 3])


# -- the command line -----------------------------------------------------------------------------


def _cli(data: str, *args: str) -> list[str]:
    sets = [f"--set={k}={v!r}".replace(" ", "") for k, v in SWIN_ARCH.items()]
    return [
        "finetune",
        "--model",
        "swin_tiny_patch4_window7_224",
        "--data",
        data,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--no-progress",
        *sets,
        *args,
    ]


def test_cli_runs_and_writes_json(data, tmp_path) -> None:
    out = tmp_path / "s.json"
    assert main(_cli(data, "--json", str(out), "--layer-decay", "0.65")) == 0
    summary = json.load(open(out))
    assert summary["num_classes"] == 3 and summary["last"]["step"] == 2
    assert summary["config"]["layer_decay"] == 0.65


def _bad_folders(root) -> dict[str, str]:
    from PIL import Image

    made = {}
    made["no_val"] = str(root / "no_val")
    _folder(root / "no_val")
    import shutil

    shutil.rmtree(root / "no_val" / "val")
    made["one_class"] = _folder(root / "one_class", classes=("cat",))
    made["empty_class"] = _folder(root / "empty_class")
    os.makedirs(root / "empty_class" / "train" / "fox")
    os.makedirs(root / "empty_class" / "val" / "fox")
    made["bad_image"] = _folder(root / "bad_image")
    (root / "bad_image" / "train" / "dog" / "broken.png").write_bytes(b"not a png")
    Image.new("RGB", (4, 4)).save(root / "bad_image" / "val" / "dog" / "ok.png")
    return made


@pytest.mark.parametrize(
    "case, args, message",
    [
        ("no_val", [], "val"),
        ("one_class", [], "at least two classes"),
        ("empty_class", [], "an empty class folder"),
        ("bad_image", [], "broken.png"),
        (None, ["--layer-decay", "0"], "--layer-decay"),
        (None, ["--layer-decay", "1.5"], "--layer-decay"),
        (None, ["--mixup", "0.8", "--batch-size", "1"], "--mixup"),
        (None, ["--init", "nowhere.pt"], "--init"),
        (None, ["--model", "greenmim_swin_tiny"], "--model"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    case, args, message, data, tmp_path, capsys
) -> None:
    folder = _bad_folders(tmp_path)[case] if case else data
    out = tmp_path / "earlier.json"
    out.write_text("earlier result")
    rc = main([*_cli(folder, "--json", str(out), "--checkpoint", str(tmp_path / "ck")), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and "\n" not in err and "Traceback" not in err, err
    assert out.read_text() == "earlier result" and not (tmp_path / "ck").exists()


def test_torchrun_with_accumulation_equals_one_process(data, tmp_path) -> None:
    """2 gloo processes x batch 1 x 2 accumulation steps follow 1 process with batch 4 over 6
    steps, and the evaluation (each rank a share of val/, summed) is the same."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = _cli(data, "--init", "random", "--steps", "6", "--eval-every", "3")
    common += ["--drop-path", "0", "--lr", "1e-3"]
    runs = {}
    for name, launch, batch in (
        ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], 1),
        ("one", [], 4),
    ):
        metrics = tmp_path / f"{name}.jsonl"
        cmd = [sys.executable, *launch, "-m", "grouping", *common, "--batch-size", str(batch)]
        cmd += ["--accum-steps", "2" if name == "two" else "1", "--metrics", str(metrics)]
        cmd += ["--checkpoint", str(tmp_path / name)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        runs[name] = [json.loads(line) for line in open(metrics)]
    two, one = runs["two"], runs["one"]
    assert [r["global_batch"] for r in two] == [4] * 6 == [r["global_batch"] for r in one]
    assert [r["world_size"] for r in two] == [2] * 6
    assert ["val_top1" in r for r in two] == [False, False, True] * 2
    np.testing.assert_allclose([r["loss"] for r in two], [r["loss"] for r in one], rtol=1e-5)
    for key in ("val_top1", "val_top5", "val_images"):
        assert two[-1][key] == one[-1][key]
    np.testing.assert_allclose(two[-1]["val_loss"], one[-1]["val_loss"], rtol=1e-5)
