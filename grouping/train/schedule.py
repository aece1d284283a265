"""MAE's learning-rate schedule, per optimizer step: linear warm-up, then half a cosine."""

from __future__ import annotations

import math

from ..core.errors import check_int, invalid

__all__ = ["cosine_lr"]


def cosine_lr(
    step: int, *, base_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0
) -> float:
    """The learning rate of optimizer step ``step`` (1-based).

    MAE's ``adjust_learning_rate`` evaluated at ``epoch = step``, with steps for epochs:
    ``base_lr * step / warmup_steps`` during the warm-up, then ``min_lr + (base_lr - min_lr) *
    (1 + cos(pi * t)) / 2`` with ``t = (step - warmup_steps) / (total_steps - warmup_steps)``,
    so the last step has ``min_lr``. Counting from 1 means the first step already learns (MAE's
    first iteration has learning rate 0).

    Args:
        step: the step about to be taken, ``1 <= step <= total_steps``.
        base_lr: the peak learning rate.
        total_steps: the steps of the whole run.
        warmup_steps: steps of linear warm-up (``0 <= warmup_steps <= total_steps``).
        min_lr: the final learning rate.

    Example:
        >>> [round(cosine_lr(s, base_lr=1.0, total_steps=5, warmup_steps=2), 3)
        ...  for s in range(1, 6)]
        [0.5, 1.0, 0.75, 0.25, 0.0]
    """
    total = check_int("total_steps", total_steps, minimum=1)
    warmup = check_int("warmup_steps", warmup_steps, minimum=0)
    step = check_int("step", step, minimum=1)
    if warmup > total:
        raise invalid("warmup_steps", f"at most total_steps={total}", warmup_steps)
    if step > total:
        raise invalid("step", f"at most total_steps={total}", step)
    if step <= warmup:
        return base_lr * step / warmup
    if total == warmup:
        return base_lr
    t = (step - warmup) / (total - warmup)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
