"""Where a cluster of Pods stands, from its Pods' JSON (pure; table of cases)."""

from __future__ import annotations

from typing import Any

import pytest

from polyculture.ray.backend import ClusterPhase
from polyculture.ray.podstatus import pods_status

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
T0 = "2027-01-15T08:00:00Z"
T_MINUS_120 = "2027-01-15T07:58:00Z"


def pod(
    name: str,
    *,
    component: str = "worker",
    placed: str = "n1",
    bound: str | None = "n1",
    phase: str = "Running",
    ready: bool = True,
    unschedulable_since: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    conditions = []
    if unschedulable_since:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 1 Insufficient nvidia.com/gpu.",
                "lastTransitionTime": unschedulable_since,
            }
        )
    elif bound:
        conditions.append({"type": "PodScheduled", "status": "True"})
    conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/component": component},
        "annotations": {"polyculture.dev/placed-node": placed},
    }
    if deleting:
        metadata["deletionTimestamp"] = T0
    return {
        "metadata": metadata,
        "spec": {"nodeName": bound} if bound else {},
        "status": {"phase": phase, "conditions": conditions},
    }


HEAD = pod("c-head", component="head", placed="n0", bound="n0")
W1 = pod("c-w1")


@pytest.mark.parametrize(
    ("pods", "expected", "phase", "alive", "message"),
    [
        ([], 1, ClusterPhase.GONE, 0, ""),
        ([W1], 2, ClusterPhase.GONE, 0, ""),
        ([pod("c-head", component="head", deleting=True)], 1, ClusterPhase.GONE, 0, ""),
        ([HEAD], 1, ClusterPhase.READY, 1, ""),
        ([HEAD, W1], 2, ClusterPhase.READY, 2, ""),
        ([HEAD], 2, ClusterPhase.FAILED, 1, "1 of 2 Pods missing"),
        (
            [HEAD, pod("c-w1", phase="Failed")],
            2,
            ClusterPhase.FAILED,
            1,
            "Pod c-w1 Failed: its Ray node stopped",
        ),
        (
            [HEAD, pod("c-w1", deleting=True)],
            2,
            ClusterPhase.FAILED,
            2,
            "Pod c-w1 is being deleted",
        ),
        (
            [HEAD, pod("c-w1", placed="n1", bound="n9")],
            2,
            ClusterPhase.FAILED,
            2,
            "Pod c-w1 bound to n9, not n1",
        ),
        (
            [HEAD, pod("c-w1", bound=None, phase="Pending", unschedulable_since=T0)],
            2,
            ClusterPhase.STARTING,
            1,
            "Pod c-w1 cannot be bound: 0/3 nodes are available: 1 Insufficient nvidia.com/gpu.",
        ),
        (
            [HEAD, pod("c-w1", bound=None, phase="Pending", unschedulable_since=T_MINUS_120)],
            2,
            ClusterPhase.FAILED,
            1,
            "Pod c-w1 cannot be bound: 0/3 nodes are available: 1 Insufficient nvidia.com/gpu.",
        ),
        (
            [HEAD, pod("c-w1", bound=None, phase="Pending")],
            2,
            ClusterPhase.STARTING,
            1,
            "Pod c-w1 not bound yet",
        ),
        ([HEAD, pod("c-w1", phase="Pending")], 2, ClusterPhase.STARTING, 1, "Pod c-w1 Pending"),
        ([HEAD, pod("c-w1", ready=False)], 2, ClusterPhase.STARTING, 2, "Pod c-w1 not Ready"),
    ],
)
def test_pods_status(
    pods: list[dict[str, Any]], expected: int, phase: ClusterPhase, alive: int, message: str
) -> None:
    status = pods_status(pods, expected=expected, now=NOW, unschedulable_after_s=60)
    assert (status.phase, status.nodes_alive, status.message) == (phase, alive, message)
    assert status.nodes_expected == expected
