"""Property tests of the scheduling core's invariants (hypothesis), on small random pools.

Covers, for every generated snapshot: no node is over-allocated; a gang is admitted whole,
on nodes that match its class and memory, or not at all; every pending workload is either
admitted or waiting, once; work conservation (nothing waits that fits in the free GPUs,
unless its community is at its cap); no community below its entitlement waits for a workload
that frees what it needs and that a community above its entitlement could give while keeping
its guarantee (this is also what "guarantees are met when demanded" means once a guarantee
is a floor of the entitlement); entitlements respect floors and caps and sum to what can be
used; a victim community was above its entitlement when it gave and keeps its guarantee, and
no preemption is undone by the next cycle (no cycles); the same snapshot gives equal
decisions, whatever the hash seed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyculture.scheduling import (
    Community,
    Decisions,
    GPUClass,
    Node,
    Policy,
    Running,
    Snapshot,
    Workload,
    schedule,
)
from polyculture.scheduling.entitlement import entitlements

EPS = 1e-6
CLASSES = (GPUClass("A", 1.0, 81920), GPUClass("B", 0.5, 24576))
CLASS = {c.name: c for c in CLASSES}
OWNERS = ("o1", "o2", "o3")
# modest by default (the whole unit suite must stay fast on 2 cores); raise it to hunt bugs
EXAMPLES = int(os.environ.get("POLYCULTURE_SCHED_EXAMPLES", "80"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def pools(draw: st.DrawFn, contended: bool) -> Snapshot:
    """A random pool; ``contended``: full, held by the first community, others pending."""
    n_nodes = draw(st.integers(1, 6))
    nodes = tuple(
        Node(
            f"n{i}",
            draw(st.sampled_from(OWNERS)),
            draw(st.sampled_from(("A", "A", "B"))),
            draw(st.sampled_from((1, 2, 4, 4, 8, 8))),
            available=draw(st.booleans()) or draw(st.booleans()) or draw(st.booleans()),
        )
        for i in range(n_nodes)
    )
    names = [f"c{i}" for i in range(draw(st.integers(1, 4)))]
    communities = tuple(
        Community(
            name,
            weight=draw(st.sampled_from((0.5, 1.0, 2.0))),
            guaranteed_gpus=draw(st.sampled_from((0, 0, 2, 4, 8))),
            max_gpus=None if contended else draw(st.sampled_from((None, None, 4, 8, 16))),
            usage_gpu_seconds=draw(st.sampled_from((0.0, 10.0, 100.0))),
            contribution_gpu_seconds=draw(st.sampled_from((0.0, 50.0, 200.0))),
            owners=tuple(draw(st.lists(st.sampled_from(OWNERS), max_size=2, unique=True))),
        )
        for name in names
    )
    # running: place random gangs first-fit on a random node order (availability ignored,
    # so that some run on reclaimed nodes)
    free = {n.name: n.gpus for n in nodes}
    running = []
    for i in range(draw(st.integers(0, 12)) + (12 if contended else 0)):
        g = draw(st.sampled_from((1, 1, 2, 4)))
        workers = draw(st.integers(1, 2))
        order = draw(st.permutations([n.name for n in nodes]))
        placement: list[str] = []
        for name in order:
            while free[name] >= g and len(placement) < workers:
                free[name] -= g
                placement.append(name)
        if len(placement) < workers:
            for name in placement:
                free[name] += g
            continue
        w = Workload(
            f"run{i}",
            names[0] if contended else draw(st.sampled_from(names)),
            workers,
            g,
            priority=draw(st.integers(0, 2)),
            serving=draw(st.booleans()),
            created=-1.0,
        )
        running.append(
            Running(
                w,
                tuple(placement),
                started=draw(st.sampled_from((0.0, 80.0))),
                restarts=draw(st.sampled_from((0, 0, 1, 3))),
                last_checkpoint=draw(st.sampled_from((None, 60.0, 90.0))),
                checkpoint_interval_s=draw(st.sampled_from((0.0, 0.0, 25.0))),
            )
        )
    pending = tuple(
        Workload(
            f"p{i}",
            draw(st.sampled_from(names[1:] if contended and len(names) > 1 else names)),
            draw(st.sampled_from((1, 1, 1, 2, 3))),
            draw(st.sampled_from((1, 1, 2, 2, 4, 8))),
            priority=draw(st.integers(0, 2)),
            serving=draw(st.booleans()),
            gpu_class=draw(st.sampled_from((None, None, None, "A", "B"))),
            min_gpu_memory_mib=draw(st.sampled_from((0, 0, 0, 40000))),
            created=float(draw(st.integers(0, 5))),
            # requeued after a preemption at 80: within a 50 s preemption delay at 100
            waiting_since=draw(st.sampled_from((None, None, 80.0))),
        )
        for i in range(draw(st.integers(0, 8)))
    )
    policy = Policy(
        basis=draw(st.sampled_from(("weight", "contribution", "blend"))),
        preemption=contended or draw(st.booleans()) or draw(st.booleans()),
        min_runtime_s=draw(st.sampled_from((0.0, 0.0, 50.0))),
        gpu_classes=CLASSES,
        consolidation=draw(st.booleans()),
        reclaim=draw(st.booleans()),
        restart_backoff=draw(st.sampled_from((1.0, 2.0))),
        preemption_delay_s=draw(st.sampled_from((0.0, 0.0, 50.0))),
        restart_limit=draw(st.sampled_from((0, 0, 1, 3))),
        move_restarted_only=draw(st.booleans()),
        spare_new=draw(st.booleans()),
        reclaim_delay_s=draw(st.sampled_from((0.0, 0.0, 25.0))),
    )
    return Snapshot(nodes, communities, tuple(running), pending, now=100.0, policy=policy)


def snapshots() -> st.SearchStrategy[Snapshot]:
    return st.one_of(pools(contended=False), pools(contended=True))


# ---- an independent model of the outcome ------------------------------------------------


def weight_of(node: Node) -> float:
    return CLASS[node.gpu_class].weight


def units_of(snap: Snapshot, r: Running) -> float:
    """Normalised units a running workload holds on the nodes its workers are on."""
    by_name = {n.name: n for n in snap.nodes}
    return sum(r.workload.gpus_per_worker * weight_of(by_name[name]) for name in r.placement)


def memory_of(node: Node) -> int:
    return node.memory_mib or CLASS[node.gpu_class].memory_mib


def eligible(node: Node, w: Workload) -> bool:
    return (w.gpu_class is None or node.gpu_class == w.gpu_class) and memory_of(
        node
    ) >= w.min_gpu_memory_mib


class Outcome:
    """The pool once the decisions are applied, computed from scratch."""

    def __init__(self, snap: Snapshot, d: Decisions) -> None:
        self.snap, self.d = snap, d
        self.nodes = {n.name: n for n in snap.nodes}
        preempted = {p.running.workload.key for p in d.preemptions}
        self.survivors = [r for r in snap.running if r.workload.key not in preempted]
        self.used: dict[str, int] = defaultdict(int)
        self.alloc: dict[str, float] = defaultdict(float)
        self.alloc_snapshot: dict[str, float] = defaultdict(float)  # survivors only
        for r in self.survivors:
            for name in r.placement:
                self.used[name] += r.workload.gpus_per_worker
                units = r.workload.gpus_per_worker * weight_of(self.nodes[name])
                self.alloc[r.workload.community] += units
                self.alloc_snapshot[r.workload.community] += units
        for a in d.admissions:
            for name in a.placement:
                self.used[name] += a.workload.gpus_per_worker
                self.alloc[a.workload.community] += a.workload.gpus_per_worker * weight_of(
                    self.nodes[name]
                )
        # moved workloads (consolidation) run again at once, on their new nodes
        for m in d.moves:
            for name in m.placement:
                self.used[name] += m.workload.gpus_per_worker
                units = m.workload.gpus_per_worker * weight_of(self.nodes[name])
                self.alloc[m.workload.community] += units
                self.alloc_snapshot[m.workload.community] += units

    def free(self, name: str) -> int:
        node = self.nodes[name]
        return max(0, node.gpus - self.used[name]) if node.available else 0

    def fits(self, w: Workload, shape: tuple[str, int], extra: dict[str, int]) -> bool:
        slots = sum(
            (self.free(n.name) + extra.get(n.name, 0)) // w.gpus_per_worker
            for n in self.snap.nodes
            if n.available and (n.gpu_class, memory_of(n)) == shape
        )
        return slots >= w.workers

    def shapes(self, w: Workload) -> list[tuple[str, int]]:
        return sorted(
            {(n.gpu_class, memory_of(n)) for n in self.snap.nodes if n.available and eligible(n, w)}
        )


def communities_of(snap: Snapshot) -> dict[str, Community]:
    return {c.name: c for c in snap.communities}


# ---- the invariants -----------------------------------------------------------------------


@SETTINGS
@given(snapshots())
def test_no_node_is_over_allocated_and_gangs_are_whole(snap: Snapshot) -> None:
    d = schedule(snap)
    out = Outcome(snap, d)
    before = {n.name: 0 for n in snap.nodes}
    for r in snap.running:
        for name in r.placement:
            if name in before:
                before[name] += r.workload.gpus_per_worker
    for a in d.admissions:
        assert len(a.placement) == a.workload.workers
        for name in a.placement:
            node = out.nodes[name]
            assert node.available and eligible(node, a.workload)
        # one shape per gang, so its workers are interchangeable
        assert len({(out.nodes[n].gpu_class, memory_of(out.nodes[n])) for n in a.placement}) == 1
    for node in snap.nodes:
        if any(node.name in a.placement for a in (*d.admissions, *d.moves)):
            assert out.used[node.name] <= node.gpus


@SETTINGS
@given(snapshots())
def test_every_pending_workload_is_admitted_or_waiting_once(snap: Snapshot) -> None:
    d = schedule(snap)
    decided = [a.workload.key for a in d.admissions] + [w.workload.key for w in d.waiting]
    assert sorted(decided) == sorted(w.key for w in snap.pending)
    running = {r.workload.key for r in snap.running}
    assert all(p.running.workload.key in running for p in d.preemptions)
    # a move restarts a running workload preempted for consolidation, and only such one
    consolidated = {p.running.workload.key for p in d.preemptions if p.reason == "Consolidation"}
    assert sorted(m.workload.key for m in d.moves) == sorted(consolidated)
    for w in d.waiting:
        assert w.reason[0].isupper() and " " not in w.reason and w.message
    # a workload restarted as often as the limit is stopped only when its owner reclaims
    limit = snap.policy.restart_limit
    for p in d.preemptions:
        if limit and p.running.restarts >= limit:
            assert p.reason == "OwnerReclaim", p
        # moving only restarted workloads, a run never restarted is never moved
        if snap.policy.move_restarted_only and p.reason == "Consolidation":
            assert p.running.restarts > 0, p


@SETTINGS
@given(snapshots())
def test_work_conservation(snap: Snapshot) -> None:
    d = schedule(snap)
    out = Outcome(snap, d)
    communities = communities_of(snap)
    for waiting in d.waiting:
        w = waiting.workload
        for shape in out.shapes(w):
            if out.fits(w, shape, {}):
                c = communities[w.community]
                units = w.gpus * CLASS[shape[0]].weight
                assert waiting.reason == "OverCap", (waiting, shape)
                assert c.max_gpus is not None and out.alloc[c.name] + units > c.max_gpus - EPS


@SETTINGS
@given(snapshots())
def test_nobody_below_its_share_waits_for_gpus_someone_above_could_give(
    snap: Snapshot,
) -> None:
    d = schedule(snap)
    out = Outcome(snap, d)
    if not snap.policy.preemption:
        return
    ent = d.entitlements
    communities = communities_of(snap)
    for waiting in d.waiting:
        w = waiting.workload
        if w.community not in communities:
            continue
        since = w.created if w.waiting_since is None else w.waiting_since
        if snap.now - since < snap.policy.preemption_delay_s:
            continue  # it may not preempt yet
        for shape in out.shapes(w):
            units = w.gpus * CLASS[shape[0]].weight
            if out.alloc[w.community] + units > ent[w.community] + EPS:
                continue  # admitting it would take its community above its entitlement
            for r in out.survivors:
                v = r.workload.community
                if v == w.community or v not in communities:
                    continue
                protected = snap.policy.min_runtime_s * snap.policy.restart_backoff**r.restarts
                if snap.now - r.started < protected:
                    continue
                if snap.policy.restart_limit and r.restarts >= snap.policy.restart_limit:
                    continue  # restarted as often as the limit: never a victim again
                r_units = sum(
                    r.workload.gpus_per_worker * weight_of(out.nodes[n]) for n in r.placement
                )
                left = out.alloc_snapshot[v] - r_units
                if out.alloc_snapshot[v] <= ent[v] + EPS:
                    continue  # the victim's community is not above its entitlement
                keep = (
                    min(communities[v].guaranteed_gpus, ent[v]) if snap.policy.reclaim else ent[v]
                )
                if left < keep - EPS:
                    continue  # giving it would take the victim below what the rule keeps
                if r.workload.serving and left < communities[v].guaranteed_gpus - EPS:
                    continue
                extra: dict[str, int] = defaultdict(int)
                for n in r.placement:
                    extra[n] += r.workload.gpus_per_worker
                assert not out.fits(w, shape, extra), (waiting, r)


@SETTINGS
@given(snapshots())
def test_entitlements_respect_floors_caps_and_capacity(snap: Snapshot) -> None:
    d = schedule(snap)
    ent = d.entitlements
    assert set(ent) == {c.name for c in snap.communities}
    capacity = sum(n.gpus * weight_of(n) for n in snap.nodes if n.available)
    assert sum(ent.values()) <= capacity + EPS
    for c in snap.communities:
        assert ent[c.name] >= -EPS
        if c.max_gpus is not None:
            assert ent[c.name] <= c.max_gpus + EPS
    floors_fit = sum(c.guaranteed_gpus for c in snap.communities) <= capacity
    demanded = {w.community for w in snap.pending} | {r.workload.community for r in snap.running}
    if floors_fit:
        for c in snap.communities:
            if c.name not in demanded:
                assert ent[c.name] == 0
    assert all(v >= -EPS for v in d.allocated.values())


@SETTINGS
@given(snapshots())
def test_guarantees_are_floors_of_the_entitlement(snap: Snapshot) -> None:
    d = schedule(snap)
    capacity = sum(n.gpus * weight_of(n) for n in snap.nodes if n.available)
    nodes = {n.name: n for n in snap.nodes}
    held: dict[str, float] = defaultdict(float)  # a lower bound of each community's demand
    for r in snap.running:
        if all(name in nodes and nodes[name].available for name in r.placement):
            held[r.workload.community] += sum(
                r.workload.gpus_per_worker * weight_of(nodes[name]) for name in r.placement
            )
    floors = [min(c.guaranteed_gpus, c.max_gpus or math.inf) for c in snap.communities]
    if sum(floors) > capacity:
        return  # oversubscribed guarantees are scaled down (see DESIGN.md)
    for c, floor in zip(snap.communities, floors, strict=True):
        assert d.entitlements[c.name] >= min(floor, held[c.name]) - EPS


def next_cycle(snap: Snapshot, d: Decisions) -> Snapshot:
    """The snapshot after applying ``d``: victims re-queued, admissions running."""
    preempted = {p.running.workload.key: p for p in d.preemptions}
    running = tuple(r for r in snap.running if r.workload.key not in preempted) + tuple(
        Running(a.workload, a.placement, started=snap.now) for a in (*d.admissions, *d.moves)
    )
    moved = {m.workload.key for m in d.moves}
    pending = tuple(w.workload for w in d.waiting) + tuple(
        p.running.workload for p in d.preemptions if p.running.workload.key not in moved
    )
    return replace(snap, running=running, pending=pending, now=snap.now + 1000.0)


def held(snap: Snapshot) -> dict[str, float]:
    """Normalised units each community holds in the snapshot's running set."""
    out: dict[str, float] = defaultdict(float)
    for r in snap.running:
        out[r.workload.community] += units_of(snap, r)
    return out


@SETTINGS
@given(snapshots())
def test_no_preemption_cycles(snap: Snapshot) -> None:
    # A fair-share preemption takes only from a community above its entitlement (borrowing)
    # and admits a workload that keeps its own community within its entitlement. So after
    # A preempts B, B can take GPUs back from A only if A borrowed idle GPUs beyond its
    # entitlement since, and never the workload that preempted it.
    d1 = schedule(snap)
    snap2 = next_cycle(snap, d1)
    d2 = schedule(snap2)
    for snap_i, d in ((snap, d1), (snap2, d2)):
        community = {w.key: w.community for w in snap_i.pending}
        guaranteed = {c.name: c.guaranteed_gpus for c in snap_i.communities}
        largest: dict[str, float] = defaultdict(float)
        for p in d.preemptions:
            if p.reason == "FairShare":
                victim = p.running.workload.community
                largest[victim] = max(largest[victim], units_of(snap_i, p.running))
        for p in d.preemptions:
            if p.reason != "FairShare":
                continue
            victim = p.running.workload.community
            ent = d.entitlements[victim]
            # it gave while above its entitlement (so at most one victim below it) ...
            assert d.allocated[victim] + largest[victim] > ent - EPS
            # ... and keeps its guarantee
            assert d.allocated[victim] >= min(guaranteed[victim], ent) - EPS
            # (the preemptor may end above its own share: after preempting, it can still
            # borrow idle GPUs like anyone else)
            assert p.by in community
    first = {w.key: w.community for w in snap.pending}
    second = {w.key: w.community for w in snap2.pending}
    took = {(p.by, p.running.workload.key) for p in d1.preemptions if p.reason == "FairShare"}
    took_from = {
        (first[p.by], p.running.workload.community)
        for p in d1.preemptions
        if p.reason == "FairShare"
    }
    holding = held(snap2)
    for p in d2.preemptions:
        if p.reason != "FairShare":
            continue
        # no preemption is undone: nothing preempted in the first cycle preempts its
        # preemptor in the second
        assert (p.running.workload.key, p.by) not in took
        # a community that preempted loses GPUs only if it borrowed beyond its entitlement
        victim = p.running.workload.community
        if (victim, second[p.by]) in took_from:
            assert holding[victim] > d2.entitlements[victim] + EPS


@SETTINGS
@given(snapshots())
def test_decisions_are_deterministic(snap: Snapshot) -> None:
    assert schedule(snap) == schedule(snap)


DIGEST = """
import hashlib, json, random
from polyculture.scheduling import schedule
from polyculture.simulation.bench import synthetic_snapshot
d = schedule(synthetic_snapshot(nodes=60, gpus_per_node=8, communities=7, pending=400, seed=3))
text = json.dumps([[a.workload.key, a.placement] for a in d.admissions]
                  + [[p.running.workload.key, p.reason, p.by] for p in d.preemptions]
                  + [[w.workload.key, w.reason, w.message] for w in d.waiting]
                  + sorted(d.entitlements.items()))
print(hashlib.sha256(text.encode()).hexdigest())
"""


def test_decisions_do_not_depend_on_the_hash_seed() -> None:
    digests = {
        subprocess.run(
            [sys.executable, "-c", DIGEST],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1, json.dumps(sorted(digests))


@SETTINGS
@given(snapshots())
def test_entitlements_are_those_the_next_cycle_computes(snap: Snapshot) -> None:
    # one unit of account: a workload counts its units on the shape it is placed on, and a
    # waiting one its cheapest shape, in this cycle as in the next; so a preemption is
    # judged against the entitlements the next cycle will see (no cycles across classes)
    d = schedule(snap)
    after = next_cycle(snap, d)
    nodes = {n.name: n for n in after.nodes}
    known = communities_of(after)
    demand: dict[str, float] = defaultdict(float)
    waiting = list(after.pending)
    for r in after.running:
        if all(name in nodes and nodes[name].available for name in r.placement):
            demand[r.workload.community] += sum(
                r.workload.gpus_per_worker * weight_of(nodes[name]) for name in r.placement
            )
        else:
            waiting.append(r.workload)  # reclaimed, queued again
    for w in waiting:
        # a waiting workload counts its cheapest shape that could hold it in an empty pool
        slots: dict[tuple[str, int], int] = defaultdict(int)
        for n in after.nodes:
            if n.available and eligible(n, w):
                slots[(n.gpu_class, memory_of(n))] += n.gpus // w.gpus_per_worker
        fits = [CLASS[shape[0]].weight for shape, k in slots.items() if k >= w.workers]
        demand[w.community] += w.gpus * min(fits, default=0.0)
    demand = {name: v for name, v in demand.items() if name in known}
    capacity = sum(n.gpus * weight_of(n) for n in after.nodes if n.available)
    expected = entitlements(after.communities, demand, capacity, after.policy)
    assert dict(d.entitlements) == pytest.approx(expected, abs=EPS)


def test_no_preemption_cycles_across_gpu_classes() -> None:
    # found by hypothesis (600 examples) when demand counted a gang at its cheapest class
    # even once placed on a dearer one: c2's 8-GPU gang lands on class A (8 units, counted
    # 4), c0 then preempted c2 within an entitlement that the next cycle no longer gave it,
    # and c2 preempted back
    snap = Snapshot(
        nodes=(Node("n0", "o1", "B", 8), Node("n1", "o1", "A", 8)),
        communities=(Community("c0", weight=0.5), Community("c1", 0.5), Community("c2", 2.0)),
        running=(
            Running(Workload("run0", "c0", 1, 1, created=-1.0), ("n0",)),
            Running(Workload("run1", "c2", 2, 1, created=-1.0), ("n0", "n0")),
        ),
        pending=tuple(
            Workload(f"p{i}", "c2" if i == 2 else "c0", 1, 8 if i == 2 else 1) for i in range(7)
        ),
        now=100.0,
        policy=Policy(gpu_classes=CLASSES),
    )
    d1 = schedule(snap)
    d2 = schedule(next_cycle(snap, d1))
    assert ("p2", ("n1",)) in {(a.workload.key, a.placement) for a in d1.admissions}
    # c2 is charged the 8 units it holds on A at once: c0 is at its entitlement and waits
    assert dict(d1.entitlements) == pytest.approx({"c0": 3.0, "c1": 0.0, "c2": 9.0})
    assert {(w.workload.key, w.reason) for w in d1.waiting} == {("p6", "OverShare")}
    assert not d1.preemptions and not d2.preemptions
    assert dict(d2.entitlements) == pytest.approx(dict(d1.entitlements))
