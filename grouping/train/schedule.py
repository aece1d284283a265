"""MAE's learning-rate schedule, per optimizer step: linear warm-up, then half a cosine."""

from __future__ import annotations

import math

from ..core.errors import check_int, invalid

__all__ = ["cosine_lr"]


def cosine_lr(
    step: int, *, base_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0
) -> float:
    """The learning rate of optimizer step ``step`` (1-based).

    MAE's warm-up and cosine (``adjust_learning_rate``) with steps for epochs, taken at the
    start of each step so that no step is wasted: a linear ramp ``base_lr * step /
    (warmup_steps + 1)`` over the warm-up, then ``min_lr + (base_lr - min_lr) * (1 + cos(pi *
    t)) / 2`` with ``t = (step - warmup_steps - 1) / (total_steps - warmup_steps)``: the first
    step after the warm-up has the peak ``base_lr``, the last one a little above ``min_lr``.
    (MAE's first iteration has learning rate 0 and its last reaches ``min_lr``; here every step
    learns.)

    Args:
        step: the step about to be taken, ``1 <= step <= total_steps``.
        base_lr: the peak learning rate.
        total_steps: the steps of the whole run.
        warmup_steps: steps of linear warm-up (``0 <= warmup_steps <= total_steps``).
        min_lr: the floor the cosine tends to.

    Examples:
        >>> [round(cosine_lr(s, base_lr=1.0, total_steps=5, warmup_steps=2), 3)
        ...  for s in range(1, 6)]
        [0.333, 0.667, 1.0, 0.75, 0.25]
    """
    total = check_int("total_steps", total_steps, minimum=1)
    warmup = check_int("warmup_steps", warmup_steps, minimum=0)
    step = check_int("step", step, minimum=1)
    if warmup > total:
        raise invalid("warmup_steps", f"at most total_steps={total}", warmup_steps)
    if step > total:
        raise invalid("step", f"at most total_steps={total}", step)
    if step <= warmup:
        return base_lr * step / (warmup + 1)
    t = (step - warmup - 1) / (total - warmup)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
