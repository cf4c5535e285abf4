"""The cycle's fast paths decide exactly what the plain searches decide.

Three shortcuts keep a cycle fast with many communities and long queues (``DESIGN.md``,
"Speed"): the node-by-node search costs only the nodes where communities above their
entitlement could complete a block; a preemption search that failed since the last decision
is replayed (its index moves made again) instead of searched again for another community;
and restarting others is not tried again for the same community and gang while the index has
not changed since such a try failed without moving anything. Each is turned off here in
turn, and the decisions — admissions, placements, preemptions, moves, waiting reasons,
entitlements — must be equal, on pools where the shortcuts are taken. The candidate victims
and movable workloads are built on first use (``victims``); built at the cycle's start
instead, they decide the same.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from polyculture.scheduling import Decisions, Snapshot, cycle, preemption, schedule, victims
from polyculture.scheduling.capacity import FreeIndex, index_pool
from polyculture.scheduling.testing import (
    make_nodes,
    make_snapshot,
    make_workload,
    policy_variants,
)
from polyculture.scheduling.victims import Victims
from polyculture.simulation.bench import synthetic_snapshot

#: (nodes, communities, pending, seed): few communities with long queues, and many small ones
SIZES = [(120, 12, 1500, 1), (200, 200, 2000, 2), (160, 40, 1600, 3)]


def _snapshots() -> Iterator[Any]:
    for nodes, communities, pending, seed in SIZES:
        snap = synthetic_snapshot(
            nodes=nodes, gpus_per_node=8, communities=communities, pending=pending, seed=seed
        )
        for name, variant in policy_variants(snap, every=False):
            yield pytest.param(variant, id=f"{nodes}n-{communities}c-{name}")


def _count_calls(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, counts: Counter[str]
) -> None:
    """Count the calls of ``owner.name``, and those that return a truthy value."""
    original: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        counts[name] += 1
        if result:
            counts[f"{name} true"] += 1
        return result

    monkeypatch.setattr(owner, name, counted)


SNAPSHOTS = list(_snapshots())


def _plain_one_victim(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    preemptor: int,
    candidates: list[preemption.Live],
    rule: preemption.Rule,
) -> list[preemption.Live] | None:
    """The one-victim pass as written first: free each candidate, look, put it back."""
    for live in candidates:
        if live.preempted or live.community == preemptor or live.community < 0:
            continue
        if not preemption.givable(live, 0.0, rule):
            continue
        preemption.release(index, live, rule.alloc)
        if index.slots(shape, gpus_per_worker) >= workers:
            return [live]
        preemption.restore(index, live, rule.alloc)
    return None


def _plain_find_victims(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    *,
    preemptor: int,
    candidates: list[preemption.Live],
    rule: preemption.Rule,
    report: preemption.Search | None = None,
) -> list[preemption.Live] | None:
    """The greedy pass as written first: free each givable candidate and look, then give
    them all back when the gang does not fit."""
    taken: list[preemption.Live] = []
    starved = False

    def fits() -> bool:
        return index.slots(shape, gpus_per_worker) >= workers

    for live in candidates:
        v = live.community
        if live.preempted or v == preemptor or v < 0:
            if report is not None and v == preemptor and not live.preempted:
                report.skipped.add(v)
            continue
        if not preemption.givable(live, 0.0, rule):
            starved = True
            if report is not None:
                report.skipped.add(v)
            continue
        preemption.release(index, live, rule.alloc)
        taken.append(live)
        if fits():
            return preemption.put_back(index, taken, rule.alloc, fits)
    for live in reversed(taken):
        preemption.restore(index, live, rule.alloc)
    if report is not None:
        report.greedy_moves = 2 * sum(len(live.nodes) for live in taken)
    if not starved:
        return None
    return preemption._one_victim(
        index, shape, workers, gpus_per_worker, preemptor, candidates, rule
    )


def _plain_slots(index: FreeIndex, shape: int, gpus_per_worker: int) -> int:
    count = index.count[shape]
    return sum(count[f] * (f // gpus_per_worker) for f in range(gpus_per_worker, len(count)))


def _state(index: FreeIndex) -> tuple[Any, ...]:
    return (
        index.free,
        index.buckets,
        index.obuckets,
        index.pos,
        index.opos,
        index.count,
        index.free_total,
        index.version,
        index.journal,
    )


def test_a_bounce_is_a_give_then_a_take() -> None:
    """``FreeIndex.bounce`` leaves the index exactly as ``give`` then ``take`` would: free
    GPUs, buckets and their order, positions, counts, version and journal."""
    snap = SNAPSHOTS[0].values[0]
    bounced = index_pool(snap.nodes, snap.policy.gpu_classes)
    moved = index_pool(snap.nodes, snap.policy.gpu_classes)
    for pool in (bounced, moved):
        pool.open([(3 * i) % 9 for i in range(len(pool.nodes))])
        pool.index.journal = []
    index, other = bounced.index, moved.index
    assert _state(index) == _state(other)
    bounces = 0
    for node in range(len(bounced.nodes)):
        if index.pos[node] < 0:
            continue  # not available: never in the index
        size = bounced.nodes[node].gpus
        for gpus in range(1, size - index.free[node] + 1):
            index.bounce(node, gpus)
            other.give(node, gpus)
            other.take(node, gpus)
            bounces += 1
            assert _state(index) == _state(other)
    assert bounces > 100
    for g in range(1, 9):
        assert all(index.slots(s, g) == _plain_slots(index, s, g) for s in range(len(index.count)))


@pytest.mark.parametrize("snap", SNAPSHOTS)
def test_fast_paths_decide_as_the_plain_searches(
    snap: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = schedule(snap)
    with monkeypatch.context() as plain:
        # every shortcut off: cost every node, search every time, try every workload
        original_nodes = preemption._nodes_to_cost
        plain.setattr(
            preemption,
            "_nodes_to_cost",
            lambda index, shape, g, rule, by_community: original_nodes(index, shape, g, rule, None),
        )
        plain.setattr(cycle._Cycle, "_replay_failure", lambda *args: False)
        plain.setattr(cycle._Cycle, "_restart_others", cycle._Cycle._try_restart_others)
        plain.setattr(preemption, "_one_victim", _plain_one_victim)
        plain.setattr(FreeIndex, "slots", _plain_slots)
        plain.setattr(cycle, "find_victims", _plain_find_victims)
        slow = schedule(snap)
    assert fast == slow
    assert fast.admissions and fast.waiting


@pytest.mark.parametrize(
    "shortcut", ["_replay_failure", "_restart_others"], ids=["failure-replay", "restart-skip"]
)
def test_each_shortcut_alone_changes_nothing(
    shortcut: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    snaps = [p.values[0] for p in SNAPSHOTS]
    fast = [schedule(s) for s in snaps]
    with monkeypatch.context() as plain:
        if shortcut == "_replay_failure":
            plain.setattr(cycle._Cycle, "_replay_failure", lambda *args: False)
        else:
            plain.setattr(cycle._Cycle, "_restart_others", cycle._Cycle._try_restart_others)
        slow: list[Decisions] = [schedule(s) for s in snaps]
    assert fast == slow


def test_the_shortcuts_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """On these pools the comparisons above are not vacuous: each shortcut fires."""
    counts: Counter[str] = Counter()
    for name in ("_replay_failure", "_restart_others", "_try_restart_others"):
        _count_calls(monkeypatch, cycle._Cycle, name, counts)
    _count_calls(monkeypatch, FreeIndex, "bounce", counts)
    costed: list[int] = []
    everything: list[int] = []
    original_nodes = preemption._nodes_to_cost

    def nodes_to_cost(index: Any, shape: int, g: int, rule: Any, by_community: Any) -> list[int]:
        chosen = original_nodes(index, shape, g, rule, by_community)
        costed.append(len(chosen))
        everything.append(len(original_nodes(index, shape, g, rule, None)))
        return chosen

    monkeypatch.setattr(preemption, "_nodes_to_cost", nodes_to_cost)
    for param in SNAPSHOTS:
        schedule(param.values[0])
    assert counts["_replay_failure true"] > 0
    assert counts["_try_restart_others"] < counts["_restart_others"]
    assert counts["bounce"] > 0
    assert sum(costed) < sum(everything)


def test_the_collector_is_paused_only_while_a_cycle_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``schedule`` pauses the cyclic garbage collector during the cycle and leaves it as it
    found it (on or off), also when the cycle raises."""
    seen: list[bool] = []
    original = cycle._Cycle.run

    def run(self: Any) -> Decisions:
        seen.append(gc.isenabled())
        return original(self)

    monkeypatch.setattr(cycle._Cycle, "run", run)
    snap = SNAPSHOTS[0].values[0]
    assert gc.isenabled()
    schedule(snap)
    assert gc.isenabled() and seen == [False]
    gc.disable()
    try:
        schedule(snap)
        assert not gc.isenabled()
    finally:
        gc.enable()

    def fail(self: Any) -> Decisions:
        raise RuntimeError("boom")

    monkeypatch.setattr(cycle._Cycle, "run", fail)
    with pytest.raises(RuntimeError):
        schedule(snap)
    assert gc.isenabled()


def test_a_replay_makes_the_recorded_moves() -> None:
    """``FreeIndex.replay`` (which makes a move up and straight back down as one bounce)
    leaves the index as the recorded moves made one by one."""
    snap = SNAPSHOTS[0].values[0]
    pools = [index_pool(snap.nodes, snap.policy.gpu_classes) for _ in range(3)]
    for pool in pools:
        pool.open([(3 * i) % 9 for i in range(len(pool.nodes))])
    recorder, replayed, plain = (pool.index for pool in pools)
    recorder.journal = []
    nodes = [i for i in range(len(pools[0].nodes)) if recorder.pos[i] >= 0]
    for k, node in enumerate(nodes):
        room = pools[0].nodes[node].gpus - recorder.free[node]
        if room and k % 3:
            recorder.give(node, room)
            recorder.take(node, room)  # a bounce
        elif room:
            recorder.give(node, 1)  # a move up that stays
    moves = recorder.journal
    bounces = sum(a[0] == b[0] and a[1] > b[1] for a, b in itertools.pairwise(moves))
    assert bounces > 10 and len(moves) > 2 * bounces
    replayed.replay(moves)
    for node, new in moves:
        plain._move(node, new)
    assert _state(replayed) == _state(plain) == (*_state(recorder)[:-1], None)
    # and again from there, recording: the journal gets the moves as they were made
    replayed.journal, plain.journal = [], []
    replayed.replay(moves)
    for node, new in moves:
        plain._move(node, new)
    assert replayed.journal == plain.journal == moves
    assert _state(replayed) == _state(plain)


def test_a_round_trip_is_the_gives_then_the_takes() -> None:
    """``FreeIndex.round_trip`` (victims of a failed search freed and put back) leaves the
    index as the gives in order then the takes in reverse, one by one — also with several
    victims on one node and a node's new bucket another's old one."""
    snap = SNAPSHOTS[0].values[0]
    pools = [index_pool(snap.nodes, snap.policy.gpu_classes) for _ in range(2)]
    for pool in pools:
        pool.open([(3 * i) % 9 for i in range(len(pool.nodes))])
        pool.index.journal = []
    tripped, plain = (pool.index for pool in pools)
    nodes = [i for i in range(len(pools[0].nodes)) if tripped.pos[i] >= 0]
    for k in range(1, 40):
        gives: list[tuple[int, int]] = []
        room = {node: pools[0].nodes[node].gpus - tripped.free[node] for node in nodes}
        for node in nodes[k % 7 :: 5 + k % 4]:
            for _ in range(1 + (node + k) % 2):  # some nodes twice
                if room[node]:
                    gpus = 1 + (node * k) % room[node]
                    room[node] -= gpus
                    gives.append((node, gpus))
        assert gives
        tripped.round_trip(gives)
        for node, gpus in gives:
            plain.give(node, gpus)
        for node, gpus in reversed(gives):
            plain.take(node, gpus)
        assert _state(tripped) == _state(plain)
    assert plain.journal and len({node for node, _ in plain.journal}) > 20


def _checkpointed(snap: Snapshot) -> Snapshot:
    """``snap`` with restarts and checkpoints of every age, so that the victim order reads
    each workload's work at risk, and a restart back-off and minimum runtime that read them."""
    running = tuple(
        dataclasses.replace(
            r,
            restarts=i % 3,
            last_checkpoint=r.started + 100.0 * (i % 7),
            checkpoint_interval_s=1800.0 * (i % 2),
        )
        for i, r in enumerate(snap.running)
    )
    policy = dataclasses.replace(
        snap.policy, consolidation=True, restart_backoff=2.0, min_runtime_s=600.0
    )
    return dataclasses.replace(snap, running=running, policy=policy)


def _eager_victims(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build every view of the victims as the cycle starts (as before they were lazy)."""
    init = Victims.__init__

    def eager(self: Victims, *args: Any) -> None:
        init(self, *args)
        _ = self.candidates, self.per_node, self.movable

    monkeypatch.setattr(Victims, "__init__", eager)


@pytest.mark.parametrize(
    "snap",
    [
        *SNAPSHOTS,
        *(
            pytest.param(_checkpointed(p.values[0]), id=f"{p.id}-checkpointed")
            for p in SNAPSHOTS[::3]
        ),
    ],
)
def test_victims_built_on_first_use_decide_as_built_at_the_start(
    snap: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy = schedule(snap)
    with monkeypatch.context() as eager:
        _eager_victims(eager)
        built = schedule(snap)
    assert lazy == built
    assert lazy.preemptions


def test_a_cycle_that_preempts_and_moves_nothing_builds_no_victims(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts: Counter[str] = Counter()
    _count_calls(monkeypatch, victims, "candidates_by_shape", counts)
    _count_calls(monkeypatch, victims, "movable_by_node", counts)
    snap = (
        make_snapshot()
        .nodes(make_nodes("a", 2))
        .communities("x", "y")
        .running(make_workload("x/old", "x").gpus(8).running("a-0"))
        .pending(make_workload("y/new", "y").gpus(4).obj())
        .policy(consolidation=True)
        .now(3600.0)
        .obj()
    )
    assert [a.workload.key for a in schedule(snap).admissions] == ["y/new"]
    assert not counts
    schedule(SNAPSHOTS[2].values[0])  # one that preempts and moves
    assert counts["candidates_by_shape"] == counts["movable_by_node"] == 1


def test_opening_the_pool_adds_each_node_as_add_does() -> None:
    """``Pool.open`` fills the index in one loop, as ``FreeIndex.add`` node by node would;
    a pool's layout is found again for the very same tuples, and for equal ones."""
    snap = SNAPSHOTS[0].values[0]  # some nodes not available (reclaimed)
    assert not all(node.available for node in snap.nodes)
    opened, added = (index_pool(snap.nodes, snap.policy.gpu_classes) for _ in range(2))
    used = [(5 * i) % 11 for i in range(len(opened.nodes))]  # some more than a node has
    opened.open(used)
    for i, node in enumerate(added.nodes):
        if node.available and node.gpus > 0:
            added.index.add(i, max(0, node.gpus - used[i]))
    assert _state(opened.index) == _state(added.index)
    assert opened.index.owners_in_shape == added.index.owners_in_shape
    equal = index_pool(tuple(list(snap.nodes)), tuple(list(snap.policy.gpu_classes)))
    assert (equal.names, equal.shapes, equal.shape_of) == (
        opened.names,
        opened.shapes,
        opened.shape_of,
    )
