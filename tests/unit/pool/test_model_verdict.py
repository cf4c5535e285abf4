"""The CommunityModel validation step (pure): verdicts, transitions, what it never touches.

Covers: PoolNotFound -> Invalid with a condition and one event; the same verdict again writes
nothing; the pool appearing turns it Pending with a waiting reason; phases owned by the
admission loop are never touched; the summary column follows the verdict.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from polyculture.api.compute_pool import ComputePool
from polyculture.reconcile.models import verdict

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def body(pool: str = "coop", status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "polyculture.dev/v1alpha1",
        "kind": "CommunityModel",
        "metadata": {"name": "m", "namespace": "yoruba", "generation": 1},
        "spec": {
            "pool": pool,
            "training": {"entrypoint": "python t.py", "workers": 1, "gpusPerWorker": 1},
        },
        "status": status or {},
    }


POOLS = {
    "coop": ComputePool.model_validate(
        {
            "metadata": {"name": "coop"},
            "spec": {
                "members": [{"owner": "a", "nodeSelector": {"k": "v"}}],
                "communities": [{"name": "yoruba"}],
            },
        }
    )
}


def test_unknown_pool_is_invalid_with_one_event() -> None:
    v = verdict(body("nope"), POOLS, NOW)
    assert v.status is not None and v.status["phase"] == "Invalid"
    [cond] = v.status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Valid", "False", "PoolNotFound")
    assert "nope" in v.status["summary"]
    assert [e.reason for e in v.events] == ["PoolNotFound"]
    again = verdict(body("nope", v.status), POOLS, NOW)
    assert again.status is None and again.events == ()


def test_valid_model_is_pending_with_a_waiting_reason() -> None:
    v = verdict(body(), POOLS, NOW)
    assert v.status is not None and v.status["phase"] == "Pending"
    assert v.status["waiting"]["reason"] == "AwaitingAdmission"
    assert v.status["conditions"][0]["status"] == "True"
    assert v.events == ()


def test_invalid_model_becomes_pending_when_its_pool_appears() -> None:
    invalid = verdict(body(), {}, NOW).status
    assert invalid is not None and invalid["phase"] == "Invalid"
    v = verdict(body(status=invalid), POOLS, NOW)
    assert v.status is not None and v.status["phase"] == "Pending"
    assert v.status["waiting"]["reason"] == "AwaitingAdmission"


def test_phases_of_the_admission_loop_are_never_touched() -> None:
    for phase in ("Queued", "Admitted", "Training", "Serving", "Preempted", "Failed", "Trained"):
        v = verdict(body("nope", {"phase": phase}), POOLS, NOW)
        assert v.status is None and v.events == ()
