"""Where a Ray cluster of Pods stands, read from its Pods (pure: dicts in, a status out).

The Pods are the API's JSON (``metadata``, ``spec``, ``status``), as the backend's watch
keeps them. The rules, first match wins:

- no head Pod, or the head being deleted: ``Gone``;
- a Pod ended (``Failed``/``Succeeded``: a Ray node that stops breaks the gang), a Pod of the
  cluster missing, or a Pod bound to another node than the one it was placed on: ``Failed``;
- a Pod the scheduler cannot bind (``PodScheduled=False``, ``Unschedulable``): ``Starting``
  with the scheduler's message, then ``Failed`` once that lasted ``unschedulable_after_s``;
- every Pod bound and ``Running`` with ``Ready=True``: ``Ready`` (the backend then also asks
  the dashboard through the Service); otherwise ``Starting``, saying what it waits for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from polyculture.ray.backend import ClusterPhase, ClusterStatus
from polyculture.ray.manifests import COMPONENT, HEAD, POD_NODE_ANNOTATION


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def _epoch(stamp: object) -> float | None:
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    if isinstance(stamp, str) and stamp:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return None


def _name(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"]["name"])


def pods_status(
    pods: Iterable[Mapping[str, Any]],
    *,
    expected: int,
    now: float,
    unschedulable_after_s: float,
) -> ClusterStatus:
    """The cluster's phase from its Pods (see the module docstring)."""
    pods = sorted(pods, key=_name)
    head = [p for p in pods if p["metadata"].get("labels", {}).get(COMPONENT) == HEAD]
    if not head or head[0]["metadata"].get("deletionTimestamp"):
        return ClusterStatus(phase=ClusterPhase.GONE, nodes_expected=expected)
    alive = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")

    def status(phase: ClusterPhase, message: str) -> ClusterStatus:
        return ClusterStatus(
            phase=phase, nodes_alive=alive, nodes_expected=expected, message=message
        )

    for pod in pods:
        state = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp"):
            return status(ClusterPhase.FAILED, f"Pod {_name(pod)} is being deleted")
        if state.get("phase") in {"Failed", "Succeeded"}:
            why = state.get("message") or state.get("reason") or "its Ray node stopped"
            return status(ClusterPhase.FAILED, f"Pod {_name(pod)} {state['phase']}: {why}")
        placed = (pod["metadata"].get("annotations") or {}).get(POD_NODE_ANNOTATION)
        bound = (pod.get("spec") or {}).get("nodeName")
        if bound and placed and bound != placed:
            return status(ClusterPhase.FAILED, f"Pod {_name(pod)} bound to {bound}, not {placed}")
    if len(pods) < expected:
        return status(ClusterPhase.FAILED, f"{expected - len(pods)} of {expected} Pods missing")

    waiting = []
    for pod in pods:
        scheduled = _condition(pod, "PodScheduled")
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            since = _epoch(scheduled.get("lastTransitionTime")) or now
            message = f"Pod {_name(pod)} cannot be bound: {scheduled.get('message', '')}".strip()
            if now - since >= unschedulable_after_s:
                return status(ClusterPhase.FAILED, message)
            waiting.append(message)
        elif not (pod.get("spec") or {}).get("nodeName"):
            waiting.append(f"Pod {_name(pod)} not bound yet")
        elif (pod.get("status") or {}).get("phase") != "Running":
            waiting.append(f"Pod {_name(pod)} {(pod.get('status') or {}).get('phase', 'Pending')}")
        elif _condition(pod, "Ready").get("status") != "True":
            waiting.append(f"Pod {_name(pod)} not Ready")
    if waiting:
        return status(ClusterPhase.STARTING, "; ".join(waiting))
    return status(ClusterPhase.READY, "")
