"""Supervised fine-tuning of an encoder with a classification head (``grouping finetune``).

The recipe is MAE's and Hiera's (``main_finetune``): AdamW (betas 0.9, 0.999) over MAE's
layer-wise learning-rate decay groups in the family's block order
(:func:`grouping.train.recipe.param_groups_lrd`), drop path, label smoothing, optional mixup
and cutmix with timm's semantics (:class:`grouping.train.recipe.Mixup`), timm's random resized
crop (8-100 %) and flip for training and MAE's resize-and-centre-crop (0.875) for evaluation,
linear warm-up and half a cosine by optimizer step, gradient accumulation, bf16 autocast and
gradient clipping. The run is the pretraining loop's (:func:`grouping.train.loop.fit`): the
same stream of positions, DataLoader workers, torchrun/DDP, exact resume and JSON-lines
metrics. Mixing happens in the collator with draws seeded by the batch's first stream position,
so 0 and 2 workers, or a resumed run, see the same batches.

Evaluation on the validation folder every ``eval_every`` steps and after the last: top-1, top-5
and the cross-entropy (fractions in ``[0, 1]``), shared over the processes, added to that
step's metrics record as ``val_top1``, ``val_top5``, ``val_loss``. With ``--checkpoint DIR``
rank 0 keeps ``DIR/classes.json`` (the class names, label ``k`` the ``k``-th), ``DIR/last.pt``
and ``DIR/best.pt`` (the weights after the last step and at the best ``val_top1``, in the
checkpoint layout without the optimizer: ``grouping export`` and ``--init`` read them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..core.errors import check_int
from .checkpoint import FORMAT, save_checkpoint
from .config import FinetuneConfig
from .data import MIX_STREAM, LabeledImageFolder, class_folders, stream_rng, verify_images
from .distributed import DistContext, all_reduce_sum, cleanup_distributed, init_distributed
from .initial import build_classifier, classifier_family
from .loop import _optimizer, _summary, fit
from .recipe import Mixup, mixup_target, param_groups_lrd, soft_target_cross_entropy

__all__ = [
    "ClassBatch",
    "ClassCollator",
    "ClassifierOutput",
    "classify_forward",
    "evaluate",
    "finetune",
]

#: MAE's fine-tuning AdamW betas (torch's defaults; pretraining uses 0.9, 0.95).
FINETUNE_BETAS = (0.9, 0.999)


class ClassBatch(NamedTuple):
    """A fine-tuning batch (built in a DataLoader worker by :class:`ClassCollator`).

    Attributes:
        images: float32 ``[B, C, H, W]``, mixed when mixup or cutmix is on.
        targets: float32 ``[B, K]`` soft targets (smoothed, mixed), rows summing to 1.
        labels: int64 ``[B]`` the true classes (before mixing).
        positions: the samples' stream positions.
        global_step: the optimizer step the batch belongs to (0-based).
    """

    images: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    positions: list[int]
    global_step: int


class ClassCollator:
    """Stack labelled samples into a :class:`ClassBatch`, with smoothing and mixing.

    Picklable (it runs in DataLoader workers). The mixing draws of a batch come from
    ``stream_rng(seed, MIX_STREAM, first position)``: a function of the batch's place in the
    stream only.

    Args:
        num_classes: ``K``.
        smoothing: label smoothing.
        mixup: mixup alpha (0: off).
        cutmix: cutmix alpha (0: off).
        mix_prob: probability of mixing a batch.
        switch_prob: probability of cutmix when both are on.
        seed: the run's seed.
        global_batch: samples per optimizer step over all processes.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        smoothing: float = 0.0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        mix_prob: float = 1.0,
        switch_prob: float = 0.5,
        seed: int = 0,
        global_batch: int = 1,
    ) -> None:
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.smoothing = float(smoothing)
        self.seed = int(seed)
        self.global_batch = check_int("global_batch", global_batch, minimum=1)
        self.mixer = None
        if mixup > 0 or cutmix > 0:
            self.mixer = Mixup(
                mixup,
                cutmix,
                prob=mix_prob,
                switch_prob=switch_prob,
                label_smoothing=smoothing,
                num_classes=num_classes,
                rng=0,
            )

    def __call__(self, samples: Sequence[tuple[torch.Tensor, int, int]]) -> ClassBatch:
        images = torch.stack([s[0] for s in samples])
        positions = [int(s[1]) for s in samples]
        labels = torch.tensor([int(s[2]) for s in samples], dtype=torch.int64)
        if self.mixer is not None:
            rng = stream_rng(self.seed, MIX_STREAM, positions[0])
            images, targets = self.mixer(images, labels, rng=rng)
        else:
            targets = mixup_target(labels, self.num_classes, 1.0, self.smoothing)
        return ClassBatch(images, targets, labels, positions, positions[0] // self.global_batch)


class ClassifierOutput(NamedTuple):
    """A fine-tuning step's output: the soft-target cross-entropy first, and the logits."""

    loss: torch.Tensor
    logits: torch.Tensor

    @property
    def metrics(self) -> dict[str, torch.Tensor]:
        """Scalars logged beside the loss: none."""
        return {}


def classify_forward(net: nn.Module, batch: ClassBatch, device: torch.device) -> ClassifierOutput:
    """``net(images)`` on ``device`` and the soft-target cross-entropy against ``targets``
    (:func:`grouping.train.engine.train_steps`'s ``forward``)."""
    images = batch.images.to(device, non_blocking=True)
    targets = batch.targets.to(device, non_blocking=True)
    logits = net(images)
    return ClassifierOutput(soft_target_cross_entropy(logits.float(), targets), logits)


def _eval_collate(samples: Sequence[tuple[torch.Tensor, int, int]]) -> tuple[Any, Any]:
    images = torch.stack([s[0] for s in samples])
    return images, torch.tensor([int(s[2]) for s in samples], dtype=torch.int64)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: LabeledImageFolder,
    ctx: DistContext,
    *,
    batch_size: int,
    workers: int = 0,
    bf16: bool = False,
) -> dict[str, float]:
    """Top-1, top-5 and cross-entropy of ``model`` on every image of ``dataset``.

    Each process scores the images ``rank, rank + W, ...`` and the sums are reduced, so every
    image counts once whatever the number of processes. The model is put in eval mode and
    back in train mode after.

    Returns:
        ``{"val_top1", "val_top5", "val_loss"}`` (fractions and the mean loss) and
        ``"val_images"``.
    """
    keys = [(i, i) for i in range(ctx.rank, len(dataset), ctx.world_size)]
    batches = [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=_eval_collate,
        num_workers=workers,
        generator=torch.Generator(),  # not the global stream (see grouping.train.loop.fit)
    )
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=ctx.device)  # top1, top5, loss, n
    for images, labels in loader:
        images, labels = images.to(ctx.device), labels.to(ctx.device)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        logits = logits.float()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = top == labels[:, None]
        sums += torch.stack(
            [
                hit[:, 0].sum(),
                hit.any(dim=1).sum(),
                nn.functional.cross_entropy(logits, labels, reduction="sum"),
                torch.tensor(len(labels), device=ctx.device),
            ]
        ).to(torch.float64)
    model.train(was_training)
    top1, top5, loss, n = all_reduce_sum(sums, ctx).tolist()
    return {
        "val_top1": top1 / n,
        "val_top5": top5 / n,
        "val_loss": loss / n,
        "val_images": int(n),
    }


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Run (or resume) a fine-tuning run; return its summary.

    Under ``torchrun`` every process calls this with the same ``cfg`` (``batch_size`` is per
    process); rank 0 writes the metrics, checkpoints, ``classes.json``, ``last.pt`` and
    ``best.pt``.

    Returns:
        The pretraining summary's entries (``losses``, ``steps_run``, ``samples_per_s``, ...)
        and ``model`` (the classifier), ``init``, ``num_classes``, ``classes``, ``evals``
        (every evaluation: ``step`` and the ``val_*`` entries), ``best`` (the best
        evaluation), ``last`` (the last one), and the paths written.
    """
    cfg.validate()
    ctx = init_distributed(cfg.device)
    try:
        return _finetune(cfg, ctx)
    finally:
        cleanup_distributed(ctx)


def _weights_state(
    identity: dict[str, Any], step: int, model: nn.Module, extra: dict[str, Any]
) -> dict[str, Any]:
    return {"format": FORMAT, "run": identity, "step": step, "model": model.state_dict(), **extra}


def _finetune(cfg: FinetuneConfig, ctx: DistContext) -> dict[str, Any]:
    from ..core.solve import warmup

    log = cfg.log if ctx.is_main else None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    warmup()
    classes, _ = class_folders(cfg.train_folder, "--data")
    class_folders(cfg.val_folder, "--val" if cfg.val else "--data")  # its layout, early
    torch.manual_seed(cfg.seed)  # the same new head on every process
    initial = build_classifier(
        cfg.init,
        model=cfg.model,
        overrides=cfg.overrides,
        num_classes=len(classes),
        drop_path=cfg.drop_path,
        img_size=cfg.img_size,
    )
    model = initial.model
    channels, *size = model.input_shape
    if channels != 3 or len(size) != 2:
        raise ValueError(f"--model: expected an image classifier, received {initial.name}")
    train_set = LabeledImageFolder(
        cfg.train_folder, tuple(size), augment=True, crop_scale=(0.08, 1.0), seed=cfg.seed
    )
    val_set = LabeledImageFolder(
        cfg.val_folder,
        tuple(size),
        classes=classes,
        name="--val" if cfg.val else "--data",
        crop_pct=0.875,
    )
    verify_images(train_set.files + val_set.files)  # a bad file stops the run before any work
    model.to(ctx.device)
    model.train()
    groups = param_groups_lrd(
        model,
        weight_decay=cfg.weight_decay,
        layer_decay=cfg.layer_decay,
        family=classifier_family(initial.name),  # type: ignore[arg-type]
    )
    optimizer = _optimizer(groups, cfg, ctx.device, betas=FINETUNE_BETAS)
    global_batch = cfg.batch_size * ctx.world_size * cfg.accum_steps
    identity = {
        **cfg.run_identity(global_batch),
        "model": initial.name,
        "overrides": initial.overrides,
    }
    parameters = sum(p.numel() for p in model.parameters())
    if log:
        log(
            f"finetune {initial.name} from {initial.source}: {parameters:,} parameters, "
            f"{len(classes)} classes, {len(train_set)} training and {len(val_set)} validation "
            f"images at {tuple(size)}, batch {cfg.batch_size} x {ctx.world_size} process(es) x "
            f"{cfg.accum_steps} accumulation step(s), layer decay {cfg.layer_decay}, "
            f"{cfg.workers} worker(s), {ctx.device}"
        )
        for note in initial.notes:
            log(note)
    directory = cfg.checkpoint
    if ctx.is_main and directory:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "classes.json"), "w", encoding="utf-8") as f:
            json.dump(classes, f, indent=1)
    evals: list[dict[str, Any]] = []
    best: dict[str, Any] = {}

    def on_step(record: dict[str, Any]) -> None:
        step = record["step"]
        if step != cfg.steps and not (cfg.eval_every and step % cfg.eval_every == 0):
            return
        result = evaluate(
            model, val_set, ctx, batch_size=cfg.batch_size, workers=cfg.workers, bf16=cfg.bf16
        )
        record.update(result)
        evals.append({"step": step, **result})
        is_best = not best or result["val_top1"] > best["val_top1"]
        if is_best:
            best.clear()
            best.update({"step": step, **result})
        if ctx.is_main and directory:
            extra = {"classes": classes, "eval": {"step": step, **result}}
            if is_best:
                save_checkpoint(
                    os.path.join(directory, "best.pt"), _weights_state(identity, step, model, extra)
                )
            if step == cfg.steps:
                save_checkpoint(
                    os.path.join(directory, "last.pt"), _weights_state(identity, step, model, extra)
                )
        if log:
            log(
                f"step {step}: val top-1 {100 * result['val_top1']:.2f} %, top-5 "
                f"{100 * result['val_top5']:.2f} %, loss {result['val_loss']:.4f} on "
                f"{result['val_images']} images" + (" (best)" if is_best else "")
            )

    def restore(extra: dict[str, Any]) -> None:
        evals.extend(extra.get("evals", []))
        best.update(extra.get("best", {}))

    collator = ClassCollator(
        len(classes),
        smoothing=cfg.smoothing,
        mixup=cfg.mixup,
        cutmix=cfg.cutmix,
        mix_prob=cfg.mix_prob,
        switch_prob=cfg.switch_prob,
        seed=cfg.seed,
        global_batch=global_batch,
    )
    records, start = fit(
        cfg,
        ctx,
        model,
        optimizer,
        train_set,
        collator,
        num_items=len(train_set),
        identity=identity,
        log=log,
        forward=classify_forward,
        on_step=on_step,
        extra_state=lambda: {"evals": list(evals), "best": dict(best)},
        restore_extra=restore,
    )
    summary = _summary(cfg, ctx, records, start, parameters)
    summary.update(
        model=initial.name,
        init=initial.source,
        num_classes=len(classes),
        classes=classes,
        evals=evals,
        best=dict(best),
        last=evals[-1] if evals else {},
    )
    if directory:
        summary["weights"] = {
            "last": os.path.join(directory, "last.pt"),
            "best": os.path.join(directory, "best.pt"),
            "classes": os.path.join(directory, "classes.json"),
        }
    if log and evals:
        log(
            f"val top-1 {100 * evals[-1]['val_top1']:.2f} % after step {evals[-1]['step']}; "
            f"best {100 * best['val_top1']:.2f} % at step {best['step']}"
        )
    elif log and not records:
        log(f"nothing to do: the checkpoint is at step {start} of --steps {cfg.steps}")
    return summary
