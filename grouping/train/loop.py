"""The pretraining loop for any registered masked-modelling model.

:func:`train` runs ``steps`` optimizer steps of ``create_model(name)``: data from an image folder
or synthetic images (:mod:`grouping.train.data`), masks drawn and steps prepared in DataLoader
workers (:class:`~grouping.train.collate.MaskingCollator`), AdamW with MAE's betas and
weight-decay groups, MAE's warm-up + cosine schedule per step, optional gradient clipping and
bf16 autocast, per-step metrics, DDP under torchrun, and checkpoints that resume exactly.

Set-up and the step loop are apart (as MAE's ``main_pretrain`` and ``engine_pretrain``):
:func:`train` builds the pieces; :func:`grouping.train.engine.train_steps` runs the optimizer
steps and yields one record per step, between which this module writes the metrics file, the
progress line and the checkpoints. The loop knows no model kind: the registry's
``ModelInfo.data`` says which data stream a model trains on, and every model follows the same
protocol (``preparer()``, ``forward(inputs, mask=step)`` returning ``out.loss`` and
``out.metrics``, ``encoder_state_dict()``).

Examples:
    >>> from grouping.train import TrainConfig, train
    >>> tiny = dict(img_size=64, window_size=4, embed_dim=16, depths=(1, 1, 1),
    ...             num_heads=(1, 2, 2), mask_unit=16, decoder_dim=32, decoder_heads=2)
    >>> summary = train(TrainConfig(model="greenmim_swin_tiny", steps=2, batch_size=2,
    ...                             overrides=tiny, progress=False, log=None))
    >>> summary["steps_run"], summary["world_size"]
    (2, 1)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..core.errors import GroupingValueError, RunInterrupted, invalid
from ..models.registry import create_model, model_info
from .checkpoint import (
    FORMAT,
    CheckpointError,
    check_compatible,
    check_schedule,
    checkpoint_files,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .collate import MaskingCollator
from .config import RunConfig, TrainConfig
from .data import (
    ImageFolder,
    StreamSampler,
    SyntheticClips,
    SyntheticImages,
    UnreadableImageError,
    check_images,
    image_files,
)
from .distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    cleanup_distributed,
    init_distributed,
)
from .engine import pretrain_forward, train_steps
from .schedule import cosine_lr

__all__ = ["TrainConfig", "train"]


def _init_worker(worker_id: int) -> None:
    """DataLoader worker set-up: one torch thread, and every numba kernel compiled (or loaded
    from the cache) before the first batch."""
    import signal

    from ..core.solve import warmup

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    torch.set_num_threads(1)
    warmup()


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """MAE's groups: weight decay on matrices only, none on biases, norms and 1-D tensors."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _optimizer(
    groups: list[dict[str, Any]],
    cfg: RunConfig,
    device: torch.device,
    betas: tuple[float, float] = (0.9, 0.95),
) -> torch.optim.Optimizer:
    """AdamW over parameter groups (fused where torch has it); MAE's pretraining betas by
    default (fine-tuning: torch's 0.9, 0.999)."""
    # fused AdamW: several times faster than the default on CPU (docs/models.md)
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, fused=fused)


def _dataset(cfg: TrainConfig, model: nn.Module) -> Any:
    """The data stream of the model's kind (the registry's ``ModelInfo.data``)."""
    if model_info(cfg.model).data == "clips":  # video + audio + label
        if cfg.data is not None:
            raise invalid(
                "--data",
                "no image folder for a multimodal model",
                cfg.data,
                "it trains on synthetic clips",
            )
        return SyntheticClips(**model.clip_spec, seed=cfg.seed)
    chans, *size = model.input_shape
    if cfg.data is None:
        return SyntheticImages(tuple(size), chans, seed=cfg.seed)
    if chans != 3 or len(size) != 2:
        raise invalid(
            "--data",
            "an image model with 3 input channels for folder images",
            f"{cfg.model} with input {tuple(model.input_shape)}",
            "train video models on synthetic clips (no --data)",
        )
    return ImageFolder(cfg.data, tuple(size), augment=cfg.augment, seed=cfg.seed)


def _input_text(cfg: TrainConfig, model: nn.Module) -> str:
    if model_info(cfg.model).data == "clips":
        return "clips " + ", ".join(f"{k}={v}" for k, v in model.clip_spec.items())
    return f"images {tuple(model.input_shape)}"


def _rng_state(ctx: DistContext) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return state


def _restore_rng(states: list[dict[str, Any]], ctx: DistContext, cfg: RunConfig, step: int) -> None:
    if len(states) == ctx.world_size:
        mine = states[ctx.rank]
        torch.set_rng_state(mine["torch"])
        if "cuda" in mine and ctx.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"], ctx.device)
    else:  # another number of processes: a fresh, still deterministic, state per rank
        torch.manual_seed(hash((cfg.seed, ctx.rank, step)) % 2**63)


class _Progress:
    """One line per step on a terminal (``\\r``), a line every tenth of the run otherwise."""

    def __init__(self, total: int, enabled: bool, log: Callable[[str], None] | None) -> None:
        self.total = total
        self.tty = enabled and sys.stderr.isatty()
        self.log = log
        self.every = max(1, total // 10)

    def update(self, m: dict[str, Any]) -> None:
        if self.log is None:
            return
        filled = int(24 * m["step"] / self.total)
        line = (
            f"[{'#' * filled}{'-' * (24 - filled)}] {m['step']}/{self.total} loss "
            f"{m['loss']:.4f} lr {m['lr']:.2e} {m['samples_per_s']:7.1f} samples/s "
            f"data wait {1e3 * m['data_wait_s']:6.1f} ms"
        )
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif m["step"] == self.total or m["step"] % self.every == 0:
            self.log(line)

    def close(self) -> None:
        if self.tty and self.log is not None:
            print(file=sys.stderr)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a pretraining run; return its summary.

    Under ``torchrun`` every process calls this with the same ``cfg``; ``batch_size`` is per
    process, the logged loss is the mean over processes, and only rank 0 writes logs, metrics
    and checkpoints.

    Returns:
        A dict: ``losses`` (one per step run), ``first_loss``, ``last_loss``, ``steps_run``,
        ``start_step``, ``samples_per_s`` (median after the first step), ``data_wait_fraction``
        (time waiting for data over step time), ``world_size``, ``rank`` (this process's: only
        rank 0 writes files), ``parameters``, and the paths written.
    """
    cfg.validate()
    ctx = init_distributed(cfg.device)
    try:
        return _train(cfg, ctx)
    finally:
        cleanup_distributed(ctx)


def _train(cfg: TrainConfig, ctx: DistContext) -> dict[str, Any]:
    from ..core.solve import warmup

    log = cfg.log if ctx.is_main else None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    warmup()  # every numba kernel compiled before the first step, in this process too
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    if cfg.check_data and cfg.data is not None:
        _check_data(cfg, log)
    _check_fits(cfg)  # before the model is built: a batch or a ratio that cannot work
    model = create_model(cfg.model, **cfg.overrides)
    preparer = model.preparer(**cfg.solver)  # validates the solver settings
    dataset = _dataset(cfg, model)
    model.to(ctx.device)
    model.train()
    optimizer = _optimizer(_param_groups(model, cfg.weight_decay), cfg, ctx.device)
    global_batch = cfg.batch_size * ctx.world_size * cfg.accum_steps  # per optimizer step
    parameters = sum(p.numel() for p in model.parameters())
    if log:
        source = cfg.data or "synthetic data"
        kind = "per-sample" if cfg.per_sample else "batch-shared"
        log(
            f"pretrain {cfg.model}: {parameters:,} parameters, {_input_text(cfg, model)}, "
            f"batch {cfg.batch_size} x {ctx.world_size} process(es), {kind} masks at ratio "
            f"{cfg.ratio}, {source}, {cfg.workers} worker(s), {torch.get_num_threads()} "
            f"thread(s), {ctx.device}"
        )
    collator = MaskingCollator(
        preparer,
        cfg.ratio,
        per_sample=cfg.per_sample,
        seed=cfg.seed,
        global_batch=global_batch,
    )
    on_step = None
    if cfg.visualize_every and ctx.is_main:
        on_step = _visualizer(cfg, model, dataset, ctx.device, log)
    records, start = fit(
        cfg,
        ctx,
        model,
        optimizer,
        dataset,
        collator,
        num_items=None if cfg.data is None else len(dataset),
        identity=cfg.run_identity(global_batch, solver=_resolved(preparer)),
        log=log,
        on_step=on_step,
    )
    summary = _summary(cfg, ctx, records, start, parameters)
    if ctx.is_main and cfg.save:
        torch.save(model.encoder_state_dict(), cfg.save)
        summary["saved"] = cfg.save
    if log and records:
        log(
            f"loss {summary['first_loss']:.4f} -> {summary['last_loss']:.4f} over steps "
            f"{start + 1}-{cfg.steps}; {summary['samples_per_s']:.1f} samples/s (median after "
            f"the first step); waiting for data {100 * summary['data_wait_fraction']:.1f} % of "
            "the step time" + (f"; encoder weights: {cfg.save}" if cfg.save else "")
        )
    elif log:
        log(f"nothing to do: the checkpoint is at step {start} of --steps {cfg.steps}")
    return summary


class DivergedError(GroupingValueError):
    """The loss of a step is not finite: the run stops and saves nothing of that state."""


# what a run writes into its folder beside its checkpoints (fine-tuning's weights, the grids)
_RUN_FILES = re.compile(r"^(last\.pt|best\.pt|recon_\d{8}\.png)$")


def _fresh_folder(cfg: RunConfig, ctx: DistContext, log: Any) -> None:
    """A fresh run's ``--checkpoint`` folder holds no earlier run, unless ``--overwrite``
    (then rank 0 removes the earlier run's files first)."""
    folder = str(cfg.checkpoint)
    found = latest_checkpoint(folder)
    barrier(ctx)  # every process has looked before rank 0 removes anything
    if found is None:
        return
    if not cfg.overwrite:
        raise CheckpointError(
            f"--checkpoint: expected a folder without an earlier run for a fresh run, received "
            f"{folder!r} holding {os.path.basename(found)}. Pass --resume to continue it or "
            "--overwrite to discard it"
        )
    if ctx.is_main:
        removed = checkpoint_files(folder)
        removed += [os.path.join(folder, n) for n in os.listdir(folder) if _RUN_FILES.match(n)]
        for path in removed:
            os.remove(path)
        if log:
            log(f"--overwrite: removed the earlier run's {len(removed)} files from {folder}")
    barrier(ctx)


def _truncate_metrics(path: str, step: int) -> None:
    """Keep the records of steps ``<= step`` of a resumed run's metrics file (the steps after
    the checkpoint are run again and written again); a torn last line is dropped."""
    if not os.path.isfile(path):
        return
    kept = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                if record["step"] <= step:
                    kept.append(line if line.endswith("\n") else line + "\n")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(kept)


def _lock(folder: str) -> str:
    """Take ``folder/.lock`` for this run (rank 0): one run per checkpoint folder. A lock whose
    process is gone is taken over; one of a live process is refused with its pid."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, ".lock")
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise CheckpointError(
                    f"--checkpoint: expected a folder no other run writes, received "
                    f"{folder!r}, in use by the run of process {pid} ({path}); wait for it or "
                    "pick another folder"
                ) from None
            with contextlib.suppress(OSError):
                os.remove(path)  # a stale lock: its process is gone
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        return path
    raise CheckpointError(f"--checkpoint: could not take the lock {path}")  # pragma: no cover


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: alive
        return True
    return True


def _check_data(cfg: TrainConfig, log: Any) -> None:
    """``--check-data``: decode every image once (a progress line on stderr), list every bad
    file, and start only if none is."""
    files = image_files(str(cfg.data))
    step = max(1, len(files) // 20)

    def progress(done: int, total: int) -> None:
        if log and (done % step == 0 or done == total):
            print(f"\rchecking {total} images: {done}/{total}", end="", file=sys.stderr)
            if done == total:
                print(file=sys.stderr)

    bad = check_images(files, progress=progress)
    if bad:
        if log:
            for line in bad:
                log(line)
        raise UnreadableImageError(
            f"data: expected readable images, received {len(bad)} bad files of {len(files)} in "
            f"{cfg.data!r} (listed above). Remove or fix them"
        )
    if log:
        log(f"--check-data: all {len(files)} images of {cfg.data} decode")


def _resolved(preparer: Any) -> dict[str, Any]:
    """The solver settings a preparer runs with, its function's defaults filled in (so that
    ``--strategy auto`` and no ``--strategy`` are one run)."""
    import inspect

    settings = dict(getattr(preparer, "options", {}) or {})
    try:
        params = inspect.signature(preparer.fn).parameters.values()
    except (TypeError, ValueError, AttributeError):
        return settings
    for param in params:
        if (
            param.kind is inspect.Parameter.KEYWORD_ONLY
            and param.name != "batch"
            and param.default is not inspect.Parameter.empty
        ):
            settings.setdefault(param.name, param.default)
    return settings


def _check_finite_weights(model: nn.Module, step: int, cfg: RunConfig) -> None:
    """Before anything is written from the state after ``step``: every weight finite (a
    finite loss can still be followed by a non-finite update)."""
    bad = [
        name
        for name, p in model.named_parameters()
        if p.is_floating_point() and not bool(torch.isfinite(p).all())
    ]
    if bad:
        kept = f" (the last good checkpoint in {cfg.checkpoint} is kept)" if cfg.checkpoint else ""
        raise DivergedError(
            f"weights: expected finite weights after step {step}, received non-finite "
            f"{bad[0]} ({len(bad)} tensors); nothing of this state is saved{kept}. Lower --lr, "
            "add --warmup-steps or set --clip-grad"
        )


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _check_memory(cfg: TrainConfig, model: nn.Module) -> None:
    """Refuse a batch whose input tensors alone cannot fit the machine's available memory:
    ``batch x input`` float32, once in the step and twice per DataLoader worker (its
    prefetch). Activations take several times more, so this only catches what cannot work."""
    shape = getattr(model, "input_shape", None)
    available = _available_memory()
    if shape is None or available is None:
        return
    per_batch = cfg.batch_size * math.prod(int(v) for v in shape) * 4
    in_flight = 1 + 2 * cfg.workers
    need = per_batch * in_flight
    if need > available // 2:
        raise invalid(
            "--batch-size",
            f"a batch that fits this machine's memory: its inputs alone take about "
            f"{need / 2**30:.1f} GiB ({cfg.batch_size} x {tuple(shape)} float32, {in_flight} "
            f"batches in flight) of {available / 2**30:.1f} GiB available",
            cfg.batch_size,
        )


def _check_fits(cfg: TrainConfig) -> None:
    """Before the model is built, on a weightless copy: the batch's memory
    (:func:`_check_memory`) and the mask ratio (:func:`_check_ratio`)."""
    with torch.device("meta"):
        weightless = create_model(cfg.model, **cfg.overrides)
    _check_memory(cfg, weightless)
    _check_ratio(cfg, weightless.preparer(**cfg.solver))


def _check_ratio(cfg: TrainConfig, preparer: Any) -> None:
    """Refuse a ``--mask-ratio`` that leaves no visible unit in the model's mask grid, naming
    the largest one that works (by bisection on the preparer's own draw and prepare)."""

    def feasible(ratio: float) -> bool:
        try:
            preparer(preparer.draw_mask(ratio, rng=0))  # drawn and prepared: what a step does
        except GroupingValueError:
            return False
        return True

    if feasible(cfg.ratio):
        return
    low, high = 0.0, cfg.ratio
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if feasible(mid) else (low, mid)
    raise invalid(
        "--mask-ratio",
        f"at most {low:.4f} for {cfg.model} (its mask grid {tuple(preparer.mask_grid)} must "
        "keep a visible unit)",
        cfg.ratio,
    )


def _visualizer(
    cfg: TrainConfig, model: nn.Module, dataset: Any, device: torch.device, log: Any
) -> Callable[[dict[str, Any]], None]:
    """The ``on_step`` hook of ``--visualize-every K``: at steps K, 2K, ... the reconstruction
    grid of the dataset's first 8 images (stream positions 0-7, masks from ``--seed``) as
    ``CHECKPOINT/recon_STEP.png``. The model runs in eval mode on rank 0 alone and draws from
    no random stream, so the run is the same with and without it."""
    from ..models.reconstruct import reconstruct_batch
    from ..plotting import plot_reconstruction
    from .data import picture_stats

    count = 8 if cfg.data is None else min(8, len(dataset))
    images = torch.stack([dataset[i, i][0] for i in range(count)]).to(device)
    mean, std = picture_stats(dataset)

    def on_step(record: dict[str, Any]) -> None:
        step = record["step"]
        if step % cfg.visualize_every:
            return
        rec = reconstruct_batch(
            model, images, mask_ratio=cfg.ratio, seed=cfg.seed, mean=mean, std=std
        )
        path = os.path.join(str(cfg.checkpoint), f"recon_{step:08d}.png")
        os.makedirs(str(cfg.checkpoint), exist_ok=True)
        title = f"{cfg.model} at step {step}: loss {rec.loss:.4f} (trivial {rec.loss_trivial:.4f})"
        plot_reconstruction(rec, path, title=title, mask_ratio=cfg.ratio)
        record["recon_loss"] = rec.loss
        if log:
            log(f"step {step}: reconstruction grid {path} (loss {rec.loss:.4f})")

    return on_step


def _draw_curves(metrics: str, log: Any) -> None:
    """The curves of a finished run's metrics file, beside it (``run.jsonl`` -> ``run.png``),
    as ``grouping plot`` draws them; one line, never an error, when matplotlib is missing."""
    png = os.path.splitext(metrics)[0] + ".png"
    try:
        from ..plotting import plot_metrics_files

        plot_metrics_files([metrics], png)
    except ImportError:
        if log:
            log(f"no curves drawn for {metrics}: matplotlib is not installed")
        return
    if log:
        log(f"curves: {png}")


def fit(
    cfg: RunConfig,
    ctx: DistContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: Any,
    collator: Callable[[Any], Any],
    *,
    num_items: int | None,
    identity: dict[str, Any],
    log: Callable[[str], None] | None,
    forward: Callable[[nn.Module, Any, torch.device], Any] = pretrain_forward,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    restore_extra: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The part of a run every training command shares: resume, DDP, the data stream, the
    steps with their metrics file, progress line and checkpoints.

    Args:
        cfg: the run's settings.
        ctx: this process's place in the run.
        model: the model, on ``ctx.device``, in train mode.
        optimizer: its optimizer.
        dataset: read at ``(position, item)`` keys of a :class:`StreamSampler`.
        collator: turns a list of samples into a batch (in the DataLoader workers).
        num_items: the dataset's size (None: an endless stream).
        identity: what a checkpoint must agree on to be resumed
            (:func:`~grouping.train.checkpoint.check_compatible`).
        log: rank 0's log (None elsewhere).
        forward: one step's ``forward(net, batch, device)`` (:func:`train_steps`).
        on_step: called with each step's record before it is written (it may add entries,
            e.g. validation accuracy; it runs on every process).
        extra_state: what the caller adds to every checkpoint (under ``"extra"``).
        restore_extra: called with a resumed checkpoint's ``"extra"``.

    Returns:
        ``(records, start)``: one record per step run, and the step the run started from.
    """
    start = 0
    if cfg.checkpoint and not cfg.resume:
        _fresh_folder(cfg, ctx, log)
    if cfg.resume:
        path = latest_checkpoint(cfg.checkpoint)  # type: ignore[arg-type]
        if path is None:
            raise CheckpointError(
                f"--resume: expected a checkpoint in --checkpoint {cfg.checkpoint!r}, received a "
                "folder without one (ckpt_*.pt). Run without --resume to start"
            )
        state = load_checkpoint(path)
        check_compatible(state["run"], identity, path)
        changes = check_schedule(
            state["schedule"], cfg.schedule(), path, new_schedule=cfg.new_schedule
        )
        start = _resumed_step(state, identity, path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _restore_rng(state["rng"], ctx, cfg, start)
        if restore_extra is not None:
            restore_extra(state.get("extra", {}))
        if log:
            log(f"resumed from {path} at step {start}")
            if changes:
                log(f"--new-schedule: from step {start + 1} on, {'; '.join(changes)}")
    else:
        torch.manual_seed(cfg.seed * 1_000_003 + ctx.rank)  # dropout / drop path, per process

    net: nn.Module = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            broadcast_buffers=False,  # buffers are derived index tensors, equal everywhere
        )
    sampler = StreamSampler(
        num_items,
        cfg.batch_size,
        cfg.steps * cfg.accum_steps,  # one sampler batch per accumulation step
        rank=ctx.rank,
        world_size=ctx.world_size,
        seed=cfg.seed,
        start_step=start * cfg.accum_steps,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collator,
        num_workers=cfg.workers,
        worker_init_fn=_init_worker if cfg.workers else None,
        pin_memory=ctx.device.type == "cuda",
        # its own generator: starting the loader must not draw from the global torch stream,
        # which a resumed run restores and drop path and dropout then read
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    metrics_file = None
    if ctx.is_main and cfg.metrics:
        directory = os.path.dirname(os.path.abspath(cfg.metrics))
        os.makedirs(directory, exist_ok=True)
        if cfg.resume:
            _truncate_metrics(cfg.metrics, start)
        metrics_file = open(cfg.metrics, "a" if cfg.resume else "w", encoding="utf-8")  # noqa: SIM115
    lock = _lock(cfg.checkpoint) if ctx.is_main and cfg.checkpoint else None
    stop = _StopRequest()
    try:
        stop.install()
        records = _run_steps(
            cfg,
            ctx,
            net,
            optimizer,
            loader,
            start,
            identity,
            metrics_file,
            log,
            forward=forward,
            on_step=on_step,
            extra_state=extra_state,
            stop=stop,
        )
    finally:
        stop.uninstall()
        if metrics_file is not None:
            metrics_file.close()
        if lock is not None:
            with contextlib.suppress(OSError):
                os.remove(lock)
    if metrics_file is not None and records:
        _draw_curves(str(cfg.metrics), log)
    return records, start


def _run_steps(
    cfg: RunConfig,
    ctx: DistContext,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    start: int,
    identity: dict[str, Any],
    metrics_file: Any,
    log: Callable[[str], None] | None,
    *,
    forward: Callable[[nn.Module, Any, torch.device], Any] = pretrain_forward,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    stop: _StopRequest | None = None,
) -> list[dict[str, Any]]:
    """The steps of :func:`~grouping.train.engine.train_steps`, with the metrics file, the
    progress line and the checkpoints between them; returns one record per step. A signal
    (``stop``) ends the run after the current step, with a checkpoint of it when
    ``--checkpoint`` is set (:class:`~grouping.core.errors.RunInterrupted`)."""
    model = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    progress = _Progress(cfg.steps, cfg.progress, log)
    records: list[dict[str, Any]] = []

    def lr_at(step: int) -> float:
        return cosine_lr(
            step,
            base_lr=cfg.lr,
            total_steps=cfg.steps,
            warmup_steps=cfg.warmup_steps,
            min_lr=cfg.min_lr,
        )

    for record in train_steps(
        net,
        optimizer,
        loader,
        steps=range(start + 1, cfg.steps + 1),
        lr_at=lr_at,
        ctx=ctx,
        global_batch=identity["global_batch"],
        forward=forward,
        accum_steps=cfg.accum_steps,
        clip_grad=cfg.clip_grad,
        bf16=cfg.bf16,
    ):
        if not math.isfinite(record["loss"]):  # the mean over ranks: every rank stops here
            raise DivergedError(
                f"loss: expected a finite loss, received {record['loss']} at step "
                f"{record['step']}; nothing of this state is saved"
                + (
                    f" (the last good checkpoint in {cfg.checkpoint} is kept)"
                    if cfg.checkpoint
                    else ""
                )
                + ". Lower --lr, add --warmup-steps or set --clip-grad"
            )
        step = record["step"]
        writes = step == cfg.steps or (cfg.save_every and step % cfg.save_every == 0)
        every = getattr(cfg, "eval_every", 0)  # fine-tuning keeps best.pt at its evaluations
        if writes or (every and step % every == 0):
            _check_finite_weights(model, step, cfg)
        if on_step is not None:
            on_step(record)
        records.append(record)
        if metrics_file is not None:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
        progress.update(record)
        step = record["step"]
        saved = bool(
            cfg.checkpoint
            and (step == cfg.steps or (cfg.save_every and step % cfg.save_every == 0))
        )
        signum = stop.requested(ctx) if stop is not None else 0
        if signum and cfg.checkpoint and not saved:
            _check_finite_weights(model, step, cfg)
        if saved or (signum and cfg.checkpoint):
            if extra_state is None:
                _save(cfg, ctx, model, optimizer, step, identity)
            else:
                _save(cfg, ctx, model, optimizer, step, identity, extra_state())
        if signum:
            progress.close()
            path = checkpoint_path(str(cfg.checkpoint), step) if cfg.checkpoint else None
            raise RunInterrupted(signum, step, path)
    progress.close()
    return records


class _StopRequest:
    """Ctrl-C and SIGTERM while a run is in its steps: the first asks the run to stop after
    the current step (a second one stops it at once). Under DDP every process stops at the
    same step: the request is summed over the processes every step."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum:  # asked twice: stop now
            self.uninstall()
            raise KeyboardInterrupt
        self.signum = signum

    def uninstall(self) -> None:
        import signal

        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def requested(self, ctx: DistContext) -> int:
        """The signal asked for on any process (0: none)."""
        if not ctx.distributed:
            return self.signum
        flag = torch.tensor([float(self.signum)], device=ctx.device)
        total = all_reduce_sum(flag, ctx)
        return int(self.signum or (15 if float(total) > 0 else 0))


def _resumed_step(state: dict[str, Any], identity: dict[str, Any], path: str) -> int:
    """The checkpoint's step, checked against its sampler position (one stream, one place)."""
    step = int(state["step"])
    position = int(state["sampler"]["position"])
    if position != step * identity["global_batch"]:
        raise CheckpointError(
            f"checkpoint: expected the sampler at sample {step * identity['global_batch']} "
            f"(step {step} x global batch {identity['global_batch']}), received {path!r} with "
            f"the sampler at {position}"
        )
    return step


def _save(
    cfg: RunConfig,
    ctx: DistContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    identity: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    rng = all_gather_objects(_rng_state(ctx), ctx)  # every process's random state
    if not ctx.is_main:
        return
    state = {
        "format": FORMAT,
        "run": identity,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": cfg.schedule(),
        "sampler": {"position": step * identity["global_batch"], "step": step},
        "rng": rng,
    }
    if extra is not None:
        state["extra"] = extra
    save_checkpoint(checkpoint_path(cfg.checkpoint, step), state)  # type: ignore[arg-type]
    if cfg.keep_last:
        _prune(str(cfg.checkpoint), cfg.keep_last)


def _prune(folder: str, keep: int) -> None:
    """Remove all but the newest ``keep`` checkpoints of ``folder``."""
    for path in checkpoint_files(folder)[:-keep]:
        with contextlib.suppress(OSError):
            os.remove(path)


def _summary(
    cfg: RunConfig,
    ctx: DistContext,
    records: list[dict[str, Any]],
    start: int,
    parameters: int,
) -> dict[str, Any]:
    steady = records[1:] or records  # the first step allocates and warms torch up
    step_time = sum(r["step_time_s"] for r in steady)
    rates = sorted(r["samples_per_s"] for r in steady)
    out: dict[str, Any] = {
        "model": cfg.model,
        "start_step": start,
        "steps_run": len(records),
        "world_size": ctx.world_size,
        "rank": ctx.rank,
        "parameters": parameters,
        "losses": [r["loss"] for r in records],
        "samples_per_s": rates[len(rates) // 2] if rates else 0.0,
        "data_wait_fraction": (sum(r["data_wait_s"] for r in steady) / step_time)
        if step_time
        else 0.0,
        "config": {k: v for k, v in asdict(cfg).items() if k != "log"},
    }
    if records:
        out["first_loss"] = records[0]["loss"]
        out["last_loss"] = records[-1]["loss"]
    return out
