"""A model's life after admission (pure): the status patch and Event of each transition.

``Admitted -> Training -> Trained`` (or a counted failure), ``Admitted -> Serving``,
``Preempted -> Queued`` once drained. Every patch carries the usage accrued up to the
transition (``admission.model_usage``), since the GPUs held change with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from polyculture.api.community_model import Phase
from polyculture.reconcile.admission import (
    ADMITTED,
    ModelEvent,
    ModelView,
    model_usage,
    set_condition,
)
from polyculture.reconcile.conditions import format_time, parse_time

TRAINED = "Trained"
SERVING = "Serving"
RUNNING = "Running"
FAILED = "Failed"
CLUSTER_START_FAILED = "ClusterStartFailed"

Transition = tuple[dict[str, Any], ModelEvent]


def _with_usage(view: ModelView, patch: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**(model_usage(view, now) or {}), **patch}


def _released(view: ModelView, patch: dict[str, Any], now: datetime) -> dict[str, Any]:
    """``patch`` for a model that gives its GPUs back: usage settled, admission cleared."""
    conditions = {"conditions": patch.get("conditions") or view.status.get("conditions") or []}
    released = set_condition(
        conditions,
        ADMITTED,
        "False",
        str(patch["phase"]),
        f"GPUs released ({patch['phase']})",
        now,
        view.generation,
    )
    return {
        **_with_usage(view, patch, now),
        "conditions": released,
        "admission": None,
        "endpoint": None,  # no cluster, no endpoint
        "preemptedAt": None,
        "usageUpdatedAt": None,
    }


def training_started(view: ModelView, submission_id: str, now: datetime) -> Transition:
    message = f"Ray job {submission_id} submitted (run {view.status.get('run') or 1})"
    patch = {
        "phase": Phase.TRAINING.value,
        "rayJobId": submission_id,
        "conditions": set_condition(
            view.status, RUNNING, "True", "JobSubmitted", message, now, view.generation
        ),
    }
    return _with_usage(view, patch, now), ModelEvent(view.key, "Normal", "Training", message)


def training_succeeded(view: ModelView, now: datetime) -> Transition:
    then = "; serving is queued next" if view.spec.serving is not None else ""
    message = f"Ray job {view.status.get('rayJobId')} succeeded{then}"
    status = {
        **view.status,
        "conditions": set_condition(
            view.status, RUNNING, "False", "JobSucceeded", message, now, view.generation
        ),
    }
    patch = {
        "phase": Phase.TRAINED.value,
        "trainedAt": format_time(now),
        "waiting": None,
        "conditions": set_condition(
            status, TRAINED, "True", "JobSucceeded", message, now, view.generation
        ),
    }
    return _released(view, patch, now), ModelEvent(view.key, "Normal", TRAINED, message)


def attempt_failed(view: ModelView, why: str, max_attempts: int, now: datetime) -> Transition:
    """A real failure of the current run: counted; Failed when ``max_attempts`` are used up."""
    attempts = int(view.status.get("attempts") or 0) + 1
    if attempts >= max_attempts:
        message = f"attempt {attempts} of {max_attempts} failed: {why}"
        patch: dict[str, Any] = {
            "phase": Phase.FAILED.value,
            "attempts": attempts,
            "waiting": None,
            "queuePosition": None,
            "conditions": set_condition(
                view.status, RUNNING, "False", FAILED, message, now, view.generation
            ),
        }
        return _released(view, patch, now), ModelEvent(view.key, "Warning", FAILED, message)
    message = f"attempt {attempts} of {max_attempts} failed, retrying: {why}"
    patch = {
        "phase": Phase.QUEUED.value,
        "attempts": attempts,
        "waiting": {"reason": "Retrying", "message": message, "since": format_time(now)},
        "conditions": set_condition(
            view.status, RUNNING, "False", "AttemptFailed", message, now, view.generation
        ),
    }
    return _released(view, patch, now), ModelEvent(view.key, "Warning", "AttemptFailed", message)


def serving_ready(view: ModelView, endpoint: str, replicas: int, now: datetime) -> Transition:
    message = f"{replicas} replica(s) running at {endpoint}"
    patch = {
        "phase": Phase.SERVING.value,
        "endpoint": endpoint,
        "waiting": None,
        "conditions": set_condition(
            view.status, SERVING, "True", "EndpointReady", message, now, view.generation
        ),
    }
    return _with_usage(view, patch, now), ModelEvent(view.key, "Normal", SERVING, message)


def drained(view: ModelView, now: datetime) -> Transition:
    """A preempted model whose cluster is gone: back in the queue, same identity."""
    before = view.status.get("waiting") or {}
    reason = str(before.get("reason") or "FairShare")
    message = f"requeued after preemption ({reason}); the next run resumes from its checkpoint"
    patch = {
        "phase": Phase.QUEUED.value,
        "endpoint": None,
        "waiting": {"reason": reason, "message": message, "since": format_time(now)},
        "conditions": set_condition(
            view.status, RUNNING, "False", reason, message, now, view.generation
        ),
    }
    return _released(view, patch, now), ModelEvent(view.key, "Normal", "Requeued", message)


def start_failed(view: ModelView, why: str, now: datetime) -> Transition:
    """Its Ray cluster could not start: back in the queue; nothing ran, nothing counted."""
    message = f"the Ray cluster could not start, requeued (no attempt counted): {why}"
    patch = {
        "phase": Phase.QUEUED.value,
        "waiting": {"reason": CLUSTER_START_FAILED, "message": message, "since": format_time(now)},
        "conditions": set_condition(
            view.status, RUNNING, "False", CLUSTER_START_FAILED, message, now, view.generation
        ),
    }
    return _released(view, patch, now), ModelEvent(
        view.key, "Warning", CLUSTER_START_FAILED, message
    )


SERVE_UNHEALTHY = "ServeUnhealthy"


def serve_unhealthy_since(view: ModelView) -> float | None:
    """When (epoch seconds) a Serving model's application was last found unhealthy, if it
    still is (its ``Serving`` condition is False with reason ``ServeUnhealthy``)."""
    for c in view.status.get("conditions") or []:
        if c.get("type") == SERVING and c.get("reason") == SERVE_UNHEALTHY:
            since = parse_time(c.get("lastTransitionTime"))
            return since.timestamp() if since is not None and c.get("status") == "False" else None
    return None


def serve_unhealthy(view: ModelView, why: str, now: datetime) -> Transition:
    """Serve no longer healthy after it was: said so; the model keeps its GPUs and endpoint
    while Serve replaces its replicas (the loop counts a failure if that lasts too long)."""
    message = f"Ray Serve is not healthy: {why}"
    patch = {
        "conditions": set_condition(
            view.status, SERVING, "False", SERVE_UNHEALTHY, message, now, view.generation
        ),
    }
    return patch, ModelEvent(view.key, "Warning", SERVE_UNHEALTHY, message)
