"""Every output path of every command is checked before any work: one line naming the option,
exit status 2, nothing written (issue: runs that never lose finished work)."""

from __future__ import annotations

import os

import pytest
from tiny_configs import SWIN_TINY

from grouping.cli import main

TINY = [f"--set={k}={v!r}".replace(" ", "") for k, v in SWIN_TINY.items()]
PRETRAIN = ["pretrain", "--model", "greenmim_swin_tiny", *TINY, "--steps", "1"]
PRETRAIN += ["--batch-size", "2", "--no-progress"]

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


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder (os.access says so)")
def test_an_unwritable_folder_is_refused(tmp_path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc = main([*PRETRAIN, "--metrics", str(locked / "m.jsonl")])
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert rc == 2 and "--metrics" in err and "not writable" in err


@pytest.mark.parametrize(
    "option, value", [("--weight-decay", "nan"), ("--weight-decay", "-5"), ("--min-lr", "nan")]
)
def test_non_finite_and_negative_hyper_parameters_are_refused(option, value, capsys) -> None:
    assert main([*PRETRAIN, option, value]) == 2
    assert capsys.readouterr().err.startswith(f"grouping: error: {option}:")
