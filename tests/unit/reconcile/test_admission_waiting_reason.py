"""A queued model's waiting reason reaches its ``Admitted=False`` condition: the condition's
message follows the core's reason whenever the reason changes (the reservation's
``Reserved`` and ``HeldForOwed`` included), its transition time stays when the model was
queued, and a new message under the same reason changes only ``status.waiting``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from polyculture.api.community_model import CommunityModelSpec
from polyculture.reconcile.admission import ModelView, waiting_patch
from polyculture.reconcile.conditions import find_condition, format_time
from polyculture.scheduling import Workload

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
QUEUED_AT = NOW - timedelta(minutes=5)


def queued(reason: str, message: str) -> ModelView:
    status: dict[str, Any] = {
        "phase": "Queued",
        "community": "b",
        "queuePosition": 1,
        "waiting": {"reason": reason, "message": message, "since": format_time(QUEUED_AT)},
        "conditions": [
            {
                "type": "Admitted",
                "status": "False",
                "reason": "Queued",
                "message": f"queued: {message}",
                "lastTransitionTime": format_time(QUEUED_AT),
            }
        ],
    }
    body = {"pool": "p", "training": {"entrypoint": "python train.py", "gpusPerWorker": 8}}
    return ModelView(
        namespace="b",
        name="gang",
        uid="uid-gang",
        created=QUEUED_AT.timestamp(),
        generation=1,
        spec=CommunityModelSpec.model_validate(body),
        status=status,
    )


WORKLOAD = Workload("b/gang", "b", 1, 8)
EXHAUSTED = "pool capacity exhausted: needs 8 × gpu, 2 gpu free, none preemptible"
RESERVED = "free GPUs gather for it (its community is owed GPU-time): needs 8 × gpu, holds 2"


def test_a_new_reason_reaches_the_condition() -> None:
    patch = waiting_patch(
        queued("PoolExhausted", EXHAUSTED), WORKLOAD, "Reserved", RESERVED, 1, NOW
    )
    assert patch is not None
    assert patch["waiting"]["reason"] == "Reserved"
    assert patch["waiting"]["since"] == format_time(NOW)
    admitted = find_condition(patch, "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "Queued")
    assert admitted["message"] == f"queued: {RESERVED}"
    # still not admitted since it was queued: the transition time stays
    assert admitted["lastTransitionTime"] == format_time(QUEUED_AT)


def test_a_new_message_under_the_same_reason_leaves_the_condition() -> None:
    view = queued("Reserved", RESERVED)
    patch = waiting_patch(view, WORKLOAD, "Reserved", RESERVED + ", 4 now", 1, NOW)
    assert patch is not None
    assert patch["waiting"]["message"] == RESERVED + ", 4 now"
    assert patch["waiting"]["since"] == format_time(QUEUED_AT)
    assert "conditions" not in patch


def test_nothing_changed_writes_nothing() -> None:
    view = queued("Reserved", RESERVED)
    assert waiting_patch(view, WORKLOAD, "Reserved", RESERVED, 1, NOW) is None
