"""The training package: data streams, the masking collator, the loop, checkpoints, torchrun.

All runs use a tiny 3-stage GreenMIM Swin at 64 px (16 px mask units, 16 units per image) so
that CI stays fast on 2 cores.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tiny_configs import SWIN_TINY

from grouping.models import create_model
from grouping.train import (
    CheckpointError,
    MaskingCollator,
    StreamSampler,
    SyntheticImages,
    TrainConfig,
    cosine_lr,
    load_checkpoint,
    train,
)
from grouping.train import checkpoint as ckpt
from grouping.train.data import _crop_box

TINY_ARGS = [f"--set={k}={v!r}".replace(" ", "") for k, v in SWIN_TINY.items()]


def _config(**changes: object) -> TrainConfig:
    base = dict(
        model="greenmim_swin_tiny",
        overrides=dict(SWIN_TINY),
        steps=3,
        batch_size=2,
        per_sample=True,
        lr=1e-3,
        warmup_steps=1,
        threads=1,
        progress=False,
        log=None,
    )
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


def _metrics(path: os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# -- data and masks: functions of the seed and the position only ----------------------------------


@pytest.mark.parametrize("size", [(5, 7), (3, 4, 6)])
def test_synthetic_waves_are_the_plane_wave_formula(size) -> None:
    data = SyntheticImages(size, 1)
    freq, phase = np.array([1.5, 2.5, 3.5][: len(size)]), 0.3
    coords = np.meshgrid(*[np.linspace(0, 1, n) for n in size], indexing="ij")
    expected = np.sin(2 * np.pi * sum(f * c for f, c in zip(freq, coords, strict=True)) + phase)
    np.testing.assert_allclose(data._wave(freq, phase), expected, atol=1e-12)
    assert data[(3, 0)][0].shape == (1, *size)


def test_stream_sampler_splits_one_global_batch_across_processes() -> None:
    one = StreamSampler(10, 4, 5, seed=3)
    two = [StreamSampler(10, 2, 5, rank=r, world_size=2, seed=3) for r in range(2)]
    for step, batch in enumerate(one):
        assert batch == two[0].keys(step) + two[1].keys(step)
    # every epoch is a permutation of the items; resuming continues the same stream
    items = [one.item(p) for p in range(20)]
    assert sorted(items[:10]) == list(range(10)) and sorted(items[10:]) == list(range(10))
    resumed = StreamSampler(10, 4, 5, seed=3, start_step=2)
    assert list(resumed) == list(one)[2:] and len(resumed) == 3
    with pytest.raises(ValueError, match="rank"):
        StreamSampler(10, 2, 5, rank=2, world_size=2)


def test_synthetic_images_are_a_function_of_seed_and_position() -> None:
    data = SyntheticImages(16, 3, seed=5)
    a, pa = data[(7, 123)]
    b, _ = SyntheticImages(16, 3, seed=5)[(7, 0)]
    c, _ = data[(8, 123)]
    assert pa == 7 and a.shape == (3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_collator_masks_do_not_depend_on_how_the_batch_is_split() -> None:
    model = create_model("greenmim_swin_tiny", **SWIN_TINY)
    prep = model.preparer()
    data = SyntheticImages(64, 3)
    for per_sample in (True, False):
        whole = MaskingCollator(prep, 0.75, per_sample=per_sample, seed=1, global_batch=4)
        batch = whole([data[(p, p)] for p in range(4, 8)])  # step 1
        assert batch.global_step == 1 and batch.positions == [4, 5, 6, 7]
        halves = [whole.masks([4, 5]), whole.masks([6, 7])]
        if per_sample:
            assert np.array_equal(np.concatenate(halves), whole.masks([4, 5, 6, 7]))
            assert not np.array_equal(halves[0][0], halves[0][1])
        else:
            assert np.array_equal(halves[0], halves[1])  # one mask for the global step
        step = batch.unpack_step("cpu")
        assert step.batch == (4 if per_sample else None)
        direct = prep(whole.masks([4, 5, 6, 7]), batch=4)
        for a, b in zip(step.layouts, direct.layouts, strict=True):  # packing loses nothing
            assert torch.equal(a[1].rel_index, b[1].rel_index) and a[1].plan is not None
        assert torch.equal(step.embed_index, direct.embed_index)
        # the batch crosses process boundaries as one buffer
        again = pickle.loads(pickle.dumps(batch))
        assert torch.equal(again.unpack_step("cpu").final_index, step.final_index)


@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_resized_crop_box_lies_in_the_image(width: int, height: int, seed: int) -> None:
    left, top, w, h = _crop_box(np.random.default_rng(seed), width, height, (0.2, 1.0))
    assert 0 <= left and 0 <= top and 0 < w and 0 < h
    assert left + w <= width and top + h <= height


def test_cosine_schedule_warms_up_then_decays_towards_min_lr() -> None:
    lrs = [
        cosine_lr(s, base_lr=1.0, total_steps=10, warmup_steps=4, min_lr=0.1) for s in range(1, 11)
    ]
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # the peak right after warm-up
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:], strict=False))
    assert 0.1 < lrs[-1] < 0.2  # every step learns; the cosine tends to min_lr
    assert cosine_lr(1, base_lr=2.0, total_steps=1) == 2.0
    with pytest.raises(ValueError, match="step"):
        cosine_lr(11, base_lr=1.0, total_steps=10)
    with pytest.raises(ValueError, match="warmup_steps"):
        cosine_lr(1, base_lr=1.0, total_steps=3, warmup_steps=4)


# -- the loop ------------------------------------------------------------------------------------


def test_same_losses_with_0_and_2_workers(tmp_path) -> None:
    runs = {}
    for workers in (0, 2):
        metrics = tmp_path / f"w{workers}.jsonl"
        summary = train(_config(workers=workers, metrics=str(metrics)))
        runs[workers] = summary["losses"]
        records = _metrics(metrics)
        assert [r["step"] for r in records] == [1, 2, 3]
        for r in records:
            assert {"step", "loss", "lr", "samples_per_s", "world_size", "data_wait_s"} <= set(r)
            assert r["world_size"] == 1 and r["samples_per_s"] > 0
    assert runs[0] == runs[2]
    assert runs[0][-1] < runs[0][0]


def test_resume_after_3_of_6_steps_equals_6_straight_steps(tmp_path, monkeypatch) -> None:
    from grouping.train import loop

    straight = train(_config(steps=6, checkpoint=str(tmp_path / "a")))
    # a 6-step run killed right after its checkpoint at step 3
    save = loop._save

    def save_then_die(cfg, ctx, model, optimizer, step, identity) -> None:
        save(cfg, ctx, model, optimizer, step, identity)
        if step == 3:
            raise KeyboardInterrupt("killed after step 3")

    monkeypatch.setattr(loop, "_save", save_then_die)
    run = _config(
        steps=6, save_every=3, checkpoint=str(tmp_path / "b"), metrics=str(tmp_path / "m")
    )
    with pytest.raises(KeyboardInterrupt):
        train(run)
    monkeypatch.undo()
    first = [r["loss"] for r in _metrics(tmp_path / "m")]
    rest = train(
        _config(steps=6, checkpoint=str(tmp_path / "b"), resume=True, metrics=str(tmp_path / "m"))
    )
    assert rest["start_step"] == 3 and rest["steps_run"] == 3
    assert first + rest["losses"] == straight["losses"]
    assert [r["step"] for r in _metrics(tmp_path / "m")] == [1, 2, 3, 4, 5, 6]
    state = load_checkpoint(ckpt.latest_checkpoint(str(tmp_path / "b")))
    assert state["step"] == 6 and state["sampler"]["position"] == 6 * 2
    # --steps is the total: nothing is left to do, and a longer run continues from step 6
    assert train(_config(steps=6, checkpoint=str(tmp_path / "b"), resume=True))["steps_run"] == 0
    longer = _config(steps=7, checkpoint=str(tmp_path / "b"), resume=True, new_schedule=True)
    assert train(longer)["steps_run"] == 1


def test_checkpoint_of_another_model_or_config_is_refused(tmp_path) -> None:
    train(_config(steps=1, checkpoint=str(tmp_path)))
    with pytest.raises(CheckpointError, match="overrides"):
        train(
            _config(
                steps=2,
                resume=True,
                checkpoint=str(tmp_path),
                overrides={**SWIN_TINY, "embed_dim": 32},
            )
        )
    with pytest.raises(CheckpointError, match="per_sample"):
        train(_config(steps=2, resume=True, checkpoint=str(tmp_path), per_sample=False))
    with pytest.raises(CheckpointError, match="model"):
        train(_config(model="simmim_swin_tiny", steps=2, resume=True, checkpoint=str(tmp_path)))


@pytest.mark.parametrize(
    "change, flag",
    [
        (dict(steps=4), "--steps"),
        (dict(lr=2e-3), "--lr"),
        (dict(min_lr=1e-5), "--min-lr"),
        (dict(warmup_steps=2), "--warmup-steps"),
    ],
)
def test_resume_with_another_schedule_is_refused_unless_asked(tmp_path, change, flag) -> None:
    train(_config(steps=3, save_every=2, checkpoint=str(tmp_path)))
    os.remove(ckpt.checkpoint_path(str(tmp_path), 3))  # resume from step 2 of 3
    with pytest.raises(CheckpointError, match=f"other {flag} .*--new-schedule") as info:
        train(_config(resume=True, checkpoint=str(tmp_path), **change))
    assert flag in str(info.value) and "->" in str(info.value)
    lines: list[str] = []
    resumed = train(
        _config(
            resume=True, checkpoint=str(tmp_path), new_schedule=True, log=lines.append, **change
        )
    )
    assert resumed["start_step"] == 2
    assert any(line.startswith("--new-schedule: from step 3 on, " + flag) for line in lines)


@pytest.mark.parametrize("per_sample", [True, False])
def test_accumulation_follows_the_whole_batch(per_sample) -> None:
    """Batch 2 with 3 accumulation steps follows batch 6's loss curve (MAE's accum_iter): the
    same samples, the same per-sample masks (or the same shared mask per optimizer step)."""
    common = dict(steps=6, per_sample=per_sample, warmup_steps=2)
    whole = train(_config(batch_size=6, **common))
    accumulated = train(_config(batch_size=2, accum_steps=3, **common))
    np.testing.assert_allclose(accumulated["losses"], whole["losses"], rtol=1e-5)
    assert accumulated["losses"] != train(_config(batch_size=2, **common))["losses"]


def test_public_step_loop_yields_one_record_per_step() -> None:
    from grouping.train.distributed import init_distributed
    from grouping.train.engine import train_steps

    torch.manual_seed(0)
    model = create_model("greenmim_swin_tiny", **SWIN_TINY)
    collator = MaskingCollator(model.preparer(), 0.75, per_sample=True, seed=0, global_batch=2)
    data = SyntheticImages((64, 64), 3, seed=0)
    sampler = StreamSampler(None, 2, 3, seed=0)
    batches = [collator([data[i] for i in idx]) for idx in sampler]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    records = list(
        train_steps(
            model,
            optimizer,
            batches,
            steps=range(1, 4),
            lr_at=lambda step: 1e-3 * step,
            ctx=init_distributed("cpu"),
            global_batch=2,
        )
    )
    assert [r["step"] for r in records] == [1, 2, 3]
    assert [r["lr"] for r in records] == [1e-3, 2e-3, 3e-3]
    assert all(np.isfinite(r["loss"]) and r["global_batch"] == 2 for r in records)
    with pytest.raises(RuntimeError, match="batch of step 2 received at step 1"):
        next(
            train_steps(
                model,
                optimizer,
                batches[1:],
                steps=range(1, 2),
                lr_at=lambda step: 1e-3,
                ctx=init_distributed("cpu"),
                global_batch=2,
            )
        )


def test_crash_between_checkpoint_write_and_rename_keeps_the_previous_one(
    tmp_path, monkeypatch
) -> None:
    train(_config(steps=2, checkpoint=str(tmp_path)))
    good = ckpt.latest_checkpoint(str(tmp_path))

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        train(_config(steps=3, checkpoint=str(tmp_path), resume=True, new_schedule=True))
    monkeypatch.undo()
    assert ckpt.latest_checkpoint(str(tmp_path)) == good  # the stray temporary is ignored
    assert any(n.startswith(".ckpt-tmp-") for n in os.listdir(tmp_path))
    resumed = train(_config(steps=3, checkpoint=str(tmp_path), resume=True, new_schedule=True))
    assert resumed["start_step"] == 2
    assert not any(n.startswith(".ckpt-tmp-") for n in os.listdir(tmp_path))


class _Exploit:
    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __reduce__(self):  # what an attacker's checkpoint does: run code when unpickled
        return (open, (self.flag, "w"))


def test_malicious_checkpoint_is_refused_without_running_it(tmp_path) -> None:
    flag = tmp_path / "pwned"
    path = tmp_path / "ckpt_00000001.pt"
    torch.save({"format": 1, "step": 1, "evil": _Exploit(str(flag))}, path)
    with pytest.raises(CheckpointError, match="pickled objects"):
        load_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="refused"):
        train(_config(steps=2, checkpoint=str(tmp_path), resume=True))
    assert not flag.exists()


def test_bf16_autocast_and_clipping_run(tmp_path) -> None:
    summary = train(_config(steps=2, bf16=True, clip_grad=0.5, per_sample=False))
    assert all(np.isfinite(summary["losses"]))


# -- the command line ----------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    from grouping.cli import main

    return main(
        ["pretrain", "--no-progress", "--batch-size", "2", "--threads", "1", *TINY_ARGS, *argv]
    )


def test_pretrain_command_saves_encoder_weights_and_metrics(tmp_path, capsys) -> None:
    save, summary, metrics = tmp_path / "enc.pth", tmp_path / "run.json", tmp_path / "m.jsonl"
    argv = ["--steps", "2", "--save", str(save), "--json", str(summary), "--metrics", str(metrics)]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "loss" in out
    result = json.loads(summary.read_text())
    assert result["steps_run"] == 2 and len(result["losses"]) == 2
    assert [r["step"] for r in _metrics(metrics)] == [1, 2]
    weights = torch.load(save, weights_only=True)
    encoder = create_model("greenmim_swin_tiny", **SWIN_TINY).encoder
    encoder.load_state_dict(weights, strict=True)  # timm's SwinTransformer names


def test_pretrain_command_reads_a_folder_and_the_dense_baseline_runs(tmp_path) -> None:
    pil = pytest.importorskip("PIL.Image")
    (tmp_path / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = (rng.random((40 + 10 * i, 70, 3)) * 255).astype(np.uint8)
        pil.fromarray(pixels).save(tmp_path / "sub" / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    assert _cli(["--steps", "2", "--data", str(tmp_path), "--augment", "--per-sample"]) == 0
    assert _cli(["--steps", "1", "--model", "simmim_swin_tiny", "--workers", "1"]) == 0


def test_model_choices_come_from_the_registry_and_the_parser_skips_torch() -> None:
    from grouping.cli import build_parser
    from grouping.models import list_models

    parser = build_parser()
    pretrain = parser._subparsers._group_actions[0].choices["pretrain"]  # type: ignore[union-attr]
    model = next(a for a in pretrain._actions if a.dest == "model")
    assert list(model.choices) == list_models(pretrain=True)
    code = "import sys, grouping.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _bad_image_folder(tmp_path) -> str:
    pil = pytest.importorskip("PIL.Image")
    tmp_path.mkdir(exist_ok=True)
    pil.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    return str(tmp_path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "/nonexistent/folder"], "--data"),
        (["--data", "EMPTY"], "data: expected a folder holding images"),
        (["--data", "BROKEN", "--steps", "3"], "broken.jpg"),
        (["--data", "BROKEN", "--steps", "3", "--workers", "1"], "broken.jpg"),
        (["--resume", "--checkpoint", "EMPTY"], "--resume"),
        (["--resume"], "--resume"),
        (["--steps", "0"], "--steps"),
        (["--steps", "-3"], "--steps"),
        (["--batch-size", "0"], "--batch-size"),
        (["--workers", "-1"], "--workers"),
        (["--mask-ratio", "1.0"], "--mask-ratio"),
        (["--img-size", "72"], "img_size"),
        (["--model", "swin_huge"], "model"),
        (["--strategy", "fastest"], "strategy"),
        (["--set", "nonsense"], "KEY=VALUE"),
        (["--device", "banana"], "device"),
    ],
)
def test_pretrain_command_bad_arguments(argv, message, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [str(empty) if a == "EMPTY" else a for a in argv]
    if "BROKEN" in argv:
        argv = [_bad_image_folder(tmp_path / "b") if a == "BROKEN" else a for a in argv]
    if "--steps" not in argv:
        argv = ["--steps", "1", *argv]
    assert _cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err


# -- torchrun --------------------------------------------------------------------------------------


def test_torchrun_two_processes_equal_one_process_with_the_whole_batch(tmp_path) -> None:
    """2 gloo processes with batch 2 each follow the loss curve of 1 process with batch 4
    (per-sample masks: the same samples and the same masks)."""
    common = [
        "pretrain",
        "--no-progress",
        "--threads",
        "1",
        "--per-sample",
        "--steps",
        "3",
        "--lr",
        "1e-3",
        *TINY_ARGS,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = tmp_path / "two.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "grouping",
        *common,
        "--batch-size",
        "2",
        "--metrics",
        str(two),
        "--checkpoint",
        str(tmp_path / "ck"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    one = tmp_path / "one.jsonl"
    cmd = [sys.executable, "-m", "grouping", *common, "--batch-size", "4", "--metrics", str(one)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = _metrics(two), _metrics(one)
    assert [r["world_size"] for r in a] == [2, 2, 2] and [r["world_size"] for r in b] == [1, 1, 1]
    assert [r["global_batch"] for r in a] == [4, 4, 4]
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-4)
    # rank 0 alone wrote the checkpoint, and it holds both processes' random states
    state = load_checkpoint(ckpt.latest_checkpoint(str(tmp_path / "ck")))
    assert len(state["rng"]) == 2 and state["run"]["global_batch"] == 4


def test_torchrun_with_accumulation_equals_one_process_with_the_whole_batch(tmp_path) -> None:
    """2 gloo processes x batch 1 x 2 accumulation steps follow 1 process with batch 4 over 6
    steps."""
    common = ["pretrain", "--no-progress", "--threads", "1", "--per-sample", "--steps", "6"]
    common += ["--lr", "1e-3", *TINY_ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = tmp_path / "two.jsonl"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    cmd += ["2", "-m", "grouping", *common, "--batch-size", "1", "--accum-steps", "2"]
    out = subprocess.run(
        [*cmd, "--metrics", str(two)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    one = tmp_path / "one.jsonl"
    cmd = [sys.executable, "-m", "grouping", *common, "--batch-size", "4", "--metrics", str(one)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = _metrics(two), _metrics(one)
    assert [r["global_batch"] for r in a] == [4] * 6 == [r["global_batch"] for r in b]
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-5)
