"""The presets, the plots and the ``grouping`` command (run in-process with ``main([...])``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import grouping as gp
from grouping.cli import build_parser, main
from grouping.presets import PRESETS, Preset, get_preset, preset_counts, preset_names
from grouping.testing.reference import greenmim_reference

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
    published = gp.solve(counts.ravel(), strategy="greenmim", channels=128)  # the baseline
    assert rows[0]["relative_cost"] == pytest.approx(
        gp.solve(counts.ravel(), channels=128).cost / published.cost
    )
    assert "published GreenMIM (baseline)" in text
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
        assert row["relative_cost"] == pytest.approx(plan.cost / published.cost)


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


# ---------------------------------------------------------------------------------------------
# The published algorithm next to the library's choice


def _table_row(text: str, key: str) -> list[str]:
    """The cells of the plan table's row ``key`` (split on runs of two or more spaces)."""
    (line,) = [ln for ln in text.splitlines() if re.match(rf"{key}\s{{2,}}", ln)]
    return re.split(r"\s{2,}", line.strip())[1:]


@pytest.mark.parametrize("seed", [0, 1])  # seed 1: the published plan needs one group more
def test_plan_compares_with_the_published_algorithm(seed, tmp_path, capsys):
    report = tmp_path / "plan.json"
    argv = ["plan", "--preset", "swin-b-224-w7", "--seed", str(seed), "--out", str(tmp_path)]
    assert main([*argv, "--json", str(report)]) == 0
    text = capsys.readouterr().out
    data = json.loads(report.read_text())
    _, counts = preset_counts("swin-b-224-w7", seed=seed)
    counts = counts.ravel()
    g = data["group_size"]
    expected = gp.solve(counts, g, strategy="greenmim", channels=128)
    pub = data["published"]
    assert pub["strategy"] == "greenmim" and pub["group_size"] == g
    assert pub["groups"] == [x.tolist() for x in expected.groups]
    assert pub["groups"] == greenmim_reference(counts.tolist(), g)  # the published algorithm
    assert pub["num_groups"] == expected.num_groups and pub["lower_bound"] == expected.lower_bound
    assert pub["cost"] == pytest.approx(gp.attention_cost(pub["num_groups"], g, 128))
    assert pub["padding_fraction"] == pytest.approx(expected.padding_fraction)
    assert pub["optimal"] == (pub["num_groups"] <= max(pub["lower_bound"], data["lower_bound"]))
    assert pub["reference_matches"] is True and pub["reference_runs"] >= 1
    assert pub["reference_time_ms"] > 0 and pub["reference_cells"] > 0

    assert data["num_groups"] <= pub["num_groups"]  # auto is never worse than the published
    versus = data["library_vs_published"]
    assert versus["groups_saved"] == pub["num_groups"] - data["num_groups"]
    assert versus["cost_saved_fraction"] == pytest.approx(1 - data["cost"] / pub["cost"])
    assert versus["speedup_vs_reference"] == pytest.approx(
        pub["reference_time_ms"] / data["solve_time_ms"]
    )

    assert _table_row(text, "groups") == [str(pub["num_groups"]), str(data["num_groups"])]
    assert _table_row(text, "lower bound") == [str(pub["lower_bound"]), str(data["lower_bound"])]
    assert _table_row(text, "strategy") == ["greenmim", "auto"]
    (header,) = [ln for ln in text.splitlines() if ln.lstrip().startswith("published GreenMIM")]
    assert re.split(r"\s{2,}", header.strip()) == ["published GreenMIM", "library (auto)"]
    assert "plain Python" in _table_row(text, "solve time")[0]
    saved = versus["groups_saved"]
    assert f"{saved} group{'' if saved == 1 else 's'} fewer" in text
    assert f"saves {100 * versus['cost_saved_fraction']:.1f}% of the cost" in text
    assert "faster than the plain-Python published algorithm" in text
    optimal = _table_row(text, "optimal")
    assert optimal[1] == "yes (proven)"
    assert optimal[0].startswith("yes" if pub["optimal"] else "no")
    png = tmp_path / "plan_swin-b-224-w7_s0.png"
    assert png.exists() and _is_png(png)


def test_plan_reference_budget_zero_skips_the_plain_python_run(tmp_path, capsys):
    report = tmp_path / "plan.json"
    argv = ["plan", "--preset", "swin-t-224-w7", "--reference-budget", "0", "--out", str(tmp_path)]
    assert main([*argv, "--json", str(report)]) == 0
    text = capsys.readouterr().out
    assert _table_row(text, "solve time")[0].startswith("skipped")
    data = json.loads(report.read_text())
    assert data["published"]["reference_time_ms"] is None
    assert data["published"]["reference_matches"] is None
    assert data["library_vs_published"]["speedup_vs_reference"] is None


def test_sweep_reports_packing_and_sweep_against_the_published_plan(tmp_path, capsys):
    report = tmp_path / "sweep.json"
    argv = ["sweep", "--preset", "swin-b-224-w7", "--masks", "6", "--reference-budget", "60"]
    assert main([*argv, "--out", str(tmp_path), "--json", str(report)]) == 0
    text = capsys.readouterr().out
    data = json.loads(report.read_text())
    per_mask = data["solver_sweep"]
    assert [m["seed"] for m in per_mask] == list(range(6))
    pub_costs, packing_costs, sweep_costs = [], [], []
    for m in per_mask:
        _, counts = preset_counts("swin-b-224-w7", seed=m["seed"])
        counts = counts.ravel()
        published = gp.solve(counts, strategy="greenmim", channels=128)
        packing = gp.solve(counts, channels=128)
        assert m["published_groups"] == published.num_groups
        assert m["baseline_cost"] == pytest.approx(published.cost)
        assert m["packing_groups"] == packing.num_groups <= published.num_groups
        assert m["packing_cost"] == pytest.approx(packing.cost)
        assert m["cost"] <= m["packing_cost"] * (1 + 1e-12)  # the sweep includes that g
        assert m["relative_cost"] == pytest.approx(m["cost"] / m["baseline_cost"])
        assert m["reference_matches"] is True
        pub_costs.append(published.cost)
        packing_costs.append(packing.cost)
        sweep_costs.append(m["cost"])

    pack = data["packing_vs_published"]
    fewer = sum(m["packing_groups"] < m["published_groups"] for m in per_mask)
    assert pack["masks_fewer_groups"] == pack["masks_cheaper"] == fewer
    assert pack["masks_more_groups"] == pack["masks_costlier"] == 0
    assert pack["published_groups_total"] == sum(m["published_groups"] for m in per_mask)
    assert pack["library_groups_total"] == sum(m["packing_groups"] for m in per_mask)
    assert (
        pack["groups_saved_total"] == pack["published_groups_total"] - pack["library_groups_total"]
    )
    saved = 1 - np.array(packing_costs) / np.array(pub_costs)
    assert pack["cost_saved_total"] == pytest.approx(1 - sum(packing_costs) / sum(pub_costs))
    assert pack["cost_saved_mean"] == pytest.approx(saved.mean())
    assert pack["cost_saved_median"] == pytest.approx(np.median(saved))
    assert pack["cost_saved_max"] == pytest.approx(saved.max())
    assert pack["cost_saved_min"] >= -1e-12
    sweep = data["sweep_vs_published"]
    assert sweep["cost_saved_total"] == pytest.approx(1 - sum(sweep_costs) / sum(pub_costs))
    assert sweep["cost_saved_total"] >= pack["cost_saved_total"] - 1e-12
    assert sweep["masks_costlier"] == 0
    published_row = data["published"]
    assert published_row["strategy"] == "greenmim"
    assert published_row["groups"] == np.median([m["published_groups"] for m in per_mask])
    assert published_row["cost"] == pytest.approx(np.median(pub_costs))
    assert data["baseline"].startswith("the published GreenMIM plan")
    times = data["solve_times"]
    assert times["reference_masks"] == 6 and times["reference_matches"] is True
    for key in ("library_sweep_ms", "library_packing_ms", "published_library_ms"):
        assert times[key] > 0
    assert times["published_reference_ms"] == pytest.approx(
        np.median([m["reference_time_ms"] for m in per_mask])
    )
    assert times["speedup_sweep_vs_reference"] > 0

    for row in data["rows"]:  # relative to each mask's published plan, medians and means
        rel = []
        for m, pub_cost in zip(per_mask, pub_costs, strict=True):
            if m["max_count"] <= row["group_size"]:
                _, counts = preset_counts("swin-b-224-w7", seed=m["seed"])
                rel.append(
                    gp.solve(counts.ravel(), row["group_size"], channels=128).cost / pub_cost
                )
        assert row["masks"] == len(rel)
        assert row["relative_cost"] == pytest.approx(np.median(rel))
        assert row["relative_cost_mean"] == pytest.approx(np.mean(rel))

    assert "published GreenMIM (baseline)" in text
    (line_a,) = [ln for ln in text.splitlines() if "(a) packing at GreenMIM's g" in ln]
    assert f"fewer groups on {fewer}/6 masks" in line_a
    assert f"total {100 * pack['cost_saved_total']:.1f}%" in line_a
    assert f"median {100 * pack['cost_saved_median']:.1f}%" in line_a
    (line_b,) = [ln for ln in text.splitlines() if "(b) sweep over group sizes" in ln]
    assert f"total {100 * sweep['cost_saved_total']:.1f}%" in line_b
    assert "in plain Python" in text and "(6/6 masks timed)" in text
    png = tmp_path / "sweep_swin-b-224-w7_s0.png"
    assert png.exists() and _is_png(png)


def test_single_mask_sweep_headline(tmp_path, capsys):
    report = tmp_path / "sweep.json"
    argv = ["sweep", "--preset", "swin-b-224-w7", "--seed", "1", "--out", str(tmp_path)]
    assert main([*argv, "--json", str(report)]) == 0
    text = capsys.readouterr().out
    data = json.loads(report.read_text())
    (m,) = data["solver_sweep"]
    assert f"published GreenMIM at g={data['max_count']}: {m['published_groups']} groups" in text
    (line_a,) = [ln for ln in text.splitlines() if "(a) library packing at the same g" in ln]
    saved = data["packing_vs_published"]["cost_saved_total"]
    assert f"{m['packing_groups']} groups" in line_a and f"saves {100 * saved:.1f}%" in line_a
    assert saved == pytest.approx(1 - m["packing_cost"] / m["baseline_cost"])
    (line_b,) = [ln for ln in text.splitlines() if "(b) library sweep over g" in ln]
    assert f"g={m['group_size']}" in line_b
    (row,) = [
        ln
        for ln in text.splitlines()
        if ln.rstrip().endswith("library at GreenMIM's g")
        or "library at GreenMIM's g, <- optimum" in ln
    ]
    assert row.split()[0] == str(data["max_count"])  # the table row at the published g


def test_plots_check_their_inputs(tmp_path):
    from grouping.plotting import plot_plan, plot_sweep

    token_mask, counts = preset_counts("swin-b-224-w7", stage=2, seed=0)
    plan = gp.solve(counts, channels=512)
    other = gp.solve(np.ones(5, dtype=np.int64))
    with pytest.raises(gp.GroupingValueError, match="baseline"):
        plot_plan(token_mask, plan, 7, 0, tmp_path / "x.png", baseline=other)
    plot_plan(token_mask, plan, 7, 0, tmp_path / "p.png", baseline=plan, title="t")
    assert _is_png(tmp_path / "p.png")
    rows = [{"group_size": 9, "relative_cost": 1.0}, {"group_size": 10, "relative_cost": 0.9}]
    with pytest.raises(gp.GroupingValueError, match="best"):
        plot_sweep(rows, tmp_path / "y.png", 11)
    plot_sweep(rows, tmp_path / "s.png", 10, baseline_group_size=9, packing_relative=0.95)
    assert _is_png(tmp_path / "s.png")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


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
        ["sweep", "--preset", "swin-b-224-w7", "--reference-budget", "-1"],
        ["plan", "--preset", "swin-b-224-w7", "--reference-budget", "soon"],
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


@pytest.mark.parametrize("size", ["0", "-3"])
def test_pretrain_group_size_follows_the_one_rule(size, capsys):
    """One group-size rule for every command: pretrain refuses what plan refuses."""
    assert main(["pretrain", "--group-size", size]) == 2
    err = capsys.readouterr().err.strip()
    assert "--group-size" in err and "positive int" in err and "\n" not in err


def test_pretrain_options_come_from_the_config_fields():
    from dataclasses import fields

    from grouping.cli.pretrain import config_from_args
    from grouping.train.config import TrainConfig

    parser = build_parser()
    args = parser.parse_args(["pretrain", "--accum-steps", "3", "--new-schedule", "--no-progress"])
    cfg = config_from_args(args)
    assert (cfg.accum_steps, cfg.new_schedule, cfg.progress) == (3, True, False)
    defaults = config_from_args(parser.parse_args(["pretrain"]))
    for f in fields(TrainConfig):
        if f.metadata["cli"]:
            assert getattr(defaults, f.name) == f.default, f.name  # defaults written once


@given(counts=st.lists(st.integers(0, 12), min_size=1, max_size=12).filter(lambda c: sum(c) > 0))
def test_per_size_sweep_rows_equal_solve_at_each_size(counts):
    counts = np.array(counts, dtype=np.int64)
    result = gp.sweep_group_sizes(counts, 16, budget="per_size", extra=4)
    for g, groups in zip(result.group_sizes, result.num_groups, strict=True):
        assert gp.solve(counts, int(g)).num_groups == groups
