"""Quiet core calls: a call that decides nothing again is recognised without running it.

The replay calls the core after every batch of events that changed something; a batch of
timers only (a running job past its minimum runtime, a queued job past its preemption delay)
shows the core the same snapshot as the call before, except ``now`` and the communities'
decayed usage. The core reads those two only through:

- ``now``: whether each running workload is protected (``preemption.protected``); the work
  at risk (``preemption.work_at_risk``) of those that are not (the only victims and movable
  workloads), only to order them, by a key whose other parts are fixed per workload; and
  each pending workload's preemption delays left (``ordering.delay_left``), compared with 0
  (their value goes only into a waiting message);
- usage: the order of the communities' usage (a tie-breaker between communities) and whether
  each is owed GPU-time (``usage.owed``).

When the nodes, policy, running and pending workloads and communities (but usage) are those
of the previous call, that call admitted, preempted and moved nothing, and all of these reads
are as they were then, the core takes the same steps and decides nothing again (its waiting
messages may differ: the simulator does not read them). :class:`QuietCalls` recognises such
a call; the replay returns an empty cycle for it instead of calling the core.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from polyculture.scheduling.entitlement import weights
from polyculture.scheduling.ordering import delay_left
from polyculture.scheduling.preemption import protected, work_at_risk
from polyculture.scheduling.snapshot import Community, Decisions, Snapshot
from polyculture.scheduling.usage import owed


def _fixed(communities: Sequence[Community]) -> list[tuple[object, ...]]:
    """The communities without their usage (the rest of them is fixed between quiet calls)."""
    return [
        (c.name, c.weight, c.guaranteed_gpus, c.max_gpus, c.contribution_gpu_seconds, c.owners)
        for c in communities
    ]


def _protection(snapshot: Snapshot) -> tuple[bool, ...]:
    """Whether each running workload is inside its minimum runtime."""
    policy, now = snapshot.policy, snapshot.now
    return tuple(protected(r, policy, now) for r in snapshot.running)


def _delays(snapshot: Snapshot) -> tuple[tuple[bool, bool], ...]:
    """Whether each pending workload waited its preemption delay, and its reclaim delay."""
    policy, now = snapshot.policy, snapshot.now
    return tuple(
        (
            delay_left(w, policy, now, nominal=False) <= 0,
            delay_left(w, policy, now, nominal=True) <= 0,
        )
        for w in snapshot.pending
    )


def _usage(snapshot: Snapshot) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """The order of the communities' usage (ties included) and whether each is owed, over
    the communities as the core counts them (the first of each name, in name order)."""
    by_name: dict[str, Community] = {}
    for community in snapshot.communities:
        by_name.setdefault(community.name, community)
    communities = [by_name[name] for name in sorted(by_name)]
    usage = [c.usage_gpu_seconds for c in communities]
    level = {u: i for i, u in enumerate(sorted(set(usage)))}
    owing = owed(usage, weights(communities, snapshot.policy))
    return tuple(level[u] for u in usage), tuple(owing)


def _victim_order(snapshot: Snapshot) -> tuple[str, ...]:
    """The running workloads past their minimum runtime (the only victims and movable ones)
    by priority, restarts, then work at risk, start and key. The victim order compares two
    workloads of different priority or restarts by those alone; two of the same by work at
    risk, start and key: the same sequence means the same order of every two victims."""
    policy, now = snapshot.policy, snapshot.now
    keys = sorted(
        (r.workload.priority, r.restarts, work_at_risk(r, now), -r.started, r.workload.key)
        for r in snapshot.running
        if not protected(r, policy, now)
    )
    return tuple(key[-1] for key in keys)


def _horizon(snapshot: Snapshot) -> float:
    """The first time after ``snapshot.now`` at which a read may change: a running
    workload's minimum runtime ends; one past it starts, or saves a checkpoint (its work at
    risk drops); a pending workload's delay ends. Before it, the reads are compared in full;
    from it on, the call is taken as not quiet (which is always safe)."""
    policy, now = snapshot.policy, snapshot.now
    first = math.inf
    limit = policy.restart_limit
    for r in snapshot.running:
        if limit and r.restarts >= limit:
            continue  # protected until it ends
        end = r.started + policy.min_runtime_s * policy.restart_backoff**r.restarts
        if end > now:
            first = min(first, end)
            continue
        since = r.started if r.last_checkpoint is None else r.last_checkpoint
        interval = r.checkpoint_interval_s
        if since <= now and interval > 0:
            since += ((now - since) // interval + 1) * interval
        if since > now:
            first = min(first, since)
    delays = {policy.preemption_delay_s, min(policy.preemption_delay_s, policy.reclaim_delay_s)}
    for w in snapshot.pending:
        since = w.created if w.waiting_since is None else w.waiting_since
        for delay in delays:
            if delay > 0 and since + delay > now:
                first = min(first, since + delay)
    return first


#: what the core reads of a snapshot's time and usage, cheapest first
_READS: tuple[Callable[[Snapshot], object], ...] = (_protection, _delays, _usage, _victim_order)


class QuietCalls:
    """The last core call, kept while it decided nothing (see the module doc)."""

    __slots__ = ("_fixed", "_horizon", "_last", "_reads", "skipped")

    def __init__(self) -> None:
        self._last: Snapshot | None = None
        self._fixed: list[tuple[object, ...]] | None = None
        #: ``_horizon`` of the last call
        self._horizon: float | None = None
        #: the last call's reads (``_READS``), computed as far as a comparison needed them
        self._reads: list[object] = []
        #: calls recognised as quiet
        self.skipped = 0

    def quiet(self, snapshot: Snapshot) -> bool:
        """Whether the core would decide nothing for ``snapshot`` (the last call did, and
        ``snapshot`` differs from it only in what reads the same)."""
        last = self._last
        if (
            last is None
            or snapshot.nodes != last.nodes
            or snapshot.policy != last.policy
            or snapshot.running != last.running
            or snapshot.pending != last.pending
        ):
            return False
        if self._horizon is None:
            self._horizon = _horizon(last)
        if snapshot.now >= self._horizon:
            return False
        if self._fixed is None:
            self._fixed = _fixed(last.communities)
        if _fixed(snapshot.communities) != self._fixed:
            return False
        reads = self._reads
        for k, read in enumerate(_READS):
            if k == len(reads):
                reads.append(read(last))
            if read(snapshot) != reads[k]:
                return False
        self.skipped += 1
        return True

    def called(self, snapshot: Snapshot, decisions: Decisions) -> None:
        """Remember the core's call for ``snapshot`` if it decided nothing."""
        if decisions.admissions or decisions.preemptions or decisions.moves:
            self._last = None
        else:
            self._last = snapshot
        self._fixed = None
        self._horizon = None
        self._reads = []
