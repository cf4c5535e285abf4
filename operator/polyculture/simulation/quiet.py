"""Quiet core calls: a call that decides nothing again is recognised without running it.

The replay calls the core after every batch of events that changed something; a batch of
timers only (a running job past its minimum runtime, a queued job past its preemption delay)
shows the core the same snapshot as the call before, except ``now`` and the communities'
decayed usage. The core reads those two only through:

- ``now``: whether each running workload is protected (``preemption.protected``); each
  one's work at risk (``preemption.work_at_risk``), only to order victims, by a key whose other
  parts are fixed per workload (so the order by work at risk, start and key decides it); and
  each pending workload's preemption delay left (``ordering.delay_left``), compared with 0
  (its value goes only into a waiting message);
- usage: the order of the communities' usage (a tie-breaker between communities) and whether
  each is owed GPU-time (``usage.owed``).

When the nodes, policy, running and pending workloads and communities (but usage) are those
of the previous call, that call admitted, preempted and moved nothing, and all of these reads
are as they were then, the call decides nothing again (its waiting messages may differ: the
simulator does not read them). :class:`QuietCalls` recognises such a call; the replay returns
an empty cycle for it instead of calling the core.
"""

from __future__ import annotations

from polyculture.scheduling.entitlement import weights
from polyculture.scheduling.ordering import delay_left
from polyculture.scheduling.preemption import protected, work_at_risk
from polyculture.scheduling.snapshot import Community, Decisions, Snapshot
from polyculture.scheduling.usage import owed

#: what a snapshot's time and usage decide (see the module doc)
Reads = tuple[
    tuple[bool, ...],
    tuple[int, ...],
    tuple[tuple[bool, bool], ...],
    tuple[int, ...],
    tuple[bool, ...],
]


def _fixed(community: Community) -> tuple[object, ...]:
    """A community without its usage (the rest of it is fixed between two quiet calls)."""
    c = community
    return (c.name, c.weight, c.guaranteed_gpus, c.max_gpus, c.contribution_gpu_seconds, c.owners)


def time_reads(snapshot: Snapshot) -> Reads:
    """What the core reads of ``snapshot.now`` and of the communities' usage."""
    policy, now = snapshot.policy, snapshot.now
    running = snapshot.running
    guarded = tuple(protected(r, policy, now) for r in running)
    risk = [(work_at_risk(r, now), -r.started, r.workload.key) for r in running]
    order = tuple(sorted(range(len(risk)), key=risk.__getitem__))
    delays = tuple(
        (
            delay_left(w, policy, now, nominal=False) <= 0,
            delay_left(w, policy, now, nominal=True) <= 0,
        )
        for w in snapshot.pending
    )
    # as the core counts them: the first of each name, in name order
    by_name: dict[str, Community] = {}
    for community in snapshot.communities:
        by_name.setdefault(community.name, community)
    communities = [by_name[name] for name in sorted(by_name)]
    usage = [c.usage_gpu_seconds for c in communities]
    level = {u: i for i, u in enumerate(sorted(set(usage)))}
    ranks = tuple(level[u] for u in usage)
    owing = tuple(owed(usage, weights(communities, policy)))
    return guarded, order, delays, ranks, owing


class QuietCalls:
    """The last core call, kept while it decided nothing (see the module doc)."""

    __slots__ = ("_last", "_reads", "skipped")

    def __init__(self) -> None:
        self._last: Snapshot | None = None
        self._reads: Reads | None = None
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
            or [_fixed(c) for c in snapshot.communities] != [_fixed(c) for c in last.communities]
        ):
            return False
        if self._reads is None:
            self._reads = time_reads(last)
        if time_reads(snapshot) != self._reads:
            return False
        self.skipped += 1
        return True

    def called(self, snapshot: Snapshot, decisions: Decisions) -> None:
        """Remember the core's call for ``snapshot`` if it decided nothing."""
        if decisions.admissions or decisions.preemptions or decisions.moves:
            self._last = None
        else:
            self._last = snapshot
        self._reads = None
