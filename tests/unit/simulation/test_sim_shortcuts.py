"""The simulator's shortcuts change no replay.

Quiet core calls (``simulation.quiet``): a call recognised as quiet decides nothing, and
skipping it changes no replay. The fair policy calls the core without waiting reasons (it
reads none): the replay is the same as with them.

The replay of real jobs runs at the simulator's defaults (minimum runtime, restart back-off,
preemption delay, checkpoints, victim costs, grace period, consolidation), where most
batches of timers only reach the core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyculture.scheduling import Decisions, schedule
from polyculture.scheduling.snapshot import Snapshot
from polyculture.scheduling.testing import make_nodes, make_snapshot, make_workload
from polyculture.simulation import fair
from polyculture.simulation.fair import FairPolicy
from polyculture.simulation.quiet import QuietCalls
from polyculture.simulation.replay import build_pool, replay
from polyculture.simulation.trace import load_philly

PHILLY = Path(__file__).resolve().parent / "data" / "philly-head.csv"


def _replay(reservation: bool) -> tuple[Any, FairPolicy]:
    trace = load_philly(PHILLY, limit=800)
    nodes = build_pool(48)
    policy = FairPolicy(
        nodes,
        {},
        min_runtime_s=600,
        restart_backoff=2.0,
        preemption_delay_s=600,
        reservation=reservation,
        checkpoint_interval_s=1800,
        victim_costs=True,
    )
    result = replay(
        trace, nodes, policy, restart_cost_s=60, checkpoint_interval_s=1800, grace_s=120
    )
    outcome = (
        [
            (j.job.key, j.first_start, j.finished, j.restarts, j.waited, j.lost_gpu_s, j.placement)
            for j in result.jobs
        ],
        result.preemptions,
        result.cycles,
        result.timeline,
    )
    return outcome, policy


@pytest.mark.parametrize("reservation", [False, True], ids=["defaults", "reservation"])
def test_skipping_quiet_calls_changes_no_replay(
    monkeypatch: pytest.MonkeyPatch, reservation: bool
) -> None:
    quiet = QuietCalls.quiet
    checked: list[Snapshot] = []

    def checked_quiet(self: QuietCalls, snapshot: Snapshot) -> bool:
        # a call recognised as quiet would have decided nothing
        if not quiet(self, snapshot):
            return False
        decisions = schedule(snapshot)
        assert not (decisions.admissions or decisions.preemptions or decisions.moves)
        checked.append(snapshot)
        return True

    monkeypatch.setattr(QuietCalls, "quiet", checked_quiet)
    skipping, policy = _replay(reservation)
    assert policy.quiet.skipped == len(checked) > 20
    assert skipping[1] > 0  # the replay preempts
    monkeypatch.setattr(QuietCalls, "quiet", lambda self, snapshot: False)
    calling, policy = _replay(reservation)
    assert policy.quiet.skipped == 0
    assert skipping == calling


@pytest.mark.parametrize("reservation", [False, True], ids=["defaults", "reservation"])
def test_the_replay_without_reasons_is_the_replay_with_them(
    monkeypatch: pytest.MonkeyPatch, reservation: bool
) -> None:
    asked: list[bool] = []

    def core(snapshot: Snapshot, *, waiting_reasons: bool = True) -> Decisions:
        asked.append(waiting_reasons)
        return schedule(snapshot, waiting_reasons=waiting_reasons)

    monkeypatch.setattr(fair, "schedule", core)
    unread, policy = _replay(reservation)
    assert asked and not any(asked)
    calls = len(asked)
    core_calls = policy.core_calls

    def with_reasons(snapshot: Snapshot, *, waiting_reasons: bool = True) -> Decisions:
        decisions = schedule(snapshot)
        assert decisions.waiting or not snapshot.pending or decisions.admissions
        return decisions

    monkeypatch.setattr(fair, "schedule", with_reasons)
    read, policy = _replay(reservation)
    assert (read, policy.core_calls) == (unread, core_calls)
    assert calls > 100  # not vacuous: the core decided many cycles


def _pair() -> Snapshot:
    """x holds the only node with two jobs since 0 and 50; y waits for half of it, and may
    preempt one once it ran 600 s."""
    return (
        make_snapshot()
        .nodes(make_nodes("a", 1))
        .communities("x", "y")
        .running(
            make_workload("x/a", "x").gpus(4).running("a-0"),
            make_workload("x/b", "x").gpus(4).running("a-0", started=50.0),
        )
        .pending(make_workload("y/new", "y").gpus(4).obj())
        .policy(min_runtime_s=600.0)
        .now(100.0)
        .obj()
    )


def test_a_call_is_quiet_only_while_what_it_reads_of_time_is_the_same() -> None:
    calls = QuietCalls()
    first = _pair()
    decisions = schedule(first)
    assert not decisions.preemptions and not decisions.admissions
    calls.called(first, decisions)
    later = make_snapshot().nodes(first.nodes).communities(*first.communities)
    later = later.running(*first.running).pending(*first.pending).policy(first.policy)
    # still protected: the same reads, quiet
    assert calls.quiet(later.now(500.0).obj())
    # x's jobs are past their minimum runtime: y preempts the newer, and the call is not quiet
    due = later.now(700.0).obj()
    assert not calls.quiet(due)
    assert [p.running.workload.key for p in schedule(due).preemptions] == ["x/b"]
    assert calls.skipped == 1


def test_a_call_that_decided_something_is_not_remembered() -> None:
    calls = QuietCalls()
    snap = _pair()
    due = Snapshot(snap.nodes, snap.communities, snap.running, snap.pending, 700.0, snap.policy)
    decisions = schedule(due)
    assert decisions.preemptions
    calls.called(due, decisions)
    assert not calls.quiet(due)
    # nor when what it shows the core changed since a call that decided nothing
    calls.called(snap, schedule(snap))
    moved = Snapshot(snap.nodes, snap.communities, (), snap.pending, 100.0, snap.policy)
    assert not calls.quiet(moved)
