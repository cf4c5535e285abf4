"""``fairShare.preemption.restartLimit``: it reaches the core's Policy (0, no limit, by
default), a bad value is rejected naming the field, and the core then leaves alone a model
whose status says it was restarted that many times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from polyculture.api.community_model import CommunityModelSpec
from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.reconcile.admission import ModelView, PoolView, policy_of, snapshot
from polyculture.reconcile.conditions import format_time
from polyculture.scheduling import Community, Node, schedule

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def spec(**preemption: Any) -> ComputePoolSpec:
    return ComputePoolSpec.model_validate(
        {
            "members": [{"owner": "coop", "nodeSelector": {"o": "coop"}}],
            "communities": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "fairShare": {"preemption": preemption},
        }
    )


def view(namespace: str, name: str, status: dict[str, Any]) -> ModelView:
    body = {
        "pool": "p",
        "training": {"entrypoint": "python train.py", "workers": 1, "gpusPerWorker": 4},
    }
    return ModelView(
        namespace=namespace,
        name=name,
        uid=f"uid-{name}",
        created=NOW.timestamp() - 7200,
        generation=1,
        spec=CommunityModelSpec.model_validate(body),
        status=status,
    )


def training(name: str, node: str, run: int) -> ModelView:
    """A model of community b training on ``node`` since an hour ago, in its ``run``-th run."""
    started = format_time(NOW - timedelta(hours=1))
    return view(
        "b",
        name,
        {
            "phase": "Training",
            "run": run,
            "admission": {
                "gpus": 4,
                "admittedAt": started,
                "placement": [{"owner": "coop", "node": node, "gpus": 4}],
            },
            "conditions": [{"type": "Admitted", "status": "True", "lastTransitionTime": started}],
        },
    )


def test_the_limit_reaches_the_policy() -> None:
    assert policy_of(spec()).restart_limit == 0
    assert policy_of(spec(restartLimit=3)).restart_limit == 3


@pytest.mark.parametrize("value", [-1, 1001, "often"])
def test_a_bad_limit_is_rejected_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        spec(restartLimit=value)
    assert "restartLimit" in str(raised.value)


@pytest.mark.parametrize(("limit", "victim"), [(0, "b/again"), (3, "b/fresh")])
def test_the_core_spares_a_model_restarted_as_often_as_the_limit(limit: int, victim: str) -> None:
    # b holds both 4-GPU halves of one node (an hour past the minimum runtime); a waits for 4
    pool = spec(restartLimit=limit, minRuntime="1m")
    nodes = (Node("n0", "coop", "gpu", 8),)
    view_ = PoolView(nodes=nodes, shares={}, policy=policy_of(pool), half_life_s=1.0, grace_s=0.0)
    models = [
        training("fresh", "n0", run=1),  # never restarted
        training("again", "n0", run=4),  # restarted three times
        view("a", "waiting", {"phase": "Queued"}),
    ]
    built = snapshot(view_, pool, {}, models, NOW)
    assert sorted(r.restarts for r in built.running) == [0, 3]
    # three communities of equal weight (c asks for nothing): a is entitled to 4 GPUs
    snap = replace(built, communities=(Community("a"), Community("b"), Community("c")))
    decisions = schedule(snap)
    # victims of equal priority: under the default back-off (2) the one restarted before goes
    # first (protected 1m × 2³ = 8 minutes, long past), unless the limit spares it; a starts
    assert [p.running.workload.key for p in decisions.preemptions] == [victim]
    assert [a.workload.key for a in decisions.admissions] == ["a/waiting"]
