"""``Policy.lookahead``: only the head of each community's queue is tried per cycle.

Off by default (0: every pending workload is tried, as before). With a lookahead of ``k``,
the first ``k`` workloads of each community in workload order are tried as before and the
others wait as ``BehindInQueue``; demand still counts the whole queue.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import pytest

from polyculture.scheduling import Snapshot, Workload, reasons, schedule
from polyculture.scheduling.ordering import workload_order
from polyculture.scheduling.testing import make_nodes, make_snapshot, make_workload
from polyculture.simulation.bench import synthetic_snapshot


def _snap(communities: int, pending: int, seed: int) -> Snapshot:
    return synthetic_snapshot(
        nodes=120, gpus_per_node=8, communities=communities, pending=pending, seed=seed
    )


def _with(snap: Snapshot, lookahead: int) -> Snapshot:
    return dataclasses.replace(snap, policy=dataclasses.replace(snap.policy, lookahead=lookahead))


def _heads(snap: Snapshot, k: int) -> set[str]:
    """The keys of the first ``k`` pending workloads of each community, in workload order."""
    queues: dict[str, list[Workload]] = defaultdict(list)
    for w in snap.pending:
        queues[w.community].append(w)
    return {w.key for q in queues.values() for w in sorted(q, key=workload_order)[:k]}


@pytest.mark.parametrize(("communities", "pending", "seed"), [(12, 1500, 1), (40, 1600, 3)])
@pytest.mark.parametrize("k", [1, 4])
def test_only_the_head_of_each_queue_is_tried(
    communities: int, pending: int, seed: int, k: int
) -> None:
    snap = _snap(communities, pending, seed)
    bounded = schedule(_with(snap, k))
    heads = _heads(snap, k)
    assert bounded.admissions
    assert {a.workload.key for a in bounded.admissions} <= heads
    behind = {w.workload.key for w in bounded.waiting if w.reason == reasons.BEHIND_IN_QUEUE}
    assert behind == {w.key for w in snap.pending} - heads
    assert all(
        f"first {k} waiting" in w.message for w in bounded.waiting if w.workload.key in behind
    )
    # every pending workload is accounted for once
    decided = [a.workload.key for a in bounded.admissions] + [
        w.workload.key for w in bounded.waiting
    ]
    assert sorted(decided) == sorted(w.key for w in snap.pending)


def test_a_lookahead_longer_than_every_queue_changes_nothing() -> None:
    snap = _snap(40, 400, 2)
    longest = max(sum(w.community == c.name for w in snap.pending) for c in snap.communities)
    assert schedule(_with(snap, longest)) == schedule(snap)
    assert schedule(_with(snap, 0)) == schedule(snap)


def test_demand_counts_the_whole_queue() -> None:
    """Community b waits behind a full node with three workloads of 1 GPU; with a lookahead
    of 1 its entitlement still counts all three (3 of 8, not 1)."""
    snap = (
        make_snapshot()
        .nodes(*make_nodes("n", 1))
        .communities("a", "b")
        .running(make_workload("a/big", "a").gpus(8).running("n-0"))
        .pending(*(make_workload(f"b/{i}", "b").created(i).obj() for i in range(3)))
        .policy(preemption=False, lookahead=1)
        .obj()
    )
    decisions = schedule(snap)
    assert not decisions.admissions
    assert dict(decisions.entitlements) == {"a": 5.0, "b": 3.0}
    assert [(w.workload.key, w.reason) for w in decisions.waiting] == [
        ("b/0", reasons.POOL_EXHAUSTED),
        ("b/1", reasons.BEHIND_IN_QUEUE),
        ("b/2", reasons.BEHIND_IN_QUEUE),
    ]


def test_the_default_is_unbounded() -> None:
    snap = _snap(12, 1500, 1)
    assert snap.policy.lookahead == 0
    assert not any(w.reason == reasons.BEHIND_IN_QUEUE for w in schedule(snap).waiting)
