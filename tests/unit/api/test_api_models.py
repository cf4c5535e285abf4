"""The pydantic models: examples parse, aliases, scalar formats, defaults, the derived summary.

Covers: every example object parses with the operator's models; camelCase and snake_case
names both populate; unknown spec fields are rejected; durations, quantities, hashes and time
zones are checked as the API server checks them (plus zoneinfo); status ``summary`` follows
the waiting reason, the endpoint and the Invalid condition.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from polyculture.api import (
    CommunityModel,
    CommunityModelSpec,
    CommunityModelStatus,
    ComputePool,
    ComputePoolSpec,
    LendingWindow,
    Phase,
    parse_duration,
    parse_quantity,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def example_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def test_every_example_parses_with_the_operators_models() -> None:
    kinds = {"ComputePool": ComputePool, "CommunityModel": CommunityModel}
    parsed = [kinds[o["kind"]].model_validate(o) for o in example_objects() if o["kind"] in kinds]
    assert sum(isinstance(p, ComputePool) for p in parsed) == 1
    models = [p for p in parsed if isinstance(p, CommunityModel)]
    shapes = {(m.spec.training is not None, m.spec.serving is not None) for m in models}
    assert shapes == {(True, False), (False, True), (True, True)}  # train, serve, both


def test_the_cooperative_pool_has_three_owners_three_classes_four_communities() -> None:
    pool = next(
        ComputePool.model_validate(o) for o in example_objects() if o["kind"] == "ComputePool"
    )
    assert len(pool.spec.members) == 3
    assert {c.name for c in pool.spec.fair_share.gpu_classes} == {"H100", "A100", "L4"}
    assert len(pool.spec.communities) == 4
    startup = next(m for m in pool.spec.members if m.owner == "startup-h100")
    assert (startup.max_gpus, startup.reserved_gpus) == (8, 4)
    assert any(m.windows for m in pool.spec.members)


def test_examples_live_in_namespaces_that_the_examples_create() -> None:
    namespaces = {o["metadata"]["name"] for o in example_objects() if o["kind"] == "Namespace"}
    models = [o for o in example_objects() if o["kind"] == "CommunityModel"]
    assert {m["metadata"]["namespace"] for m in models} <= namespaces
    pool = next(o for o in example_objects() if o["kind"] == "ComputePool")
    assert {c["name"] for c in pool["spec"]["communities"]} == namespaces


def test_camel_case_and_python_names_both_populate() -> None:
    spec = {
        "members": [{"owner": "a", "nodeSelector": {"k": "v"}, "maxGPUs": 4}],
        "communities": [{"name": "c", "guaranteedGPUs": 1}],
    }
    parsed = ComputePoolSpec.model_validate(spec)
    assert parsed.members[0].max_gpus == 4
    assert parsed.communities[0].guaranteed_gpus == 1
    assert parsed.model_dump(by_alias=True, exclude_defaults=True) == spec
    by_name = ComputePoolSpec(
        members=[{"owner": "a", "node_selector": {"k": "v"}}],
        communities=[{"name": "c"}],
    )
    assert by_name.members[0].node_selector == {"k": "v"}


def test_defaults_match_the_design() -> None:
    spec = ComputePoolSpec.model_validate(
        {"members": [{"owner": "a", "nodeSelector": {"k": "v"}}], "communities": [{"name": "c"}]}
    )
    assert spec.fair_share.basis == "weight"
    assert spec.fair_share.usage_half_life == "7d"
    assert spec.fair_share.preemption.enabled is True
    assert spec.ray.backend == "kubernetes"
    assert spec.ray.version == "2.60.0"
    assert spec.communities[0].weight == 1.0


def test_unknown_spec_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="maxGPU"):
        CommunityModelSpec.model_validate(
            {"pool": "p", "training": {"entrypoint": "python t.py", "maxGPU": 3}}
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("7d", timedelta(days=7)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "1.5h", "30m1h", "5 m", "-5m", "1w"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80Gi", Decimal(80 * 1024**3)),
        ("24G", Decimal(24 * 10**9)),
        ("1.5Ki", Decimal(1536)),
        ("500m", Decimal("0.5")),
        ("1e3", Decimal(1000)),
        (42, Decimal(42)),
    ],
)
def test_parse_quantity(text: str | int, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


def test_time_zones_are_checked_against_the_iana_database() -> None:
    window = {"from": "09:00", "to": "17:00"}
    assert LendingWindow.model_validate({**window, "timeZone": "America/Sao_Paulo"})
    with pytest.raises(ValidationError, match="IANA"):
        LendingWindow.model_validate({**window, "timeZone": "Mars/Olympus_Mons"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sha256", "ABC"),
        ("uri", "not a uri"),
        ("license", ""),
    ],
)
def test_artifact_formats(field: str, value: str) -> None:
    artifact = {"uri": "s3://b/k", "sha256": "a" * 64, "license": "MIT", field: value}
    with pytest.raises(ValidationError, match=field):
        CommunityModelSpec.model_validate(
            {"pool": "p", "provenance": {"baseModel": artifact}, "serving": {"importPath": "a:b"}}
        )


def test_summary_shows_what_the_model_waits_for() -> None:
    status = CommunityModelStatus.model_validate(
        {
            "phase": "Queued",
            "waiting": {"reason": "InsufficientQuota", "message": "needs 8 H100, 4 free"},
        }
    )
    assert status.summary == "needs 8 H100, 4 free"


def test_summary_shows_the_endpoint_when_serving() -> None:
    status = CommunityModelStatus.model_validate(
        {"phase": "Serving", "endpoint": "http://127.0.0.1:8000/x", "summary": "stale"}
    )
    assert status.summary == "http://127.0.0.1:8000/x"


def test_summary_shows_why_a_model_is_invalid() -> None:
    status = CommunityModelStatus(
        phase=Phase.INVALID,
        conditions=[
            {"type": "Valid", "status": "False", "reason": "PoolNotFound", "message": "no pool"}
        ],
    )
    assert status.summary == "no pool"
    assert CommunityModelStatus(phase=Phase.TRAINING).summary == ""
