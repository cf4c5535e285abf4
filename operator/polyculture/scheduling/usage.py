"""Slurm-style usage decay: past usage counts less and less, halving every half-life.

The caller keeps each community's decayed usage (and each owner's decayed contribution) and
advances it with :func:`decay` before building a snapshot; the scheduler never reads a clock.
:func:`owed` reads it as fairness over time: who received less than its weighted share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def decay(usage: float, elapsed_s: float, half_life_s: float) -> float:
    """``usage`` after ``elapsed_s`` seconds of exponential decay with ``half_life_s``.

    ``half_life_s`` of ``math.inf`` means no decay. Raises ``ValueError`` for a negative
    elapsed time or a half-life that is not positive.
    """
    if elapsed_s < 0:
        raise ValueError(f"elapsed_s must be >= 0, got {elapsed_s}")
    if not half_life_s > 0:
        raise ValueError(f"half_life_s must be > 0, got {half_life_s}")
    if elapsed_s == 0 or math.isinf(half_life_s):
        return usage
    return usage * math.exp2(-elapsed_s / half_life_s)


def accrue(usage: float, gpu_seconds: float, elapsed_s: float, half_life_s: float) -> float:
    """Decay ``usage`` over ``elapsed_s``, then add the ``gpu_seconds`` used in that span."""
    return decay(usage, elapsed_s, half_life_s) + gpu_seconds


def owed(usage: Sequence[float], weights: Sequence[float]) -> list[bool]:
    """Per community: whether it is *owed* GPU-time — its share of the pool's decayed usage
    is below its share of the weights (``DESIGN.md``, "Fairness over time"). With no usage
    recorded at all, every community with a weight is owed."""
    total_usage = sum(max(u, 0.0) for u in usage)
    total_weight = sum(max(w, 0.0) for w in weights)
    if total_weight <= 0:
        return [False for _ in weights]
    if total_usage <= 0:
        return [w > 0 for w in weights]
    return [
        w > 0 and max(u, 0.0) / total_usage < w / total_weight
        for u, w in zip(usage, weights, strict=True)
    ]
