"""Why a workload waits: a CamelCase code and a message a person can act on.

Design (see ``DESIGN.md``, "Passes and waiting reasons"): the first reason that applies, in
the order of the table there. Messages name the numbers that would have to change ("needs 8
× H100, largest free block is 4"), not the internals of the scheduler.
"""

from __future__ import annotations

from typing import Final

from polyculture.scheduling.snapshot import Workload

UNKNOWN_COMMUNITY: Final = "UnknownCommunity"
NO_MATCHING_GPUS: Final = "NoMatchingGPUs"
GANG_TOO_LARGE: Final = "GangTooLarge"
OVER_CAP: Final = "OverCap"
FRAGMENTED: Final = "Fragmented"
OVER_SHARE: Final = "OverShare"
POOL_EXHAUSTED: Final = "PoolExhausted"

Reason = tuple[str, str]


def gpus(x: float) -> str:
    """A GPU quantity for people: ``6`` rather than ``6.0``, one decimal when fractional."""
    r = round(x)
    if abs(x - r) < 0.05:
        return f"{r} GPU" if r == 1 else f"{r} GPUs"
    return f"{x:.1f} GPUs"


def _what(w: Workload, gpu_class: str) -> str:
    block = f"{w.gpus_per_worker} × {gpu_class}"
    return block if w.workers == 1 else f"{w.workers} workers of {block}"


def unknown_community(w: Workload) -> Reason:
    return UNKNOWN_COMMUNITY, f'community "{w.community}" is not a member of this pool'


def no_matching_gpus(w: Workload) -> Reason:
    wanted = f"GPU class {w.gpu_class}" if w.gpu_class else "GPUs"
    if w.min_gpu_memory_mib:
        wanted += f" with ≥ {w.min_gpu_memory_mib} MiB each"
    return NO_MATCHING_GPUS, f"needs {wanted}; the pool has none available"


def gang_too_large(w: Workload, gpu_class: str, largest_node: int) -> Reason:
    return (
        GANG_TOO_LARGE,
        f"needs {_what(w, gpu_class)} on one node each; the pool cannot hold it even when "
        f"empty (largest {gpu_class} node has {largest_node} GPUs)",
    )


def over_cap(allocated: float, cap: float, need: float) -> Reason:
    return (
        OVER_CAP,
        f"community at its cap: holds {gpus(allocated)} of at most {gpus(cap)}, "
        f"this workload needs {gpus(need)}",
    )


def fragmented(w: Workload, gpu_class: str, largest_block: int) -> Reason:
    return FRAGMENTED, f"needs {_what(w, gpu_class)}, largest free block is {largest_block}"


def over_share(allocated: float, entitled: float, need: float) -> Reason:
    if allocated > entitled:
        return (
            OVER_SHARE,
            f"community over its share by {gpus(allocated - entitled)} (holds "
            f"{gpus(allocated)}, entitled to {gpus(entitled)}); waits for idle GPUs",
        )
    return (
        OVER_SHARE,
        f"community would go over its share by {gpus(allocated + need - entitled)} (holds "
        f"{gpus(allocated)}, needs {gpus(need)}, entitled to {gpus(entitled)}); "
        "waits for idle GPUs",
    )


def pool_exhausted(w: Workload, gpu_class: str, free: int, preemption: bool) -> Reason:
    why = "none preemptible within fair share" if preemption else "preemption is off"
    return (
        POOL_EXHAUSTED,
        f"pool capacity exhausted: needs {_what(w, gpu_class)}, {free} {gpu_class} free, {why}",
    )
