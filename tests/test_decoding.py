"""Images decoded honestly: every Pillow mode at its real range or refused by name, bombs and
broken files named in one line, and ``--check-data`` listing every bad file before a run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tiny_configs import SWIN_TINY

from grouping.cli import main
from grouping.train.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageFolder,
    UnreadableImageError,
    check_images,
)

RAMP = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float64).reshape(64, 64)


def _pixels(folder) -> np.ndarray:
    """The first image of ``folder`` as training reads it, back in [0, 1], [H, W, 3]."""
    x = ImageFolder(str(folder), 64).load(0, 0).transpose(1, 2, 0)
    return x * IMAGENET_STD + IMAGENET_MEAN


@pytest.mark.parametrize(
    "name, image",
    [
        ("grey16.png", lambda: Image.fromarray((RAMP * 65535).astype(np.uint16))),
        ("float.tiff", lambda: Image.fromarray(RAMP.astype(np.float32), mode="F")),
        ("grey8.png", lambda: Image.fromarray((RAMP * 255).astype(np.uint8))),
        ("int32.tiff", lambda: Image.fromarray((RAMP * 65535).astype(np.int32), mode="I")),
    ],
)
def test_every_mode_is_read_at_its_real_range(name, image, tmp_path) -> None:
    """A ramp from black to white reads as a ramp from 0 to 1 in every mode (16-bit PNGs were
    99.6 % white and float TIFFs almost black before)."""
    image().save(tmp_path / name)
    x = _pixels(tmp_path)
    assert x.min() == pytest.approx(0.0, abs=1e-2) and x.max() == pytest.approx(1.0, abs=1e-2)
    assert x.mean() == pytest.approx(0.5, abs=0.02)
    np.testing.assert_allclose(x[..., 0], x[..., 2], atol=1e-6)  # grey: three equal channels


@pytest.mark.parametrize(
    "name, image, says",
    [
        (
            "hot.tiff",
            lambda: Image.fromarray((RAMP * 300).astype(np.float32), mode="F"),
            "float images must lie in [0, 1]",
        ),
        (
            "negative.tiff",
            lambda: Image.fromarray((RAMP * 10 - 5).astype(np.int32), mode="I"),
            "beyond 16 bits",
        ),
    ],
)
def test_a_mode_without_a_known_range_is_refused_by_name(name, image, says, tmp_path) -> None:
    image().save(tmp_path / name)
    with pytest.raises(UnreadableImageError, match=name) as info:
        _pixels(tmp_path)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_decompression_bomb_is_one_line(tmp_path, monkeypatch) -> None:
    Image.fromarray((RAMP * 255).astype(np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 is over twice the limit
    with pytest.raises(UnreadableImageError, match="bomb.png.*decompression bomb"):
        _pixels(tmp_path)
    assert "decompression bomb" in check_images([str(tmp_path / "bomb.png")])[0]


def test_check_data_lists_every_bad_file_before_the_run(tmp_path, capsys) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((RAMP * 255).astype(np.uint8)).convert("RGB").save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    Image.fromarray((RAMP * 300).astype(np.float32), mode="F").save(folder / "hot.tiff")
    sets = [f"--set={k}={v!r}".replace(" ", "") for k, v in SWIN_TINY.items()]
    argv = ["pretrain", "--model", "greenmim_swin_tiny", *sets, "--steps", "1", "--batch-size"]
    argv += ["2", "--no-progress", "--data", str(folder), "--check-data"]
    assert main(argv) == 2
    out = capsys.readouterr()
    assert "broken.png" in out.out and "hot.tiff" in out.out  # every bad file listed
    err = out.err.strip().splitlines()[-1]
    assert err.startswith("grouping: error: data: expected readable images, received 2 bad files")
    (folder / "broken.png").unlink()
    (folder / "hot.tiff").unlink()
    assert main(argv) == 0
    assert "--check-data: all 3 images" in capsys.readouterr().out
