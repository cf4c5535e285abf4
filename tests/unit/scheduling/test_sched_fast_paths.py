"""The cycle's fast paths decide exactly what the plain searches decide.

Three shortcuts keep a cycle fast with many communities and long queues (``DESIGN.md``,
"Speed"): the node-by-node search costs only the nodes where communities above their
entitlement could complete a block; a preemption search that failed since the last decision
is replayed (its index moves made again) instead of searched again for another community;
and restarting others is not tried again for the same community and gang while the index has
not changed since such a try failed without moving anything. Each is turned off here in
turn, and the decisions — admissions, placements, preemptions, moves, waiting reasons,
entitlements — must be equal, on pools where the shortcuts are taken.
"""

from __future__ import annotations

import dataclasses
import gc
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from polyculture.scheduling import Decisions, Snapshot, cycle, preemption, schedule
from polyculture.simulation.bench import synthetic_snapshot

#: (nodes, communities, pending, seed): few communities with long queues, and many small ones
SIZES = [(120, 12, 1500, 1), (200, 200, 2000, 2), (160, 40, 1600, 3)]


def _variants(snap: Snapshot) -> Iterator[tuple[str, Snapshot]]:
    policy = snap.policy
    yield "default", snap
    yield "no-reclaim", dataclasses.replace(snap, policy=dataclasses.replace(policy, reclaim=False))
    churn = dataclasses.replace(
        policy, consolidation=True, restart_backoff=2.0, preemption_delay_s=3600.0
    )
    yield "consolidation", dataclasses.replace(snap, policy=churn)


def _snapshots() -> Iterator[Any]:
    for nodes, communities, pending, seed in SIZES:
        snap = synthetic_snapshot(
            nodes=nodes, gpus_per_node=8, communities=communities, pending=pending, seed=seed
        )
        for name, variant in _variants(snap):
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
