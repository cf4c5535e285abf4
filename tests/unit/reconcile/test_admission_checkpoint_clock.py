"""The checkpoint clock of a running model starts when its Ray job starts (its ``Running``
condition turned True at submission), not at its admission: the cluster takes a while to
start, and a run saves its first checkpoint one interval after its job started. While the
cluster starts the clock is its admission."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from polyculture.api.community_model import CommunityModelSpec
from polyculture.reconcile.admission import ModelView, job_started, model_part
from polyculture.reconcile.conditions import format_time
from polyculture.scheduling import Running
from polyculture.scheduling.preemption import work_at_risk

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ADMITTED = NOW - timedelta(minutes=65)
# the cluster took 4 minutes to start
SUBMITTED = ADMITTED + timedelta(minutes=4)


def holding(conditions: list[dict[str, Any]]) -> ModelView:
    status = {
        "phase": "Training" if len(conditions) > 1 else "Admitted",
        "run": 1,
        "admission": {
            "gpus": 4,
            "admittedAt": format_time(ADMITTED),
            "placement": [{"owner": "coop", "node": "n0", "gpus": 4}],
        },
        "conditions": conditions,
    }
    body = {
        "pool": "p",
        "training": {"entrypoint": "python train.py", "gpusPerWorker": 4},
    }
    body["training"]["checkpointInterval"] = "30m"
    return ModelView(
        namespace="b",
        name="m",
        uid="uid-m",
        created=ADMITTED.timestamp() - 60,
        generation=1,
        spec=CommunityModelSpec.model_validate(body),
        status=status,
    )


ADMITTED_TRUE = {"type": "Admitted", "status": "True", "lastTransitionTime": format_time(ADMITTED)}
RUNNING_TRUE = {
    "type": "Running",
    "status": "True",
    "reason": "JobSubmitted",
    "lastTransitionTime": format_time(SUBMITTED),
}


def test_the_clock_starts_with_the_job() -> None:
    view = holding([ADMITTED_TRUE, RUNNING_TRUE])
    assert job_started(view) == SUBMITTED.timestamp()
    part = model_part(view, NOW)
    assert isinstance(part, Running)
    assert part.started == ADMITTED.timestamp()  # the minimum runtime still counts from there
    assert part.last_checkpoint == SUBMITTED.timestamp()
    # checkpoints at +30 and +60 minutes of the job (61 min after admission): 1 minute at
    # risk; counted from the admission it would be 5 minutes
    assert work_at_risk(part, NOW.timestamp()) == 60.0


def test_while_the_cluster_starts_the_clock_is_the_admission() -> None:
    view = holding([ADMITTED_TRUE])
    assert job_started(view) is None
    part = model_part(view, NOW)
    assert isinstance(part, Running) and part.last_checkpoint is None


def test_a_job_that_ended_does_not_date_the_next_run() -> None:
    stopped = {**RUNNING_TRUE, "status": "False", "reason": "Preempted"}
    assert job_started(holding([ADMITTED_TRUE, stopped])) is None
