"""Intake: a snapshot read into the cycle's dense ids, before anything is decided.

Communities are ranked by name (the last tie-breaker of the order; the first of a name
counts). The pool is indexed (``capacity``) and every running workload counted: one that
touches a node no longer available is reclaimed (``OwnerReclaim``), the others are charged
to their community and tracked as a :class:`~polyculture.scheduling.preemption.Live`.
Pending workloads are queued per community in workload order, each with the shapes that
could ever hold it (cheapest first) or why none can; the demand counts what runs plus what
waits and could ever fit, as the next cycle will count it. With ``Policy.lookahead``, only
the head of each queue is tried; the rest still counts as demand.
"""

from __future__ import annotations

from polyculture.scheduling import reasons
from polyculture.scheduling.capacity import Pool, index_pool
from polyculture.scheduling.ordering import workload_order
from polyculture.scheduling.placement import fitting_shapes
from polyculture.scheduling.preemption import Live
from polyculture.scheduling.snapshot import (
    OWNER_RECLAIM,
    Community,
    Preemption,
    Snapshot,
    Waiting,
    Workload,
)

#: a queued workload with the shapes that could ever hold it (cheapest first) or why none can
Entry = tuple[Workload, list[int], reasons.Why | None]


class Intake:
    """What a cycle starts from (see the module doc); ``fit`` and ``cheapest_units`` stay
    usable while the cycle runs."""

    def __init__(self, snapshot: Snapshot) -> None:
        by_name: dict[str, Community] = {}
        for community in snapshot.communities:
            by_name.setdefault(community.name, community)
        self.communities = [by_name[name] for name in sorted(by_name)]
        self.cid = {c.name: i for i, c in enumerate(self.communities)}
        self.pool: Pool = index_pool(snapshot.nodes, snapshot.policy.gpu_classes)
        owner_id = self.pool.owner_id
        self.own_owners = [
            tuple(owner_id[o] for o in c.owners if o in owner_id) for c in self.communities
        ]
        self._fit_cache: dict[
            tuple[str | None, int, int, int], tuple[list[int], reasons.Why | None]
        ] = {}
        #: running workloads reclaimed because a node they use is not available
        self.reclaimed: list[Preemption] = []
        self.alloc = [0.0] * len(self.communities)
        self.live: list[Live] = []
        self.pool.open(self._count_running(snapshot))
        self.queues: list[list[Entry]] = [[] for _ in self.communities]
        self.unknown: list[Workload] = []
        #: pending workloads beyond the lookahead (``Policy.lookahead``): not tried
        self.behind: list[Workload] = []
        self.demand = self._queue_pending(snapshot)

    def _count_running(self, snapshot: Snapshot) -> list[int]:
        """Reclaim the running workloads that touch unavailable nodes; count the others in
        ``alloc`` and ``live``. Returns the GPUs used per node."""
        pool = self.pool
        weight_of = pool.weight_of
        # a placement on any other node is reclaimed
        usable = pool.available_id
        alloc, lives = self.alloc, self.live
        used = [0] * len(pool.nodes)
        cid = self.cid
        for r in snapshot.running:
            placement = r.placement
            w = r.workload
            g = w.gpus_per_worker
            if len(placement) == 1:  # most workloads: one worker
                i = usable.get(placement[0], -1)
                if i < 0:
                    self.reclaimed.append(Preemption(r, OWNER_RECLAIM))
                    continue
                ids = [i]
                used[i] += g
                units = g * weight_of[i]
            else:
                ids = [usable.get(name, -1) for name in placement]
                if -1 in ids:
                    self.reclaimed.append(Preemption(r, OWNER_RECLAIM))
                    continue
                for i in ids:
                    used[i] += g
                units = g * sum(weight_of[i] for i in ids)
            c = cid.get(w.community, -1)
            if c >= 0:
                alloc[c] += units
            lives.append(Live(r, c, ids, g, units))
        return used

    def _queue_pending(self, snapshot: Snapshot) -> list[float]:
        """Queue the pending workloads per community in workload order; returns the demand
        (running plus waiting that could ever fit, as the next cycle will count it)."""
        shapes, cid, queues, fits = self.pool.shapes, self.cid, self.queues, self._fit_cache
        demand = list(self.alloc)
        for w in snapshot.pending:
            c = cid.get(w.community, -1)
            if c < 0:
                self.unknown.append(w)
                continue
            n, g = w.workers, w.gpus_per_worker
            # ``fit``, its cache read inline
            fitted = fits.get((w.gpu_class, w.min_gpu_memory_mib, n, g)) or self.fit(w)
            queues[c].append((w, *fitted))
            if fitted[0]:
                demand[c] += n * g * shapes[fitted[0][0]].weight
        # the caller queues a reclaimed workload again: the next cycle counts it as waiting
        for p in self.reclaimed:
            c = self.cid.get(p.running.workload.community, -1)
            if c >= 0:
                demand[c] += self.cheapest_units(p.running.workload)
        depth = snapshot.policy.lookahead
        for c, q in enumerate(self.queues):
            q.sort(key=lambda entry: workload_order(entry[0]))
            if 0 < depth < len(q):
                self.behind += [entry[0] for entry in q[depth:]]
                self.queues[c] = q[:depth]
        return demand

    def fit(self, w: Workload) -> tuple[list[int], reasons.Why | None]:
        """``placement.fitting_shapes``, once per kind of workload."""
        key = (w.gpu_class, w.min_gpu_memory_mib, w.workers, w.gpus_per_worker)
        cached = self._fit_cache.get(key)
        if cached is None:
            cached = self._fit_cache[key] = fitting_shapes(self.pool, w)
        return cached

    def cheapest_units(self, w: Workload) -> float:
        """What demand counts for ``w`` while it waits: its units on its cheapest shape."""
        fitting = self.fit(w)[0]
        return w.gpus * self.pool.shapes[fitting[0]].weight if fitting else 0.0

    def waiting(
        self, settled: list[tuple[Entry, reasons.Why]], lookahead: int
    ) -> tuple[Waiting, ...]:
        """The waiting workloads with their reasons: ``settled`` (the cycle's, in order), then
        those of unknown communities, then those behind the ``lookahead``."""
        out: list[Waiting] = []
        # thousands of waiting workloads share a handful of reasons: format each once
        formatted: dict[reasons.Why, reasons.Reason] = {}
        for entry, why in settled:
            reason = formatted.get(why)
            if reason is None:
                reason = formatted[why] = why[0](*why[1])
            out.append(Waiting(entry[0], *reason))
        for w in self.unknown:
            out.append(Waiting(w, *reasons.unknown_community(w.community)))
        if self.behind:
            behind = reasons.behind_in_queue(lookahead)
            out += [Waiting(w, *behind) for w in self.behind]
        return tuple(out)
