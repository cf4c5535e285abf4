"""Property: whatever JSON a stored object holds, the parsers raise only their own error.

The operator parses pools and models from what the API server stores, which may predate a
schema change or come from a client that skipped validation. ``ComputePool`` and
``CommunityModel`` may raise ``pydantic.ValidationError`` and nothing else (no
``OverflowError``, ``ValueError``, ``KeyError``...); ``judge_pool`` and the model ``verdict``
never raise at all. Inputs are arbitrary JSON, and valid objects with one value anywhere
replaced by arbitrary JSON or by a hostile string (huge numbers, huge durations, odd units).
"""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from polyculture.api import CommunityModel, ComputePool
from polyculture.api.pool_validity import judge_pool
from polyculture.reconcile.models import verdict

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SHA = "ab" * 32

POOL: dict[str, Any] = {
    "apiVersion": "polyculture.dev/v1alpha1",
    "kind": "ComputePool",
    "metadata": {"name": "p", "generation": 1},
    "spec": {
        "members": [
            {
                "owner": "lab",
                "nodeSelector": {"polyculture.dev/owner": "lab"},
                "maxGPUs": 8,
                "reservedGPUs": 2,
                "credits": ["c"],
                "windows": [{"days": ["Mon"], "from": "18:00", "to": "08:00",
                             "timeZone": "Europe/Berlin"}],
            },
            {"owner": "coop", "nodeSelector": {"polyculture.dev/owner": "coop"}},
        ],
        "communities": [{"name": "c", "weight": 2, "guaranteedGPUs": 1, "maxGPUs": 6}],
        "fairShare": {
            "basis": "blend",
            "usageHalfLife": "7d",
            "preemption": {"minRuntime": "10m", "gracePeriod": "2m"},
            "gpuClasses": [{"name": "H100", "weight": 1.0, "memory": "80Gi",
                            "products": ["NVIDIA H100 80GB HBM3"]}],
        },
        "ray": {"version": "2.60.0", "image": "rayproject/ray:2.60.0-py311-gpu"},
    },
    "status": {"largestNodeGPUs": {"H100": 8},
               "members": [{"owner": "lab", "gpusByClass": {"H100": 8}}]},
}  # fmt: skip
MODEL: dict[str, Any] = {
    "apiVersion": "polyculture.dev/v1alpha1",
    "kind": "CommunityModel",
    "metadata": {"name": "m", "namespace": "c", "generation": 1},
    "spec": {
        "pool": "p",
        "provenance": {
            "baseModel": {"uri": "hf://org/m", "sha256": SHA, "license": "Apache-2.0"},
            "datasets": [{"uri": "s3://b/d", "sha256": SHA, "license": "CC-BY-4.0"}],
        },
        "training": {
            "entrypoint": "python train.py",
            "workers": 2,
            "gpusPerWorker": 2,
            "minGPUMemory": "40Gi",
            "maxRuntime": "24h",
            "checkpointURI": "s3://bucket/ckpt",
            "runtimeEnv": {"pip": ["torch"], "envVars": {"A": "1"}},
        },
        "serving": {"importPath": "serve_app:app", "routePrefix": "/x", "gpuClass": "H100"},
    },
    "status": {"phase": "Pending"},
}

HOSTILE = st.sampled_from(
    [
        "9999999999d", "99999d", "0s", "1e999999999", "1e-999999999", "-1Gi", "40", "1E",
        "Mars/Olympus", "CEST", "", " ", "\x00", "24:00", "99:99", "NaN", "Infinity",
        "serve_app.py:app", "file:///etc/passwd", "s3://user:pw@b/k", "MIT License",
        "MIT AND", "(((", "Tesla T4 (PCIe)", "a" * 5000,
    ]
)  # fmt: skip
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40), HOSTILE),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), HOSTILE), children, max_size=4),
    ),
    max_leaves=20,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += paths(child, (*prefix, index))
    return out


def replaced(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    obj = copy.deepcopy(base)
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return obj


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], under: str = "") -> Any:
    """``base`` with one value (under the key ``under``, if given) replaced by any JSON."""
    choices = [p for p in paths(base) if not under or p[:1] == (under,)]
    path = draw(st.sampled_from(choices))
    return replaced(base, path, draw(JSON))


def only_validation_error(model: type[ComputePool] | type[CommunityModel], body: Any) -> None:
    with contextlib.suppress(ValidationError):
        model.model_validate(body)


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.one_of(JSON, mutated(POOL)))
def test_pool_parser_raises_only_validation_error(body: Any) -> None:
    only_validation_error(ComputePool, body)
    judgement = judge_pool(body)  # never raises
    assert judgement.valid or judgement.problems
    assert all(p.field for p in judgement.problems)


@PROPERTY
@given(st.one_of(JSON, mutated(MODEL)))
def test_model_parser_raises_only_validation_error(body: Any) -> None:
    only_validation_error(CommunityModel, body)


@PROPERTY
@given(mutated(MODEL, under="spec"), st.one_of(JSON, mutated(POOL)))
def test_model_verdict_never_raises(model: Any, pool: Any) -> None:
    """The API server stores ``metadata`` as an object; the spec may hold anything."""
    judgement = judge_pool(pool)
    pools = {"p": judgement.pool} if judgement.pool is not None else {}
    result = verdict(model, pools, NOW)
    if result.status is not None:
        assert result.status["phase"] in ("Pending", "Invalid")


def test_the_bases_are_valid() -> None:
    assert judge_pool(POOL).valid, judge_pool(POOL).summary()
    CommunityModel.model_validate(MODEL)
    assert verdict(MODEL, {"p": judge_pool(POOL).pool}, NOW).status is not None  # type: ignore[dict-item]
