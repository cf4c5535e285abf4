"""Bad manifests are rejected by the real API server, each with a message naming its field.

Covers: wrong types, out-of-range values, bad formats (DNS-1123 names, durations, sha256,
quantities, clock times, time zones, URIs), missing required fields, enums, the CEL rules
across fields (guaranteed <= max, reserved <= max, min <= max replicas, train or serve,
from != to, credits name known communities, unique owners/communities/classes), changes to
fields frozen while a model holds GPUs, and unknown fields.

Unknown fields: a CRD prunes unknown fields silently unless the client asks for strict field
validation. kubectl's default (``--validate=strict``) does, so a typo fails at
``kubectl apply``; we send ``fieldValidation=Strict`` the same way and show, in a separate
test, that a non-strict client gets the field pruned (never stored, never half-obeyed).

Creation cases are server-side dry runs (nothing stored); update cases patch real objects
whose status says they hold GPUs, also as dry runs. One namespace for the module.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from polyculture.controlplane import ControlPlane

pytestmark = pytest.mark.cluster

GROUP, VERSION = "polyculture.dev", "v1alpha1"
NAMESPACE = "api-validation-test"
SHA = "a" * 64

POOL: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ComputePool",
    "metadata": {"name": "validation"},
    "spec": {
        "members": [{"owner": "lab", "nodeSelector": {"polyculture.dev/owner": "lab"}}],
        "communities": [{"name": "comm"}],
    },
}
MODEL: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "CommunityModel",
    "metadata": {"name": "validation", "namespace": NAMESPACE},
    "spec": {
        "pool": "coop",
        "provenance": {"baseModel": {"uri": "hf://org/m", "sha256": SHA, "license": "MIT"}},
        "training": {"entrypoint": "python train.py", "workers": 2},
        "serving": {"importPath": "serve_app:app"},
    },
}

Edit = Callable[[dict[str, Any]], None]


def put(path: str, value: Any) -> Edit:
    """Set, append (index = length) or, with ``DELETE``, remove ``a.b[0].c`` in the manifest."""

    def edit(obj: dict[str, Any]) -> None:
        keys: list[str | int] = []
        for part in path.split("."):
            name, _, index = part.partition("[")
            keys.append(name)
            if index:
                keys.append(int(index.rstrip("]")))
        target: Any = obj
        for key in keys[:-1]:
            target = target[key]
        if value is DELETE:
            del target[keys[-1]]
        elif isinstance(target, list) and keys[-1] == len(target):
            target.append(value)
        else:
            target[keys[-1]] = value

    return edit


DELETE = object()


@dataclass(frozen=True)
class Bad:
    """A manifest made bad by ``edits``; ``field`` is where the server must say so."""

    id: str
    base: dict[str, Any]
    edits: tuple[Edit, ...]
    field: str  # "" = the message names it (strict decoding, rules on the whole object)
    says: str  # a fragment of the message: what is allowed

    def manifest(self) -> dict[str, Any]:
        obj = copy.deepcopy(self.base)
        for edit in self.edits:
            edit(obj)
        return obj


def bad(id: str, base: dict[str, Any], field: str, says: str, *edits: Edit) -> Bad:
    return Bad(id, base, edits, field, says)


WINDOW = {"from": "18:00", "to": "08:00", "timeZone": "Europe/Berlin"}
M0 = "spec.members[0]"
CREATE_CASES = [
    # --- ComputePool: types, ranges, formats, required --------------------------------------
    bad("pool: maxGPUs of wrong type", POOL, f"{M0}.maxGPUs", "must be of type integer",
        put(f"{M0}.maxGPUs", "four")),
    bad("pool: negative maxGPUs", POOL, f"{M0}.maxGPUs", "greater than or equal to 1",
        put(f"{M0}.maxGPUs", -1)),
    bad("pool: members missing", POOL, "spec.members", "Required value",
        put("spec.members", DELETE)),
    bad("pool: nodeSelector missing", POOL, f"{M0}.nodeSelector", "Required value",
        put(f"{M0}.nodeSelector", DELETE)),
    bad("pool: empty nodeSelector would select every node", POOL, f"{M0}.nodeSelector",
        "at least 1", put(f"{M0}.nodeSelector", {})),
    bad("pool: owner not a DNS-1123 label", POOL, f"{M0}.owner", "must be a DNS-1123 label",
        put(f"{M0}.owner", "Lab_A")),
    bad("pool: name not a DNS-1123 label", POOL, "", "metadata.name must be a DNS-1123 label",
        put("metadata.name", "my.pool")),
    bad("pool: duplicate owner", POOL, "spec.members[1]", "Duplicate value",
        put("spec.members[1]", {"owner": "lab", "nodeSelector": {"k": "v"}})),
    bad("pool: duplicate community", POOL, "spec.communities[1]", "Duplicate value",
        put("spec.communities[1]", {"name": "comm"})),
    bad("pool: community weight zero", POOL, "spec.communities[0].weight", "greater than 0",
        put("spec.communities[0].weight", 0)),
    bad("pool: guaranteedGPUs above maxGPUs", POOL, "spec.communities[0].guaranteedGPUs",
        "guaranteedGPUs must be less than or equal to maxGPUs",
        put("spec.communities[0].guaranteedGPUs", 5), put("spec.communities[0].maxGPUs", 2)),
    bad("pool: reservedGPUs above maxGPUs", POOL, f"{M0}.reservedGPUs",
        "reservedGPUs must be less than or equal to maxGPUs",
        put(f"{M0}.maxGPUs", 2), put(f"{M0}.reservedGPUs", 3), put(f"{M0}.credits", ["comm"])),
    bad("pool: reserve kept for nobody", POOL, f"{M0}.credits", "reservedGPUs needs credits",
        put(f"{M0}.reservedGPUs", 1)),
    bad("pool: credits an unknown community", POOL, "spec.members",
        "credits may only name communities listed in spec.communities",
        put(f"{M0}.credits", ["strangers"])),
    bad("pool: window from equals to", POOL, f"{M0}.windows[0].to", "from and to must differ",
        put(f"{M0}.windows", [{**WINDOW, "to": "18:00"}])),
    bad("pool: window hour 25", POOL, f"{M0}.windows[0].from", "must be a time HH:MM",
        put(f"{M0}.windows", [{**WINDOW, "from": "25:00"}])),
    bad("pool: window day unknown", POOL, f"{M0}.windows[0].days[0]", "supported values",
        put(f"{M0}.windows", [{**WINDOW, "days": ["Funday"]}])),
    bad("pool: window time zone malformed", POOL, f"{M0}.windows[0].timeZone",
        "must be an IANA time zone name",
        put(f"{M0}.windows", [{**WINDOW, "timeZone": "Berlin time"}])),
    bad("pool: window to 24:30", POOL, f"{M0}.windows[0].to", "or 24:00 for the end of the day",
        put(f"{M0}.windows", [{**WINDOW, "to": "24:30"}])),
    bad("pool: credits name not a DNS-1123 label", POOL, f"{M0}.credits[0]",
        "must be a DNS-1123 label", put(f"{M0}.credits", ["Comm"])),
    bad("pool: GPU class name with spaces", POOL, "spec.fairShare.gpuClasses[0].name",
        "must be a GPU class name",
        put("spec.fairShare", {"gpuClasses": [{"name": "H 100", "weight": 1, "memory": "8Gi"}]})),
    bad("pool: window without to", POOL, f"{M0}.windows[0].to", "Required value",
        put(f"{M0}.windows", [{"from": "18:00"}])),
    bad("pool: usageHalfLife not a duration", POOL, "spec.fairShare.usageHalfLife",
        "must be a duration such as 30s, 5m, 1h30m or 7d",
        put("spec.fairShare", {"usageHalfLife": "7 days"})),
    bad("pool: minRuntime not a duration", POOL, "spec.fairShare.preemption.minRuntime",
        "must be a duration", put("spec.fairShare", {"preemption": {"minRuntime": "1.5h"}})),
    bad("pool: basis unknown", POOL, "spec.fairShare.basis", "supported values",
        put("spec.fairShare", {"basis": "fair"})),
    bad("pool: contributionShare above 1", POOL, "spec.fairShare.contributionShare",
        "less than or equal to 1", put("spec.fairShare", {"contributionShare": 1.5})),
    bad("pool: GPU memory not a quantity", POOL, "spec.fairShare.gpuClasses[0].memory",
        "must be a memory size with a unit",
        put("spec.fairShare", {"gpuClasses": [{"name": "H100", "weight": 1, "memory": "80GB"}]})),
    bad("pool: duplicate GPU class", POOL, "spec.fairShare.gpuClasses[1]", "Duplicate value",
        put("spec.fairShare", {"gpuClasses": [{"name": "L4", "weight": 1, "memory": "24Gi"},
                                               {"name": "L4", "weight": 2, "memory": "24Gi"}]})),
    bad("pool: Ray backend unknown", POOL, "spec.ray.backend", "supported values",
        put("spec.ray", {"backend": "slurm"})),
    bad("pool: Ray version not x.y.z", POOL, "spec.ray.version", "must be a Ray version",
        put("spec.ray", {"version": "latest"})),
    bad("pool: unknown field (strict)", POOL, "", 'unknown field "spec.members[0].maxGPU"',
        put(f"{M0}.maxGPU", 4)),
    # --- CommunityModel -----------------------------------------------------------------------
    bad("model: pool missing", MODEL, "spec.pool", "Required value", put("spec.pool", DELETE)),
    bad("model: neither training nor serving", MODEL, "spec",
        "a model must set training, serving or both",
        put("spec.training", DELETE), put("spec.serving", DELETE)),
    bad("model: community not a DNS-1123 label", MODEL, "spec.community",
        "must be a DNS-1123 label",
        put("spec.community", "Yoruba NLP")),
    bad("model: zero workers", MODEL, "spec.training.workers", "greater than or equal to 1",
        put("spec.training.workers", 0)),
    bad("model: workers of wrong type", MODEL, "spec.training.workers",
        "must be of type integer", put("spec.training.workers", "two")),
    bad("model: too many GPUs per worker", MODEL, "spec.training.gpusPerWorker",
        "less than or equal to 64", put("spec.training.gpusPerWorker", 65)),
    bad("model: entrypoint missing", MODEL, "spec.training.entrypoint", "Required value",
        put("spec.training.entrypoint", DELETE)),
    bad("model: gpuClass and minGPUMemory both", MODEL, "spec.training.minGPUMemory",
        "set gpuClass or minGPUMemory, not both",
        put("spec.training.gpuClass", "H100"), put("spec.training.minGPUMemory", "40Gi")),
    bad("model: minGPUMemory not a quantity", MODEL, "spec.training.minGPUMemory",
        "must be a memory size with a unit", put("spec.training.minGPUMemory", "lots")),
    bad("model: maxRuntime not a duration", MODEL, "spec.training.maxRuntime",
        "must be a duration",
        put("spec.training.maxRuntime", "1.5h")),
    bad("model: checkpointURI without scheme", MODEL, "spec.training.checkpointURI",
        "must be a URI with a scheme", put("spec.training.checkpointURI", "/tmp/ckpt")),
    bad("model: priority out of range", MODEL, "spec.training.priority",
        "less than or equal to 1000", put("spec.training.priority", 5000)),
    bad("model: sha256 not hex", MODEL, "spec.provenance.baseModel.sha256",
        "must be a SHA-256 digest: 64 lowercase hexadecimal digits",
        put("spec.provenance.baseModel.sha256", "Z" * 64)),
    bad("model: dataset without licence", MODEL, "spec.provenance.datasets[0].license",
        "Required value",
        put("spec.provenance.datasets", [{"uri": "s3://b/d", "sha256": SHA}])),
    bad("model: minReplicas above maxReplicas", MODEL, "spec.serving.minReplicas",
        "minReplicas must be less than or equal to maxReplicas",
        put("spec.serving.minReplicas", 3), put("spec.serving.maxReplicas", 2)),
    bad("model: importPath without attribute", MODEL, "spec.serving.importPath",
        "must be module:attribute", put("spec.serving.importPath", "serve_app")),
    bad("model: routePrefix without slash", MODEL, "spec.serving.routePrefix",
        "must be an HTTP path",
        put("spec.serving.routePrefix", "chat")),
    bad("model: unknown field (strict)", MODEL, "", 'unknown field "spec.training.gpus"',
        put("spec.training.gpus", 8)),
]  # fmt: skip

HOLDING_STATUS = {"phase": "Training", "admission": {"gpus": 2}}
UPDATE_CASES = [
    bad("frozen while training: pool", MODEL, "spec.pool",
        "spec.pool cannot change while the model holds GPUs", put("spec.pool", "other")),
    bad("frozen while training: workers", MODEL, "spec.training",
        "gang shape (workers, gpusPerWorker) cannot change", put("spec.training.workers", 4)),
    bad("frozen while training: gpusPerWorker", MODEL, "spec.training",
        "gang shape (workers, gpusPerWorker) cannot change",
        put("spec.training.gpusPerWorker", 2)),
    bad("frozen while training: training removed", MODEL, "spec.training",
        "gang shape (workers, gpusPerWorker) cannot change", put("spec.training", DELETE)),
    bad("frozen while training: gpusPerReplica", MODEL, "spec.serving",
        "spec.serving.gpusPerReplica cannot change", put("spec.serving.gpusPerReplica", 2)),
    bad("community is immutable", MODEL, "spec.community", "community is immutable",
        put("spec.community", "someone-else")),
]  # fmt: skip


def causes(error: ApiException) -> tuple[str, list[dict[str, str]]]:
    body = json.loads(error.body or "{}")
    return body.get("message", ""), body.get("details", {}).get("causes", [])


def assert_names_field(error: ApiException, case: Bad) -> None:
    assert error.status in (400, 422), error.body
    message, found = causes(error)
    if not case.field:
        assert case.says in message, message
        return
    matching = [c for c in found if c.get("field") == case.field]
    assert matching, f"no cause for {case.field}: {found}"
    assert any(case.says in c.get("message", "") for c in matching), matching
    assert case.field in message  # the one-line message users see names the field too
    assert "should match" not in message  # a person reads it: never a bare regex


@pytest.fixture(scope="module")
def objects(
    control_plane: ControlPlane, crds: list[str], api_client: client.ApiClient
) -> Iterator[client.CustomObjectsApi]:
    control_plane.kubectl("create", "namespace", NAMESPACE)
    yield client.CustomObjectsApi(api_client)
    control_plane.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


def create(api: client.CustomObjectsApi, obj: dict[str, Any], **kw: Any) -> Any:
    kw.setdefault("field_validation", "Strict")
    if obj["kind"] == "ComputePool":
        return api.create_cluster_custom_object(GROUP, VERSION, "computepools", obj, **kw)
    return api.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "communitymodels", obj, **kw
    )


@pytest.mark.parametrize("case", CREATE_CASES, ids=[c.id for c in CREATE_CASES])
def test_bad_manifest_is_rejected_naming_the_field(
    objects: client.CustomObjectsApi, case: Bad
) -> None:
    assert create(objects, copy.deepcopy(case.base), dry_run="All")  # the base is fine
    with pytest.raises(ApiException) as caught:
        create(objects, case.manifest(), dry_run="All")
    assert_names_field(caught.value, case)


def test_at_least_thirty_bad_manifests() -> None:
    assert len(CREATE_CASES) + len(UPDATE_CASES) >= 30


def test_unknown_fields_are_pruned_when_not_strict(objects: client.CustomObjectsApi) -> None:
    manifest = copy.deepcopy(MODEL)
    manifest["spec"]["training"]["gpus"] = 8
    stored = create(objects, manifest, dry_run="All", field_validation="Ignore")
    assert "gpus" not in stored["spec"]["training"]
    assert stored["spec"]["training"]["workers"] == 2


def set_phase(api: client.CustomObjectsApi, name: str, status: dict[str, Any]) -> None:
    """Write ``status`` as the admission loop would, and make it stick: an operator running in
    the same session may judge the new model (its pool does not exist) from the body it saw
    before this write; once the phase is not its own it leaves the model alone."""
    for _ in range(10):
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, "communitymodels", name, {"status": status}
        )
        time.sleep(1.0)
        stored = api.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "communitymodels", name
        )
        if (stored.get("status") or {}).get("phase") == status["phase"]:
            return
    raise AssertionError(f"phase {status['phase']} of {name} did not stick")


@pytest.fixture(scope="module")
def holding(objects: client.CustomObjectsApi) -> str:
    """A real model whose status says it holds GPUs (as the operator would write it)."""
    name = "holding"
    create(objects, {**copy.deepcopy(MODEL), "metadata": {"name": name}})
    set_phase(objects, name, HOLDING_STATUS)
    return name


def replace(api: client.CustomObjectsApi, name: str, case: Bad) -> Any:
    """Replace (dry run) the stored model by the case's manifest, retrying when an operator
    wrote the object between the read and the write (409)."""
    for attempt in range(5):
        current: Any = api.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "communitymodels", name
        )
        wanted = case.manifest()
        wanted["metadata"] = current["metadata"]
        wanted["status"] = current.get("status")
        try:
            return api.replace_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "communitymodels", name, wanted, dry_run="All"
            )
        except ApiException as error:
            if error.status != 409 or attempt == 4:
                raise
    raise AssertionError("unreachable")


@pytest.mark.parametrize("case", UPDATE_CASES, ids=[c.id for c in UPDATE_CASES])
def test_frozen_field_change_is_rejected(
    objects: client.CustomObjectsApi, holding: str, case: Bad
) -> None:
    with pytest.raises(ApiException) as caught:
        replace(objects, holding, case)
    assert_names_field(caught.value, case)


def test_unfrozen_fields_may_change_while_holding(
    objects: client.CustomObjectsApi, holding: str
) -> None:
    changed = bad("priority", MODEL, "", "", put("spec.training.priority", 50))
    assert replace(objects, holding, changed)["spec"]["training"]["priority"] == 50


def test_pool_and_gang_may_change_before_admission(objects: client.CustomObjectsApi) -> None:
    name = "queued"
    create(objects, {**copy.deepcopy(MODEL), "metadata": {"name": name}})
    set_phase(objects, name, {"phase": "Queued"})
    moved = bad("move", MODEL, "", "", put("spec.pool", "other"), put("spec.training.workers", 8))
    stored = replace(objects, name, moved)
    assert (stored["spec"]["pool"], stored["spec"]["training"]["workers"]) == ("other", 8)
