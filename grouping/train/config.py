"""The settings of one pretraining run: :class:`TrainConfig` (torch-free).

Every field carries its command-line help as metadata (:func:`option`), so ``grouping
pretrain``'s options, their defaults and their help text are generated from this one class
(:func:`grouping.cli.pretrain.add_parser`) and written nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ..core.errors import GroupingValueError, check_int, check_mask_ratio, invalid
from ..models.registry import model_info

__all__ = ["TrainConfig", "option"]


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
class TrainConfig:
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
    steps: int = option(10, "total optimizer steps; with --resume, continue up to N", metavar="N")
    batch_size: int = option(8, "samples per step per process", metavar="B")
    accum_steps: int = option(
        1,
        "batches per optimizer step (gradient accumulation, MAE's accum_iter): batch B with K "
        "steps follows batch B*K's loss curve; the global batch is B x processes x K",
        metavar="K",
    )
    workers: int = option(0, "DataLoader workers; 0 = masks and plans made in-process", metavar="W")
    per_sample: bool = option(
        False, "one mask per sample (default: one mask per batch, GreenMIM's choice)"
    )
    mask_ratio: float | None = option(
        None,
        "fraction of mask units masked (default: the model's, 0.75 for GreenMIM, 0.6 for "
        "MAE-Hiera, 0.9 for its video models)",
        metavar="R",
    )
    seed: int = option(0, "seeds the data, the masks and the model's initialisation", metavar="S")
    data: str | None = option(
        None,
        "image folder, searched recursively (Pillow); default synthetic images",
        metavar="FOLDER",
    )
    augment: bool = option(
        False, "MAE's random resized crop and flip on --data images (else centre crop)"
    )
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
    resume: bool = option(False, "continue from the latest checkpoint in --checkpoint DIR")
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
    save: str | None = option(None, "write the encoder's weights here at the end", metavar="PATH")
    progress: bool = option(
        True,
        "a progress bar on stderr when it is a terminal (--no-progress: none)",
        flag="--no-progress",
    )
    log: Callable[[str], None] | None = option(print, "where rank 0's lines go", cli=False)

    def validate(self) -> None:
        """Raise :class:`~grouping.GroupingValueError` for an invalid setting (named as the
        command-line option)."""
        try:
            model_info(self.model)
        except GroupingValueError as exc:  # name the option, keep the list of names
            raise GroupingValueError("--model" + str(exc)[len("name") :]) from None
        if not model_info(self.model).pretrain:
            raise invalid("--model", "a model that grouping pretrain trains", self.model)
        check_int("--steps", self.steps, minimum=1)
        check_int("--batch-size", self.batch_size, minimum=1)
        check_int("--accum-steps", self.accum_steps, minimum=1)
        check_int("--workers", self.workers, minimum=0)
        check_int("--seed", self.seed, minimum=0)
        check_int("--threads", self.threads, minimum=0)
        check_int("--save-every", self.save_every, minimum=0)
        check_int("--warmup-steps", self.warmup_steps, minimum=0)
        check_mask_ratio(self.ratio, "--mask-ratio")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise invalid("--lr", "a positive float", self.lr)
        if self.min_lr < 0 or self.min_lr > self.lr:
            raise invalid("--min-lr", f"a float in [0, --lr={self.lr}]", self.min_lr)
        if self.warmup_steps > self.steps:
            raise invalid("--warmup-steps", f"at most --steps={self.steps}", self.warmup_steps)
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise invalid("--clip-grad", "a positive norm", self.clip_grad)
        if self.resume and not self.checkpoint:
            raise invalid("--resume", "a --checkpoint DIR to resume from", None)
        if self.save_every and not self.checkpoint:
            raise invalid("--save-every", "a --checkpoint DIR to write to", None)

    @property
    def ratio(self) -> float:
        """The mask ratio used: ``mask_ratio``, or the model's default."""
        if self.mask_ratio is None:
            return float(model_info(self.model).mask_ratio)
        return self.mask_ratio

    def run_identity(self, global_batch: int) -> dict[str, Any]:
        """What a checkpoint must agree on to be resumed by this run: the model and its
        architecture, and the settings that define the data and mask streams."""
        return {
            "model": self.model,
            "overrides": dict(self.overrides),
            "solver": dict(self.solver),
            "per_sample": bool(self.per_sample),
            "mask_ratio": float(self.ratio),
            "seed": int(self.seed),
            "global_batch": int(global_batch),
            "data": "synthetic" if self.data is None else "folder",
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


def _attributes_doc(cls: type) -> str:
    lines = ["", "    Attributes:"]
    for f in fields(cls):
        lines.append(f"        {f.name}: {f.metadata['help']}.")
    return "\n".join(lines) + "\n"


TrainConfig.__doc__ = (TrainConfig.__doc__ or "").rstrip() + "\n" + _attributes_doc(TrainConfig)
