"""Fairness over time: who is owed GPU-time (``usage.owed``) and the reservation that holds
free GPUs for the first workload of an owed community that waits for room
(``Policy.reservation``, ``DESIGN.md``, "Fairness over time").

The pool: two 8-GPU nodes; community a runs 1-GPU jobs, 6 on n0 (2 free) and 7 on n1 (1
free), and waits with three more; community b waits with one 8-GPU gang. Equal weights:
each is entitled to 8, b holds nothing. Preemption is off, so only free GPUs decide.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from polyculture.scheduling import (
    Community,
    Decisions,
    Node,
    Policy,
    Running,
    Snapshot,
    Workload,
    reasons,
    schedule,
)
from polyculture.scheduling.usage import owed


def pool(usage_a: float, usage_b: float, *, reservation: bool, n0_free: int = 2) -> Snapshot:
    running = [
        Running(Workload(f"a/r{node}{i}", "a", 1, 1), (node,), started=0.0)
        for node, count in (("n0", 8 - n0_free), ("n1", 7))
        for i in range(count)
    ]
    pending = [Workload(f"a/p{i}", "a", 1, 1, created=10.0 + i) for i in range(3)]
    pending.append(Workload("b/gang", "b", 1, 8, created=5.0))
    return Snapshot(
        nodes=(Node("n0", "o", "gpu", 8), Node("n1", "o", "gpu", 8)),
        communities=(
            Community("a", usage_gpu_seconds=usage_a),
            Community("b", usage_gpu_seconds=usage_b),
        ),
        running=tuple(running),
        pending=tuple(pending),
        now=1000.0,
        policy=Policy(preemption=False, reservation=reservation),
    )


def admitted(decisions: Decisions) -> dict[str, tuple[str, ...]]:
    return {a.workload.key: a.placement for a in decisions.admissions}


def test_without_reservation_the_free_gpus_go_to_whoever_fits() -> None:
    decisions = schedule(pool(1000.0, 0.0, reservation=False))
    assert sorted(admitted(decisions)) == ["a/p0", "a/p1", "a/p2"]


def test_an_owed_gang_holds_the_node_closest_to_fitting_it() -> None:
    decisions = schedule(pool(1000.0, 0.0, reservation=True))
    # n0's 2 free GPUs are held for b's gang; a's jobs get only n1's free GPU
    assert admitted(decisions) == {"a/p0": ("n1",)}
    waiting = {w.workload.key: w.reason for w in decisions.waiting}
    # a holds more than its entitlement (8) and would take idle GPUs, but the only ones left
    # are held for b's gang: the reason says so; the gang says that GPUs gather for it
    assert waiting == {"a/p1": "HeldForOwed", "a/p2": "HeldForOwed", "b/gang": "Reserved"}
    messages = {w.workload.key: w.message for w in decisions.waiting}
    assert messages["b/gang"] == (
        "free GPUs gather for it (its community is owed GPU-time): needs 8 × gpu, holds 2 "
        "free gpu GPUs on 1 node; GPUs that free there are kept for it"
    )
    assert messages["a/p1"] == (
        "needs 1 × gpu; 2 free gpu GPUs are held for b/gang, whose community is owed "
        "GPU-time (reservation)"
    )


def test_without_reservation_the_reasons_are_the_usual_ones() -> None:
    decisions = schedule(pool(1000.0, 0.0, reservation=False, n0_free=0))
    waiting = {w.workload.key: w.reason for w in decisions.waiting}
    assert waiting["b/gang"] == "PoolExhausted"


def test_a_workload_the_held_gpus_could_not_hold_keeps_its_reason() -> None:
    # a's third pending job needs 4 GPUs: n1's free GPU and the 2 held on n0 are not enough
    snapshot = pool(1000.0, 0.0, reservation=True)
    big = Workload("a/big", "a", 1, 4, created=1.0)
    decisions = schedule(replace(snapshot, pending=(*snapshot.pending, big)))
    waiting = {w.workload.key: w.reason for w in decisions.waiting}
    assert waiting["a/big"] == "OverShare"
    assert waiting["b/gang"] == "Reserved"


def test_a_community_that_used_its_share_holds_nothing() -> None:
    # b used more than a over time: it is not owed, and a's jobs take every free GPU
    decisions = schedule(pool(0.0, 1000.0, reservation=True))
    assert sorted(admitted(decisions)) == ["a/p0", "a/p1", "a/p2"]


def test_the_gang_starts_once_its_node_has_drained() -> None:
    decisions = schedule(pool(1000.0, 0.0, reservation=True, n0_free=8))
    assert admitted(decisions)["b/gang"] == ("n0",)
    assert admitted(decisions)["a/p0"] == ("n1",)


@pytest.mark.parametrize(
    ("usage", "weights", "want"),
    [
        ([0.0, 0.0], [1.0, 1.0], [True, True]),  # no usage yet: everyone with a weight
        ([30.0, 70.0], [1.0, 1.0], [True, False]),
        ([50.0, 50.0], [1.0, 1.0], [False, False]),  # exactly its share: not owed
        ([30.0, 70.0], [1.0, 3.0], [False, True]),  # a weight of 3 is owed 75%
        ([10.0, 0.0], [1.0, 0.0], [False, False]),  # no weight: never owed
    ],
)
def test_owed_compares_the_share_of_usage_with_the_share_of_weight(
    usage: list[float], weights: list[float], want: list[bool]
) -> None:
    assert owed(usage, weights) == want


def test_a_reservation_that_holds_nothing_yet_says_so() -> None:
    code, message = reasons.reserved(1, 8, "H100", 0, 0)
    assert code == "Reserved"
    assert message.endswith("needs 8 × H100, none is free yet; the next that free are kept for it")
