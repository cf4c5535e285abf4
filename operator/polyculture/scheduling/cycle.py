"""One scheduling cycle: snapshot in, decisions out.

Design (see ``DESIGN.md``): index capacity (``capacity``), preempt what runs on nodes that
are no longer available (reclaim), compute entitlements (``entitlement``), then run passes:
pop workloads in fair-share order (``ordering``), admit what fits (``placement``), else try
moving small workloads to clear a block (``consolidation``, when the policy allows), else
preemption for fair share (``preemption``: first victims whose communities keep their
entitlement, then reclaiming GPUs borrowed beyond it; greedy, then node by node for a gang
that needs whole blocks, then preemption plus moves), else record why it waits
(``reasons``). While a pass preempted anything, another pass retries the workloads still
waiting, because GPUs freed beyond what the preemptor used may now fit one of them; the
final pass preempts nothing, so the result is work-conserving.

``intake`` reads the snapshot into dense ids first; ``searches`` remembers the failed
preemption searches of the cycle. Everything in the hot loop is an int, a float or a list
indexed by dense ids; objects are built only for the decisions themselves.
"""

from __future__ import annotations

import gc
import heapq
from types import MappingProxyType

from polyculture.scheduling import reasons
from polyculture.scheduling.consolidation import consolidate
from polyculture.scheduling.entitlement import EPSILON
from polyculture.scheduling.intake import Entry, Intake
from polyculture.scheduling.ordering import community_key, delay_left
from polyculture.scheduling.placement import place
from polyculture.scheduling.preemption import (
    Live,
    Rule,
    Search,
    fewer_new,
    find_block_victims,
    find_victims,
    free_in_total,
    keep_used,
    undo,
)
from polyculture.scheduling.reservation import Reservation
from polyculture.scheduling.searches import FailedSearches
from polyculture.scheduling.shares import Shares
from polyculture.scheduling.snapshot import (
    CONSOLIDATION,
    FAIR_SHARE,
    Admission,
    Decisions,
    Preemption,
    Snapshot,
    Workload,
)
from polyculture.scheduling.victims import Victims

_Why = reasons.Why
_Entry = Entry
#: why a workload waits when the caller reads no waiting reasons (never formatted)
_UNREAD: _Why = (reasons.unread, ())


def schedule(snapshot: Snapshot, *, waiting_reasons: bool = True) -> Decisions:
    """Decide admissions, preemptions and waiting reasons for one pool at ``snapshot.now``.

    Pure and deterministic: the same snapshot gives equal decisions. See ``DESIGN.md`` for
    the policies and the invariants they keep. Without ``waiting_reasons`` (a caller that
    reads only what is decided: the simulator), ``Decisions.waiting`` is empty and no
    reason is worked out; everything else is decided the same. Python's cyclic garbage
    collector is paused while it runs (if it was on): a cycle makes many short-lived objects
    and no reference cycles, and each collection of an older generation would walk the whole
    snapshot (``DESIGN.md``, "Speed").
    """
    pause = gc.isenabled()
    if pause:
        gc.disable()
    try:
        return _Cycle(snapshot, waiting_reasons).run()
    finally:
        if pause:
            gc.enable()


class _Cycle:
    """One cycle's state. ``__init__`` reads the snapshot in named steps; ``run`` decides."""

    def __init__(self, snapshot: Snapshot, waiting_reasons: bool = True) -> None:
        self.snapshot = snapshot
        self.waiting_reasons = waiting_reasons
        self.policy = snapshot.policy
        intake = self.intake = Intake(snapshot)
        self.communities, self.cid = intake.communities, intake.cid
        self.pool = pool = intake.pool
        self.index, self.shapes, self.node_names = pool.index, pool.shapes, pool.names
        self.own_owners = intake.own_owners
        self.alloc, self.live, self.queues = intake.alloc, intake.live, intake.queues
        self.unknown = intake.unknown
        self.preemptions: list[Preemption] = intake.reclaimed
        self._fit, self._cheapest_units = intake.fit, intake.cheapest_units
        self.shares = Shares(self.communities, intake.demand, pool.capacity, self.policy)
        #: candidate victims and movable workloads, built on first use
        self.victims = Victims(
            self.live,
            pool.shape_of,
            len(self.shapes),
            len(self.communities),
            self.policy,
            snapshot.now,
            self.shares.above_nominal(self.alloc),
        )
        # aliases of the lists ``shares`` updates in place
        self.entitled, self.floors = self.shares.entitled, self.shares.floors
        self.caps, self.guaranteed = self.shares.caps, self.shares.guaranteed

        self.admissions: list[Admission] = []
        self.moves: list[Admission] = []
        self.preempted_in_pass = False
        self.preempted_shapes: set[int] = set()
        #: failed preemption searches (memoised, replayed)
        self.searches = FailedSearches(self.index)
        #: (shape, GPUs per worker) -> (index version, fewest workers that failed to move)
        self._move_memo: dict[tuple[int, int], tuple[int, int]] = {}
        #: (community, fitting shapes, workers, GPUs per worker, serving?) -> index version
        #: at which restarting others failed without changing anything (_restart_others)
        self._unmoved: dict[tuple[int, int, int, int, bool], int] = {}
        #: GPUs held for a workload owed GPU-time (``reservation``)
        self.held = Reservation.make(self.index, self.shares, self.shapes)

    def run(self) -> Decisions:
        queues = self.queues
        settled: list[tuple[_Entry, _Why]] = []
        while True:
            self.preempted_in_pass = False
            self.preempted_shapes.clear()
            waiting: list[tuple[_Entry, _Why]] = []
            usage = [c.usage_gpu_seconds for c in self.communities]
            heap = [
                community_key(self.alloc[c], self.entitled[c], usage[c], q[0][0], c)
                for c, q in enumerate(queues)
                if q
            ]
            heapq.heapify(heap)
            at = [0] * len(queues)
            alloc, entitled = self.alloc, self.entitled
            # keys are unique (the community's rank), so pushing a community back and popping
            # the smallest in one step pops in the same order
            top = heapq.heappop(heap) if heap else None
            while top is not None:
                c = top[4]
                q = queues[c]
                entry = q[at[c]]
                at[c] += 1
                why = self._attempt(entry, c)
                if why is not None:
                    held = self.held and self.held.consider(entry, c, why, alloc[c], entitled[c])
                    waiting.append((entry, held or why))  # held: it waits as Reserved
                    if held:  # the failed searches' recorded moves are stale now
                        self.searches = FailedSearches(self.index)
                if at[c] < len(q):
                    key = community_key(alloc[c], entitled[c], usage[c], q[at[c]][0], c)
                    top = heapq.heappushpop(heap, key)
                else:
                    top = heapq.heappop(heap) if heap else None
            if not self.preempted_in_pass:
                settled += waiting
                break
            if self.held:
                self.held.release()  # chosen again in the next pass
            # Only GPUs a preemption freed and its preemptor left over can change the outcome
            # for a workload already passed over: retry those that could use them.
            leftover = {s for s in self.preempted_shapes if self.index.free_total[s] > 0}
            queues = [[] for _ in queues]
            # fitting lists are shared between workloads of the same shape of demand
            touched: dict[int, bool] = {}
            for entry, why in waiting:
                hit = touched.get(id(entry[1]))
                if hit is None:
                    hit = touched[id(entry[1])] = not leftover.isdisjoint(entry[1])
                if hit:
                    queues[self.cid[entry[0].community]].append(entry)
                else:
                    settled.append((entry, why))
        return self._decisions(settled)

    def _attempt(self, entry: _Entry, c: int) -> _Why | None:
        """Admit the entry's workload (returns None) or return why it waits."""
        w, fitting, why = entry
        if why is not None:
            return why
        allocated, cap = self.alloc[c], self.caps[c]
        cheapest = w.gpus * self.shapes[fitting[0]].weight
        if allocated + cheapest > cap + EPSILON:
            return (reasons.over_cap, (allocated, cap, cheapest))
        capped = self._admit_on_free(w, c, fitting)
        if capped is None:
            return None
        # restarting others is for workloads that waited long enough (preemption delay;
        # the reclaim delay within their community's nominal share)
        nominal = self.shares.within_nominal(c, allocated + cheapest)
        left = delay_left(w, self.policy, self.snapshot.now, nominal=nominal)
        if left <= 0 and self._restart_others(w, c, fitting):
            return None
        return self._why_waiting(w, c, fitting, capped, left)

    def _admit_on_free(self, w: Workload, c: int, fitting: list[int]) -> float | None:
        """Admit ``w`` on free GPUs of the cheapest shape that holds it within the cap (None);
        else the units on a shape with room that the cap ruled out (0 if none)."""
        index, need = self.index, w.gpus
        capped = 0.0
        for s in fitting:
            if index.free_total[s] >= need and index.slots(s, w.gpus_per_worker) >= w.workers:
                units = need * self.shapes[s].weight
                if self.alloc[c] + units <= self.caps[c] + EPSILON:
                    self._admit(w, c, s, units)
                    return None
                capped = capped or units
        return capped

    def _restart_others(self, w: Workload, c: int, fitting: list[int]) -> bool:
        """Admit ``w`` by moving workloads (consolidation), else by preempting (fair share).

        A try that failed without changing the index (every search in it was memoised or
        moved nothing) fails again for a workload of the same community and gang at the same
        index version, and changes nothing: it is not tried again."""
        key = (c, id(fitting), w.workers, w.gpus_per_worker, w.serving)
        version = self.index.version
        if self._unmoved.get(key) == version:
            return False
        if self._try_restart_others(w, c, fitting):
            return True
        if self.index.version == version:
            self._unmoved[key] = version
        return False

    def _try_restart_others(self, w: Workload, c: int, fitting: list[int]) -> bool:
        # moving small workloads off a nearly free node costs nobody any share: try it first
        if self.policy.consolidation and self._consolidate_for(w, c, fitting):
            return True
        self.shares.refresh()
        # the cheapest shape costs least: if even it would take the community above its
        # entitlement, no preemption is allowed on any shape
        cheapest = w.gpus * self.shapes[fitting[0]].weight
        return (
            self.policy.preemption
            and self.alloc[c] + cheapest <= self.entitled[c] + EPSILON
            and self._preempt_for(w, c, fitting)
        )

    def _why_waiting(
        self, w: Workload, c: int, fitting: list[int], capped: float, left: float
    ) -> _Why:
        """The first reason that applies (``DESIGN.md``, "Passes and waiting reasons")."""
        self.shares.refresh()
        if not (self.waiting_reasons or self.held):
            return _UNREAD  # nobody reads it: only a reservation looks at a reason's kind
        index, shapes = self.index, self.shapes
        n, g = w.workers, w.gpus_per_worker
        allocated, entitled = self.alloc[c], self.entitled[c]
        cheapest = w.gpus * shapes[fitting[0]].weight
        if capped:
            return (reasons.over_cap, (allocated, self.caps[c], capped))
        if self.held and (kept_off := self.held.kept_off(w, fitting)):
            return kept_off
        for s in fitting:
            if index.free_total[s] >= w.gpus:
                return (reasons.fragmented, (n, g, shapes[s].gpu_class, index.largest_block(s)))
        if allocated + cheapest > entitled + EPSILON:
            return (reasons.over_share, (allocated, entitled, cheapest))
        s = fitting[0]
        return (
            reasons.pool_exhausted,
            (n, g, shapes[s].gpu_class, index.free_total[s], self.policy.preemption, left),
        )

    def _preempt_for(self, w: Workload, c: int, fitting: list[int]) -> bool:
        """Admit ``w`` on GPUs freed by preemption: under the strict rule on any shape, else
        reclaiming from borrowers (see DESIGN.md, "Preemption")."""
        if any(self._preempt_on(w, c, s, self.entitled, strict=True) for s in fitting):
            return True
        return self.policy.reclaim and any(
            self._preempt_on(w, c, s, self.floors, strict=False) for s in fitting
        )

    def _preempt_on(self, w: Workload, c: int, s: int, keep: list[float], *, strict: bool) -> bool:
        """Preempt on shape ``s`` for ``w``; victims' communities keep at least ``keep``
        (their entitlement under the strict rule, their guarantee when reclaiming)."""
        n, g = w.workers, w.gpus_per_worker
        units = n * g * self.shapes[s].weight
        if self.alloc[c] + units > self.entitled[c] + EPSILON or not self.victims.candidates[s]:
            return False
        if self.searches.known((s, g, strict), n) or self._replay_failure(c, s, n, g, strict):
            return False
        token = (len(self.admissions), len(self.preemptions))
        journal: list[tuple[int, int]] = []
        self.index.journal = journal
        report = Search()
        victims, replayable = self._search_victims(c, s, n, g, keep, strict, report)
        self.index.journal = None
        if victims is None and strict and self.policy.consolidation and self.victims.movable[1][s]:
            # no node can be cleared alone: preempt, then move small workloads together
            replayable = False
            victims = self._preempt_and_move(w, c, s, units)
            if victims is not None:
                self._record_victims(w, victims)
                return True
        if victims is None:
            self.searches.record(
                (s, g, strict),
                n,
                preemptor=c,
                token=token,
                journal=journal,
                report=report,
                replayable=replayable,
            )
            return False
        self._record_victims(w, victims)
        self._admit(w, c, s, units)
        return True

    def _search_victims(
        self, c: int, s: int, n: int, g: int, keep: list[float], strict: bool, report: Search
    ) -> tuple[list[Live] | None, bool]:
        """Victims on shape ``s`` for ``n`` × ``g`` GPUs of community ``c`` (greedy, then node
        by node), or None; and whether a failure is replayable: its moves (recorded in the
        index's journal) depend on the pool's contents only, not on the order of its buckets
        (the node-by-node search found no node to clear, so it moved nothing)."""
        rule = Rule(self.alloc, self.entitled, keep, self.guaranteed)
        victims = find_victims(
            self.index,
            s,
            n,
            g,
            preemptor=c,
            candidates=self.victims.candidates[s],
            rule=rule,
            report=report,
        )
        if victims is not None and self.policy.spare_new:
            on_node, lowest, by_community = self.victims.per_node
            victims = fewer_new(
                self.index,
                s,
                n,
                g,
                victims,
                preemptor=c,
                on_node=on_node,
                rule=rule,
                lowest_priority=lowest,
                by_community=by_community,
            )
        if victims is not None or g <= 1:
            return victims, True
        # the surplus ran out before a whole block was free: clear the nodes that
        # cost least instead (defragmenting preemption)
        journal = self.index.journal
        moved = -1 if journal is None else len(journal)
        on_node, lowest, by_community = self.victims.per_node
        victims = find_block_victims(
            self.index,
            s,
            n,
            g,
            preemptor=c,
            on_node=on_node,
            rule=rule,
            lowest_priority=lowest,
            by_community=by_community,
            spare_new=self.policy.spare_new,
        )
        return victims, journal is not None and len(journal) == moved

    def _replay_failure(self, c: int, s: int, n: int, g: int, strict: bool) -> bool:
        """``FailedSearches.replay`` for community ``c`` (a hook the tests turn off)."""
        token = (len(self.admissions), len(self.preemptions))
        return self.searches.replay((s, g, strict), n, c, token)

    def _record_victims(self, w: Workload, victims: list[Live]) -> None:
        shape_of = self.index.shape_of
        for live in victims:
            live.preempted = True
            self.preemptions.append(Preemption(live.running, FAIR_SHARE, by=w.key))
            # it waits again, and demand counts it at its cheapest shape (as the next cycle)
            less = live.units - self._cheapest_units(live.running.workload)
            if less:
                self.shares.add(live.community, -less)
            # a victim placed across shapes frees GPUs on each of them
            self.preempted_shapes.update(shape_of[i] for i in live.nodes)
        self.preempted_in_pass = True

    def _consolidate_for(self, w: Workload, c: int, fitting: list[int]) -> bool:
        """Admit ``w`` by moving small workloads to clear blocks for it (``consolidation``)."""
        n, g = w.workers, w.gpus_per_worker
        need = n * g
        index = self.index
        for s in fitting:
            units = need * self.shapes[s].weight
            if (
                index.free_total[s] < need
                or not self.victims.movable[1][s]
                or self.alloc[c] + units > self.caps[c] + EPSILON
            ):
                continue
            memo = self._move_memo.get((s, g))
            if memo is not None and memo[0] == index.version and memo[1] <= n:
                continue
            if self._move_and_admit(w, c, s, units):
                return True
            self._move_memo[(s, g)] = (index.version, n)
        return False

    def _move_and_admit(self, w: Workload, c: int, s: int, units: float) -> bool:
        """Move workloads on shape ``s`` to place ``w`` (``consolidation.consolidate``)."""
        done = consolidate(
            self.index,
            s,
            w.workers,
            w.gpus_per_worker,
            on_node=self.victims.movable[0],
            own_owners=self.own_owners[c],
            serving=w.serving,
            spare_new=self.policy.spare_new,
        )
        if done is None:
            return False
        nodes, placed = done
        names = self.node_names
        for live, node in placed:
            if node == live.nodes[0]:
                continue  # it fits where it was: not moved
            live.preempted = True
            self.preemptions.append(Preemption(live.running, CONSOLIDATION, by=w.key))
            self.moves.append(Admission(live.running.workload, (names[node],)))
        self.admissions.append(Admission(w, tuple(names[i] for i in nodes)))
        self._charge(w, c, units)
        # a moved workload may leave a node with more free GPUs than before
        self.preempted_in_pass = True
        self.preempted_shapes.add(s)
        return True

    def _preempt_and_move(self, w: Workload, c: int, s: int, units: float) -> list[Live] | None:
        """Preempt givable victims until shape ``s`` has the gang's GPUs free, then move
        (for a gang no single node can be cleared for). Victims whose GPUs stayed free are
        put back. On failure nothing changes and None is returned."""
        version = self.index.version
        need = w.workers * w.gpus_per_worker
        rule = Rule(self.alloc, self.entitled, self.entitled, self.guaranteed)
        taken = free_in_total(
            self.index, s, need, preemptor=c, candidates=self.victims.candidates[s], rule=rule
        )
        if self.index.free_total[s] >= need and self._move_and_admit(w, c, s, units):
            return keep_used(self.index, taken, self.alloc)
        undo(self.index, taken, self.alloc)
        self.index.version = version
        return None

    def _admit(self, w: Workload, c: int, s: int, units: float) -> None:
        nodes = place(
            self.index,
            s,
            w.workers,
            w.gpus_per_worker,
            own_owners=self.own_owners[c],
            serving=w.serving,
        )
        names = self.node_names
        self.admissions.append(Admission(w, tuple(names[i] for i in nodes)))
        self._charge(w, c, units)

    def _charge(self, w: Workload, c: int, units: float) -> None:
        """Charge community ``c`` the units ``w`` holds on the shape it is placed on.

        Demand counted ``w`` at its cheapest shape while it waited; from now on (and in the
        next cycle) it counts the units ``w`` holds, so demand and entitlements follow at
        once: a preemption judged later in this cycle sees the entitlements that the next
        cycle will compute (see DESIGN.md, "One unit of account").
        """
        self.alloc[c] += units
        extra = units - self._cheapest_units(w)
        if extra:
            self.shares.add(c, extra)

    def _decisions(self, waiting: list[tuple[_Entry, _Why]]) -> Decisions:
        self.shares.refresh()
        out = self.intake.waiting(waiting, self.policy.lookahead) if self.waiting_reasons else ()
        names = [c.name for c in self.communities]
        return Decisions(
            admissions=tuple(self.admissions),
            preemptions=tuple(self.preemptions),
            waiting=out,
            entitlements=MappingProxyType(dict(zip(names, self.entitled, strict=True))),
            allocated=MappingProxyType(dict(zip(names, self.alloc, strict=True))),
            moves=tuple(self.moves),
        )
