"""Every output path of every command is checked before any work: one line naming the option,
exit status 2, nothing written (issue: runs that never lose finished work)."""

from __future__ import annotations

import os

import pytest
from tiny_configs import SWIN_TINY

from grouping.cli import main

TINY = [f"--set={k}={v!r}".replace(" ", "") for k, v in SWIN_TINY.items()]
BASE = ["pretrain", "--model", "greenmim_swin_tiny", *TINY, "--batch-size", "2", "--no-progress"]
PRETRAIN = [*BASE, "--steps", "1"]

# (command, the option's value, the option named in the message, what the message says)
CASES = [
    (PRETRAIN + ["--checkpoint", "{file}"], "--checkpoint", "it is a file"),
    (PRETRAIN + ["--checkpoint", "{file}/ck"], "--checkpoint", "is a file"),
    (PRETRAIN + ["--metrics", "{folder}"], "--metrics", "not a folder"),
    (PRETRAIN + ["--metrics", "{file}/m.jsonl"], "--metrics", "is a file"),
    (PRETRAIN + ["--save", "{folder}"], "--save", "not a folder"),
    (PRETRAIN + ["--save", "{tmp}/missing/enc.pt"], "--save", "existing folder"),
    (PRETRAIN + ["--json", "{folder}"], "--json", "not a folder"),
    (PRETRAIN + ["--json", "{tmp}/missing/s.json"], "--json", "existing folder"),
    (["plan", "--preset", "swin-t-224-w7", "--out", "{file}"], "--out", "it is a file"),
    (["plan", "--preset", "swin-t-224-w7", "--json", "{folder}"], "--json", "not a folder"),
    (["sweep", "--preset", "swin-t-224-w7", "--out", "{file}/x"], "--out", "is a file"),
    (["sweep", "--preset", "swin-t-224-w7", "--json", "{file}/r.json"], "--json", "is a file"),
    (["finetune", "--data", "{folder}", "--json", "{folder}"], "--json", "not a folder"),
    (["finetune", "--data", "{folder}", "--checkpoint", "{file}"], "--checkpoint", "a file"),
    (["probe", "--data", "{folder}", "--json", "{tmp}/missing/p.json"], "--json", "existing"),
    (["plot", "{file}", "--out", "{folder}"], "--out", "not a folder"),
]


@pytest.mark.parametrize("argv, option, says", CASES)
def test_output_paths_are_checked_before_any_work(
    argv, option, says, tmp_path, capsys, monkeypatch
):
    import grouping.train.loop as loop

    def no_work(*args, **kwargs):
        raise AssertionError("the run started before its outputs were checked")

    monkeypatch.setattr(loop, "create_model", no_work)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("an earlier result")
    names = {
        "tmp": str(tmp_path),
        "folder": str(tmp_path / "folder"),
        "file": str(tmp_path / "file"),
    }
    before = sorted(os.listdir(tmp_path))
    rc = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"grouping: error: {option}:"), err
    assert says in err and "\n" not in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / "file").read_text() == "an earlier result"
    assert os.listdir(tmp_path / "folder") == []


def test_an_unwritable_folder_is_refused(tmp_path, capsys, monkeypatch) -> None:
    """A folder this process may not write (os.access says so; root may write any folder, so
    the folder's answer is set here rather than by its mode bits)."""
    import grouping._files as files

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(
        files.os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode)
    )
    rc = main([*PRETRAIN, "--metrics", str(locked / "m.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and "--metrics" in err and "not writable" in err


@pytest.mark.parametrize(
    "option, value", [("--weight-decay", "nan"), ("--weight-decay", "-5"), ("--min-lr", "nan")]
)
def test_non_finite_and_negative_hyper_parameters_are_refused(option, value, capsys) -> None:
    assert main([*PRETRAIN, option, value]) == 2
    assert capsys.readouterr().err.startswith(f"grouping: error: {option}:")


# -- divergence and impossible ratios -----------------------------------------------------------


def test_a_diverged_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys) -> None:
    """--lr 1e5 drives the loss to NaN: the run stops at that step with one line, exit 2, and
    neither a checkpoint nor --save weights of the non-finite state is written."""
    ck, enc = tmp_path / "ck", tmp_path / "enc.pt"
    argv = [*BASE, "--steps", "6", "--lr", "1e5"]
    rc = main([*argv, "--checkpoint", str(ck), "--save-every", "1", "--save", str(enc)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and "nothing of this state is saved" in err, err
    assert err.startswith(
        ("grouping: error: loss: expected a finite loss", "grouping: error: weights:")
    )
    step = int(err.split(" step ")[1].split(";")[0].split(",")[0])
    import torch

    from grouping.train.checkpoint import latest_checkpoint, load_checkpoint

    saved = sorted(os.listdir(ck))
    assert saved == [f"ckpt_{s:08d}.pt" for s in range(1, step)] and not enc.exists()
    if saved:
        state = load_checkpoint(latest_checkpoint(str(ck)))["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize(
    "ratio, says",
    [("0", "0 masks nothing"), ("0.97", "at most 0.9375 for greenmim_swin_tiny")],
)
def test_a_ratio_that_trains_nothing_is_refused_before_the_model(ratio, says, capsys, monkeypatch):
    import grouping.train.loop as loop

    real = loop.create_model

    def only_meta(*args, **kwargs):  # the weightless copy the check uses is allowed
        import torch

        assert torch.empty(0).device.type == "meta", "the model was built before the check"
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "create_model", only_meta)
    assert main([*PRETRAIN, "--mask-ratio", ratio]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grouping: error: --mask-ratio:") and says in err, err


# -- one run per folder, each step once, bounded disk ---------------------------------------------


def _run(tmp_path, *args: str, steps: int = 2) -> int:
    return main([*BASE, "--steps", str(steps), "--checkpoint", str(tmp_path / "ck"), *args])


def test_a_fresh_run_into_an_earlier_runs_folder_is_refused_unless_overwrite(tmp_path, capsys):
    assert _run(tmp_path, "--save-every", "1") == 0
    capsys.readouterr()
    assert _run(tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grouping: error: --checkpoint: expected a folder without an earlier")
    assert "ckpt_00000002.pt" in err and "--resume" in err and "--overwrite" in err
    assert _run(tmp_path, "--resume", "--overwrite") == 2
    assert "--overwrite: expected not with --resume" in capsys.readouterr().err
    assert _run(tmp_path, "--overwrite", steps=1) == 0
    assert sorted(os.listdir(tmp_path / "ck")) == ["ckpt_00000001.pt"]  # the earlier run gone


@pytest.mark.parametrize("keep, kept", [("2", [4, 5]), ("0", [1, 2, 3, 4, 5])])
def test_keep_last_bounds_the_checkpoints(keep, kept, tmp_path) -> None:
    assert _run(tmp_path, "--save-every", "1", "--keep-last", keep, steps=5) == 0
    assert sorted(os.listdir(tmp_path / "ck")) == [f"ckpt_{s:08d}.pt" for s in kept]


def test_a_resumed_run_writes_each_step_once(tmp_path) -> None:
    """A run killed after writing steps past its last checkpoint (here: steps 4 and 5 after
    the checkpoint at 3, and a torn line) resumes from 3; the metrics hold 1-6 once each."""
    import json

    metrics = tmp_path / "m.jsonl"
    assert _run(tmp_path, "--metrics", str(metrics), steps=3) == 0
    with open(metrics, "a") as f:
        f.write('{"step": 4, "loss": 9.0}\n{"step": 5, "loss": 9.0}\n{"step": 6, "lo')
    args = ["--metrics", str(metrics), "--resume", "--new-schedule"]
    assert _run(tmp_path, *args, steps=6) == 0
    steps = [json.loads(line)["step"] for line in open(metrics)]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert all(json.loads(line)["loss"] != 9.0 for line in open(metrics))


def test_two_runs_on_one_folder(tmp_path, capsys) -> None:
    """A live run's lock refuses a second run with its pid; a dead run's lock is taken over."""
    import subprocess
    import sys

    (tmp_path / "ck").mkdir()
    live = os.getppid()
    (tmp_path / "ck" / ".lock").write_text(f"{live}\n")
    assert _run(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"in use by the run of process {live}" in err
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / "ck" / ".lock").write_text(done.stdout)
    assert _run(tmp_path) == 0
    assert not (tmp_path / "ck" / ".lock").exists()  # released at the end


# -- interrupts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("signame, code, workers", [("SIGINT", 130, "2"), ("SIGTERM", 143, "0")])
def test_an_interrupt_finishes_the_step_saves_and_exits_quietly(signame, code, workers, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, workers included) or SIGTERM: the current
    step finishes, a checkpoint of it is written, one line says so, the exit status is
    128 + the signal, no traceback (none from the workers either), and --resume continues."""
    import json
    import signal
    import subprocess
    import sys
    import time

    metrics, ck = tmp_path / "m.jsonl", tmp_path / "ck"
    argv = [*BASE, "--steps", "400", "--workers", workers, "--threads", "1"]
    argv += ["--metrics", str(metrics), "--checkpoint", str(ck)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "grouping", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        not metrics.exists() or len(metrics.read_text().splitlines()) < 3
    ):
        time.sleep(0.05)
    os.killpg(proc.pid, getattr(signal, signame))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines[-1].startswith(f"grouping: stopped by {signame} after step "), err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    step = int(lines[-1].split(" after step ")[1].split(":")[0])
    assert (ck / f"ckpt_{step:08d}.pt").exists() and "--resume continues" in lines[-1]
    assert [json.loads(line)["step"] for line in open(metrics)] == list(range(1, step + 1))
    rest = [*BASE, "--steps", str(step + 2), "--checkpoint", str(ck), "--resume", "--new-schedule"]
    assert main(rest) == 0


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 123 vs 456"),
        RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed"),
    ],
)
def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(failure, tmp_path, capsys):
    import torch

    import grouping.train.checkpoint as ckpt

    assert _run(tmp_path, steps=1) == 0
    real = torch.save

    def full(obj, f, *a, **k):
        f.write(b"partial")
        raise failure

    ckpt.torch.save = full
    try:
        rc = _run(tmp_path, "--resume", "--new-schedule", steps=2)
    finally:
        ckpt.torch.save = real
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("grouping: error: --checkpoint: expected room"), err
    assert "bytes" in err and "\n" not in err
    assert sorted(os.listdir(tmp_path / "ck")) == ["ckpt_00000001.pt"]  # intact, no temporary
    from grouping.train.checkpoint import load_checkpoint

    assert load_checkpoint(str(tmp_path / "ck" / "ckpt_00000001.pt"))["step"] == 1


# -- resources ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, option, says",
    [
        ([*PRETRAIN, "--batch-size", "100000000"], "--batch-size", "GiB available"),
        ([*PRETRAIN, "--workers", "100000"], "--workers", "4 per core"),
        (
            ["sweep", "--preset", "swin-b-224-w7", "--masks", "100000000", "--out", "{tmp}"],
            "--masks",
            "s a mask",
        ),
    ],
)
def test_what_cannot_fit_is_refused_with_the_estimate(
    argv, option, says, tmp_path, capsys, monkeypatch
):
    import grouping.train.loop as loop

    monkeypatch.setattr(loop, "_available_memory", lambda: 8 * 2**30)  # any machine: 8 GiB
    rc = main([a.format(tmp=str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"grouping: error: {option}:") and says in err, err
    assert "\n" not in err


# -- resume refuses what would change the run -----------------------------------------------------


def _images(folder, n: int, seed: int) -> str:
    import numpy as np
    from PIL import Image

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3)).astype("uint8")).save(folder / f"{i}.png")
    return str(folder)


@pytest.mark.parametrize(
    "change, field",
    [
        (["--data", "{other}"], "data"),
        (["--augment"], "augment"),
        (["--clip-grad", "1.0"], "clip_grad"),
        (["--bf16"], "bf16"),
        (["--weight-decay", "0.1"], "weight_decay"),
        (["--per-sample"], "per_sample"),
        (["--added"], "data"),
    ],
)
def test_resume_refuses_a_change_naming_the_field(change, field, tmp_path, capsys) -> None:
    data = _images(tmp_path / "a", 4, 0)
    other = _images(tmp_path / "b", 4, 1)  # another folder of the same kind and size
    first = ["--data", data, "--checkpoint", str(tmp_path / "ck")]
    assert main([*BASE, "--steps", "1", *first]) == 0
    capsys.readouterr()
    if change == ["--added"]:  # a file added to the same folder
        _images(tmp_path / "a", 5, 2)
        change = []
    argv = [*BASE, "--steps", "2", "--new-schedule", "--resume", *first]
    argv += [a.format(other=other) for a in change]
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "checkpoint: expected a checkpoint of this run" in err, err
    assert f"differs in {field}" in err or f", {field}" in err, err


def test_spelling_out_a_default_is_the_same_run(tmp_path) -> None:
    first = ["--checkpoint", str(tmp_path / "ck")]
    assert main([*BASE, "--steps", "1", *first]) == 0
    again = [*BASE, "--steps", "2", "--new-schedule", "--resume", *first, "--strategy", "auto"]
    assert main(again) == 0
