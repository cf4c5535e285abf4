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

Everything in the hot loop is an int, a float or a list indexed by dense ids; objects are
built only for the decisions themselves.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from polyculture.scheduling import reasons
from polyculture.scheduling.capacity import FreeIndex, Shape
from polyculture.scheduling.consolidation import plan_moves, replace_moved
from polyculture.scheduling.entitlement import EPSILON, entitlements, weights
from polyculture.scheduling.ordering import community_key, workload_order
from polyculture.scheduling.placement import place
from polyculture.scheduling.preemption import (
    Live,
    find_block_victims,
    find_victims,
    givable,
    release,
    restore,
    victim_order,
)
from polyculture.scheduling.snapshot import (
    Admission,
    Community,
    Decisions,
    Preemption,
    Snapshot,
    Waiting,
    Workload,
)

OWNER_RECLAIM = "OwnerReclaim"
FAIR_SHARE = "FairShare"
CONSOLIDATION = "Consolidation"

#: a waiting reason, formatted only once the cycle is over: (formatter, its arguments)
_Why = tuple[Callable[..., reasons.Reason], tuple[Any, ...]]
#: a queued workload with the shapes that could ever hold it (cheapest first) or why none can
_Entry = tuple[Workload, list[int], _Why | None]


def schedule(snapshot: Snapshot) -> Decisions:
    """Decide admissions, preemptions and waiting reasons for one pool at ``snapshot.now``.

    Pure and deterministic: the same snapshot gives equal decisions. See ``DESIGN.md`` for
    the policies and the invariants they keep.
    """
    return _Cycle(snapshot).run()


class _Cycle:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.policy = policy = snapshot.policy
        classes = {c.name: c for c in policy.gpu_classes}

        # communities, ranked by name (the last tie-breaker of the order)
        by_name: dict[str, Community] = {}
        for community in snapshot.communities:
            by_name.setdefault(community.name, community)
        self.communities = [by_name[name] for name in sorted(by_name)]
        self.cid = {c.name: i for i, c in enumerate(self.communities)}

        # owners get ids in name order, so that ties broken by id follow names
        owner_names = sorted({n.owner for n in snapshot.nodes})
        owner_id = {name: i for i, name in enumerate(owner_names)}
        self.own_owners = [
            tuple(owner_id[o] for o in c.owners if o in owner_id) for c in self.communities
        ]

        # nodes and shapes; shape ids in "cheapest first" order
        nodes = []
        seen: set[str] = set()
        for node in snapshot.nodes:
            if node.name not in seen:
                seen.add(node.name)
                nodes.append(node)
        self.node_names = [n.name for n in nodes]
        node_id = {name: i for i, name in enumerate(self.node_names)}
        shape_keys: dict[tuple[str, int], tuple[float, int]] = {}  # key -> (weight, max gpus)
        node_shape_key: list[tuple[str, int]] = []
        for node in nodes:
            cls = classes.get(node.gpu_class)
            weight = cls.weight if cls is not None else 1.0
            memory = node.memory_mib or (cls.memory_mib if cls is not None else 0)
            key = (node.gpu_class, memory)
            node_shape_key.append(key)
            _, biggest = shape_keys.get(key, (weight, 0))
            shape_keys[key] = (weight, max(biggest, node.gpus, 0))
        ordered = sorted(shape_keys, key=lambda k: (shape_keys[k][0], k[1], k[0]))
        self.shapes = [
            Shape(i, k[0], k[1], shape_keys[k][0], shape_keys[k][1]) for i, k in enumerate(ordered)
        ]
        shape_id = {k: i for i, k in enumerate(ordered)}
        shape_of = [shape_id[k] for k in node_shape_key]
        self.index = index = FreeIndex(self.shapes, shape_of, [owner_id[n.owner] for n in nodes])
        weight_of = [self.shapes[s].weight for s in shape_of]

        # running workloads: reclaim those touching unavailable nodes, count the rest
        n_communities = len(self.communities)
        self.alloc = [0.0] * n_communities
        used = [0] * len(nodes)
        self.preemptions: list[Preemption] = []
        self.live: list[Live] = []
        for r in snapshot.running:
            ids: list[int] = []
            for name in r.placement:
                i = node_id.get(name, -1)
                if i < 0 or not nodes[i].available:
                    self.preemptions.append(Preemption(r, OWNER_RECLAIM))
                    break
                ids.append(i)
            else:
                g = r.workload.gpus_per_worker
                for i in ids:
                    used[i] += g
                units = g * sum(weight_of[i] for i in ids)
                c = self.cid.get(r.workload.community, -1)
                if c >= 0:
                    self.alloc[c] += units
                self.live.append(Live(r, c, ids, g, units))

        # the free-block index and the static capacity (per shape: node sizes)
        capacity = 0.0
        self.node_sizes: list[dict[int, int]] = [{} for _ in self.shapes]
        for i, node in enumerate(nodes):
            if node.available and node.gpus > 0:
                index.add(i, max(0, node.gpus - used[i]))
                capacity += node.gpus * weight_of[i]
                sizes = self.node_sizes[shape_of[i]]
                sizes[node.gpus] = sizes.get(node.gpus, 0) + 1
        self.capacity = capacity
        self._fit_cache: dict[tuple[str | None, int, int, int], tuple[list[int], _Why | None]] = {}

        # victims per shape, in victim order, past their minimum runtime
        self.candidates: list[list[Live]] = [[] for _ in self.shapes]
        if policy.preemption:
            for live in self.live:
                if live.community < 0:
                    continue
                if snapshot.now - live.running.started < policy.min_runtime_s:
                    continue
                for s in sorted({shape_of[i] for i in live.nodes}):
                    self.candidates[s].append(live)
            for cands in self.candidates:
                cands.sort(key=victim_order)
        #: candidate victims per node (defragmenting preemption), built on first use
        self._victims_on_node: list[list[Live]] | None = None
        self._lowest_priority = 0
        # movable workloads per node (consolidation): one worker, training, past min runtime
        self.on_node: list[list[Live]] = []
        self.movable_per_shape = [0] * len(self.shapes)
        if policy.consolidation:
            self.on_node = [[] for _ in nodes]
            for live in self.live:
                if (
                    live.community >= 0
                    and len(live.nodes) == 1
                    and not live.serving
                    and snapshot.now - live.running.started >= policy.min_runtime_s
                ):
                    live.movable = True
                    self.on_node[live.nodes[0]].append(live)
                    self.movable_per_shape[shape_of[live.nodes[0]]] += 1

        # queues and demand
        self.queues: list[list[_Entry]] = [[] for _ in self.communities]
        self.unknown: list[Workload] = []
        demand = dict.fromkeys(by_name, 0.0)
        for c, community in enumerate(self.communities):
            demand[community.name] = self.alloc[c]
        for w in snapshot.pending:
            c = self.cid.get(w.community, -1)
            if c < 0:
                self.unknown.append(w)
                continue
            fitting, why = self._fit(w)
            self.queues[c].append((w, fitting, why))
            if fitting:
                demand[w.community] += w.gpus * self.shapes[fitting[0]].weight
        # the caller queues a reclaimed workload again: the next cycle counts it as waiting
        # demand, so this one does too (one unit of account across cycles)
        for p in self.preemptions:
            if p.running.workload.community in self.cid:
                demand[p.running.workload.community] += self._cheapest_units(p.running.workload)
        for q in self.queues:
            q.sort(key=lambda entry: workload_order(entry[0]))
        #: demand as the next cycle will count it (see ``_charge``), and whether the
        #: entitlements below were computed from it
        self.demand = [demand[c.name] for c in self.communities]
        self._stale = False
        ent = entitlements(self.communities, demand, capacity, policy)
        self.entitled = [ent[c.name] for c in self.communities]
        self.caps = [
            math.inf if c.max_gpus is None else float(c.max_gpus) for c in self.communities
        ]
        self.guaranteed = [float(c.guaranteed_gpus) for c in self.communities]
        #: what reclaiming borrowed GPUs leaves a victim's community: its guarantee floor
        self.floors = [min(g, e) for g, e in zip(self.guaranteed, self.entitled, strict=True)]
        self._weights = weights(self.communities, policy)

        self.admissions: list[Admission] = []
        self.moves: list[Admission] = []
        self.preempted_in_pass = False
        self.preempted_shapes: set[int] = set()
        #: (shape, GPUs per worker, strict rule?) -> (index version, fewest workers that
        #: failed to preempt)
        self._memo: dict[tuple[int, int, bool], tuple[int, int]] = {}
        #: the same for consolidation
        self._move_memo: dict[tuple[int, int], tuple[int, int]] = {}

    def _fit(self, w: Workload) -> tuple[list[int], _Why | None]:
        """Shapes that could hold ``w`` in an empty pool (cheapest first), or why none can."""
        key = (w.gpu_class, w.min_gpu_memory_mib, w.workers, w.gpus_per_worker)
        cached = self._fit_cache.get(key)
        if cached is not None:
            return cached
        eligible = [
            s.id
            for s in self.shapes
            if (w.gpu_class is None or s.gpu_class == w.gpu_class)
            and s.memory_mib >= w.min_gpu_memory_mib
            and self.node_sizes[s.id]
        ]
        g = w.gpus_per_worker
        why: _Why | None = None
        fitting = [
            s
            for s in eligible
            if g > 0 and sum(k * (size // g) for size, k in self.node_sizes[s].items()) >= w.workers
        ]
        if not eligible:
            why = (reasons.no_matching_gpus, (w.gpu_class, w.min_gpu_memory_mib))
        elif not fitting:
            largest = max(eligible, key=lambda s: max(self.node_sizes[s]))
            why = (
                reasons.gang_too_large,
                (w.workers, g, self.shapes[largest].gpu_class, max(self.node_sizes[largest])),
            )
        self._fit_cache[key] = (fitting, why)
        return fitting, why

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
            while heap:
                c = heapq.heappop(heap)[4]
                q = queues[c]
                entry = q[at[c]]
                at[c] += 1
                why = self._attempt(entry, c)
                if why is not None:
                    waiting.append((entry, why))
                if at[c] < len(q):
                    heapq.heappush(
                        heap, community_key(alloc[c], entitled[c], usage[c], q[at[c]][0], c)
                    )
            if not self.preempted_in_pass:
                settled += waiting
                break
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
        index, shapes = self.index, self.shapes
        n, g = w.workers, w.gpus_per_worker
        need = n * g
        allocated = self.alloc[c]
        cheapest = need * shapes[fitting[0]].weight
        cap = self.caps[c]
        if allocated + cheapest > cap + EPSILON:
            return (reasons.over_cap, (allocated, cap, cheapest))
        free_total = index.free_total
        capped = 0.0  # units on a shape with room that the cap rules out
        for s in fitting:
            if free_total[s] >= need and index.slots(s, g) >= n:
                units = need * shapes[s].weight
                if allocated + units <= cap + EPSILON:
                    self._admit(w, c, s, units)
                    return None
                capped = capped or units
        # moving small workloads off a nearly free node costs nobody any share: try it first
        if self.policy.consolidation and self._consolidate_for(w, c, fitting):
            return None
        self._refresh()
        # the cheapest shape costs least: if even it would take the community above its
        # entitlement, no preemption is allowed on any shape
        if (
            self.policy.preemption
            and allocated + cheapest <= self.entitled[c] + EPSILON
            and self._preempt_for(w, c, fitting)
        ):
            return None
        if capped:
            return (reasons.over_cap, (allocated, cap, capped))
        for s in fitting:
            if free_total[s] >= need:
                cls = shapes[s].gpu_class
                return (reasons.fragmented, (n, g, cls, index.largest_block(s)))
        if allocated + cheapest > self.entitled[c] + EPSILON:
            return (reasons.over_share, (allocated, self.entitled[c], cheapest))
        s = fitting[0]
        return (
            reasons.pool_exhausted,
            (n, g, shapes[s].gpu_class, free_total[s], self.policy.preemption),
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
        if self.alloc[c] + units > self.entitled[c] + EPSILON or not self.candidates[s]:
            return False
        memo = self._memo.get((s, g, strict))
        if memo is not None and memo[0] == self.index.version and memo[1] <= n:
            return False
        alloc, entitled, guaranteed = self.alloc, self.entitled, self.guaranteed
        victims = find_victims(
            self.index,
            s,
            n,
            g,
            preemptor=c,
            candidates=self.candidates[s],
            alloc=alloc,
            entitled=entitled,
            keep=keep,
            guaranteed=guaranteed,
        )
        if victims is None and g > 1:
            # the surplus ran out before a whole block was free: clear the nodes that
            # cost least instead (defragmenting preemption)
            victims = find_block_victims(
                self.index,
                s,
                n,
                g,
                preemptor=c,
                on_node=self.victims_on_node(),
                alloc=alloc,
                entitled=entitled,
                keep=keep,
                guaranteed=guaranteed,
                lowest_priority=self._lowest_priority,
            )
        if victims is None and strict and self.policy.consolidation and self.movable_per_shape[s]:
            # no node can be cleared alone: preempt, then move small workloads together
            victims = self._preempt_and_move(w, c, s, units)
            if victims is not None:
                self._record_victims(w, victims)
                return True
        if victims is None:
            self._memo[(s, g, strict)] = (self.index.version, n)
            return False
        self._record_victims(w, victims)
        self._admit(w, c, s, units)
        return True

    def _record_victims(self, w: Workload, victims: list[Live]) -> None:
        shape_of = self.index.shape_of
        for live in victims:
            live.preempted = True
            self.preemptions.append(Preemption(live.running, FAIR_SHARE, by=w.key))
            # it waits again, and demand counts it at its cheapest shape (as the next cycle)
            less = live.units - self._cheapest_units(live.running.workload)
            if less:
                self._add_demand(live.community, -less)
            # a victim placed across shapes frees GPUs on each of them
            self.preempted_shapes.update(shape_of[i] for i in live.nodes)
        self.preempted_in_pass = True

    def victims_on_node(self) -> list[list[Live]]:
        """Candidate victims (any shape) per node id, each listed once per node it uses."""
        if self._victims_on_node is None:
            on_node: list[list[Live]] = [[] for _ in self.node_names]
            seen: set[int] = set()
            for cands in self.candidates:
                for live in cands:
                    if id(live) in seen:
                        continue
                    seen.add(id(live))
                    for i in sorted(set(live.nodes)):
                        on_node[i].append(live)
                    self._lowest_priority = min(
                        self._lowest_priority, live.running.workload.priority
                    )
            self._victims_on_node = on_node
        return self._victims_on_node

    def _consolidate_for(self, w: Workload, c: int, fitting: list[int]) -> bool:
        """Admit ``w`` by moving small workloads to clear blocks for it (``consolidation``)."""
        n, g = w.workers, w.gpus_per_worker
        need = n * g
        index = self.index
        for s in fitting:
            units = need * self.shapes[s].weight
            if (
                index.free_total[s] < need
                or not self.movable_per_shape[s]
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
        """Plan moves on shape ``s`` (free GPUs suffice in total), place ``w``, move; or undo."""
        n, g = w.workers, w.gpus_per_worker
        index = self.index
        moved = plan_moves(index, s, n, g, on_node=self.on_node, budget=n * g)
        if moved is None:
            return False
        version = index.version
        for live in moved:
            index.give(live.nodes[0], live.gpus)
        nodes = place(index, s, n, g, own_owners=self.own_owners[c], serving=w.serving)
        spare = n * g - sum(live.gpus for live in moved)
        placed = replace_moved(index, s, moved, on_node=self.on_node, budget=spare)
        if placed is None:
            for i in nodes:
                index.give(i, g)
            for live in moved:
                index.take(live.nodes[0], live.gpus)
            # the pool is exactly as it was: memoised failures still hold
            index.version = version
            return False
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
        """Preempt givable victims until shape ``s`` has the gang's GPUs free, then move.

        For a gang that no single node can be cleared for: the victims free GPUs anywhere
        (greedy, victim order, same rules as :func:`find_victims`), consolidation gathers
        free GPUs into blocks. Victims whose GPUs stayed free are put back. On failure
        nothing changes and None is returned.
        """
        index, alloc = self.index, self.alloc
        need = w.workers * w.gpus_per_worker
        version = index.version
        taken: list[Live] = []
        for live in self.candidates[s]:
            if index.free_total[s] >= need:
                break
            v = live.community
            if live.preempted or v == c or v < 0:
                continue
            if not givable(live, 0.0, alloc, self.entitled, self.entitled, self.guaranteed):
                continue
            release(index, live, alloc)
            live.preempted = True  # neither a victim twice nor moved
            taken.append(live)
        if index.free_total[s] >= need and self._move_and_admit(w, c, s, units):
            needed: list[Live] = []
            for live in reversed(taken):
                held = Counter(live.nodes)
                if all(index.free[i] >= live.gpus * k for i, k in held.items()):
                    restore(index, live, alloc)  # its GPUs were not needed after all
                    live.preempted = False
                else:
                    needed.append(live)
            needed.reverse()
            return needed
        for live in reversed(taken):
            restore(index, live, alloc)
            live.preempted = False
        index.version = version
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

    def _cheapest_units(self, w: Workload) -> float:
        """What demand counts for ``w`` while it waits: its units on its cheapest shape."""
        fitting = self._fit(w)[0]
        return w.gpus * self.shapes[fitting[0]].weight if fitting else 0.0

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
            self._add_demand(c, extra)

    def _add_demand(self, c: int, delta: float) -> None:
        """Change community ``c``'s demand; mark the entitlements stale if they can change.

        They cannot while ``c`` is strictly between its floor and its cap before and after
        (demand above what it is entitled to): the water level is where it was. In a
        contended pool that is the common case, so entitlements are recomputed seldom.
        """
        old = self.demand[c]
        new = self.demand[c] = old + delta
        if self._stale:
            return
        share, top, guaranteed = self.entitled[c], self.caps[c], self.guaranteed[c]
        cap_old, cap_new = min(old, top), min(new, top)
        if (
            self._weights[c] > 0
            and share < cap_old - EPSILON
            and share < cap_new - EPSILON
            and min(guaranteed, cap_old) == min(guaranteed, cap_new)
        ):
            return
        self._stale = True

    def _refresh(self) -> None:
        """Recompute the entitlements (in place) if demand changed since they were computed."""
        if not self._stale:
            return
        self._stale = False
        demand = {c.name: d for c, d in zip(self.communities, self.demand, strict=True)}
        ent = entitlements(self.communities, demand, self.capacity, self.policy)
        self.entitled[:] = [ent[c.name] for c in self.communities]
        self.floors[:] = [min(g, e) for g, e in zip(self.guaranteed, self.entitled, strict=True)]

    def _decisions(self, waiting: list[tuple[_Entry, _Why]]) -> Decisions:
        self._refresh()
        out: list[Waiting] = []
        # thousands of waiting workloads share a handful of reasons: format each once
        formatted: dict[_Why, reasons.Reason] = {}
        for entry, why in waiting:
            reason = formatted.get(why)
            if reason is None:
                reason = formatted[why] = why[0](*why[1])
            out.append(Waiting(entry[0], *reason))
        for w in self.unknown:
            out.append(Waiting(w, *reasons.unknown_community(w.community)))
        names = [c.name for c in self.communities]
        return Decisions(
            admissions=tuple(self.admissions),
            preemptions=tuple(self.preemptions),
            waiting=tuple(out),
            entitlements=MappingProxyType(dict(zip(names, self.entitled, strict=True))),
            allocated=MappingProxyType(dict(zip(names, self.alloc, strict=True))),
            moves=tuple(self.moves),
        )
