"""``spec.training.checkpointInterval``: a bad value is rejected naming the field, the
adapter passes it to the core as ``Running.checkpoint_interval_s`` (0 when unset or serving),
and the core then takes as victim the run that loses least work."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from polyculture.api.community_model import CommunityModelSpec
from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.reconcile.admission import (
    ModelView,
    PoolView,
    checkpoint_interval_s,
    policy_of,
    snapshot,
)
from polyculture.reconcile.conditions import format_time
from polyculture.scheduling import Community, Node, schedule

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def model_spec(**training: Any) -> CommunityModelSpec:
    body: dict[str, Any] = {
        "pool": "p",
        "training": {"entrypoint": "python train.py", "workers": 1, "gpusPerWorker": 4},
    }
    body["training"].update(training)
    return CommunityModelSpec.model_validate(body)


def view(namespace: str, name: str, status: dict[str, Any], **training: Any) -> ModelView:
    return ModelView(
        namespace=namespace,
        name=name,
        uid=f"uid-{name}",
        created=NOW.timestamp() - 7200,
        generation=1,
        spec=model_spec(**training),
        status=status,
    )


def training(name: str, **spec: Any) -> ModelView:
    """A model of community b training on n0 since 65 minutes ago, in its first run."""
    started = format_time(NOW - timedelta(minutes=65))
    status = {
        "phase": "Training",
        "run": 1,
        "admission": {
            "gpus": 4,
            "admittedAt": started,
            "placement": [{"owner": "coop", "node": "n0", "gpus": 4}],
        },
        "conditions": [{"type": "Admitted", "status": "True", "lastTransitionTime": started}],
    }
    return view("b", name, status, **spec)


def test_the_interval_is_parsed_and_passed_as_seconds() -> None:
    assert checkpoint_interval_s(training("m", checkpointInterval="30m")) == 1800.0
    assert checkpoint_interval_s(training("m")) == 0.0  # unset: the whole run is at risk
    # a model that already trained serves: its serving stage has no checkpoints
    trained = view("b", "s", {"trainedAt": format_time(NOW)}, checkpointInterval="30m")
    assert checkpoint_interval_s(trained) == 0.0


@pytest.mark.parametrize("value", ["0s", "half an hour", 1800])
def test_a_bad_interval_is_rejected_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        model_spec(checkpointInterval=value)
    assert "checkpointInterval" in str(raised.value)


@pytest.mark.parametrize(("interval", "victim"), [(None, "b/plain"), ("30m", "b/saves")])
def test_the_core_takes_the_run_that_loses_least(interval: str | None, victim: str) -> None:
    # b holds both 4-GPU halves of n0, both started 65 minutes ago; a waits for 4 GPUs.
    # Without an interval both risk 65 minutes (equal victims: the first by key); a run that
    # saves every 30 minutes risks 5 and goes first.
    pool = ComputePoolSpec.model_validate(
        {
            "members": [{"owner": "coop", "nodeSelector": {"o": "coop"}}],
            "communities": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "fairShare": {"preemption": {"minRuntime": "1m"}},
        }
    )
    nodes = (Node("n0", "coop", "gpu", 8),)
    pool_view = PoolView(
        nodes=nodes, shares={}, policy=policy_of(pool), half_life_s=1.0, grace_s=0.0
    )
    saving = {} if interval is None else {"checkpointInterval": interval}
    models = [
        training("plain"),
        training("saves", **saving),
        view("a", "waiting", {"phase": "Queued"}),
    ]
    built = snapshot(pool_view, pool, {}, models, NOW)
    intervals = {r.workload.key: r.checkpoint_interval_s for r in built.running}
    assert intervals == {"b/plain": 0.0, "b/saves": 0.0 if interval is None else 1800.0}
    # three communities of equal weight (c asks for nothing): a is entitled to 4 GPUs
    snap = replace(built, communities=(Community("a"), Community("b"), Community("c")))
    decisions = schedule(snap)
    assert [p.running.workload.key for p in decisions.preemptions] == [victim]
    assert [a.workload.key for a in decisions.admissions] == ["a/waiting"]
