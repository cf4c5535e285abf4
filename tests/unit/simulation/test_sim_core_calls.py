"""The fair policy calls the core without waiting reasons (it reads none): the replay of real
jobs is the same as with them, at the simulator's defaults and with the reservation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyculture.scheduling import Decisions, Snapshot, schedule
from polyculture.simulation import fair
from polyculture.simulation.fair import FairPolicy
from polyculture.simulation.replay import build_pool, replay
from polyculture.simulation.trace import load_philly

PHILLY = Path(__file__).resolve().parent / "data" / "philly-head.csv"


def _replay(reservation: bool) -> Any:
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
    return (
        [
            (j.job.key, j.first_start, j.finished, j.restarts, j.waited, j.lost_gpu_s, j.placement)
            for j in result.jobs
        ],
        result.preemptions,
        result.cycles,
        result.timeline,
        policy.core_calls,
    )


@pytest.mark.parametrize("reservation", [False, True], ids=["defaults", "reservation"])
def test_the_replay_without_reasons_is_the_replay_with_them(
    monkeypatch: pytest.MonkeyPatch, reservation: bool
) -> None:
    asked: list[bool] = []

    def core(snapshot: Snapshot, *, waiting_reasons: bool = True) -> Decisions:
        asked.append(waiting_reasons)
        return schedule(snapshot, waiting_reasons=waiting_reasons)

    monkeypatch.setattr(fair, "schedule", core)
    unread = _replay(reservation)
    assert asked and not any(asked)
    calls = len(asked)

    def with_reasons(snapshot: Snapshot, *, waiting_reasons: bool = True) -> Decisions:
        decisions = schedule(snapshot)
        assert decisions.waiting or not snapshot.pending or decisions.admissions
        return decisions

    monkeypatch.setattr(fair, "schedule", with_reasons)
    assert _replay(reservation) == unread
    assert calls > 100  # not vacuous: the core decided many cycles
