"""A corpus of bad manifests as hurried admins and communities write them, on the real API
server and the real operator.

Classes of mistakes (one section each): values of the right shape but no meaning (time zones,
zero and overflowing durations); units and signs (bare numbers as memory, negative memory,
unbounded quantities and keys); Kubernetes' own rules (label keys and values); blank or
misleading strings (entrypoints, import paths, licences, digests); secrets and dangerous paths
(credentials in URIs, checkpoints in system directories or on schemes no backend writes); and
consistency across fields (overlapping selectors, one product in two classes, guarantees and
reserves nobody can honour, maxGPUs 0, a Ray image that disagrees with ray.version).

Each ``APPLY`` case is created as a server-side dry run with strict field validation (what
``kubectl apply`` sends) and must be rejected with a message that names the field; the
operator's own parser must reject a stored copy too. Each
``OPERATOR`` case is stored and must be judged by the operator: the pool ``Valid=False`` or
the model ``Invalid``, with its reason and the field in the message.

``test_stored_broken_pools_are_confined`` stores pools the schema would reject, by installing
a looser ComputePool CRD for a moment (the real one is re-applied by the fixture, also when
the test fails), and shows the operator keeps judging every other pool's models while each
broken pool gets one ``Valid=False`` condition and one Event.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from test_api_validation import DELETE, Edit, put

from polyculture.api import CommunityModel
from polyculture.api.pool_validity import judge_pool
from polyculture.controlplane import ControlPlane
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.waiting import wait_for

pytestmark = pytest.mark.cluster

GROUP, VERSION = "polyculture.dev", "v1alpha1"
REPO = Path(__file__).resolve().parents[2]
SHA = "0263829989b6fd954f72baaf2fc64bc2e2f01d692d4de72986ea808f6e99813f"
EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

POOL: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ComputePool",
    "metadata": {"name": "corpus"},
    "spec": {
        "members": [
            {"owner": "lab", "nodeSelector": {"polyculture.dev/owner": "lab"}, "maxGPUs": 8,
             "windows": [{"days": ["Mon"], "from": "18:00", "to": "08:00",
                          "timeZone": "Europe/Berlin"}]},
            {"owner": "coop", "nodeSelector": {"polyculture.dev/owner": "coop"}, "maxGPUs": 4},
        ],
        "communities": [{"name": "comm", "guaranteedGPUs": 2, "maxGPUs": 6}],
        "fairShare": {
            "gpuClasses": [
                {"name": "H100", "weight": 1, "memory": "80Gi",
                 "products": ["NVIDIA H100 80GB HBM3"]},
                {"name": "L4", "weight": 0.25, "memory": "24Gi", "products": ["NVIDIA L4"]},
            ]
        },
        "ray": {"version": "2.60.0", "image": "rayproject/ray:2.60.0-py311-gpu"},
    },
}  # fmt: skip
MODEL: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "CommunityModel",
    "metadata": {"name": "corpus"},
    "spec": {
        "pool": "corpus",
        "provenance": {
            "baseModel": {"uri": "hf://org/base", "sha256": SHA, "license": "Apache-2.0"},
            "datasets": [{"uri": "s3://bucket/data", "sha256": SHA, "license": "CC-BY-4.0"}],
        },
        "training": {
            "entrypoint": "python train.py",
            "checkpointURI": "s3://bucket/ckpt",
            "runtimeEnv": {"workingDir": "examples/ray", "pip": ["torch"],
                           "envVars": {"TASK": "x"}},
        },
        "serving": {"importPath": "serve_app:app", "routePrefix": "/corpus"},
    },
}  # fmt: skip


@dataclass(frozen=True)
class Bad:
    """A manifest made bad by ``edits``; ``field`` is where the answer must point."""

    id: str
    base: dict[str, Any]
    field: str
    says: str
    edits: tuple[Edit, ...]

    def manifest(self) -> dict[str, Any]:
        obj = copy.deepcopy(self.base)
        for edit in self.edits:
            edit(obj)
        return obj


def bad(id: str, base: dict[str, Any], field: str, says: str, *edits: Edit) -> Bad:
    return Bad(id, base, field, says, edits)


M0, W0 = "spec.members[0]", "spec.members[0].windows[0]"
GC = "spec.fairShare.gpuClasses"
T, S, P = "spec.training", "spec.serving", "spec.provenance"
IANA, DUR = "must be an IANA time zone name", "at most 99999d"
MEM, NONZERO = "must be a memory size with a unit", "must be longer than zero"
KEYS, VALUE = "keys must be label keys", "must be a label value"
BLANK, CREDS = "must not be blank", "must not carry credentials"
SYSDIR, SCHEME = "must not point at / or into a system directory", "must use a scheme Ray can"
SPDX = "must be an SPDX licence identifier or expression"

APPLY = [
    # --- values of the right shape but no meaning ------------------------------------------
    bad("time zone on Mars", POOL, f"{W0}.timeZone", IANA, put(f"{W0}.timeZone", "Mars/Olympus")),
    bad("time zone abbreviation CEST", POOL, f"{W0}.timeZone", IANA, put(f"{W0}.timeZone", "CEST")),
    bad("time zone misspelt", POOL, f"{W0}.timeZone", IANA,
        put(f"{W0}.timeZone", "Europe/Berlinn")),
    bad("time zone lower case", POOL, f"{W0}.timeZone", IANA,
        put(f"{W0}.timeZone", "europe/berlin")),
    bad("time zone offset", POOL, f"{W0}.timeZone", IANA, put(f"{W0}.timeZone", "UTC+2")),
    bad("half-life never forget", POOL, "spec.fairShare.usageHalfLife", DUR,
        put("spec.fairShare.usageHalfLife", "9999999999d")),
    bad("half-life zero", POOL, "spec.fairShare.usageHalfLife", NONZERO,
        put("spec.fairShare.usageHalfLife", "0s")),
    bad("half-life zero in two units", POOL, "spec.fairShare.usageHalfLife", NONZERO,
        put("spec.fairShare.usageHalfLife", "0d00h")),
    bad("min runtime overflows", POOL, "spec.fairShare.preemption.minRuntime", DUR,
        put("spec.fairShare.preemption", {"minRuntime": "100000d"})),
    bad("grace period of eleven digits", POOL, "spec.fairShare.preemption.gracePeriod", DUR,
        put("spec.fairShare.preemption", {"gracePeriod": "99999999999s"})),
    bad("max runtime zero", MODEL, f"{T}.maxRuntime", NONZERO, put(f"{T}.maxRuntime", "0h")),
    bad("max runtime overflows", MODEL, f"{T}.maxRuntime", DUR,
        put(f"{T}.maxRuntime", "9999999999d")),
    # --- units and signs -------------------------------------------------------------------
    bad("class memory bare number", POOL, f"{GC}[0].memory", MEM, put(f"{GC}[0].memory", 80)),
    bad("class memory negative", POOL, f"{GC}[0].memory", MEM, put(f"{GC}[0].memory", "-80Gi")),
    bad("class memory zero", POOL, f"{GC}[0].memory", "must be larger than zero",
        put(f"{GC}[0].memory", "0Gi")),
    bad("class memory with a space", POOL, f"{GC}[0].memory", MEM, put(f"{GC}[0].memory", "80 Gi")),
    bad("class memory exponent", POOL, f"{GC}[0].memory", MEM, put(f"{GC}[0].memory", "8e10")),
    bad("class memory unbounded", POOL, f"{GC}[0].memory", "Too long",
        put(f"{GC}[0].memory", "9" * 300 + "Gi")),
    bad("model memory bare number", MODEL, f"{T}.minGPUMemory", MEM,
        put(f"{T}.minGPUMemory", 40)),
    bad("model memory bare string", MODEL, f"{T}.minGPUMemory", MEM,
        put(f"{T}.minGPUMemory", "40")),
    bad("serving memory negative", MODEL, f"{S}.minGPUMemory", MEM,
        put(f"{S}.minGPUMemory", "-16Gi")),
    bad("serving memory zero", MODEL, f"{S}.minGPUMemory", "must be larger than zero",
        put(f"{S}.minGPUMemory", "0.0Gi")),
    bad("member lends zero GPUs", POOL, f"{M0}.maxGPUs", "greater than or equal to 1",
        put(f"{M0}.maxGPUs", 0)),
    bad("community capped at zero", POOL, "spec.communities[0].maxGPUs",
        "greater than or equal to 1", put("spec.communities[0].maxGPUs", 0),
        put("spec.communities[0].guaranteedGPUs", 0)),
    # --- Kubernetes' own rules ---------------------------------------------------------------
    bad("selector key with a space", POOL, f"{M0}.nodeSelector", KEYS,
        put(f"{M0}.nodeSelector", {"owner name": "lab"})),
    bad("selector key name too long", POOL, f"{M0}.nodeSelector", KEYS,
        put(f"{M0}.nodeSelector", {"polyculture.dev/" + "o" * 64: "lab"})),
    bad("selector key prefix upper case", POOL, f"{M0}.nodeSelector", KEYS,
        put(f"{M0}.nodeSelector", {"Polyculture.dev/owner": "lab"})),
    bad("selector key two slashes", POOL, f"{M0}.nodeSelector", KEYS,
        put(f"{M0}.nodeSelector", {"a/b/c": "lab"})),
    bad("selector key unbounded", POOL, f"{M0}.nodeSelector", KEYS,
        put(f"{M0}.nodeSelector", {"a" * 400 + ".dev/owner": "lab"})),
    bad("selector value with a space", POOL, f"{M0}.nodeSelector[polyculture.dev/owner]", VALUE,
        put(f"{M0}.nodeSelector", {"polyculture.dev/owner": "lab a"})),
    bad("selector value starts with dash", POOL, f"{M0}.nodeSelector[polyculture.dev/owner]",
        VALUE, put(f"{M0}.nodeSelector", {"polyculture.dev/owner": "-lab"})),
    bad("selector value 64 characters", POOL, f"{M0}.nodeSelector.polyculture.dev/owner",
        "Too long", put(f"{M0}.nodeSelector", {"polyculture.dev/owner": "l" * 64})),
    bad("env var name with a space", MODEL, f"{T}.runtimeEnv.envVars", "environment variable",
        put(f"{T}.runtimeEnv.envVars", {"MY VAR": "1"})),
    bad("env var name starts with digit", MODEL, f"{T}.runtimeEnv.envVars",
        "environment variable", put(f"{T}.runtimeEnv.envVars", {"1ST": "1"})),
    # --- blank or misleading strings -----------------------------------------------------------
    bad("entrypoint of spaces", MODEL, f"{T}.entrypoint", BLANK, put(f"{T}.entrypoint", "   ")),
    bad("entrypoint of tabs and newlines", MODEL, f"{T}.entrypoint", BLANK,
        put(f"{T}.entrypoint", "\t\n")),
    bad("pip requirement blank", MODEL, f"{T}.runtimeEnv.pip[0]", BLANK,
        put(f"{T}.runtimeEnv.pip", [" "])),
    bad("working dir blank", MODEL, f"{T}.runtimeEnv.workingDir", BLANK,
        put(f"{T}.runtimeEnv.workingDir", "  ")),
    bad("import path names a file", MODEL, f"{S}.importPath", "names a module, not a file",
        put(f"{S}.importPath", "serve_app.py:app")),
    bad("import path names a file by path", MODEL, f"{S}.importPath",
        "names a module, not a file", put(f"{S}.importPath", "/srv/serve_app.py:app")),
    bad("import path with a dash", MODEL, f"{S}.importPath", "must be module:attribute",
        put(f"{S}.importPath", "serve-app:app")),
    bad("import path without attribute", MODEL, f"{S}.importPath", "must be module:attribute",
        put(f"{S}.importPath", "serve_app:")),
    bad("route prefix with double slash", MODEL, f"{S}.routePrefix", "must be an HTTP path",
        put(f"{S}.routePrefix", "/a//b")),
    bad("route prefix with a space", MODEL, f"{S}.routePrefix", "must be an HTTP path",
        put(f"{S}.routePrefix", "/yoruba chat")),
    bad("licence with a semicolon", MODEL, f"{P}.baseModel.license", SPDX,
        put(f"{P}.baseModel.license", "Apache-2.0; MIT")),
    bad("licence with a slash", MODEL, f"{P}.datasets[0].license", SPDX,
        put(f"{P}.datasets[0].license", "CC-BY/SA")),
    bad("digest of empty content", MODEL, f"{P}.baseModel.sha256", "SHA-256 of empty content",
        put(f"{P}.baseModel.sha256", EMPTY_SHA)),
    bad("dataset digest of empty content", MODEL, f"{P}.datasets[0].sha256",
        "SHA-256 of empty content", put(f"{P}.datasets[0].sha256", EMPTY_SHA)),
    bad("digest upper case", MODEL, f"{P}.baseModel.sha256", "64 lowercase hexadecimal",
        put(f"{P}.baseModel.sha256", SHA.upper())),
    bad("product name blank", POOL, f"{GC}[0].products[0]", BLANK,
        put(f"{GC}[0].products", ["  "])),
    bad("Ray image with a space", POOL, "spec.ray.image", "without spaces",
        put("spec.ray.image", "rayproject/ray: 2.60.0")),
    bad("Ray version two parts", POOL, "spec.ray.version", "must be a Ray version",
        put("spec.ray.version", "2.60")),
    # --- secrets and dangerous paths -------------------------------------------------------------
    bad("base model URI with password", MODEL, f"{P}.baseModel.uri", CREDS,
        put(f"{P}.baseModel.uri", "https://alice:hunter2@models.example.org/base")),
    bad("dataset URI with access key", MODEL, f"{P}.datasets[0].uri", CREDS,
        put(f"{P}.datasets[0].uri", "s3://AKIAEXAMPLE:secretkey@bucket/data")),
    bad("dataset URI with token as user", MODEL, f"{P}.datasets[0].uri", CREDS,
        put(f"{P}.datasets[0].uri", "https://ghp_token@github.com/org/data")),
    bad("checkpoint URI with credentials", MODEL, f"{T}.checkpointURI", CREDS,
        put(f"{T}.checkpointURI", "s3://key:secret@bucket/ckpt")),
    bad("checkpoint into /etc", MODEL, f"{T}.checkpointURI", SYSDIR,
        put(f"{T}.checkpointURI", "file:///etc/polyculture")),
    bad("checkpoint into /proc", MODEL, f"{T}.checkpointURI", SYSDIR,
        put(f"{T}.checkpointURI", "file:///proc/self/fd")),
    bad("checkpoint into /usr/lib", MODEL, f"{T}.checkpointURI", SYSDIR,
        put(f"{T}.checkpointURI", "file:///usr/lib/ckpt")),
    bad("checkpoint at the root", MODEL, f"{T}.checkpointURI", SYSDIR,
        put(f"{T}.checkpointURI", "file:///")),
    bad("checkpoint escapes with ..", MODEL, f"{T}.checkpointURI", "'..' path segments",
        put(f"{T}.checkpointURI", "file:///var/lib/polyculture/../../etc/x")),
    bad("checkpoint on ftp", MODEL, f"{T}.checkpointURI", SCHEME,
        put(f"{T}.checkpointURI", "ftp://host/ckpt")),
    bad("checkpoint on a model hub", MODEL, f"{T}.checkpointURI", SCHEME,
        put(f"{T}.checkpointURI", "hf://org/ckpt")),
    bad("checkpoint file URI with host", MODEL, f"{T}.checkpointURI", "absolute path and no host",
        put(f"{T}.checkpointURI", "file://server/ckpt")),
    # --- consistency across fields and list items -------------------------------------------
    bad("two members claim the same nodes", POOL, "spec.members", "claim the same nodes",
        put("spec.members[1].nodeSelector", {"polyculture.dev/owner": "lab"})),
    bad("a member's selector inside another's", POOL, "spec.members",
        "claim the same nodes",
        put("spec.members[1].nodeSelector", {"polyculture.dev/owner": "lab", "zone": "b"})),
    bad("one product in two classes", POOL, GC, "a GPU product belongs to one class only",
        put(f"{GC}[1].products", ["NVIDIA L4", "NVIDIA H100 80GB HBM3"])),
    bad("guarantees beyond every cap", POOL, "spec.communities",
        "guaranteedGPUs add up to more than the members could ever lend",
        put("spec.communities[1]", {"name": "more", "guaranteedGPUs": 11})),
    bad("reserve nobody may use", POOL, "spec.members", "reservedGPUs exceed what the communities",
        put(f"{M0}.maxGPUs", DELETE), put(f"{M0}.reservedGPUs", 30),
        put(f"{M0}.credits", ["comm"])),
    bad("Ray image tag latest", POOL, "spec.ray.image", "the image tag must be the Ray version",
        put("spec.ray.image", "rayproject/ray:latest")),
    bad("Ray version bumped, image not", POOL, "spec.ray.image",
        "must be the Ray version 2.61.0", put("spec.ray.version", "2.61.0")),
]  # fmt: skip


def causes(error: ApiException) -> tuple[str, list[dict[str, str]]]:
    body = json.loads(error.body or "{}")
    return body.get("message", ""), body.get("details", {}).get("causes", [])


@pytest.fixture(scope="module")
def namespace(crds: list[str], api_client: client.ApiClient) -> Iterator[str]:
    name = f"corpus-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def create(api_client: client.ApiClient, ns: str, obj: dict[str, Any], **kw: Any) -> Any:
    api = client.CustomObjectsApi(api_client)
    kw.setdefault("field_validation", "Strict")
    if obj["kind"] == "ComputePool":
        return api.create_cluster_custom_object(GROUP, VERSION, "computepools", obj, **kw)
    return api.create_namespaced_custom_object(GROUP, VERSION, ns, "communitymodels", obj, **kw)


def test_the_corpus_has_at_least_sixty_cases() -> None:
    assert len(APPLY) + len(OPERATOR) >= 60
    assert len({c.id for c in APPLY}) == len(APPLY)


def test_the_bases_are_accepted(api_client: client.ApiClient, namespace: str) -> None:
    for base in (POOL, MODEL):
        assert create(api_client, namespace, copy.deepcopy(base), dry_run="All")


@pytest.mark.parametrize("case", APPLY, ids=[c.id for c in APPLY])
def test_rejected_at_apply_naming_the_field(
    api_client: client.ApiClient, namespace: str, case: Bad
) -> None:
    with pytest.raises(ApiException) as caught:
        create(api_client, namespace, case.manifest(), dry_run="All")
    error = caught.value
    assert error.status in (400, 422), error.body
    message, found = causes(error)
    matching = [c for c in found if c.get("field") == case.field]
    assert matching, f"no cause for {case.field}: {found}"
    assert any(case.says in c.get("message", "") for c in matching), matching
    assert case.field in message
    assert "should match" not in message  # a person reads it: never a bare regex
    # the operator judges a stored copy the same way (an object written past validation)
    if case.base is POOL:
        assert not judge_pool(case.manifest()).valid
    else:
        with pytest.raises(ValidationError):
            CommunityModel.model_validate(case.manifest())


# --- what only the operator can judge ---------------------------------------------------------

WINDOW = {"days": ["Mon", "Tue"], "from": "09:00", "to": "17:00", "timeZone": "Europe/Berlin"}


@dataclass(frozen=True)
class Judged:
    """A manifest the API server accepts and the operator must judge: ``reason`` on the
    pool's ``Valid`` condition (pools) or the model's (models, phase Invalid)."""

    id: str
    base: dict[str, Any]
    reason: str
    field: str
    edits: tuple[Edit, ...]

    def manifest(self, name: str, pool: str) -> dict[str, Any]:
        obj = copy.deepcopy(self.base)
        obj["metadata"] = {"name": name}
        if obj["kind"] == "CommunityModel":
            obj["spec"]["pool"] = pool
        for edit in self.edits:
            edit(obj)
        return obj


def judged(id: str, base: dict[str, Any], reason: str, field: str, *edits: Edit) -> Judged:
    return Judged(id, base, reason, field, edits)


OPERATOR = [
    judged("windows of one member overlap", POOL, "OverlappingWindows", f"{M0}.windows[1]",
           put(f"{M0}.windows", [WINDOW, {**WINDOW, "days": ["Tue"], "from": "16:00",
                                          "to": "20:00"}])),
    judged("overnight window overlaps the morning one", POOL, "OverlappingWindows",
           f"{M0}.windows[1]",
           put(f"{M0}.windows", [{**WINDOW, "days": ["Sun"], "from": "22:00", "to": "06:00"},
                                 {**WINDOW, "days": ["Mon"], "from": "05:00", "to": "09:00"}])),
    judged("one product in two classes, spelt two ways", POOL, "ProductInTwoClasses",
           f"{GC}[0].products", put(f"{GC}[1].products", ["NVIDIA-H100-80GB-HBM3"])),
    judged("licence in words", MODEL, "SpecInvalid", f"{P}.baseModel.license",
           put(f"{P}.baseModel.license", "MIT License")),
    judged("licence not on the SPDX list", MODEL, "SpecInvalid", f"{P}.datasets[0].license",
           put(f"{P}.datasets[0].license", "Apache 2")),
    judged("licence expression cut short", MODEL, "SpecInvalid", f"{P}.baseModel.license",
           put(f"{P}.baseModel.license", "MIT AND")),
    judged("checkpoint on a node's disk with the kubernetes backend", MODEL,
           "CheckpointUnsupported", f"{T}.checkpointURI",
           put(f"{T}.checkpointURI", "file:///tmp/ckpt")),
]  # fmt: skip


def get(api_client: client.ApiClient, obj: dict[str, Any], ns: str) -> dict[str, Any]:
    api = client.CustomObjectsApi(api_client)
    name = obj["metadata"]["name"]
    if obj["kind"] == "ComputePool":
        found: dict[str, Any] = api.get_cluster_custom_object(GROUP, VERSION, "computepools", name)
    else:
        found = api.get_namespaced_custom_object(GROUP, VERSION, ns, "communitymodels", name)
    return found


def valid_condition(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Valid"), {})


def events(api_client: client.ApiClient, ns: str, name: str, reason: str) -> list[Any]:
    found = client.CoreV1Api(api_client).list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name},reason={reason}"
    )
    return list(found.items)


def unique_pool(name: str, key: str) -> dict[str, Any]:
    """The base pool under ``name``, its members selecting nodes by a label of its own."""
    pool = copy.deepcopy(POOL)
    pool["metadata"] = {"name": name}
    for member in pool["spec"]["members"]:
        member["nodeSelector"] = {key: member["owner"]}
    return pool


@pytest.fixture(scope="module")
def judged_objects(
    api_client: client.ApiClient, namespace: str, operator: Any
) -> Iterator[dict[str, dict[str, Any]]]:
    """Every OPERATOR case stored at once (the operator judges them in parallel), and the
    valid pool the models name."""
    api = client.CustomObjectsApi(api_client)
    key = f"{namespace}.polyculture.dev/owner"
    good = unique_pool(namespace, key)
    good["spec"]["communities"] = [{"name": namespace, "guaranteedGPUs": 2, "maxGPUs": 6}]
    create(api_client, namespace, good)
    stored: dict[str, dict[str, Any]] = {}
    for i, case in enumerate(OPERATOR):
        obj = case.manifest(f"{namespace}-{i}", pool=namespace)
        if obj["kind"] == "ComputePool":
            for member in obj["spec"]["members"]:
                member["nodeSelector"] = {key: f"{member['owner']}-{i}"}
            obj["spec"]["communities"][0]["name"] = namespace
        create(api_client, namespace, obj)
        stored[case.id] = obj
    yield stored
    for obj in stored.values():
        if obj["kind"] == "ComputePool":
            api.delete_cluster_custom_object(
                GROUP, VERSION, "computepools", obj["metadata"]["name"]
            )
    api.delete_cluster_custom_object(GROUP, VERSION, "computepools", namespace)


@pytest.mark.parametrize("case", OPERATOR, ids=[c.id for c in OPERATOR])
def test_judged_by_the_operator_on_the_object_itself(
    api_client: client.ApiClient,
    namespace: str,
    judged_objects: dict[str, dict[str, Any]],
    case: Judged,
) -> None:
    obj = judged_objects[case.id]
    name = obj["metadata"]["name"]
    cond = wait_for(
        lambda: (
            valid_condition(get(api_client, obj, namespace)).get("status") == "False"
            and valid_condition(get(api_client, obj, namespace))
        ),
        what=f"{case.id}: Valid=False",
    )
    assert cond["reason"] == case.reason, cond
    assert case.field in cond["message"], cond
    if obj["kind"] == "CommunityModel":
        assert (get(api_client, obj, namespace).get("status") or {})["phase"] == "Invalid"
        event_ns = namespace
    else:
        event_ns = "default"  # Events of cluster-scoped objects
    found = wait_for(lambda: events(api_client, event_ns, name, case.reason), what="Event")
    assert all(case.field in e.message for e in found)
    if obj["kind"] == "ComputePool":
        assert len(found) == 1  # one Event, not one per tick of the pool's daemon


def test_models_of_an_invalid_pool_are_invalid_with_reason_pool_invalid(
    api_client: client.ApiClient, namespace: str, judged_objects: dict[str, dict[str, Any]]
) -> None:
    broken = judged_objects["windows of one member overlap"]["metadata"]["name"]
    model = copy.deepcopy(MODEL)
    model["metadata"] = {"name": "on-invalid-pool"}
    model["spec"]["pool"] = broken
    create(api_client, namespace, model)
    cond = wait_for(
        lambda: (
            valid_condition(get(api_client, model, namespace)).get("reason") == "PoolInvalid"
            and valid_condition(get(api_client, model, namespace))
        ),
        what="PoolInvalid",
    )
    assert "OverlappingWindows" not in cond["message"]  # the reason is the pool's, not its name
    assert "windows[1]" in cond["message"] and broken in cond["message"]


def test_guarantees_beyond_the_live_nodes_show_in_a_condition(
    api_client: client.ApiClient, namespace: str, operator: Any
) -> None:
    """What the API server cannot compare (it depends on the Nodes) is a pool condition."""
    name = f"{namespace}-live"
    key = f"{name}.polyculture.dev/owner"
    pool = unique_pool(name, key)
    pool["spec"]["communities"] = [{"name": namespace, "guaranteedGPUs": 6, "maxGPUs": 6}]
    create(api_client, namespace, pool)

    def overcommitted() -> dict[str, Any]:
        conditions = (get(api_client, pool, namespace).get("status") or {}).get("conditions")
        return next((c for c in conditions or [] if c["type"] == "Overcommitted"), {})

    try:
        cond = wait_for(lambda: overcommitted().get("status") == "True" and overcommitted())
        assert cond["reason"] == "GuaranteesExceedCapacity"
        assert "guaranteed 6 units" in cond["message"] and "at most 0 units" in cond["message"]
        assert valid_condition(get(api_client, pool, namespace))["status"] == "True"
        create_gpu_node(api_client, f"{name}-n", "lab", 8, labels={key: "lab"})
        cond = wait_for(lambda: overcommitted().get("status") == "False" and overcommitted())
        assert cond["reason"] == "GuaranteesCovered"
    finally:
        client.CustomObjectsApi(api_client).delete_cluster_custom_object(
            GROUP, VERSION, "computepools", name
        )
        client.CoreV1Api(api_client).delete_node(f"{name}-n")


# --- objects stored past validation ----------------------------------------------------------

CRD_FILE = REPO / "crds" / f"{GROUP}_computepools.yaml"
HALF_LIFE = "spec.fairShare.usageHalfLife"
#: (what is broken, field the Valid condition must name, the stored spec)
BROKEN = [
    ("half-life that overflows", HALF_LIFE, put("spec.fairShare.usageHalfLife", "9999999999d")),
    ("memory as a bare number", f"{GC}[0].memory", put(f"{GC}[0].memory", 40)),
    ("members of the wrong type", "spec.members", put("spec.members", "everyone")),
    ("time zone on Mars", f"{W0}.timeZone", put(f"{W0}.timeZone", "Mars/Olympus")),
    ("member lending zero", f"{M0}.maxGPUs", put(f"{M0}.maxGPUs", 0)),
]


def apply_crd(control_plane: ControlPlane, crd: dict[str, Any]) -> None:
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=polyculture-tests",
        "-f",
        "-",
        input=yaml.safe_dump(crd),
    )


def schema_enforced(api_client: client.ApiClient, enforced: bool) -> bool:
    """Whether the API server (already) answers a broken pool the way the CRD in place says."""
    probe = unique_pool(f"probe-{uuid.uuid4().hex[:6]}", "probe")
    probe["spec"]["fairShare"]["usageHalfLife"] = "0s"
    try:
        create(api_client, "", probe, dry_run="All")
    except ApiException:
        return enforced
    return not enforced


@pytest.fixture
def loose_pool_crd(
    control_plane: ControlPlane, crds: list[str], api_client: client.ApiClient
) -> Iterator[None]:
    """The ComputePool CRD without a spec schema, as an older or careless one would be; the
    real CRD is back when the test ends, also when it fails."""
    real = yaml.safe_load(CRD_FILE.read_text())
    loose = copy.deepcopy(real)
    schema = loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    apply_crd(control_plane, loose)
    try:
        wait_for(lambda: schema_enforced(api_client, False), what="the loose CRD in place")
        yield
    finally:
        apply_crd(control_plane, real)
        wait_for(lambda: schema_enforced(api_client, True), what="the real CRD back")


def test_stored_broken_pools_are_confined(
    api_client: client.ApiClient,
    control_plane: ControlPlane,
    namespace: str,
    operator: Any,
    loose_pool_crd: None,
) -> None:
    api = client.CustomObjectsApi(api_client)
    tag = uuid.uuid4().hex[:6]
    key = f"broken-{tag}.polyculture.dev/owner"
    broken: dict[str, tuple[str, str]] = {}
    for i, (what, field, edit) in enumerate(BROKEN):
        pool = unique_pool(f"broken-{tag}-{i}", key)
        pool["spec"]["communities"][0]["name"] = namespace
        edit(pool)
        create(api_client, namespace, pool, field_validation="Ignore")
        broken[pool["metadata"]["name"]] = (what, field)
    # the real schema again: what follows is what any cluster may hold after an upgrade
    apply_crd(control_plane, yaml.safe_load(CRD_FILE.read_text()))
    wait_for(lambda: schema_enforced(api_client, True), what="the real CRD back")

    good = unique_pool(f"good-{tag}", key)
    good["spec"]["communities"][0]["name"] = namespace
    create(api_client, namespace, good)

    def invalid(obj: dict[str, Any]) -> dict[str, Any] | None:
        cond = valid_condition(get(api_client, obj, namespace))
        return cond if cond.get("status") == "False" else None

    try:
        for pool_name in [*broken, good["metadata"]["name"]]:
            model = copy.deepcopy(MODEL)
            model["metadata"] = {"name": f"on-{pool_name}"}
            model["spec"]["pool"] = pool_name
            create(api_client, namespace, model)

        # every other pool's models are judged: the good pool's model is valid and waits for
        # GPUs (Pending, or already Queued by its pool's admission loop: the pool has no node)
        on_good = {"kind": "CommunityModel", "metadata": {"name": f"on-{good['metadata']['name']}"}}
        wait_for(
            lambda: (
                (get(api_client, on_good, namespace).get("status") or {}).get("phase")
                in ("Pending", "Queued")
            ),
            what="the good pool's model Pending or Queued",
        )
        wait_for(
            lambda: valid_condition(get(api_client, good, namespace)).get("status") == "True",
            what="the good pool Valid",
        )
        for pool_name, (what, field) in broken.items():
            obj = {"kind": "ComputePool", "metadata": {"name": pool_name}}
            cond = wait_for(lambda obj=obj: invalid(obj), what=f"{what}: Valid=False")
            assert cond["reason"] == "SpecInvalid" and field in cond["message"], (what, cond)
            model = {"kind": "CommunityModel", "metadata": {"name": f"on-{pool_name}"}}
            mcond = wait_for(lambda model=model: invalid(model), what=f"{what}: model judged")
            assert mcond["reason"] == "PoolInvalid" and field in mcond["message"], (what, mcond)
        # one condition and one Event per broken pool, not one per tick
        wait_for(lambda: all(events(api_client, "default", n, "SpecInvalid") for n in broken))
        time.sleep(3)
        for pool_name in broken:
            assert len(events(api_client, "default", pool_name, "SpecInvalid")) == 1
            conditions = get(api_client, {"kind": "ComputePool", "metadata": {"name": pool_name}},
                             namespace)["status"]["conditions"]  # fmt: skip
            assert [c["type"] for c in conditions if c["status"] == "False"] == ["Valid"]
        assert operator.proc is not None and operator.proc.poll() is None  # still running
    finally:
        for pool_name in [*broken, good["metadata"]["name"]]:
            api.delete_cluster_custom_object(GROUP, VERSION, "computepools", pool_name)
