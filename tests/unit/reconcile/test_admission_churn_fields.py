"""The churn controls of a pool and what the status tells the core about each model.

Covers: ``fairShare.preemption.restartBackoff``, ``delay`` and ``consolidation`` reach the
core's Policy (with their defaults; within the nominal share no delay); a running
model's restarts come from its status (``run - 1 - attempts``, training only); a model
requeued after it held GPUs waits since its ``Admitted`` condition turned False, one never
admitted since it was created; and the core then applies the preemption delay and the
restart back-off to what the adapter built.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from polyculture.api.community_model import CommunityModelSpec
from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.reconcile.admission import (
    ModelView,
    PoolView,
    policy_of,
    restarts_of,
    snapshot,
    waiting_since,
    workload_of,
)
from polyculture.reconcile.conditions import format_time
from polyculture.scheduling import (
    Community,
    Node,
    Policy,
    Running,
    Snapshot,
    Workload,
    schedule,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def spec(**preemption: Any) -> ComputePoolSpec:
    return ComputePoolSpec.model_validate(
        {
            "members": [{"owner": "coop", "nodeSelector": {"o": "coop"}}],
            "communities": [{"name": "a"}, {"name": "b"}],
            "fairShare": {"preemption": preemption},
        }
    )


def view(name: str, status: dict[str, Any], *, serving: bool = False) -> ModelView:
    body: dict[str, Any] = {"pool": "p"}
    if serving:
        body["serving"] = {"importPath": "app:app"}
    else:
        body["training"] = {"entrypoint": "python train.py", "workers": 1, "gpusPerWorker": 4}
    return ModelView(
        namespace="a",
        name=name,
        uid=f"uid-{name}",
        created=NOW.timestamp() - 3600,
        generation=1,
        spec=CommunityModelSpec.model_validate(body),
        status=status,
    )


def admitted(status: str, when: datetime) -> dict[str, Any]:
    return {"type": "Admitted", "status": status, "lastTransitionTime": format_time(when)}


def test_defaults_reach_the_policy() -> None:
    policy = policy_of(spec())
    assert (policy.restart_backoff, policy.preemption_delay_s, policy.consolidation) == (
        2.0,
        0.0,
        False,
    )


def test_every_churn_field_reaches_the_policy() -> None:
    policy = policy_of(spec(restartBackoff=1.5, delay="10m", consolidation=True, gracePeriod="30s"))
    assert (policy.restart_backoff, policy.preemption_delay_s, policy.consolidation) == (
        1.5,
        600.0,
        True,
    )
    # within its nominal share a workload preempts at once
    assert policy.reclaim_delay_s == 0.0


@pytest.mark.parametrize(
    ("preemption", "field"),
    [
        ({"restartBackoff": 0.5}, "restartBackoff"),
        ({"restartBackoff": 17}, "restartBackoff"),
        ({"delay": "ten minutes"}, "delay"),
        ({"consolidation": "sometimes"}, "consolidation"),
    ],
)
def test_bad_churn_fields_are_rejected_naming_the_field(
    preemption: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        spec(**preemption)
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("status", "serving", "expected"),
    [
        ({}, False, 0),
        ({"run": 1}, False, 0),
        ({"run": 4}, False, 3),  # admitted four times, none failed: restarted three times
        ({"run": 4, "attempts": 2}, False, 1),  # two of the re-admissions followed a failure
        ({"run": 3}, True, 0),  # serving: its runs include training's
    ],
)
def test_restarts_come_from_the_status(
    status: dict[str, Any], serving: bool, expected: int
) -> None:
    assert restarts_of(view("m", status, serving=serving)) == expected


def test_a_requeued_model_waits_since_it_lost_its_gpus() -> None:
    lost = NOW - timedelta(minutes=7)
    requeued = view("m", {"phase": "Queued", "run": 2, "conditions": [admitted("False", lost)]})
    assert waiting_since(requeued) == lost.timestamp()
    assert workload_of(requeued).waiting_since == lost.timestamp()
    # never admitted: since it was created (None); still holding: not waiting
    assert waiting_since(view("n", {"phase": "Queued"})) is None
    holding = view("h", {"phase": "Training", "run": 1, "conditions": [admitted("True", lost)]})
    assert waiting_since(holding) is None


def test_snapshot_carries_restarts_and_waiting_since() -> None:
    started = NOW - timedelta(minutes=30)
    running = view(
        "r",
        {
            "phase": "Training",
            "run": 3,
            "admission": {
                "gpus": 4,
                "admittedAt": format_time(started),
                "placement": [{"owner": "coop", "node": "n0", "gpus": 4}],
            },
            "conditions": [admitted("True", started)],
        },
    )
    lost = NOW - timedelta(minutes=2)
    queued = view("q", {"phase": "Queued", "run": 1, "conditions": [admitted("False", lost)]})
    pool = spec()
    empty = PoolView(nodes=(), shares={}, policy=policy_of(pool), half_life_s=1.0, grace_s=0.0)
    snap = snapshot(empty, pool, {}, [running, queued], NOW)
    (r,) = snap.running
    (q,) = snap.pending
    assert (r.workload.key, r.restarts, r.started) == ("a/r", 2, started.timestamp())
    assert (q.key, q.waiting_since) == ("a/q", lost.timestamp())


def core_case(policy: Policy, restarts: int, waited_s: float, now: float) -> Snapshot:
    """One 8-GPU node held by community b (two 4-GPU jobs started at NOW); community a's
    4-GPU job, requeued ``waited_s`` before ``now``. Three communities of equal weight: a's
    nominal share is 8/3 GPUs, its entitlement 4 (c asks for nothing)."""
    lost = datetime.fromtimestamp(now - waited_s, tz=UTC)
    pending = workload_of(
        view("q", {"phase": "Queued", "run": 1, "conditions": [admitted("False", lost)]})
    )
    running = tuple(
        Running(Workload(f"b/{k}", "b", 1, 4), ("n0",), NOW.timestamp(), restarts=restarts)
        for k in ("x", "y")
    )
    return Snapshot(
        nodes=(Node("n0", "coop", "gpu", 8),),
        communities=(Community("a"), Community("b"), Community("c")),
        running=running,
        pending=(pending,),
        now=now,
        policy=policy,
    )


def preempted(snap: Snapshot) -> list[str]:
    return [p.running.workload.key for p in schedule(snap).preemptions]


def test_the_core_applies_the_delay_to_what_the_adapter_built() -> None:
    # a's 4 GPUs are beyond its nominal share: it may preempt only once it waited the delay
    # since it was requeued (b's jobs ran an hour, past the minimum runtime)
    policy = policy_of(spec(minRuntime="10m", delay="15m"))
    later = NOW.timestamp() + 3600
    early = schedule(core_case(policy, 0, 600, later))
    assert early.preemptions == () and early.waiting[0].reason == "PoolExhausted"
    assert "may preempt in 300 s" in early.waiting[0].message
    assert preempted(core_case(policy, 0, 900, later)) == ["b/x"]  # equal victims: the first by key


def test_the_core_applies_the_restart_backoff_to_the_status_restarts() -> None:
    # b's jobs were restarted twice: protected for minRuntime × 2² = 40 minutes
    policy = policy_of(spec(minRuntime="10m"))
    assert preempted(core_case(policy, 2, 0, NOW.timestamp() + 30 * 60)) == []
    assert preempted(core_case(policy, 2, 0, NOW.timestamp() + 41 * 60)) == [
        "b/x"
    ]  # equal victims: the first by key
    # restarted never: 10 minutes suffice
    assert preempted(core_case(policy, 0, 0, NOW.timestamp() + 11 * 60)) == [
        "b/x"
    ]  # equal victims: the first by key
