"""The presets, the plots and the ``grouping`` command (run in-process with ``main([...])``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import grouping as gp
from grouping.cli import main
from grouping.presets import PRESETS, Preset, get_preset, preset_counts, preset_names

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


# ---------------------------------------------------------------------------------------------
# Presets


@pytest.mark.parametrize(
    "name, grids, channels, units",
    [
        ("swin-b-224-w7", (56, 28, 14, 7), (128, 256, 512, 1024), (8, 4, 2, 1)),
        ("swin-b-224-w14", (56, 28, 14, 7), (128, 256, 512, 1024), (8, 4, 2, 1)),
        ("swin-b-192-w6", (48, 24, 12, 6), (128, 256, 512, 1024), (8, 4, 2, 1)),
        ("swin-b-1024-w7", (256, 128, 64, 32), (128, 256, 512, 1024), (8, 4, 2, 1)),
        ("swin-b-2048-w7", (512, 256, 128, 64), (128, 256, 512, 1024), (8, 4, 2, 1)),
        ("swin-t-224-w7", (56, 28, 14, 7), (96, 192, 384, 768), (8, 4, 2, 1)),
    ],
)
def test_preset_stage_arithmetic(name, grids, channels, units):
    p = get_preset(name)
    assert p.name == name and p.num_stages == 4 and p.patch_size == 4 and p.mask_unit_px == 32
    for stage in range(4):
        assert p.grid(stage) == (grids[stage], grids[stage])
        assert p.channels(stage) == channels[stage]
        assert p.mask_unit_tokens(stage) == units[stage]
        assert p.window(stage) == min(p.window_size, grids[stage])


def test_preset_windows_and_shifts_follow_swin():
    p = get_preset("swin-b-224-w14")
    assert [p.window(k) for k in range(4)] == [14, 14, 14, 7]
    assert [p.shift(k) for k in range(4)] == [7, 7, 0, 0]  # one window: no shift (Swin)
    assert [p.shift(k, shifted=False) for k in range(4)] == [0, 0, 0, 0]
    assert get_preset("swin-b-224-w7").shift(2) == 3
    assert get_preset("swin-b-192-w6").shift(0) == 3


def test_preset_heads_and_names():
    assert preset_names() == list(PRESETS)
    assert get_preset("SWIN-B-224-W7") is PRESETS["swin-b-224-w7"]
    p = get_preset("swin-b-224-w7")
    assert get_preset(p) is p
    assert [p.heads(k) for k in range(4)] == [4, 8, 16, 32]
    assert p.depths == (2, 2, 18, 2)
    assert get_preset("swin-t-224-w7").depths == (2, 2, 6, 2)


def test_unknown_preset_lists_the_names():
    with pytest.raises(gp.GroupingValueError) as info:
        get_preset("swin-x")
    for name in preset_names():
        assert name in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stage": 4},
        {"stage": -1},
        {"mask_unit_px": 16, "stage": 3},  # half a token at stage 3
        {"mask_unit_px": 12},  # 3 tokens do not tile the 56-token grid
        {"mask_unit_px": 6},  # not a whole number of tokens
        {"mask_ratio": 1.0},
        {"mask_ratio": -0.1},
    ],
)
def test_preset_counts_rejects_bad_arguments(kwargs):
    with pytest.raises(gp.GroupingValueError):
        preset_counts("swin-b-224-w7", **kwargs)


def test_preset_rejects_a_grid_that_does_not_halve():
    with pytest.raises(gp.GroupingValueError, match="image_size"):
        Preset(
            name="odd",
            image_size=100,
            window_size=7,
            embed_dim=8,
            depths=(1,) * 4,
            num_heads=(1,) * 4,
        )


@pytest.mark.parametrize("name", ["swin-b-224-w7", "swin-b-192-w6", "swin-b-1024-w7"])
@pytest.mark.parametrize("stage", [0, 1, 3])
@pytest.mark.parametrize("shift", [False, True])
def test_preset_counts_sum_to_the_visible_tokens(name, stage, shift):
    p = get_preset(name)
    token_mask, counts = preset_counts(p, stage=stage, mask_ratio=0.75, shift=shift, seed=3)
    unit = p.mask_unit_tokens(stage)
    h, w = p.grid(stage)
    assert token_mask.dtype == np.bool_ and token_mask.shape == (h, w)
    units = (h // unit) * (w // unit)
    assert token_mask.sum() == int(units * 0.25) * unit * unit  # MAE keep count, whole units
    assert counts.dtype == np.int64
    assert counts.shape == gp.window_grid((h, w), p.window(stage), shift=p.shift(stage, shift))
    assert counts.sum() == token_mask.sum()
    assert counts.max() <= p.window(stage) ** 2


def test_preset_counts_is_reproducible_and_mask_units_are_whole():
    a, ca = preset_counts("swin-b-224-w7", seed=7)
    b, cb = preset_counts("swin-b-224-w7", seed=7)
    c, _ = preset_counts("swin-b-224-w7", seed=8)
    assert np.array_equal(a, b) and np.array_equal(ca, cb) and not np.array_equal(a, c)
    blocks = a.reshape(7, 8, 7, 8)  # 7x7 mask units of 8x8 tokens
    assert np.all(blocks.all(axis=(1, 3)) == blocks.any(axis=(1, 3)))
    m, _ = preset_counts("swin-b-224-w7", mask_unit_px=16, seed=7)
    assert m.sum() == int(14 * 14 * 0.25) * 16


# ---------------------------------------------------------------------------------------------
# The command


def test_plan_prints_writes_png_and_json(tmp_path, capsys):
    out = tmp_path / "out"
    report = tmp_path / "plan.json"
    rc = main(
        [
            "plan",
            "--preset",
            "swin-t-224-w7",
            "--seed",
            "1",
            "--out",
            str(out),
            "--json",
            str(report),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    for key in (
        "mask",
        "windows",
        "group size",
        "groups",
        "lower bound",
        "optimal",
        "padding",
        "cost",
        "solve time",
    ):
        assert key in text
    png = out / "plan_swin-t-224-w7_s0.png"
    assert png.exists() and _is_png(png)

    data = json.loads(report.read_text())
    token_mask, counts = preset_counts("swin-t-224-w7", seed=1)
    assert data["preset"] == "swin-t-224-w7" and data["stage"] == 0
    assert data["counts"] == counts.ravel().tolist()
    assert data["visible_tokens"] == int(token_mask.sum()) == sum(data["counts"])
    assert data["windows"] == 64 and data["nonempty_windows"] == np.count_nonzero(counts)
    assert data["group_size"] == counts.max()  # default: GreenMIM's choice
    assert data["channels"] == 96
    assert data["cost"] == pytest.approx(
        gp.attention_cost(data["num_groups"], data["group_size"], 96)
    )
    plan = gp.GroupingPlan.from_groups(
        data["groups"],
        data["group_size"],
        data["counts"],
        lower_bound=data["lower_bound"],
        optimal=data["optimal"],
    )
    gp.check_plan(plan, counts)
    assert plan.num_groups == data["num_groups"]
    assert data["padding_fraction"] == pytest.approx(plan.padding_fraction)
    assert data["fills"] == plan.fills.tolist()


def test_plan_sweep_shifted_later_stage(tmp_path, capsys):
    report = tmp_path / "plan.json"
    rc = main(
        [
            "plan",
            "--preset",
            "swin-b-224-w7",
            "--stage",
            "1",
            "--shift",
            "--group-size",
            "sweep",
            "--strategy",
            "ffd",
            "--out",
            str(tmp_path),
            "--json",
            str(report),
        ]
    )
    assert rc == 0
    data = json.loads(report.read_text())
    assert data["shift"] == 3 and data["window"] == 7 and data["grid"] == [28, 28]
    assert data["strategy"] == "ffd" and data["channels"] == 256
    assert data["group_size"] >= max(data["counts"])
    assert (tmp_path / "plan_swin-b-224-w7_s1.png").exists()


def test_sweep_prints_table_writes_png_and_json(tmp_path, capsys):
    report = tmp_path / "sweep.json"
    rc = main(
        [
            "sweep",
            "--preset",
            "swin-b-224-w7",
            "--seed",
            "2",
            "--out",
            str(tmp_path),
            "--json",
            str(report),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "padding %" in text and "relative" in text and "optimum" in text
    png = tmp_path / "sweep_swin-b-224-w7_s0.png"
    assert png.exists() and _is_png(png)

    data = json.loads(report.read_text())
    rows = data["rows"]
    _, counts = preset_counts("swin-b-224-w7", seed=2)
    assert rows[0]["group_size"] == counts.max()
    assert rows[0]["relative_cost"] == pytest.approx(1.0)  # GreenMIM's own choice
    sizes = [r["group_size"] for r in rows]
    assert sizes == list(range(sizes[0], sizes[0] + len(sizes)))
    assert data["best_group_size"] in sizes
    assert data["best_relative_cost"] <= 1.0 + 1e-12
    assert data["best_relative_cost"] == pytest.approx(min(r["relative_cost"] for r in rows))
    (solver,) = data["solver_sweep"]
    assert solver["relative_cost"] <= 1.0 + 1e-12
    assert solver["cost"] == pytest.approx(
        gp.attention_cost(solver["num_groups"], solver["group_size"], 128)
    )
    for row in rows:  # the table's rows are the solver's plans at each size
        plan = gp.solve(counts.ravel(), row["group_size"], channels=128)
        assert row["groups"] == plan.num_groups
        assert row["cost"] == pytest.approx(plan.cost)


def test_sweep_several_masks_and_a_cap(tmp_path, capsys):
    report = tmp_path / "sweep.json"
    rc = main(
        [
            "sweep",
            "--preset",
            "swin-b-192-w6",
            "--masks",
            "3",
            "--max-group-size",
            "40",
            "--channels",
            "64",
            "--out",
            str(tmp_path),
            "--json",
            str(report),
        ]
    )
    assert rc == 0
    assert "p10-p90" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["seeds"] == [0, 1, 2] and data["channels"] == 64
    assert max(r["group_size"] for r in data["rows"]) <= 40
    assert all(s["group_size"] <= 40 for s in data["solver_sweep"])
    assert (tmp_path / "sweep_swin-b-192-w6_s0.png").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--preset", "nope"],
        ["plan", "--preset", "swin-b-224-w7", "--mask-ratio", "1.5"],
        ["plan", "--preset", "swin-b-224-w7", "--mask-ratio", "abc"],
        ["plan", "--preset", "swin-b-224-w7", "--stage", "9"],
        ["plan", "--preset", "swin-b-224-w7", "--stage", "3", "--mask-unit", "16"],
        ["plan", "--preset", "swin-b-224-w7", "--mask-unit", "12"],
        ["plan", "--preset", "swin-b-224-w7", "--group-size", "0"],
        ["plan", "--preset", "swin-b-224-w7", "--group-size", "3"],  # below the largest count
        ["plan", "--preset", "swin-b-224-w7", "--strategy", "magic"],
        ["plan", "--preset", "swin-b-224-w7", "--channels", "0"],
        ["sweep", "--preset", "swin-b-224-w7", "--masks", "0"],
        ["sweep", "--preset", "swin-b-224-w7", "--max-group-size", "10"],
        ["sweep"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, tmp_path, capsys):
    rc = main([*argv, "--out", str(tmp_path)] if len(argv) > 1 else argv)
    assert rc == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("grouping") and "error" in err
    assert "\n" not in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_help(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "plan" in text and "sweep" in text
    assert main(["sweep", "--help"]) == 0
    assert "--max-group-size" in capsys.readouterr().out


def test_module_entry_point_and_lazy_imports():
    code = (
        "import sys, grouping.cli, grouping.plotting, grouping.presets;"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly';"
        "sys.argv = ['grouping', '--help'];"
        "sys.exit(grouping.cli.main())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: grouping" in done.stdout


def test_missing_matplotlib_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import fails
    rc = main(["plan", "--preset", "swin-t-224-w7", "--stage", "3", "--out", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert "pip install grouping[bench]" in err and "\n" not in err
