"""Evidence that pretraining with ``grouping`` learns, on real images shipped in a wheel.

Two small models, GreenMIM Swin and MAE-Hiera at 64 x 64 px, are pretrained with the
``grouping pretrain`` command, three seeds each, on images that scikit-learn ships inside its
wheel (no download at run time; scikit-learn is a bench extra, never a dependency):

* **Reconstruction** on natural photographs: 64 x 64 crops (random positions and scales) of
  ``china.jpg`` for training, crops of ``flower.jpg`` held out (the two photographs are
  disjoint). At steps ``0`` (the model at initialisation, the same weights the run starts
  from) and every ``--eval-steps`` entry, the masked loss on 64 held-out crops (fixed masks,
  the same for every step and seed, in the model's own normalised-pixel target space) is set
  against the trivial predictor's (zeros: each patch as its own mean) and against the model's
  own at initialisation; PSNR of the pasted reconstruction too.
* **Representation** on handwritten digits (``load_digits``: 1,797 images of 8 x 8 px,
  10 classes, upsampled to 64 px): pretrained on the training split (1,200 images, labels
  unused), then ``grouping probe`` (DINO's k-NN, MAE's linear probe) on the held-out 597,
  against the same encoder at random initialisation (``--init random``) with the same seed.

Targets, after the longest run: the held-out masked loss at most 0.8x the trivial
predictor's and at most 0.8x the model's own at initialisation (seed mean); the pretrained
encoder's k-NN top-1 above random init's by more than the spread (max - min) over the seeds.

Usage::

    python bench/learning.py                 # the full run (about 50 minutes on 2 cores)
    python bench/learning.py --quick         # a smoke run: 1 seed, a few steps, /tmp output
    python bench/learning.py --replot docs/results/learning.json   # redraw the figures

Writes ``docs/results/learning.json`` (keys ``machine``, ``versions``, ``settings``,
``command``, ``runs`` (per family and seed: the held-out losses per step, the probe results,
the wall time of every stage), ``summary`` and ``targets``), the figure
``docs/figures/learning.png`` (held-out loss against steps, probe top-1 bars), one
reconstruction grid per family after the longest run (``learning_recon_{family}.png``) and
the training curves of seed 0 (``learning_curves.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine_info, versions, write_json

ROOT = Path(__file__).resolve().parents[1]

FAMILIES: dict[str, dict[str, Any]] = {
    "swin": {
        "model": "greenmim_swin_tiny",
        "classifier": "swin_tiny_patch4_window7_224",
        "arch": dict(
            img_size=64, window_size=4, embed_dim=32, depths=(2, 2, 2), num_heads=(2, 4, 8)
        ),
        "pretrain_arch": dict(mask_unit=16, decoder_dim=64, decoder_heads=2),
        "label": "GreenMIM Swin (64 px, 3 stages, dim 32)",
    },
    "hiera": {
        "model": "mae_hiera_tiny_224",
        "classifier": "hiera_tiny_224",
        "arch": dict(
            input_size=(64, 64),
            patch_kernel=(3, 3),
            patch_stride=(2, 2),
            patch_padding=(1, 1),
            embed_dim=16,
            num_heads=1,
            stages=(1, 1, 1, 1),
        ),
        "pretrain_arch": dict(decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=2),
        "label": "MAE-Hiera (64 px, 4 stages, dim 16)",
    },
}


def _sets(arch: dict[str, Any]) -> list[str]:
    return [a for k, v in arch.items() for a in ("--set", f"{k}={v!r}".replace(" ", ""))]


# -- data ---------------------------------------------------------------------------------


def make_data(work: Path, *, train_crops: int, heldout_crops: int) -> dict[str, str]:
    """Write the image folders: photos/train (crops of china.jpg), photos/heldout (crops of
    flower.jpg), digits/train/<digit>/ and digits/val/<digit>/."""
    from PIL import Image
    from sklearn.datasets import load_digits, load_sample_images

    photos = load_sample_images()
    names = [os.path.basename(f) for f in photos.filenames]
    rng = np.random.default_rng(0)
    for split, name, count in (
        ("train", "china.jpg", train_crops),
        ("heldout", "flower.jpg", heldout_crops),
    ):
        folder = work / "photos" / split
        folder.mkdir(parents=True, exist_ok=True)
        image = photos.images[names.index(name)]
        h, w = image.shape[:2]
        for i in range(count):
            side = int(rng.integers(64, min(h, w) // 2))
            top, left = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            crop = Image.fromarray(image[top : top + side, left : left + side])
            crop.resize((64, 64), Image.BICUBIC).save(folder / f"{i:04d}.png")
    digits = load_digits()
    pixels = (digits.images / 16.0 * 255).astype(np.uint8)
    for i, (img, label) in enumerate(zip(pixels, digits.target, strict=True)):
        split = "train" if i < 1200 else "val"
        folder = work / "digits" / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).convert("RGB").save(folder / f"{i:04d}.png")
    return {
        "photos_train": str(work / "photos" / "train"),
        "photos_heldout": str(work / "photos" / "heldout"),
        "digits": str(work / "digits"),
    }


# -- runs ---------------------------------------------------------------------------------


def pretrain(
    family: str,
    seed: int,
    data: str,
    steps: int,
    out: Path,
    args: argparse.Namespace,
    *,
    every: int,
) -> float:
    """``grouping pretrain`` in its own process; returns its wall time. A run whose last
    checkpoint and whole metrics file are already in ``out`` (a bench interrupted and run
    again on the same ``--work``) is not run again: its time is then the sum of its steps'
    ``step_time_s``."""
    metrics = Path(f"{out}.jsonl")
    if (out / f"ckpt_{steps:08d}.pt").exists() and metrics.exists():
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line]
        if [r["step"] for r in records] == list(range(1, steps + 1)):
            return float(sum(r.get("step_time_s", 0.0) for r in records))
    spec = FAMILIES[family]
    cmd = [sys.executable, "-m", "grouping", "pretrain", "--model", spec["model"]]
    cmd += _sets({**spec["arch"], **spec["pretrain_arch"]})
    cmd += ["--data", data, "--steps", str(steps), "--batch-size", str(args.batch_size)]
    cmd += ["--lr", str(args.lr), "--warmup-steps", str(min(args.warmup, steps // 4))]
    cmd += ["--seed", str(seed), "--threads", str(args.threads), "--no-progress"]
    cmd += ["--checkpoint", str(out), "--save-every", str(every), "--keep-last", "0"]
    cmd += ["--metrics", f"{out}.jsonl"]
    if args.augment:
        cmd.append("--augment")
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"pretrain failed: {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def heldout_loss(model: Any, folder: str, *, count: int, seed: int, ratio: float) -> dict:
    """The masked loss, the trivial predictor's and PSNR over ``count`` held-out images
    (masks from ``seed``: the same for every step and run)."""
    import torch

    from grouping.models.reconstruct import reconstruct_batch
    from grouping.train.data import ImageFolder, picture_stats

    source = ImageFolder(folder, model.input_shape[1:])
    images = torch.stack([torch.from_numpy(source.load(i, i)) for i in range(count)])
    mean, std = picture_stats(source)
    rows = []
    for start in range(0, count, 32):
        rec = reconstruct_batch(
            model,
            images[start : start + 32],
            mask_ratio=ratio,
            seed=seed + start,
            mean=mean,
            std=std,
        )
        rows.append((len(rec.original), rec.loss, rec.loss_trivial, rec.psnr))
    n = sum(r[0] for r in rows)
    avg = {
        k: sum(r[0] * r[i] for r in rows) / n
        for i, k in ((1, "loss"), (2, "loss_trivial"), (3, "psnr"))
    }
    return avg


def _model_at(family: str, seed: int, folder: Path, step: int) -> Any:
    import torch

    from grouping.models import create_model
    from grouping.models.export import model_from_checkpoint
    from grouping.train.checkpoint import load_checkpoint

    spec = FAMILIES[family]
    if step == 0:  # what the run starts from: train() seeds torch, then builds the model
        torch.manual_seed(seed)
        return create_model(spec["model"], **spec["arch"], **spec["pretrain_arch"]).eval()
    return model_from_checkpoint(load_checkpoint(str(folder / f"ckpt_{step:08d}.pt"))).model


def probe(init: str, family: str, seed: int, digits: str, method: str, work: Path) -> dict:
    from grouping.cli import main

    spec = FAMILIES[family]
    out = work / f"probe_{family}_{seed}_{method}_{os.path.basename(init)}.json"
    argv = ["probe", "--init", init, "--data", digits, "--method", method, "--seed", str(seed)]
    if init == "random":
        argv += ["--model", spec["classifier"], *_sets(spec["arch"])]
    argv += ["--json", str(out)]
    start = time.perf_counter()
    assert main(argv) == 0
    result = json.loads(out.read_text())
    return {"top1": result["top1"], "top5": result["top5"], "time_s": time.perf_counter() - start}


def run_family(family: str, seed: int, data: dict, args: argparse.Namespace, work: Path) -> dict:
    from grouping.models.registry import model_info

    ratio = model_info(FAMILIES[family]["model"]).mask_ratio
    photos = work / f"photos_{family}_{seed}"
    every = min(args.eval_steps)
    record: dict[str, Any] = {"family": family, "seed": seed, "mask_ratio": ratio}
    record["pretrain_photos_s"] = pretrain(
        family, seed, data["photos_train"], max(args.eval_steps), photos, args, every=every
    )
    start = time.perf_counter()
    record["heldout"] = {}
    for step in [0, *args.eval_steps]:
        model = _model_at(family, seed, photos, step)
        record["heldout"][str(step)] = heldout_loss(
            model, data["photos_heldout"], count=args.heldout, seed=10_000, ratio=ratio
        )
    record["heldout_eval_s"] = time.perf_counter() - start
    metrics = [json.loads(line) for line in open(f"{photos}.jsonl")]
    record["train_loss"] = {
        str(r["step"]): r["loss"] for r in metrics if r["step"] in args.eval_steps
    }
    digits = work / f"digits_{family}_{seed}"
    record["pretrain_digits_s"] = pretrain(
        family,
        seed,
        os.path.join(data["digits"], "train"),
        args.digit_steps,
        digits,
        args,
        every=args.digit_steps,
    )
    ckpt = str(digits / f"ckpt_{args.digit_steps:08d}.pt")
    record["probe"] = {
        f"{method}_{which}": probe(init, family, seed, data["digits"], method, work)
        for method in ("knn", "linear")
        for which, init in (("pretrained", ckpt), ("random", "random"))
    }
    return record


# -- summary, targets, figures ---------------------------------------------------------------


def summarise(runs: list[dict], eval_steps: list[int]) -> tuple[dict, list[dict]]:
    summary: dict[str, Any] = {}
    targets = []
    last = str(max(eval_steps))
    for family in FAMILIES:
        rows = [r for r in runs if r["family"] == family]
        if not rows:
            continue
        per_step = {
            step: {
                key: float(np.mean([r["heldout"][step][key] for r in rows]))
                for key in ("loss", "loss_trivial", "psnr")
            }
            for step in rows[0]["heldout"]
        }
        probes = {name: [r["probe"][name]["top1"] for r in rows] for name in rows[0]["probe"]}
        s = {
            "heldout": per_step,
            "probe_top1_mean": {k: float(np.mean(v)) for k, v in probes.items()},
            "probe_top1_spread": {k: float(np.ptp(v)) for k, v in probes.items()},
        }
        summary[family] = s
        end, init = per_step[last], per_step["0"]
        ratio_trivial = end["loss"] / end["loss_trivial"]
        ratio_init = end["loss"] / init["loss"]
        gain = s["probe_top1_mean"]["knn_pretrained"] - s["probe_top1_mean"]["knn_random"]
        spread = max(s["probe_top1_spread"]["knn_pretrained"], s["probe_top1_spread"]["knn_random"])
        targets += [
            {
                "name": f"{family}: held-out loss / trivial predictor's at step {last}",
                "value": ratio_trivial,
                "limit": 0.8,
                "met": ratio_trivial <= 0.8,
            },
            {
                "name": f"{family}: held-out loss / initialisation's at step {last}",
                "value": ratio_init,
                "limit": 0.8,
                "met": ratio_init <= 0.8,
            },
            {
                "name": f"{family}: k-NN top-1 gain over random init, against the seeds' spread",
                "value": gain,
                "limit": spread,
                "met": gain > spread,
            },
        ]
    return summary, targets


def plot(results: dict, figures: Path) -> None:
    from grouping.plotting import _figure, _save

    runs, families = results["runs"], [f for f in FAMILIES if f in results["summary"]]
    fig = _figure(4.6 * len(families) + 4.6, 3.6)
    axes = fig.subplots(1, len(families) + 1, squeeze=False)[0]
    colors = {"swin": "tab:blue", "hiera": "tab:orange"}
    for ax, family in zip(axes, families, strict=False):
        rows = [r for r in runs if r["family"] == family]
        steps = sorted(int(s) for s in rows[0]["heldout"])
        for r in rows:
            ax.plot(
                steps,
                [r["heldout"][str(s)]["loss"] for s in steps],
                "o-",
                color=colors[family],
                alpha=0.6,
                ms=3,
                label=f"seed {r['seed']}",
            )
        trivial = np.mean([r["heldout"][str(steps[-1])]["loss_trivial"] for r in rows])
        ax.axhline(trivial, ls="--", color="gray", label="trivial predictor")
        ax.axhline(0.8 * trivial, ls=":", color="gray", label="0.8 x trivial")
        ax.set_xscale("symlog", linthresh=max(1, steps[1] if len(steps) > 1 else 1))
        ax.set_xlabel("pretraining step")
        ax.set_ylabel("held-out masked loss (normalised pixels)")
        ax.set_title(FAMILIES[family]["label"], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[-1]
    names = ["knn_random", "knn_pretrained", "linear_random", "linear_pretrained"]
    width = 0.8 / max(len(families), 1)
    for k, family in enumerate(families):
        rows = [r for r in runs if r["family"] == family]
        means = [np.mean([r["probe"][n]["top1"] for r in rows]) for n in names]
        lo = [means[i] - min(r["probe"][n]["top1"] for r in rows) for i, n in enumerate(names)]
        hi = [max(r["probe"][n]["top1"] for r in rows) - means[i] for i, n in enumerate(names)]
        x = np.arange(len(names)) + k * width
        ax.bar(
            x, means, width, yerr=[lo, hi], color=colors[family], alpha=0.8, label=family, capsize=3
        )
    ax.set_xticks(np.arange(len(names)) + width * (len(families) - 1) / 2)
    ax.set_xticklabels([n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("top-1 on held-out digits")
    ax.set_title("probes: mean, range over seeds", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, figures / "learning.png", 110)


def grids(results: dict, work: Path, data: dict, figures: Path, eval_steps: list[int]) -> None:
    """One reconstruction grid per family after the longest run (seed 0, 6 held-out crops)."""
    import torch

    from grouping.models.reconstruct import reconstruct_batch
    from grouping.plotting import plot_reconstruction
    from grouping.train.data import ImageFolder, picture_stats

    for family in results["summary"]:
        seed = results["settings"]["seeds"][0]
        model = _model_at(family, seed, work / f"photos_{family}_{seed}", max(eval_steps))
        source = ImageFolder(data["photos_heldout"], model.input_shape[1:])
        images = torch.stack([torch.from_numpy(source.load(i, i)) for i in range(6)])
        mean, std = picture_stats(source)
        ratio = next(r["mask_ratio"] for r in results["runs"] if r["family"] == family)
        rec = reconstruct_batch(model, images, mask_ratio=ratio, seed=10_000, mean=mean, std=std)
        title = (
            f"{FAMILIES[family]['label']}, step {max(eval_steps)}, held-out flower.jpg crops: "
            f"loss {rec.loss:.3f} (trivial {rec.loss_trivial:.3f})"
        )
        plot_reconstruction(
            rec, figures / f"learning_recon_{family}.png", title=title, mask_ratio=ratio
        )
    from grouping.plotting import plot_metrics_files

    seed = results["settings"]["seeds"][0]
    files = [str(work / f"photos_{f}_{seed}.jsonl") for f in results["summary"]]
    plot_metrics_files(
        files, str(figures / "learning_curves.png"), title="pretraining on china.jpg crops, seed 0"
    )


def transfer(results: dict, work: Path, data: dict) -> dict:
    """k-NN on the held-out digits of the *photograph* checkpoints at every evaluated step
    (and random init as step 0): does longer pretraining on natural images give features
    that separate digits better than random ones? (An investigation of the k-NN target.)"""
    out: dict[str, dict[str, dict[str, float]]] = {}
    steps = results["settings"]["eval_steps"]
    for r in results["runs"]:
        family, seed = r["family"], r["seed"]
        folder = work / f"photos_{family}_{seed}"
        row = {"0": probe("random", family, seed, data["digits"], "knn", work)["top1"]}
        for step in steps:
            ckpt = str(folder / f"ckpt_{step:08d}.pt")
            row[str(step)] = probe(ckpt, family, seed, data["digits"], "knn", work)["top1"]
        out.setdefault(family, {})[str(seed)] = row
        print(json.dumps({"transfer": family, "seed": seed, **row}), flush=True)
    return out


def transfer_targets(results: dict) -> list[dict]:
    """The k-NN target on the transfer probes: the longest photograph pretraining's k-NN on
    digits against random init's, gain of the seed means against the larger seed range."""
    last = str(max(results["settings"]["eval_steps"]))
    targets = []
    for family, seeds in results.get("transfer_knn", {}).items():
        pretrained = [row[last] for row in seeds.values()]
        random = [row["0"] for row in seeds.values()]
        gain = float(np.mean(pretrained) - np.mean(random))
        spread = float(max(np.ptp(pretrained), np.ptp(random)))
        targets.append(
            {
                "name": f"{family}: k-NN top-1 on digits of the step-{last} photograph encoder, "
                "gain over random init against the seeds' spread",
                "value": gain,
                "limit": spread,
                "met": gain > spread,
            }
        )
    return targets


def pooling_study(results: dict, work: Path) -> dict:
    """Why k-NN on the pooled features gains little: k-NN (k 20, T 0.07) on the held-out
    digits of raw pixels, and of each encoder's final tokens pooled (what ``grouping probe``
    reads) and kept in place (flattened: the spatial layout a digit's class lives in), for
    the digits checkpoints and random init."""
    import torch

    from grouping.train.data import LabeledImageFolder
    from grouping.train.initial import build_classifier
    from grouping.train.recipe import knn_classify

    digits = work / "digits"
    train_set = LabeledImageFolder(str(digits / "train"), 64, crop_pct=0.875)
    val_set = LabeledImageFolder(str(digits / "val"), 64, crop_pct=0.875)

    def batches(dataset: Any) -> Any:
        for start in range(0, len(dataset), 128):
            keys = range(start, min(start + 128, len(dataset)))
            items = [dataset[i, i] for i in keys]
            yield torch.stack([x[0] for x in items]), torch.tensor([x[2] for x in items])

    def features(net: Any, family: str, dataset: Any) -> tuple[Any, Any, Any]:
        pooled, flat, labels = [], [], []
        net.eval()
        with torch.no_grad():
            for images, y in batches(dataset):
                if family == "swin":
                    dense = net.forward_dense(images)  # B, h, w, C (final norm applied)
                    pooled.append(dense.mean(dim=(1, 2)))
                    flat.append(dense.flatten(1))
                else:
                    tokens, _ = net.forward_tokens(net._check_input(images), None, False)
                    pooled.append(net.norm(tokens.mean(dim=1)))
                    flat.append(net.norm(tokens).flatten(1))
                labels.append(y)
        return torch.cat(pooled), torch.cat(flat), torch.cat(labels)

    def knn(train: Any, val: Any, y_train: Any, y_val: Any) -> float:
        return float(knn_classify(train, y_train, val, y_val, k=20, temperature=0.07).top1)

    pixels_train = torch.cat([x.flatten(1) for x, _ in batches(train_set)])
    pixels_val = torch.cat([x.flatten(1) for x, _ in batches(val_set)])
    y_train = torch.cat([y for _, y in batches(train_set)])
    y_val = torch.cat([y for _, y in batches(val_set)])
    out: dict[str, Any] = {"raw_pixels": knn(pixels_train, pixels_val, y_train, y_val)}
    steps = results["settings"]["digit_steps"]
    for r in results["runs"]:
        family, seed = r["family"], r["seed"]
        spec = FAMILIES[family]
        row = {}
        for which in ("random", "pretrained"):
            torch.manual_seed(seed)
            init = (
                "random"
                if which == "random"
                else str(work / f"digits_{family}_{seed}" / f"ckpt_{steps:08d}.pt")
            )
            model = None if which == "pretrained" else spec["classifier"]
            overrides = spec["arch"] if which == "random" else {}
            net = build_classifier(init, model=model, overrides=overrides, num_classes=10).model
            tp, tf, _ = features(net, family, train_set)
            vp, vf, _ = features(net, family, val_set)
            row[f"{which}_pooled"] = knn(tp, vp, y_train, y_val)
            row[f"{which}_flat"] = knn(tf, vf, y_train, y_val)
        out.setdefault(family, {})[str(seed)] = row
        print(json.dumps({"pooling": family, "seed": seed, **row}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (1 seed, few steps)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--families", default="swin,hiera")
    parser.add_argument("--eval-steps", default="250,1000,4000", help="steps evaluated (and 0)")
    parser.add_argument("--digit-steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-crops", type=int, default=512)
    parser.add_argument("--heldout", type=int, default=64)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--work", default=None, help="folder for data and runs (default: temp)")
    parser.add_argument("--json", default=str(ROOT / "docs" / "results" / "learning.json"))
    parser.add_argument("--figures", default=str(ROOT / "docs" / "figures"))
    parser.add_argument("--replot", default=None, metavar="JSON", help="redraw from results")
    parser.add_argument(
        "--transfer",
        default=None,
        metavar="JSON",
        help="add to results JSON the investigation of the k-NN target (--work's runs): "
        "k-NN on digits of the photograph checkpoints, and of pooled vs flattened tokens",
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.eval_steps, args.digit_steps = "0", "4,8", 4
        args.train_crops, args.heldout = 32, 8
        if args.json == parser.get_default("json"):
            args.json, args.figures = "/tmp/learning_quick.json", "/tmp/learning_quick"
    args.eval_steps = sorted(int(s) for s in str(args.eval_steps).split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    families = args.families.split(",")
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), figures)
        return
    if args.transfer:
        results = json.loads(Path(args.transfer).read_text())
        work = Path(args.work)
        data = {"digits": str(work / "digits")}
        started = time.perf_counter()
        results["transfer_knn"] = transfer(results, work, data)
        results["transfer_s"] = time.perf_counter() - started
        started = time.perf_counter()
        results["pooling_knn"] = pooling_study(results, work)
        results["pooling_s"] = time.perf_counter() - started
        results["transfer_targets"] = transfer_targets(results)
        write_json(args.transfer, results)
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="grouping-learning-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = make_data(work, train_crops=args.train_crops, heldout_crops=args.heldout)
    runs = []
    for seed in seeds:
        for family in families:
            t = time.perf_counter()
            runs.append(run_family(family, seed, data, args, work))
            runs[-1]["total_s"] = time.perf_counter() - t
            print(
                json.dumps(
                    {k: runs[-1][k] for k in ("family", "seed", "heldout", "probe", "total_s")}
                ),
                flush=True,
            )
    summary, targets = summarise(runs, args.eval_steps)
    results = {
        "machine": machine_info(),
        "versions": versions("python", "torch", "numpy", "sklearn", "PIL"),
        "command": " ".join(["python", "bench/learning.py", *sys.argv[1:]]),
        "settings": {
            "seeds": seeds,
            "families": {f: FAMILIES[f] for f in families},
            "eval_steps": args.eval_steps,
            "digit_steps": args.digit_steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "warmup": args.warmup,
            "threads": args.threads,
            "augment": args.augment,
            "train_crops": args.train_crops,
            "heldout": args.heldout,
            "data": "scikit-learn's load_sample_images (china.jpg train, flower.jpg held "
            "out) and load_digits (1,200 train, 597 held out)",
        },
        "runs": runs,
        "summary": summary,
        "targets": targets,
        "total_s": time.perf_counter() - started,
    }
    write_json(args.json, results)
    plot(results, figures)
    grids(results, work, data, figures, args.eval_steps)
    for t in targets:
        verdict = "met " if t["met"] else "MISS"
        print(f"{verdict} {t['name']}: {t['value']:.3f} (limit {t['limit']:.3f})")
    print(f"total {results['total_s']:.0f} s; json {args.json}; figures {figures}")


if __name__ == "__main__":
    main()
