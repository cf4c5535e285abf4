"""Ordering: which pending workload is tried next.

Design (see ``DESIGN.md``): inside a community, priority (high first), then age, then key —
a total order. Across communities, a heap keyed by the share ratio ``allocated / entitled``
(the community furthest below its entitlement first), then decayed usage (less first,
Slurm style), then the head's priority and age, then the community's rank by name. The
community is pushed back with its new ratio after every attempt, so a cycle interleaves
communities and admits as many workloads as fit. A workload may preempt or move others
only once it waited the preemption delay (:func:`delay_left`).
"""

from __future__ import annotations

import math

from polyculture.scheduling.snapshot import Policy, Workload

#: heap entry: (share ratio, usage, -priority, created, community rank)
CommunityKey = tuple[float, float, int, float, int]


def workload_order(w: Workload) -> tuple[int, float, str]:
    """Sort key of a community's queue: high priority, then old, then key."""
    return (-w.priority, w.created, w.key)


def share_ratio(allocated: float, entitled: float) -> float:
    """``allocated / entitled``; infinite for a community entitled to nothing."""
    if entitled > 0:
        return allocated / entitled
    return math.inf


def community_key(
    allocated: float, entitled: float, usage: float, head: Workload, rank: int
) -> CommunityKey:
    """Heap key of a community whose next workload is ``head`` (smallest goes first)."""
    return (share_ratio(allocated, entitled), usage, -head.priority, head.created, rank)


def delay_left(w: Workload, policy: Policy, now: float, *, nominal: bool) -> float:
    """Seconds ``w`` still waits before it may preempt or move others (0: it may): the
    preemption delay — the reclaim delay if its community stays within its ``nominal`` share
    — counts from ``waiting_since`` (requeued), else from ``created``."""
    delay = policy.preemption_delay_s
    if nominal:
        delay = min(delay, policy.reclaim_delay_s)
    if delay <= 0:
        return 0.0
    since = w.created if w.waiting_since is None else w.waiting_since
    return max(0.0, since + delay - now)
