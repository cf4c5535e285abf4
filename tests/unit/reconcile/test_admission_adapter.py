"""The admission adapter (pure), by equality on tables.

Covers: every fairShare field reaches the core's Policy; lendable GPUs per node with caps,
reserves and reclaim; models in each phase become running, pending or nothing (train-then-
serve is two workloads in sequence); the core's decisions become the status patches (placement
by owner and node, queue positions within a community, preemption with its reason, a reserve
kept for credited communities); the users' ledger (per model, per owner, per community).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from polyculture.api.community_model import CommunityModelSpec
from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.inventory import NodeInfo
from polyculture.reconcile import lifecycle
from polyculture.reconcile.admission import (
    ModelView,
    held_gpus,
    model_usage,
    plan,
    policy_of,
    pool_usage,
    pool_view,
    snapshot,
)
from polyculture.reconcile.conditions import format_time
from polyculture.scheduling import Node, Policy, schedule

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday
H100, L4 = "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"


def pool_spec(**fair: Any) -> ComputePoolSpec:
    return ComputePoolSpec.model_validate(
        {
            "members": [
                {
                    "owner": "startup",
                    "nodeSelector": {"o": "startup"},
                    "maxGPUs": 8,
                    "reservedGPUs": 4,
                    "credits": ["sign"],
                },
                {"owner": "coop", "nodeSelector": {"o": "coop"}, "credits": ["yoruba"]},
                {"owner": "gone", "nodeSelector": {"o": "gone"}, "reclaim": True},
            ],
            "communities": [
                {"name": "yoruba", "weight": 2, "guaranteedGPUs": 2},
                {"name": "sign", "guaranteedGPUs": 2},
                {"name": "marine", "maxGPUs": 4},
            ],
            "fairShare": {
                "gpuClasses": [
                    {"name": "H100", "weight": 1.0, "memory": "80Gi", "products": [H100]},
                    {"name": "L4", "weight": 0.25, "memory": "24Gi", "products": [L4]},
                ],
                **fair,
            },
        }
    )


def node(name: str, owner: str, gpus: int, product: str = H100) -> NodeInfo:
    return NodeInfo(
        name=name,
        labels={"o": owner, "nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": "1000"},
        gpus=gpus,
    )


NODES = [
    node("s-0", "startup", 8),
    node("s-1", "startup", 8),
    node("c-0", "coop", 2, L4),
    node("c-1", "coop", 2, L4),
    node("g-0", "gone", 4),
]


def model(
    name: str,
    ns: str = "yoruba",
    *,
    status: dict[str, Any] | None = None,
    created: float = 0.0,
    **spec: Any,
) -> ModelView:
    body = {"pool": "p", **spec}
    if "training" not in body and "serving" not in body:
        body["training"] = {"entrypoint": "python train.py", "workers": 1, "gpusPerWorker": 1}
    return ModelView(
        namespace=ns,
        name=name,
        uid=f"uid-{name}",
        created=created,
        generation=1,
        spec=CommunityModelSpec.model_validate(body),
        status=status or {"phase": "Pending"},
    )


def train(workers: int, per: int, **more: Any) -> dict[str, Any]:
    return {"entrypoint": "python train.py", "workers": workers, "gpusPerWorker": per, **more}


@pytest.mark.parametrize(
    ("fair", "expected"),
    [
        ({}, Policy(basis="weight", min_runtime_s=600.0)),
        (
            {
                "basis": "blend",
                "contributionShare": 0.3,
                "preemption": {
                    "enabled": False,
                    "minRuntime": "15m",
                    "reclaimBorrowed": False,
                    "gracePeriod": "30s",
                },
            },
            Policy(basis="blend", preemption=False, min_runtime_s=900.0, reclaim=False, blend=0.3),
        ),
        ({"basis": "contribution"}, Policy(basis="contribution", min_runtime_s=600.0)),
    ],
)
def test_every_fair_share_field_reaches_the_policy(fair: dict[str, Any], expected: Policy) -> None:
    policy = policy_of(pool_spec(**fair))
    classes = policy.gpu_classes
    assert [(c.name, c.weight, c.memory_mib) for c in classes] == [
        ("H100", 1.0, 81920),
        ("L4", 0.25, 24576),
    ]
    for attr in ("basis", "preemption", "min_runtime_s", "reclaim", "blend"):
        assert getattr(policy, attr) == getattr(expected, attr), attr


def test_grace_and_half_life_in_seconds() -> None:
    view = pool_view("p", pool_spec(usageHalfLife="1d", preemption={"gracePeriod": "45s"}), [], NOW)
    assert (view.half_life_s, view.grace_s) == (86400.0, 45.0)


def test_lendable_gpus_per_node_with_cap_reserve_and_reclaim() -> None:
    view = pool_view("p", pool_spec(), NODES, NOW)
    assert view.nodes == (
        # the reserve (4) is kept on the first node, the 8 lent (maxGPUs) come after it
        Node("s-0", "startup", "H100", 8, True, 1000),
        Node("s-1", "startup", "H100", 4, True, 1000),
        Node("c-0", "coop", "L4", 2, True, 1000),
        Node("c-1", "coop", "L4", 2, True, 1000),
        # reclaimed: unavailable, its GPUs kept so that what runs there is preempted
        Node("g-0", "gone", "H100", 4, False, 1000),
    )
    assert view.shares["s-0"].reserved == 4
    assert view.shares["s-0"].credits == frozenset({"sign"})
    assert view.shares["c-0"].reserved == 0


def held(node_gpus: dict[str, int], owner: str = "coop", at: datetime = NOW) -> dict[str, Any]:
    return {
        "gpus": sum(node_gpus.values()),
        "admittedAt": format_time(at),
        "placement": [{"owner": owner, "node": n, "gpus": g} for n, g in node_gpus.items()],
    }


def test_models_by_phase_become_running_pending_or_nothing() -> None:
    serve = {"importPath": "serve_app:app", "minReplicas": 2, "gpusPerReplica": 1}
    models = [
        model("queued", status={"phase": "Queued"}, created=2),
        model("pending", created=1, training=train(2, 1, priority=5)),
        model(
            "training",
            status={"phase": "Training", "admission": held({"c-0": 2})},
            training=train(2, 1),
        ),
        model("draining", status={"phase": "Preempted", "admission": held({"c-1": 1})}),
        model("requeued", status={"phase": "Preempted"}),
        model("failed", status={"phase": "Failed"}),
        model("invalid", status={"phase": "Invalid"}),
        model("trained", status={"phase": "Trained", "trainedAt": format_time(NOW)}),
        model(
            "then-serve", status={"phase": "Trained", "trainedAt": format_time(NOW)}, serving=serve
        ),
        model("serve-only", "sign", serving={**serve, "gpuClass": "H100"}),
    ]
    snap = snapshot(pool_view("p", pool_spec(), NODES, NOW), pool_spec(), {}, models, NOW)
    assert [(r.workload.key, r.placement, r.started) for r in snap.running] == [
        ("yoruba/training", ("c-0", "c-0"), NOW.timestamp())
    ]
    pending = {
        w.key: (w.workers, w.gpus_per_worker, w.serving, w.priority, w.gpu_class)
        for w in snap.pending
    }
    assert pending == {
        "yoruba/queued": (1, 1, False, 0, None),
        "yoruba/pending": (2, 1, False, 5, None),
        "yoruba/requeued": (1, 1, False, 0, None),
        "yoruba/then-serve": (2, 1, True, 0, None),  # training done: the serving stage
        "sign/serve-only": (2, 1, True, 0, "H100"),
    }
    assert snap.now == NOW.timestamp()
    assert [c.owners for c in snap.communities] == [("coop",), ("startup",), ()]


def test_decisions_become_patches_with_placement_and_queue_positions() -> None:
    spec = pool_spec()
    pv = pool_view("p", spec, NODES, NOW)
    models = [
        model("a", training=train(2, 2, gpuClass="L4"), created=1),  # all the coop lends
        model("b", training=train(1, 2, gpuClass="L4", priority=1), created=2),
        model("c", training=train(1, 2, gpuClass="L4"), created=3),
    ]
    views = {v.key: v for v in models}
    snap = snapshot(pv, spec, {}, models, NOW)
    decisions = schedule(snap)
    p = plan(decisions, snap, views, pv, NOW)
    admitted = {k: v for k, v in p.patches.items() if v["phase"] == "Admitted"}
    queued = {k: v for k, v in p.patches.items() if v["phase"] == "Queued"}
    assert len(admitted) + len(queued) == 3
    assert sum(v["admission"]["gpus"] for v in admitted.values()) <= 4 and queued
    for key, patch in admitted.items():
        assert patch["run"] == 1
        assert patch["admission"]["gpus"] == views[key].spec.training.gpus  # type: ignore[union-attr]
        assert sum(x["gpus"] for x in patch["admission"]["placement"]) == patch["admission"]["gpus"]
        assert {x["owner"] for x in patch["admission"]["placement"]} <= {"coop", "startup"}
        assert [c["type"] for c in patch["conditions"]] == ["Admitted"]
    # queue positions within the community follow priority, then age
    order = sorted(queued, key=lambda k: queued[k]["queuePosition"])
    expected = [k for k in ("yoruba/b", "yoruba/a", "yoruba/c") if k in queued]
    assert order == expected
    assert [queued[k]["queuePosition"] for k in order] == list(range(1, len(order) + 1))
    for patch in queued.values():
        assert patch["waiting"]["reason"] and patch["waiting"]["message"]
    # the same decisions on the written statuses write nothing more
    again = {k: replace(v, status={**v.status, **p.patches.get(k, {})}) for k, v in views.items()}
    snap2 = snapshot(pv, spec, {}, list(again.values()), NOW)
    p2 = plan(schedule(snap2), snap2, again, pv, NOW)
    # (a waiting message may name new numbers; nothing else changes)
    assert p2.events == [] and p2.admitted == []
    assert all(
        set(v) == {"phase", "community", "requestedGPUs", "queuePosition", "waiting"}
        and v["waiting"]["reason"] == queued[k]["waiting"]["reason"]
        and v["waiting"]["since"] == queued[k]["waiting"]["since"]
        for k, v in p2.patches.items()
    )


def test_reclaim_preempts_with_its_reason_and_the_grace_period() -> None:
    spec = pool_spec(preemption={"gracePeriod": "30s"})
    pv = pool_view("p", spec, NODES, NOW)
    running = model(
        "on-gone",
        "marine",
        status={"phase": "Training", "admission": held({"g-0": 4}, "gone")},
        training=train(1, 4),
    )
    snap = snapshot(pv, spec, {}, [running], NOW)
    p = plan(schedule(snap), snap, {running.key: running}, pv, NOW)
    patch = p.patches["marine/on-gone"]
    assert patch["phase"] == "Preempted"
    assert patch["waiting"]["reason"] == "OwnerReclaim"
    assert "30 s grace" in patch["waiting"]["message"]
    assert patch["preemptedAt"] == format_time(NOW)
    assert "admission" not in patch  # it keeps its GPUs until drained
    assert p.preempted == [("marine/on-gone", "OwnerReclaim")]
    assert [e.reason for e in p.events] == ["Preempted"]


def test_a_reserve_is_kept_for_the_credited_communities() -> None:
    spec = pool_spec()
    pv = pool_view("p", spec, NODES, NOW)
    outsider = model("big", "yoruba", training=train(1, 8, gpuClass="H100"))
    snap = snapshot(pv, spec, {}, [outsider], NOW)
    p = plan(schedule(snap), snap, {outsider.key: outsider}, pv, NOW)
    assert p.patches["yoruba/big"]["phase"] == "Queued"
    assert p.patches["yoruba/big"]["waiting"]["reason"] == "ReservedGPUs"
    credited = model("big", "sign", training=train(4, 2, gpuClass="H100"))
    snap = snapshot(pv, spec, {}, [credited], NOW)
    p = plan(schedule(snap), snap, {credited.key: credited}, pv, NOW)
    assert p.patches["sign/big"]["phase"] == "Admitted"
    placement = p.patches["sign/big"]["admission"]["placement"]
    assert sum(x["gpus"] for x in placement) == 8  # 4 of them reserved for sign
    assert {x["owner"] for x in placement} == {"startup"}


def test_usage_per_model_and_owner_accrues_from_the_stored_time() -> None:
    earlier = NOW - timedelta(seconds=10)
    admission = {
        "gpus": 3,
        "admittedAt": format_time(earlier),
        "placement": [
            {"owner": "coop", "node": "c-0", "gpus": 2},
            {"owner": "startup", "node": "s-0", "gpus": 1},
        ],
    }
    view = model(
        "m",
        status={
            "phase": "Training",
            "admission": admission,
            "gpuSecondsUsed": 100.0,
            "gpuSecondsByOwner": {"coop": 100.0},
            "usageUpdatedAt": format_time(earlier),
        },
    )
    assert model_usage(view, NOW) == {
        "gpuSecondsUsed": 130.0,
        "gpuSecondsByOwner": {"coop": 120.0, "startup": 10.0},
        "usageUpdatedAt": format_time(NOW),
    }
    # a settled view was watched since usageUpdatedAt, however long ago (the time nobody
    # watched is taken off before: tests/unit/loop/test_usage_watches.py)
    hour_ago = format_time(NOW - timedelta(hours=1))
    old = model("m", status={**view.status, "usageUpdatedAt": hour_ago})
    assert model_usage(old, NOW)["gpuSecondsUsed"] == 100.0 + 3 * 3600  # type: ignore[index]
    assert model_usage(model("q", status={"phase": "Queued"}), NOW) is None
    assert held_gpus([view]) == {"yoruba": 3}


def test_pool_usage_accrues_consumption_usage_and_contribution() -> None:
    spec = pool_spec(usageHalfLife="10s")
    previous = {
        "usageUpdatedAt": format_time(NOW - timedelta(seconds=10)),
        "members": [
            {"owner": "coop", "availableGPUs": 4},
            {"owner": "startup", "availableGPUs": 8},
        ],
        "communities": [
            {
                "name": "yoruba",
                "allocatedGPUs": 2,
                "gpuSecondsConsumed": 5.0,
                "usageGPUSeconds": 40.0,
                "contributionGPUSeconds": 0.0,
            },
        ],
    }
    out = pool_usage(
        spec,
        previous,
        None,
        {"yoruba": 4},
        {"yoruba": 1.0},
        {"marine": 2},
        10.0,
        NOW,
        used={"yoruba": 25.0},
        vanished={},
    )
    rows = {r["name"]: r for r in out["communities"]}
    assert out["allocatedGPUs"] == 4
    assert rows["yoruba"]["gpuSecondsConsumed"] == 25.0  # the models' counters
    assert rows["yoruba"]["usageGPUSeconds"] == 40.0  # 40 halved, plus the 20 consumed since
    assert rows["yoruba"]["contributionGPUSeconds"] == 40.0  # coop lent 4 GPUs for 10 s
    assert rows["sign"]["contributionGPUSeconds"] == 80.0
    assert rows["marine"]["pendingGPUs"] == 2
    assert (rows["yoruba"]["allocatedGPUs"], rows["yoruba"]["allocatedUnits"]) == (4, 1.0)


@pytest.mark.parametrize(
    ("stored", "used", "vanished", "want_consumed", "want_retired"),
    [
        pytest.param((10.0, 0.0), 12.5, 0.0, 12.5, 0.0, id="the sum of the models' counters"),
        pytest.param(
            (10.0, 0.0), 4.0, 6.0, 10.0, 6.0, id="a deleted model's counter is retired, not lost"
        ),
        pytest.param((10.0, 6.0), 7.0, 0.0, 13.0, 6.0, id="retired counters stay after a restart"),
        pytest.param(
            (10.0, 0.0), 3.0, 0.0, 10.0, 7.0, id="never decreases: a model gone unseen is retired"
        ),
    ],
)
def test_community_consumption_is_one_integration_of_the_models_counters(
    stored: tuple[float, float],
    used: float,
    vanished: float,
    want_consumed: float,
    want_retired: float,
) -> None:
    previous = {
        "usageUpdatedAt": format_time(NOW),
        "communities": [
            {"name": "yoruba", "gpuSecondsConsumed": stored[0], "gpuSecondsRetired": stored[1]}
        ],
    }
    out = pool_usage(
        pool_spec(),
        previous,
        None,
        {},
        {},
        {},
        math.inf,
        NOW,
        used={"yoruba": used},
        vanished={"yoruba": vanished},
    )
    row = {r["name"]: r for r in out["communities"]}["yoruba"]
    assert (row["gpuSecondsConsumed"], row["gpuSecondsRetired"]) == (want_consumed, want_retired)
    assert row["usageGPUSeconds"] == want_consumed - stored[0]


def test_failures_are_counted_preemptions_are_not() -> None:
    running = {"phase": "Training", "admission": held({"c-0": 1}), "run": 2, "attempts": 1}
    view = model("m", status=running)
    patch, event = lifecycle.attempt_failed(view, "exit 1", 3, NOW)
    assert (patch["phase"], patch["attempts"], patch["admission"]) == ("Queued", 2, None)
    assert event.reason == "AttemptFailed"
    patch, event = lifecycle.attempt_failed(
        model("m", status={**running, "attempts": 2}), "x", 3, NOW
    )
    assert (patch["phase"], patch["attempts"], event.reason) == ("Failed", 3, "Failed")
    draining = model(
        "m", status={**running, "phase": "Preempted", "waiting": {"reason": "OwnerReclaim"}}
    )
    patch, event = lifecycle.drained(draining, NOW)
    assert (patch["phase"], patch["admission"], event.reason) == ("Queued", None, "Requeued")
    assert "attempts" not in patch and patch["waiting"]["reason"] == "OwnerReclaim"


def test_a_cluster_that_cannot_start_requeues_without_counting() -> None:
    admitted = {"phase": "Admitted", "admission": held({"c-0": 1}), "run": 1, "attempts": 1}
    patch, event = lifecycle.start_failed(model("m", status=admitted), "node timed out", NOW)
    assert (patch["phase"], patch["admission"], event.reason) == (
        "Queued",
        None,
        "ClusterStartFailed",
    )
    assert "attempts" not in patch and patch["waiting"]["reason"] == "ClusterStartFailed"
