"""The settings of training runs (torch-free): :class:`TrainConfig` (``grouping pretrain``),
:class:`FinetuneConfig` (``grouping finetune``), both on :class:`RunConfig` (what every run of
the step loop has: steps, batch, optimizer, schedule, checkpoints, metrics), and
:class:`ProbeConfig` (``grouping probe``: a frozen encoder, no step loop).

Every field carries its command-line help as metadata (:func:`option`), so each command's
options, their defaults and their help text are generated from these classes (the
``grouping.cli`` package) and written nowhere else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .._files import check_out, check_out_folder
from ..core.errors import GroupingValueError, check_int, check_mask_ratio, invalid
from ..models.registry import model_info

__all__ = ["FinetuneConfig", "ProbeConfig", "RunConfig", "TrainConfig", "option"]


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    metavar: str | None = None,
    flag: str | None = None,
    cli: bool = True,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field whose metadata is its command-line option.

    Args:
        default: the field's default (also the option's).
        help: one line of help; the command line appends the default.
        metavar: the option's value name (``N``, ``PATH``).
        flag: the option's name when it is not ``--`` + the field name with dashes.
        cli: False for a field the command line sets another way (``overrides``, ``log``).
        default_factory: as :func:`dataclasses.field`.

    Returns:
        A :func:`dataclasses.field`.
    """
    metadata = {"help": help, "metavar": metavar, "flag": flag, "cli": cli}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """What every run of the step loop (:func:`grouping.train.engine.train_steps`) is set by:
    steps, batches, the optimizer and its schedule, checkpoints and metrics."""

    steps: int = option(10, "total optimizer steps; with --resume, continue up to N", metavar="N")
    batch_size: int = option(8, "samples per step per process", metavar="B")
    accum_steps: int = option(
        1,
        "batches per optimizer step (gradient accumulation, MAE's accum_iter): batch B with K "
        "steps follows batch B*K's loss curve; the global batch is B x processes x K",
        metavar="K",
    )
    workers: int = option(0, "DataLoader workers; 0 = data prepared in-process", metavar="W")
    seed: int = option(0, "seeds the data, the masks and the model's initialisation", metavar="S")
    lr: float = option(1.5e-4, "peak learning rate (absolute, not scaled by the batch)")
    min_lr: float = option(0.0, "the floor of the cosine schedule")
    warmup_steps: int = option(0, "steps of linear warm-up", metavar="K")
    weight_decay: float = option(
        0.05, "AdamW weight decay (not on biases, norms and 1-D parameters)"
    )
    clip_grad: float | None = option(
        None, "clip the gradient norm (default: no clipping)", metavar="NORM"
    )
    bf16: bool = option(False, "bf16 autocast of forward and loss")
    threads: int = option(
        0, "torch threads of each training process (0: torch's default)", metavar="T"
    )
    device: str | None = option(None, "cpu, cuda or cuda:N (default: cuda if any)")
    checkpoint: str | None = option(None, "checkpoint folder", metavar="DIR")
    save_every: int = option(
        0, "checkpoint every K steps (0: after the last step only)", metavar="K"
    )
    keep_last: int = option(
        3, "keep the last N checkpoints of --checkpoint DIR (0: keep all)", metavar="N"
    )
    resume: bool = option(False, "continue from the latest checkpoint in --checkpoint DIR")
    overwrite: bool = option(
        False,
        "start afresh in a --checkpoint DIR that holds an earlier run (its checkpoints, "
        "last.pt, best.pt and reconstruction grids are removed first)",
    )
    new_schedule: bool = option(
        False,
        "with --resume: accept other --steps, --lr, --min-lr or --warmup-steps than the "
        "checkpoint's (the learning rate follows the new schedule from the checkpoint's step)",
    )
    metrics: str | None = option(
        None,
        "JSON lines, one object per optimizer step (rank 0; appended on resume)",
        metavar="PATH",
    )
    progress: bool = option(
        True,
        "a progress bar on stderr when it is a terminal (--no-progress: none)",
        flag="--no-progress",
    )
    log: Callable[[str], None] | None = option(print, "where rank 0's lines go", cli=False)

    def validate(self) -> None:
        """Raise :class:`~grouping.GroupingValueError` for an invalid setting (named as the
        command-line option)."""
        check_int("--steps", self.steps, minimum=1)
        check_int("--batch-size", self.batch_size, minimum=1)
        check_int("--accum-steps", self.accum_steps, minimum=1)
        check_int("--workers", self.workers, minimum=0)
        cores = os.cpu_count() or 1
        if self.workers > 4 * cores:
            raise invalid(
                "--workers",
                f"at most {4 * cores} (4 per core; this machine has {cores})",
                self.workers,
                "every worker is a process with its own copy of the data pipeline",
            )
        check_int("--seed", self.seed, minimum=0)
        check_int("--threads", self.threads, minimum=0)
        check_int("--save-every", self.save_every, minimum=0)
        check_int("--warmup-steps", self.warmup_steps, minimum=0)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise invalid("--lr", "a positive float", self.lr)
        if not (math.isfinite(self.min_lr) and 0 <= self.min_lr <= self.lr):
            raise invalid("--min-lr", f"a float in [0, --lr={self.lr}]", self.min_lr)
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise invalid("--weight-decay", "a finite float >= 0", self.weight_decay)
        if self.warmup_steps > self.steps:
            raise invalid("--warmup-steps", f"at most --steps={self.steps}", self.warmup_steps)
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise invalid("--clip-grad", "a positive norm", self.clip_grad)
        if self.resume and not self.checkpoint:
            raise invalid("--resume", "a --checkpoint DIR to resume from", None)
        if self.save_every and not self.checkpoint:
            raise invalid("--save-every", "a --checkpoint DIR to write to", None)
        check_int("--keep-last", self.keep_last, minimum=0)
        if self.resume and self.overwrite:
            raise invalid(
                "--overwrite", "not with --resume (one continues a run, one discards it)", True
            )
        # every output path, before any work (a typo is found now, not after the last step)
        if self.checkpoint:
            check_out_folder("--checkpoint", str(self.checkpoint))
        if self.metrics:
            check_out("--metrics", str(self.metrics), create_folders=True)

    def optimizer_identity(self) -> dict[str, Any]:
        """The optimizer settings a resumed run must keep (the optimizer state holds them:
        a new ``--weight-decay`` would be silently ignored)."""
        return {
            "weight_decay": float(self.weight_decay),
            "clip_grad": None if self.clip_grad is None else float(self.clip_grad),
            "bf16": bool(self.bf16),
        }

    def schedule(self) -> dict[str, Any]:
        """The learning-rate schedule a checkpoint records and a resumed run must keep unless
        ``new_schedule`` (:func:`grouping.train.checkpoint.check_schedule`)."""
        return {
            "lr": float(self.lr),
            "min_lr": float(self.min_lr),
            "warmup_steps": int(self.warmup_steps),
            "total_steps": int(self.steps),
        }


@dataclass
class TrainConfig(RunConfig):
    """One pretraining run: the ``grouping pretrain`` options.

    Each field's meaning is its ``help`` metadata (``grouping pretrain --help`` prints them,
    and the list below is generated from them). ``overrides`` holds the architecture arguments
    changed from the registered ones (``--set KEY=VALUE``, ``--img-size``), ``solver`` the
    settings of the model's ``prepare`` (``--group-size``, ``--strategy``, ``--layout-mode``),
    ``log`` where rank 0's lines go (``print``; None for silence).
    """

    model: str = option("greenmim_swin_tiny", "a registered model name", metavar="NAME")
    overrides: dict[str, Any] = option(
        help="architecture arguments changed from the registered ones (img_size=64)",
        cli=False,
        default_factory=dict,
    )
    solver: dict[str, Any] = option(
        help="settings of the model's prepare: group_size, strategy, layout_mode (Swin)",
        cli=False,
        default_factory=dict,
    )
    per_sample: bool = option(
        False, "one mask per sample (default: one mask per batch, GreenMIM's choice)"
    )
    mask_ratio: float | None = option(
        None,
        "fraction of mask units masked (default: the model's, 0.75 for GreenMIM, 0.6 for "
        "MAE-Hiera, 0.9 for its video models)",
        metavar="R",
    )
    data: str | None = option(
        None,
        "image folder, searched recursively (Pillow); default synthetic images",
        metavar="FOLDER",
    )
    augment: bool = option(
        False, "MAE's random resized crop and flip on --data images (else centre crop)"
    )
    check_data: bool = option(
        False,
        "decode every --data image once before the run (a progress line) and list every bad "
        "file; the run starts only if none is",
    )
    save: str | None = option(None, "write the encoder's weights here at the end", metavar="PATH")
    visualize_every: int = option(
        0,
        "write the reconstruction grid of 8 fixed images at steps K, 2K, ... into the "
        "--checkpoint folder (recon_STEP.png; 0: never)",
        metavar="K",
    )

    def validate(self) -> None:
        """Raise :class:`~grouping.GroupingValueError` for an invalid setting (named as the
        command-line option)."""
        try:
            model_info(self.model)
        except GroupingValueError as exc:  # name the option, keep the list of names
            raise GroupingValueError("--model" + str(exc)[len("name") :]) from None
        if not model_info(self.model).pretrain:
            raise invalid("--model", "a model that grouping pretrain trains", self.model)
        super().validate()
        check_mask_ratio(self.ratio, "--mask-ratio")
        if self.ratio == 0:
            raise invalid(
                "--mask-ratio", "a ratio in (0, 1)", 0, "0 masks nothing: there is nothing to learn"
            )
        if self.save:
            check_out("--save", str(self.save))
        check_int("--visualize-every", self.visualize_every, minimum=0)
        if self.visualize_every and not self.checkpoint:
            raise invalid(
                "--visualize-every", "a --checkpoint folder to write the grids into", None
            )
        if self.visualize_every and model_info(self.model).data != "images":
            raise invalid(
                "--visualize-every",
                "a model of images or video (draw the multimodal autoencoder's clips with "
                "grouping reconstruct)",
                self.model,
            )

    @property
    def ratio(self) -> float:
        """The mask ratio used: ``mask_ratio``, or the model's default."""
        if self.mask_ratio is None:
            return float(model_info(self.model).mask_ratio)
        return self.mask_ratio

    def run_identity(
        self, global_batch: int, solver: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """What a checkpoint must agree on to be resumed by this run: the model and its
        architecture, the data (a folder's path and the fingerprint of its files), the
        augmentation, the mask stream, the solver settings with their defaults filled in
        (``solver``: so that spelling out a default is the same run), and every optimizer
        setting outside the schedule (the schedule is :meth:`schedule`'s, changed only with
        ``--new-schedule``)."""
        return {
            "model": self.model,
            "overrides": dict(self.overrides),
            "solver": dict(self.solver if solver is None else solver),
            "per_sample": bool(self.per_sample),
            "mask_ratio": float(self.ratio),
            "seed": int(self.seed),
            "global_batch": int(global_batch),
            "data": "synthetic" if self.data is None else folder_identity(self.data),
            "augment": bool(self.augment),
            **self.optimizer_identity(),
        }


@dataclass
class FinetuneConfig(RunConfig):
    """One fine-tuning run: the ``grouping finetune`` options (MAE's and Hiera's recipe:
    AdamW with layer-wise learning-rate decay, drop path, label smoothing, optional mixup and
    cutmix, random resized crop and flip, warm-up and cosine by step).

    Each field's meaning is its ``help`` metadata; ``overrides`` holds architecture arguments
    changed from the registered or checkpointed ones (``--set``, ``--img-size``).
    """

    init: str = option(
        "random",
        "initial weights: a grouping pretrain checkpoint (ckpt_*.pt), a --save encoder file, an "
        "official Hiera checkpoint, a timm Swin state_dict, or 'random'",
        metavar="PATH|random",
    )
    model: str | None = option(
        None,
        "the classifier (default: the one of --init's pretraining model; needed with --init "
        "random and with weights from outside grouping)",
        metavar="NAME",
    )
    overrides: dict[str, Any] = option(
        help="architecture arguments changed from the registered or checkpointed ones",
        cli=False,
        default_factory=dict,
    )
    data: str | None = option(
        None,
        "a folder holding train/ and val/, one subfolder per class (the ImageFolder layout)",
        metavar="FOLDER",
    )
    val: str | None = option(None, "the validation folder (default FOLDER/val)", metavar="FOLDER")
    img_size: int | None = option(
        None, "input size (default: the checkpoint's or the model's)", metavar="PX"
    )
    lr: float = option(5e-4, "peak learning rate (absolute, not scaled by the batch)")
    min_lr: float = option(1e-6, "the floor of the cosine schedule")
    layer_decay: float = option(
        0.75,
        "layer-wise learning-rate decay (MAE's rule, in the family's block order); 1: none",
        metavar="D",
    )
    drop_path: float = option(0.1, "stochastic depth of the last block (timm's linear rule)")
    smoothing: float = option(0.1, "label smoothing")
    mixup: float = option(0.0, "mixup alpha (0: off; MAE uses 0.8)", metavar="ALPHA")
    cutmix: float = option(0.0, "cutmix alpha (0: off; MAE uses 1.0)", metavar="ALPHA")
    mix_prob: float = option(1.0, "probability of mixing a batch when mixup or cutmix is on")
    switch_prob: float = option(0.5, "probability of cutmix over mixup when both are on")
    eval_every: int = option(
        0, "evaluate on the validation folder every K steps (0: at the end only)", metavar="K"
    )

    def validate(self) -> None:
        """Raise :class:`~grouping.GroupingValueError` for an invalid setting (named as the
        command-line option)."""
        if self.model is not None:
            try:
                info = model_info(self.model)
            except GroupingValueError as exc:
                raise GroupingValueError("--model" + str(exc)[len("name") :]) from None
            if info.pretrain:
                raise invalid(
                    "--model",
                    "a classifier (pretraining models are fine-tuned through their classifier)",
                    self.model,
                    f"try --model {info.classifier}" if info.classifier else "",
                )
        if self.data is None:
            raise invalid("--data", "a folder holding train/ and val/", None)
        super().validate()
        if not (isinstance(self.layer_decay, (int, float)) and 0 < self.layer_decay <= 1):
            raise invalid("--layer-decay", "a float in (0, 1]", self.layer_decay)
        for flag, value, top in (
            ("--drop-path", self.drop_path, "1)"),
            ("--smoothing", self.smoothing, "1)"),
        ):
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise invalid(flag, "a float in [0, " + top, value)
        for flag, value in (("--mixup", self.mixup), ("--cutmix", self.cutmix)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise invalid(flag, "an alpha >= 0 (0: off)", value)
        for flag, value in (("--mix-prob", self.mix_prob), ("--switch-prob", self.switch_prob)):
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise invalid(flag, "a probability in [0, 1]", value)
        if (self.mixup or self.cutmix) and self.batch_size % 2:
            raise invalid(
                "--mixup" if self.mixup else "--cutmix",
                "an even --batch-size to mix (each sample is mixed with the batch flipped, "
                "as timm's Mixup)",
                f"--batch-size {self.batch_size}",
            )
        check_int("--eval-every", self.eval_every, minimum=0)
        if self.img_size is not None:
            check_int("--img-size", self.img_size, minimum=1)

    @property
    def val_folder(self) -> str:
        """The validation folder: ``val``, or ``data/val``."""
        return self.val if self.val is not None else os.path.join(str(self.data), "val")

    @property
    def train_folder(self) -> str:
        """The training folder, ``data/train``."""
        return os.path.join(str(self.data), "train")

    def run_identity(self, global_batch: int) -> dict[str, Any]:
        """What a checkpoint must agree on to be resumed by this run: the weights it started
        from, the model, the data and the recipe."""
        return {
            "task": "finetune",
            "init": self.init if self.init == "random" else os.path.abspath(self.init),
            "model": self.model,
            "overrides": dict(self.overrides),
            "img_size": self.img_size,
            "data": folder_identity(str(self.data)),
            "val": folder_identity(self.val_folder),
            "seed": int(self.seed),
            "global_batch": int(global_batch),
            "layer_decay": float(self.layer_decay),
            "drop_path": float(self.drop_path),
            "smoothing": float(self.smoothing),
            "mixup": [float(self.mixup), float(self.cutmix), float(self.mix_prob)],
            "switch_prob": float(self.switch_prob),
            **self.optimizer_identity(),
        }


def folder_identity(folder: str) -> dict[str, Any]:
    """A data folder as a run's identity: its resolved path, how many files it holds and a
    fingerprint of their relative paths and sizes (another folder of the same kind, or files
    added, removed or changed in size, make another run)."""
    import hashlib

    root = os.path.realpath(folder)
    entries = []
    for base, _, names in os.walk(root):
        for name in names:
            path = os.path.join(base, name)
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            entries.append(f"{os.path.relpath(path, root)}\t{size}")
    entries.sort()
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
    return {"path": root, "files": len(entries), "fingerprint": digest}


def _again(cls: type, name: str) -> Any:
    """The option field ``name`` of the dataclass ``cls`` once more, for another
    configuration: the same default, help and flag, written once."""
    f = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    meta = f.metadata
    return option(
        f.default,
        meta["help"],
        metavar=meta["metavar"],
        flag=meta["flag"],
        cli=meta["cli"],
        default_factory=f.default_factory,
    )


@dataclass
class ProbeConfig:
    """One frozen-encoder evaluation: the ``grouping probe`` options (DINO's weighted k-NN or
    MAE's linear probe on features of ``train/`` and ``val/`` computed once,
    :func:`grouping.train.probe.probe`).

    Each field's meaning is its ``help`` metadata; the weights, the model and the folders are
    :class:`FinetuneConfig`'s options (``init``, ``model``, ``overrides``: ``--set``, ``data``,
    ``val``, ``img_size``). The linear probe's learning rate is ``lr``, or MAE's rule
    ``blr * B / 256`` with ``B`` the batch the head trains with (``batch_size``, or every
    training image when there are fewer).
    """

    init: str = _again(FinetuneConfig, "init")
    model: str | None = _again(FinetuneConfig, "model")
    overrides: dict[str, Any] = _again(FinetuneConfig, "overrides")
    data: str | None = _again(FinetuneConfig, "data")
    val: str | None = _again(FinetuneConfig, "val")
    img_size: int | None = _again(FinetuneConfig, "img_size")
    method: str = option(
        "knn", "knn: DINO's weighted k-NN; linear: MAE's linear probe", metavar="METHOD"
    )
    k: int = option(20, "knn: neighbours that vote (DINO: 20)", metavar="K")
    temperature: float = option(0.07, "knn: temperature of the votes' weights (DINO: 0.07)")
    epochs: int = option(90, "linear: epochs over the cached features (MAE: 90)", metavar="E")
    warmup_epochs: int = option(
        10, "linear: epochs of linear warm-up before the half cosine (MAE: 10)", metavar="E"
    )
    batch_size: int = option(
        256,
        "linear: features per step (MAE: 16384; all training images when fewer; >= 2 for "
        "the batch norm)",
        metavar="B",
    )
    lr: float | None = option(
        None, "linear: absolute learning rate (default --blr x batch / 256, MAE's rule)"
    )
    blr: float = option(0.1, "linear: base learning rate per 256 samples (MAE: 0.1)")
    min_lr: float = option(0.0, "linear: the floor of the cosine (MAE: 0)")
    weight_decay: float = option(0.0, "linear: weight decay (MAE: 0)")
    optimizer: str = option(
        "sgd",
        "linear: sgd (momentum 0.9) or lars (MAE's, made for its batch of 16384: with the few "
        "steps of a small folder its head barely moves)",
        metavar="NAME",
    )
    seed: int = option(
        0, "seeds a random encoder, the head and the order of the batches", metavar="S"
    )
    feature_batch_size: int = option(
        64, "images per forward pass of the feature extraction", metavar="B"
    )
    workers: int = option(0, "DataLoader workers of the feature extraction", metavar="W")
    threads: int = option(0, "torch threads (0: torch's default)", metavar="T")
    device: str | None = option(None, "cpu, cuda or cuda:N (default: cuda if any)")
    log: Callable[[str], None] | None = option(print, "where the lines go", cli=False)

    #: The probing methods and the linear probe's optimizers.
    METHODS = ("knn", "linear")
    OPTIMIZERS = ("sgd", "lars")

    train_folder = FinetuneConfig.train_folder
    val_folder = FinetuneConfig.val_folder

    def validate(self) -> None:
        """Raise :class:`~grouping.GroupingValueError` for an invalid setting (named as the
        command-line option)."""
        if self.data is None:
            raise invalid("--data", "a folder holding train/ and val/", None)
        if self.method not in self.METHODS:
            raise invalid("--method", " or ".join(self.METHODS), self.method)
        if self.optimizer not in self.OPTIMIZERS:
            raise invalid("--optimizer", " or ".join(self.OPTIMIZERS), self.optimizer)
        for flag, value, minimum in (
            ("--k", self.k, 1),
            ("--epochs", self.epochs, 1),
            ("--warmup-epochs", self.warmup_epochs, 0),
            ("--batch-size", self.batch_size, 2),
            ("--seed", self.seed, 0),
            ("--feature-batch-size", self.feature_batch_size, 1),
            ("--workers", self.workers, 0),
            ("--threads", self.threads, 0),
            ("--img-size", 1 if self.img_size is None else self.img_size, 1),
        ):
            check_int(flag, value, minimum=minimum)
        if self.warmup_epochs > self.epochs:
            raise invalid("--warmup-epochs", f"at most --epochs={self.epochs}", self.warmup_epochs)
        positive = [("--temperature", self.temperature), ("--blr", self.blr)]
        if self.lr is not None:
            positive.append(("--lr", self.lr))
        for flag, value in positive:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise invalid(flag, "a positive float", value)
        for flag, value in (("--min-lr", self.min_lr), ("--weight-decay", self.weight_decay)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise invalid(flag, "a float >= 0", value)


def _attributes_doc(cls: type) -> str:
    lines = ["", "    Attributes:"]
    for f in fields(cls):
        lines.append(f"        {f.name}: {f.metadata['help']}.")
    return "\n".join(lines) + "\n"


for _cls in (RunConfig, TrainConfig, FinetuneConfig, ProbeConfig):
    _cls.__doc__ = (_cls.__doc__ or "").rstrip() + "\n" + _attributes_doc(_cls)
