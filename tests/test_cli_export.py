"""``grouping export`` (``grouping.cli.export``): tiny pretraining checkpoints (GreenMIM Swin,
MAE-Hiera) and fine-tuned classifier weights written as timm / official state dicts and
safetensors files, equal to ``export_state_dict`` of the rebuilt model, with the keys the
recorded timm / official classes have (``tests/fixtures/export_*.json``); refusals are one line
on stderr naming the option, exit status 2, and leave an earlier file as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_configs import HIERA_TINY, SWIN_TINY

from grouping.cli import main
from grouping.core.errors import invalid
from grouping.models import create_model
from grouping.models import export as E
from grouping.train import train
from grouping.train.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from grouping.train.config import TrainConfig

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = {"swin": ("greenmim_swin_tiny", SWIN_TINY), "hiera": ("mae_hiera_tiny_224", HIERA_TINY)}
NAMING = {"timm": "timm", "official": "official", "safetensors": "auto"}


def _recorded(name: str) -> dict[str, Any]:
    """The ``tiny`` case of a fixture: recorded with the architecture of ``tiny_configs``."""
    with open(FIXTURES / f"export_{name}.json") as f:
        return json.load(f)["cases"]["tiny"]


SWIN_TIMM = _recorded("timm_swin")
HIERA_TARGETS = _recorded("hiera")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-step ``grouping pretrain`` checkpoints of the tiny Swin and Hiera: their folders."""
    out = {}
    for key, (name, overrides) in MODELS.items():
        folder = tmp_path_factory.mktemp(key)
        train(
            TrainConfig(
                model=name,
                overrides=overrides,
                steps=1,
                batch_size=2,
                checkpoint=str(folder),
                progress=False,
                log=None,
            )
        )
        out[key] = folder
    assert all(grouping_ckpt(f).name == "ckpt_00000001.pt" for f in out.values())
    return out


def grouping_ckpt(folder: Path) -> Path:
    (path,) = folder.glob("ckpt_*.pt")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, list[str], list[str]]:
    code = main(["export", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.suffix == ".safetensors":
        return E.load_safetensors(path)
    return torch.load(path, map_location="cpu", weights_only=True), {}


def _assert_equal(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], *, ordered: bool = True
) -> None:
    """Same keys (in the same order, unless the file's format sorts them), dtypes and values."""
    assert list(state) == list(expected) if ordered else sorted(state) == sorted(expected)
    for key, value in expected.items():
        assert state[key].dtype == value.dtype and torch.equal(state[key], value), key


def _target(model: str, naming: str, with_decoder: bool) -> tuple[dict[str, list[int]], list]:
    """The recorded ``state_dict`` shapes of the class an export loads into, and its head."""
    if model == "swin":
        entry = SWIN_TIMM
    else:
        key = "official_mae" if with_decoder else naming
        entry = HIERA_TARGETS[key]
    head = set(entry["head"])
    return {k: s for k, s in entry["state"] if k not in head}, entry["head"]


# -- what is written -----------------------------------------------------------------------------

CASES = [
    ("swin", "timm", False),
    ("swin", "timm", True),
    ("swin", "safetensors", False),
    ("swin", "safetensors", True),
    ("hiera", "official", False),
    ("hiera", "official", True),
    ("hiera", "timm", False),
    ("hiera", "safetensors", False),
    ("hiera", "safetensors", True),
]


@pytest.mark.parametrize(("model", "to", "with_decoder"), CASES)
def test_export_writes_the_export_of_the_rebuilt_model(
    checkpoints, tmp_path, capsys, model, to, with_decoder
) -> None:
    ckpt = grouping_ckpt(checkpoints[model])
    out = tmp_path / ("export.safetensors" if to == "safetensors" else "export.pth")
    argv = ["--checkpoint", ckpt, "--to", to, "--out", out] + ["--with-decoder"] * with_decoder
    code, lines, err = _run(capsys, *argv)
    assert (code, err, len(lines)) == (0, [], 1)
    state, metadata = _read(out)
    loaded = load_checkpoint(str(ckpt))
    rebuilt = E.model_from_checkpoint(loaded).model
    expected = E.export_state_dict(rebuilt, to=NAMING[to], with_decoder=with_decoder)
    _assert_equal(state, expected, ordered=to != "safetensors")  # safetensors sorts its keys
    if to == "safetensors":  # the header says what the file is
        assert metadata == E.export_checkpoint(loaded, with_decoder=with_decoder).metadata
        assert metadata["names"] == ("timm" if model == "swin" else "official")
        assert metadata["contents"] == ("encoder+decoder" if with_decoder else "encoder")
        assert json.loads(metadata["grouping_overrides"]) == json.loads(
            json.dumps(MODELS[model][1])
        )
    # the target class loads it with nothing missing but the head and nothing unexpected
    naming = metadata.get("names", to)
    target, head = _target(model, naming, with_decoder)
    shapes = {k: list(v.shape) for k, v in state.items()}
    decoder = {k: s for k, s in shapes.items() if k.startswith(E.DECODER_KEYS)}
    if model == "swin" and with_decoder:  # MAE's decoder beside timm's encoder
        assert decoder and all(k.split(".")[0] in E.DECODER_KEYS for k in decoder)
        shapes = {k: s for k, s in shapes.items() if k not in decoder}
    assert sorted(shapes.items()) == sorted(target.items())
    line = lines[0]
    assert line.startswith(f"grouping export: wrote {out} (") and f"{len(state)} keys" in line
    assert f"{MODELS[model][0]} ({model.title()})" in line and f"in {naming} names" in line
    assert line.endswith("missing " + (", ".join(head) or "nothing"))
    assert ("of the keys MAE's decoder" in line) == with_decoder
    assert not [p for p in os.listdir(tmp_path) if p != out.name]  # no temporary file left


def test_a_folder_exports_its_latest_checkpoint(checkpoints, tmp_path, capsys) -> None:
    out = tmp_path / "swin.pt"
    assert _run(capsys, "--checkpoint", checkpoints["swin"], "--to", "timm", "--out", out)[0] == 0
    by_file = tmp_path / "by_file.pt"
    ckpt = grouping_ckpt(checkpoints["swin"])
    assert _run(capsys, "--checkpoint", ckpt, "--to", "timm", "--out", by_file)[0] == 0
    _assert_equal(_read(out)[0], _read(by_file)[0])


def test_an_earlier_file_is_replaced_whole(checkpoints, tmp_path, capsys) -> None:
    out = tmp_path / "encoder.safetensors"
    out.write_bytes(b"an earlier result")
    ckpt = grouping_ckpt(checkpoints["swin"])
    assert _run(capsys, "--checkpoint", ckpt, "--to", "safetensors", "--out", out)[0] == 0
    assert E.load_safetensors(out).metadata["grouping_model"] == "greenmim_swin_tiny"
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    assert os.stat(out).st_mode == os.stat(probe).st_mode  # a new file's mode (not 0600)


def test_a_failed_write_leaves_the_earlier_file(checkpoints, tmp_path, capsys, monkeypatch):
    out = tmp_path / "encoder.safetensors"
    out.write_bytes(b"an earlier result")

    def half_then_fail(state, path, metadata=None) -> None:
        Path(path).write_bytes(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(E, "save_safetensors", half_then_fail)
    ckpt = grouping_ckpt(checkpoints["swin"])
    with pytest.raises(OSError, match="disk full"):
        main(["export", "--checkpoint", str(ckpt), "--to", "safetensors", "--out", str(out)])
    assert out.read_bytes() == b"an earlier result"
    assert os.listdir(tmp_path) == [out.name]


# -- fine-tuned classifiers ----------------------------------------------------------------------


def _classifier_weights(folder: Path, name: str, overrides: dict[str, Any]) -> Path:
    """The ``last.pt`` fine-tuning keeps: a checkpoint's layout without the optimizer."""
    model = create_model(name, **overrides)
    with torch.no_grad():  # a head of its own, not the initial one
        for p in model.head.parameters():
            p.add_(1.0)
    run = {"task": "finetune", "model": name, "overrides": overrides}
    path = folder / "last.pt"
    save_checkpoint(
        str(path), {"format": FORMAT, "run": run, "step": 1, "model": model.state_dict()}
    )
    return path


SWIN_CLASSIFIER = ("swin_tiny_patch4_window7_224", {**SWIN_TINY, "num_classes": 5})
HIERA_CLASSIFIER = ("hiera_tiny_224", {**HIERA_TINY, "num_classes": 5})


@pytest.mark.parametrize(
    ("classifier", "to", "head"),
    [
        (HIERA_CLASSIFIER, "official", "head.projection"),
        (HIERA_CLASSIFIER, "timm", "head.fc"),
        (HIERA_CLASSIFIER, "safetensors", "head.projection"),
        (SWIN_CLASSIFIER, "safetensors", "head.fc"),
        (SWIN_CLASSIFIER, "timm", "head.fc"),
    ],
)
def test_fine_tuned_weights_keep_their_head(tmp_path, capsys, classifier, to, head) -> None:
    path = _classifier_weights(tmp_path, *classifier)
    loaded = load_checkpoint(str(path))  # last.pt: format, run, step, model; no optimizer
    rebuilt = E.model_from_checkpoint(loaded)
    assert (rebuilt.name, rebuilt.overrides) == classifier
    out = tmp_path / ("head.safetensors" if to == "safetensors" else "head.pt")
    code, lines, err = _run(capsys, "--checkpoint", path, "--to", to, "--out", out)
    assert (code, err) == (0, [])
    state = _read(out)[0]
    _assert_equal(
        state, E.export_state_dict(rebuilt.model, to=NAMING[to]), ordered=to != "safetensors"
    )
    assert {f"{head}.weight", f"{head}.bias"} <= set(state)
    assert lines[0].endswith("missing nothing") and " model in " in lines[0]


def test_a_classifier_has_no_decoder(tmp_path, capsys) -> None:
    path = _classifier_weights(tmp_path, *HIERA_CLASSIFIER)
    out = tmp_path / "x.pt"
    code, lines, err = _run(
        capsys, "--checkpoint", path, "--to", "official", "--out", out, "--with-decoder"
    )
    assert (code, lines, len(err)) == (2, [], 1)
    assert err[0].startswith("grouping: error: --with-decoder: expected no --with-decoder")
    assert not out.exists()


# -- refusals ------------------------------------------------------------------------------------


def _hip(folder: Path) -> Path:
    """A hand-made checkpoint of a tiny HiP-Mini MAE (no training needed to be refused)."""
    overrides = dict(img_size=8, num_groups=(4, 1, 4), num_self_attends_per_block=(1, 1, 1))
    overrides.update(z_index_dim=(4, 4, 4), num_z_channels=(8, 16, 8), num_embedding_channels=8)
    overrides.update(num_self_attend_heads=(2, 2, 2))
    model = create_model("hip_mini", **overrides)
    path = folder / "ckpt_00000001.pt"
    run = {"model": "hip_mini", "overrides": overrides}
    save_checkpoint(
        str(path), {"format": FORMAT, "run": run, "step": 1, "model": model.state_dict()}
    )
    return path


def _random_bytes(folder: Path) -> Path:
    path = folder / "random.pt"
    path.write_bytes(bytes(range(256)) * 16)
    return path


def _plain_state_dict(folder: Path) -> Path:
    path = folder / "plain.pt"
    torch.save(create_model("greenmim_swin_tiny", **SWIN_TINY).encoder_state_dict(), path)
    return path


REFUSALS = [
    ("hip", "timm", "x.pt", [], "--to: expected safetensors for hip_mini, received 'timm'"),
    ("hip", "official", "x.pt", [], "--to: expected safetensors for hip_mini"),
    ("swin", "official", "x.pt", [], "--to: expected timm or safetensors for greenmim_swin_tiny"),
    ("hiera", "timm", "x.pt", ["--with-decoder"], "--with-decoder: expected no --with-decoder"),
    ("random", "timm", "x.pt", [], "--checkpoint: expected "),
    ("plain", "timm", "x.pt", [], "--checkpoint: expected a grouping training checkpoint"),
    ("missing", "timm", "x.pt", [], "--checkpoint: expected an existing file"),
    ("swin", "timm", "no/such/folder/x.pt", [], "--out: expected a file in an existing folder"),
    ("swin", "timm", "x.safetensors", [], "--out: expected a .pt or .pth or .bin file"),
    ("swin", "safetensors", "x.pt", [], "--out: expected a .safetensors file"),
    ("swin", "tim", "x.pt", [], "argument --to: invalid choice: 'tim'"),
]


@pytest.mark.parametrize(("source", "to", "out", "extra", "message"), REFUSALS)
def test_refusals_are_one_line_exit_2_and_write_nothing(
    checkpoints, tmp_path, capsys, source, to, out, extra, message
) -> None:
    sources = {
        "hip": _hip,
        "random": _random_bytes,
        "plain": _plain_state_dict,
        "missing": lambda folder: folder / "missing.pt",
        "swin": lambda folder: grouping_ckpt(checkpoints["swin"]),
        "hiera": lambda folder: grouping_ckpt(checkpoints["hiera"]),
    }
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    ckpt = sources[source](inputs)
    results = tmp_path / "results"
    results.mkdir()
    earlier = results / os.path.basename(out)
    earlier.write_bytes(b"an earlier result")
    code, lines, err = _run(
        capsys, "--checkpoint", ckpt, "--to", to, "--out", results / out, *extra
    )
    assert (code, lines, len(err)) == (2, [], 1), err
    assert message in err[0] and err[0].startswith("grouping")
    assert earlier.read_bytes() == b"an earlier result"
    assert os.listdir(results) == [earlier.name]  # no temporary file either


def test_the_out_may_not_be_the_checkpoint(tmp_path, capsys) -> None:
    path = _hip(tmp_path).rename(tmp_path / "ckpt.safetensors")  # any name loads
    before = path.read_bytes()
    for same in (path, tmp_path / "link.safetensors"):
        if same != path:
            os.link(path, same)
        code, _, err = _run(capsys, "--checkpoint", path, "--to", "safetensors", "--out", same)
        # the message as the library writes it (a long received value is shortened)
        expected = invalid("--out", "another file than --checkpoint", str(same))
        assert code == 2 and err == [f"grouping: error: {expected}"], err
    assert path.read_bytes() == before


def test_help_lists_the_targets(capsys) -> None:
    assert main(["export", "--help"]) == 0
    text = capsys.readouterr().out
    assert "{timm,official,safetensors}" in text and "--with-decoder" in text
