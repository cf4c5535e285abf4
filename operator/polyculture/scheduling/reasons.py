"""Why a workload waits: a CamelCase code and a message a person can act on.

Design (see ``DESIGN.md``, "Passes and waiting reasons"): the first reason that applies, in
the order of the table there. Messages name the numbers that would have to change ("needs 8
× H100, largest free block is 4"), not the internals of the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

UNKNOWN_COMMUNITY: Final = "UnknownCommunity"
NO_MATCHING_GPUS: Final = "NoMatchingGPUs"
GANG_TOO_LARGE: Final = "GangTooLarge"
OVER_CAP: Final = "OverCap"
FRAGMENTED: Final = "Fragmented"
OVER_SHARE: Final = "OverShare"
POOL_EXHAUSTED: Final = "PoolExhausted"
BEHIND_IN_QUEUE: Final = "BehindInQueue"
RESERVED: Final = "Reserved"
HELD_FOR_OWED: Final = "HeldForOwed"

Reason = tuple[str, str]
#: a reason formatted only once the cycle is over: (formatter, its arguments)
Why = tuple[Callable[..., Reason], tuple[Any, ...]]


def gpus(x: float) -> str:
    """A GPU quantity for people: ``6`` rather than ``6.0``, one decimal when fractional."""
    r = round(x)
    if abs(x - r) < 0.05:
        return f"{r} GPU" if r == 1 else f"{r} GPUs"
    return f"{x:.1f} GPUs"


def _what(workers: int, gpus_per_worker: int, gpu_class: str) -> str:
    block = f"{gpus_per_worker} × {gpu_class}"
    return block if workers == 1 else f"{workers} workers of {block}"


def unknown_community(community: str) -> Reason:
    return UNKNOWN_COMMUNITY, f'community "{community}" is not a member of this pool'


def no_matching_gpus(gpu_class: str | None, min_gpu_memory_mib: int) -> Reason:
    wanted = f"GPU class {gpu_class}" if gpu_class else "GPUs"
    if min_gpu_memory_mib:
        wanted += f" with ≥ {min_gpu_memory_mib} MiB each"
    return NO_MATCHING_GPUS, f"needs {wanted}; the pool has none available"


def gang_too_large(workers: int, gpus_per_worker: int, gpu_class: str, largest_node: int) -> Reason:
    return (
        GANG_TOO_LARGE,
        f"needs {_what(workers, gpus_per_worker, gpu_class)} on one node each; the pool "
        "cannot hold it even when "
        f"empty (largest {gpu_class} node has {largest_node} GPUs)",
    )


def over_cap(allocated: float, cap: float, need: float) -> Reason:
    return (
        OVER_CAP,
        f"community at its cap: holds {gpus(allocated)} of at most {gpus(cap)}, "
        f"this workload needs {gpus(need)}",
    )


def fragmented(workers: int, gpus_per_worker: int, gpu_class: str, largest_block: int) -> Reason:
    what = _what(workers, gpus_per_worker, gpu_class)
    return FRAGMENTED, f"needs {what}, largest free block is {largest_block}"


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


def pool_exhausted(
    workers: int,
    gpus_per_worker: int,
    gpu_class: str,
    free: int,
    preemption: bool,
    delay_left_s: float = 0.0,
) -> Reason:
    why = "none preemptible within fair share" if preemption else "preemption is off"
    if preemption and delay_left_s > 0:
        why = f"may preempt in {delay_left_s:.0f} s (preemption delay)"
    what = _what(workers, gpus_per_worker, gpu_class)
    return POOL_EXHAUSTED, f"pool capacity exhausted: needs {what}, {free} {gpu_class} free, {why}"


def behind_in_queue(lookahead: int) -> Reason:
    return (
        BEHIND_IN_QUEUE,
        f"not tried this cycle: the community's first {lookahead} waiting workloads are "
        "tried first (lookahead)",
    )


def reserved(workers: int, gpus_per_worker: int, gpu_class: str, held: int, nodes: int) -> Reason:
    what = _what(workers, gpus_per_worker, gpu_class)
    where = "1 node" if nodes == 1 else f"{nodes} nodes"
    holds = (
        f"holds {held} free {gpu_class} GPUs on {where}; GPUs that free there are kept for it"
        if held
        else "none is free yet; the next that free are kept for it"
    )
    return (
        RESERVED,
        f"free GPUs gather for it (its community is owed GPU-time): needs {what}, {holds}",
    )


def held_for_owed(
    workers: int, gpus_per_worker: int, gpu_class: str, held: int, holder: str
) -> Reason:
    what = _what(workers, gpus_per_worker, gpu_class)
    return (
        HELD_FOR_OWED,
        f"needs {what}; {held} free {gpu_class} GPUs are held for {holder}, whose community is "
        "owed GPU-time (reservation)",
    )


def unread() -> Reason:
    """Stands for every reason of a cycle whose caller reads none
    (``schedule(..., waiting_reasons=False)``); it is never put in the decisions."""
    return ("Unread", "waiting reasons were not worked out")
