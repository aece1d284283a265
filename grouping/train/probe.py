"""Frozen-encoder evaluation (``grouping probe``): DINO's weighted k-NN and MAE's linear probe.

The encoder is the classifier that :func:`grouping.train.initial.build_classifier` builds from
``--init`` (a pretraining checkpoint's encoder, other weights, or a random initialisation: the
baseline every probe is compared with). Its pooled pre-logit features (``forward_features``:
Swin's and Hiera's normed mean of the last stage's tokens, Perceiver IO's mean of the latents)
of every image of ``train/`` and ``val/`` are computed once, in eval mode without gradients,
with the evaluation transform (resize, centre crop of 0.875, ImageNet's mean and std; no
augmentation) and kept as float32 tensors ``[N, D]`` (:func:`extract_features`). Then:

* ``knn`` (:func:`knn_probe`): DINO's weighted k-NN on the L2-normalised features
  (:func:`grouping.train.recipe.knn_classify`; ``k = 20``, temperature ``0.07``);
* ``linear`` (:func:`linear_probe`): MAE's linear probe, a batch norm without affine
  parameters and a linear layer (:class:`grouping.train.recipe.LinearProbeHead`) trained with
  cross-entropy on the cached features by SGD with momentum 0.9 or by LARS (MAE's), its
  learning rate set every iteration by MAE's ``adjust_learning_rate`` (linear warm-up, then
  half a cosine, over fractional epochs: :func:`epoch_lr`), peak ``blr * B / 256``.

Everything random (a random encoder's weights, the head's initialisation, the order of the
batches) comes from ``seed`` through generators of its own (the caller's global torch
generator is left as it was), so the same settings on the same machine give the same numbers.
The probe runs in one process (``torchrun`` is refused): the features are computed once, so a
CPU probes a small folder in minutes.

Differences from MAE's ``main_linprobe``: the head trains on features of the evaluation
transform computed once, not on features of randomly cropped and flipped images computed
every epoch (so that a CPU runs it in minutes); a training folder smaller than the batch is one
batch of all its images (MAE drops the last incomplete batch); the default optimizer is SGD.
LARS scales each update of the weight matrix to ``lr * 0.001 * |W|`` whatever the gradient,
which moves the head in MAE's ImageNet run (batch 16384, ``lr = 6.4``, 78 steps an epoch) but
hardly at all in the one step an epoch of a folder below 256 images (``lr = blr * N / 256``):
on a 240-image, 4-class folder the default rule gave LARS 33 % top-1 with the loss still at
``ln 4``, SGD 69 %. ``--optimizer lars`` is MAE's recipe as published.

References:
    He, Kaiming, et al. "Masked Autoencoders Are Scalable Vision Learners." CVPR 2022
    (``main_linprobe.py``, ``util/lr_sched.py``). Caron, Mathilde, et al. "Emerging Properties
    in Self-Supervised Vision Transformers." ICCV 2021 (DINO, ``eval_knn.py``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..core.errors import check_int, invalid
from .config import ProbeConfig
from .data import LabeledImageFolder, class_folders, verify_images
from .distributed import init_distributed
from .initial import Initial, build_classifier
from .recipe import LARS, LinearProbeHead, knn_classify

__all__ = [
    "EVAL_CROP_PCT",
    "Features",
    "LinearProbeResult",
    "ProbeFeatures",
    "ProbeScores",
    "epoch_lr",
    "extract_features",
    "knn_probe",
    "linear_probe",
    "probe",
    "probe_features",
]

#: The centre crop of the evaluation transform (MAE's: resize 256, crop 224).
EVAL_CROP_PCT = 0.875

_T = TypeVar("_T")


class Features(NamedTuple):
    """Frozen features of a labelled image folder.

    Attributes:
        features: float32 ``[N, D]`` on the CPU, row ``i`` the ``i``-th image of the dataset.
        labels: int64 ``[N]`` class indices.
    """

    features: torch.Tensor
    labels: torch.Tensor


class ProbeScores(NamedTuple):
    """Accuracy of a probe on the validation features, as fractions in ``[0, 1]``.

    Attributes:
        top1: share of validation images whose highest-ranked class is theirs.
        top5: share whose class is among the ``min(5, K)`` highest-ranked.
    """

    top1: float
    top5: float


class LinearProbeResult(NamedTuple):
    """What :func:`linear_probe` trained and scored.

    Attributes:
        top1: as :class:`ProbeScores`.
        top5: as :class:`ProbeScores`.
        lr: the peak learning rate used.
        batch_size: features per step.
        steps: optimizer steps (``epochs * (N // batch_size)``).
        loss: the cross-entropy of the last step.
    """

    top1: float
    top5: float
    lr: float
    batch_size: int
    steps: int
    loss: float


def _seeded(seed: int, build: Callable[[], _T]) -> _T:
    """``build()`` with torch's global generator seeded by ``seed``, restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _stack_labelled(samples: Sequence[tuple[torch.Tensor, int, int]]) -> tuple[Any, Any]:
    images = torch.stack([image for image, _, _ in samples])
    return images, torch.tensor([label for _, _, label in samples], dtype=torch.int64)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 64,
    workers: int = 0,
    device: torch.device | str | None = None,
) -> Features:
    """The pooled features ``model.forward_features(images)`` of every image of ``dataset``.

    The model is moved to ``device`` and run in eval mode without gradients (its mode is
    restored after); images are read in order, ``batch_size`` at a time, by ``workers``
    DataLoader workers.

    Args:
        model: a classifier with ``forward_features(images [B, C, H, W]) -> [B, D]`` (Swin,
            Hiera, Perceiver IO).
        dataset: a :class:`~grouping.train.data.LabeledImageFolder` (or any dataset whose
            item ``(i, i)`` is ``(float32 [C, H, W], position, label)``).
        batch_size: images per forward pass.
        workers: DataLoader workers (0: in-process).
        device: where the model runs (None: where its parameters are).

    Returns:
        :class:`Features`: float32 ``[N, D]`` and int64 ``[N]``, on the CPU.
    """
    if not callable(getattr(model, "forward_features", None)):
        raise invalid(
            "model", "a classifier with forward_features (Swin, Hiera, HiP, Perceiver IO)", model
        )
    size = check_int("batch_size", batch_size, minimum=1)
    n = check_int("len(dataset)", len(dataset), minimum=1)  # type: ignore[arg-type]
    if device is None:
        device = next(model.parameters()).device
    model.to(device)
    batches = [[(i, i) for i in range(s, min(s + size, n))] for s in range(0, n, size)]
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=_stack_labelled,
        num_workers=check_int("workers", workers, minimum=0),
        generator=torch.Generator(),  # its workers' seeds: not drawn from the global generator
    )
    was_training = model.training
    model.eval()
    features, labels = [], []
    for images, y in loader:
        features.append(model.forward_features(images.to(device)).float().cpu())  # B, D
        labels.append(y)
    model.train(was_training)
    return Features(torch.cat(features), torch.cat(labels))


def _check_pair(train: Features, val: Features) -> tuple[int, int]:
    if train.features.ndim != 2 or len(train.labels) != len(train.features):
        raise invalid("train", "features [N, D] with N labels", train.features)
    n, d = tuple(train.features.shape)
    if val.features.ndim != 2 or val.features.shape[1] != d:
        raise invalid("val", f"features [M, {d}] (the training features' width)", val.features)
    return n, d


def _ranked_scores(scores: torch.Tensor, labels: torch.Tensor) -> ProbeScores:
    """Top-1 and top-5 (among ``min(5, K)``) of per-class scores ``[M, K]``."""
    top = scores.topk(min(5, scores.shape[1]), dim=1).indices  # M, 5
    hits = top == labels.to(top.device)[:, None]
    m = scores.shape[0]
    return ProbeScores(float(hits[:, 0].sum()) / m, float(hits.any(dim=1).sum()) / m)


def knn_probe(
    train: Features,
    val: Features,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    device: torch.device | str = "cpu",
    chunk_size: int = 256,
) -> ProbeScores:
    """DINO's weighted k-NN of the validation features among the training features.

    Features are L2-normalised; each validation image's ``k`` most similar training images
    vote for their class with weight ``exp(cosine / temperature)``
    (:func:`grouping.train.recipe.knn_classify`, deterministic: ties rank by class index).

    Args:
        train: the training :class:`Features` (``N`` images).
        val: the validation :class:`Features`.
        k: neighbours, ``1 <= k <= N``.
        temperature: ``> 0``.
        num_classes: ``K`` (None: the largest label + 1).
        device: where the similarities are computed.
        chunk_size: validation images per similarity block.

    Returns:
        :class:`ProbeScores`.
    """
    _check_pair(train, val)
    result = knn_classify(
        train.features.to(device),
        train.labels.to(device),
        val.features.to(device),
        val.labels.to(device),
        k=k,
        temperature=temperature,
        num_classes=num_classes,
        chunk_size=chunk_size,
    )
    return ProbeScores(result.top1, result.top5)


def epoch_lr(
    epoch: float, *, base_lr: float, epochs: int, warmup_epochs: int = 0, min_lr: float = 0.0
) -> float:
    """MAE's ``adjust_learning_rate`` at a fractional ``epoch`` (set every iteration).

    ``base_lr * epoch / warmup_epochs`` during the warm-up, then ``min_lr + (base_lr - min_lr)
    * (1 + cos(pi * (epoch - warmup_epochs) / (epochs - warmup_epochs))) / 2``; iteration
    ``i`` of ``I`` in epoch ``e`` is at ``e + i / I``, so the first iteration has learning rate
    0 (as MAE's).

    Args:
        epoch: ``0 <= epoch <= epochs``.
        base_lr: the peak learning rate.
        epochs: epochs of the run.
        warmup_epochs: ``0 <= warmup_epochs <= epochs``.
        min_lr: the floor.

    Examples:
        >>> [round(epoch_lr(e, base_lr=1.0, epochs=4, warmup_epochs=2), 3)
        ...  for e in (0, 1, 2, 3, 4)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if not 0 <= warmup_epochs <= epochs:
        raise invalid("warmup_epochs", f"an int in [0, epochs={epochs}]", warmup_epochs)
    if not 0 <= epoch <= epochs:
        raise invalid("epoch", f"a float in [0, epochs={epochs}]", epoch)
    if epoch < warmup_epochs:
        return base_lr * epoch / warmup_epochs
    t = (epoch - warmup_epochs) / (epochs - warmup_epochs)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def linear_probe(
    train: Features,
    val: Features,
    *,
    num_classes: int,
    optimizer: str = "sgd",
    epochs: int = 90,
    warmup_epochs: int = 10,
    lr: float | None = None,
    blr: float = 0.1,
    batch_size: int = 256,
    min_lr: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> LinearProbeResult:
    """MAE's linear probe on cached features: train the head on ``train``, score it on ``val``.

    The head is :class:`~grouping.train.recipe.LinearProbeHead` (``BatchNorm1d`` without
    affine parameters, then ``Linear`` with weights of std 0.01), initialised from ``seed``.
    Each epoch visits the training features in an order drawn from ``seed``, in ``N // B``
    batches of ``B = min(batch_size, N)`` (the last incomplete batch dropped, as MAE); the
    learning rate of every iteration is :func:`epoch_lr` with peak ``lr``, or ``blr * B /
    256`` (MAE's rule); the loss is the cross-entropy. The scores are those of the head in
    eval mode (the batch norm's running statistics) after the last epoch.

    Args:
        train: the training :class:`Features`.
        val: the validation :class:`Features`.
        num_classes: ``K``, more than every label.
        optimizer: ``"sgd"`` (momentum 0.9) or ``"lars"``
            (:class:`~grouping.train.recipe.LARS`, MAE's; see the module docstring).
        epochs: epochs (MAE: 90).
        warmup_epochs: epochs of warm-up (MAE: 10).
        lr: the absolute peak learning rate (None: ``blr * B / 256``).
        blr: the base learning rate (MAE: 0.1).
        batch_size: ``>= 2`` (MAE: 16384).
        min_lr: the floor of the cosine (MAE: 0), at most the peak.
        weight_decay: (MAE: 0).
        seed: seeds the head and the batches.
        device: where the head trains.

    Returns:
        :class:`LinearProbeResult`.
    """
    n, d = _check_pair(train, val)
    k = check_int("num_classes", num_classes, minimum=2)
    if int(max(train.labels.max(), val.labels.max())) >= k:
        raise invalid("num_classes", "more than every label", num_classes)
    check_int("epochs", epochs, minimum=1)
    if not 0 <= check_int("warmup_epochs", warmup_epochs, minimum=0) <= epochs:
        raise invalid("warmup_epochs", f"at most epochs={epochs}", warmup_epochs)
    b = min(check_int("batch_size", batch_size, minimum=2), n)
    peak = float(lr) if lr is not None else blr * b / 256
    if not (math.isfinite(peak) and peak > 0):
        raise invalid("lr", "a positive learning rate", peak)
    if not 0 <= min_lr <= peak:
        raise invalid("min_lr", f"a float in [0, lr={peak:g}]", min_lr)
    if optimizer not in ProbeConfig.OPTIMIZERS:
        raise invalid("optimizer", " or ".join(ProbeConfig.OPTIMIZERS), optimizer)
    head = _seeded(seed, lambda: LinearProbeHead(d, k)).to(device)
    params = list(head.parameters())
    if optimizer == "lars":
        opt: torch.optim.Optimizer = LARS(params, lr=peak, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=peak, momentum=0.9, weight_decay=weight_decay)
    order = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    x, y = train.features.to(device), train.labels.to(device)
    per_epoch = n // b
    loss = torch.zeros(())
    head.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=order).to(device)
        for i in range(per_epoch):
            rate = epoch_lr(
                epoch + i / per_epoch,
                base_lr=peak,
                epochs=epochs,
                warmup_epochs=warmup_epochs,
                min_lr=min_lr,
            )
            for group in opt.param_groups:
                group["lr"] = rate
            idx = perm[i * b : (i + 1) * b]
            loss = nn.functional.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    head.eval()
    with torch.no_grad():
        scores = _ranked_scores(head(val.features.to(device)), val.labels)
    return LinearProbeResult(*scores, peak, b, epochs * per_epoch, float(loss.detach()))


def _folders(cfg: ProbeConfig) -> tuple[list[str], str]:
    """The classes of the training folder, the validation folder's option name; the layout of
    both checked before any weights are read."""
    val_flag = "--val" if cfg.val is not None else "--data"
    missing = [p for p in (cfg.train_folder, cfg.val_folder) if not os.path.isdir(p)]
    if cfg.train_folder in missing or (missing and val_flag == "--data"):
        raise invalid(
            "--data",
            "a folder holding train/ and val/, one subfolder per class in each",
            cfg.data,
            f"no folder {missing[0]}",
        )
    classes, _ = class_folders(cfg.train_folder, "--data")
    class_folders(cfg.val_folder, val_flag)
    return classes, val_flag


class ProbeFeatures(NamedTuple):
    """The frozen features a probe reads (:func:`probe_features`).

    Attributes:
        train: :class:`Features` of the training folder.
        val: :class:`Features` of the validation folder.
        classes: the class names, label ``k`` the ``k``-th.
        initial: the :class:`~grouping.train.initial.Initial` classifier that computed them
            (now on ``device``).
        image_size: ``(H, W)`` of the images the encoder read.
        device: where the features were computed.
        seconds: wall time of the extraction.
    """

    train: Features
    val: Features
    classes: list[str]
    initial: Initial
    image_size: tuple[int, int]
    device: torch.device
    seconds: float


def probe_features(cfg: ProbeConfig) -> ProbeFeatures:
    """Check the inputs of a probe, build the encoder, and compute the features once.

    Everything is checked before any image is encoded: the settings (``cfg.validate``), the
    folders (``train/`` and ``val/``, at least two classes, no empty class folder, the
    validation folder's classes the training folder's), the weights
    (:func:`~grouping.train.initial.build_classifier`; a random encoder is drawn from
    ``cfg.seed``), ``--k`` against the training images, and that every image decodes
    (:func:`~grouping.train.data.verify_images`). Both folders are read with the evaluation
    transform at the encoder's input size.

    Raises:
        GroupingValueError: naming the option (``--data``, ``--val``, ``--init``, ``--model``,
            ``--k``, ...) or, for an image that does not decode, the file.
    """
    cfg.validate()
    world = os.environ.get("WORLD_SIZE", "1")
    if world.strip() not in ("", "0", "1"):
        raise invalid(
            "WORLD_SIZE", "one process (grouping probe does not run under torchrun)", world
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    classes, val_flag = _folders(cfg)
    initial = _seeded(
        cfg.seed,
        lambda: build_classifier(
            cfg.init,
            model=cfg.model,
            overrides=cfg.overrides,
            num_classes=len(classes),
            img_size=cfg.img_size,
        ),
    )
    channels, *size = getattr(initial.model, "input_shape", (0,))
    if channels != 3 or len(size) != 2:
        raise invalid("--model", "an image classifier ([3, H, W] inputs)", initial.name)
    sets = [
        LabeledImageFolder(folder, tuple(size), classes=classes, name=flag, crop_pct=EVAL_CROP_PCT)
        for folder, flag in ((cfg.train_folder, "--data"), (cfg.val_folder, val_flag))
    ]
    if cfg.method == "knn" and cfg.k > len(sets[0]):
        raise invalid(
            "--k", f"at most the {len(sets[0])} training images", cfg.k, "pass a smaller --k"
        )
    verify_images([f for s in sets for f in s.files])
    device = init_distributed(cfg.device).device
    if cfg.log:
        cfg.log(
            f"probe ({cfg.method}) {initial.name} from {initial.source}: {len(classes)} classes, "
            f"{len(sets[0])} training and {len(sets[1])} validation images at {tuple(size)}, "
            f"{device}"
        )
        for note in initial.notes:
            cfg.log(note)
    start = time.perf_counter()
    train, val = (
        extract_features(
            initial.model, s, batch_size=cfg.feature_batch_size, workers=cfg.workers, device=device
        )
        for s in sets
    )
    h, w = size
    return ProbeFeatures(train, val, classes, initial, (h, w), device, time.perf_counter() - start)


def probe(cfg: ProbeConfig) -> dict[str, Any]:
    """Probe the frozen encoder of ``cfg.init`` on ``cfg.data`` (see the module docstring):
    :func:`probe_features`, then :func:`knn_probe` or :func:`linear_probe`.

    Returns:
        The summary ``grouping probe --json`` writes: ``method``, ``top1``, ``top5`` (fractions
        in ``[0, 1]``), ``num_train``, ``num_val``, ``num_classes``, ``feature_dim`` and
        ``settings`` (the model, its architecture arguments, the weights, the folders, the
        image size, the seed, the device, and the method's own settings; for ``linear`` also
        the learning rate, batch and steps used and the last loss). No timings: the same
        settings on the same machine give the same summary.

    Raises:
        GroupingValueError: as :func:`probe_features`.
    """
    feats = probe_features(cfg)
    train, val, classes, initial = feats.train, feats.val, feats.classes, feats.initial
    start = time.perf_counter()
    settings: dict[str, Any] = {
        "model": initial.name,
        "overrides": initial.overrides,
        "init": cfg.init if cfg.init == "random" else os.path.abspath(cfg.init),
        "source": initial.source,
        "data": os.path.abspath(cfg.train_folder),
        "val": os.path.abspath(cfg.val_folder),
        "image_size": list(feats.image_size),
        "seed": cfg.seed,
        "device": str(feats.device),
    }
    if cfg.method == "knn":
        scores: tuple[float, ...] = knn_probe(
            train,
            val,
            k=cfg.k,
            temperature=cfg.temperature,
            num_classes=len(classes),
            device=feats.device,
        )
        settings.update(k=cfg.k, temperature=cfg.temperature)
    else:
        scores = linear_probe(
            train,
            val,
            num_classes=len(classes),
            epochs=cfg.epochs,
            warmup_epochs=cfg.warmup_epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            blr=cfg.blr,
            min_lr=cfg.min_lr,
            weight_decay=cfg.weight_decay,
            optimizer=cfg.optimizer,
            seed=cfg.seed,
            device=feats.device,
        )
        settings.update(
            epochs=cfg.epochs,
            warmup_epochs=cfg.warmup_epochs,
            blr=cfg.blr,
            min_lr=cfg.min_lr,
            weight_decay=cfg.weight_decay,
            optimizer=cfg.optimizer,
            lr=scores.lr,
            batch_size=scores.batch_size,
            steps=scores.steps,
            loss=scores.loss,
        )
    if cfg.log:
        cfg.log(
            f"{cfg.method} top-1 {100 * scores[0]:.2f} %, top-5 {100 * scores[1]:.2f} % on "
            f"{len(val.labels)} images ({train.features.shape[1]}-d features: "
            f"{feats.seconds:.1f} s; probe: {time.perf_counter() - start:.1f} s)"
        )
    return {
        "method": cfg.method,
        "top1": scores[0],
        "top5": scores[1],
        "num_train": len(train.labels),
        "num_val": len(val.labels),
        "num_classes": len(classes),
        "feature_dim": int(train.features.shape[1]),
        "settings": settings,
    }
