"""What only the operator can judge, judged by the real operator process.

Covers: a model naming a pool that does not exist becomes Invalid (condition, Event, printer
column) and turns Pending once the pool appears; a community the pool does not admit and a
gang that can never fit the pool's largest node are Invalid with their reasons; a valid model
is Pending with a waiting reason; the judgement touches nothing else (other models, the pool).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from polyculture.controlplane import ControlPlane
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.waiting import wait_for

pytestmark = pytest.mark.cluster

GROUP, VERSION = "polyculture.dev", "v1alpha1"
#: a valid model is Pending until the admission loop queues it (on a pool with no GPUs)
VALID_PHASES = ("Pending", "Queued")


@pytest.fixture(scope="module")
def ns(crds: object, operator: Any, api_client: Any) -> Iterator[str]:
    name = f"judged-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def model(name: str, pool: str, workers: int = 1, gpus: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CommunityModel",
        "metadata": {"name": name},
        "spec": {
            "pool": pool,
            "training": {
                "entrypoint": "python train.py",
                "workers": workers,
                "gpusPerWorker": gpus,
            },
            **spec,
        },
    }


def pool(name: str, community: str, node_label: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComputePool",
        "metadata": {"name": name},
        "spec": {
            "members": [{"owner": "ada", "nodeSelector": {"judged": node_label}}],
            "communities": [{"name": community}],
        },
    }


def get_model(api_client: Any, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, ns, "communitymodels", name
    )
    return obj


def phase(api_client: Any, ns: str, name: str) -> str | None:
    return (get_model(api_client, ns, name).get("status") or {}).get("phase")


def valid_condition(api_client: Any, ns: str, name: str) -> dict[str, Any]:
    conds = (get_model(api_client, ns, name).get("status") or {}).get("conditions") or []
    return next(c for c in conds if c["type"] == "Valid")


def judged_valid(api_client: Any, ns: str, name: str) -> bool:
    conds = (get_model(api_client, ns, name).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Valid" and c["status"] == "True" for c in conds)


def events(api_client: Any, ns: str, name: str, reason: str) -> list[Any]:
    evs = client.CoreV1Api(api_client).list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name},reason={reason}"
    )
    return list(evs.items)


def _event_names(api_client: Any, ns: str, name: str) -> set[tuple[str, str, str]]:
    evs = client.CoreV1Api(api_client).list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}"
    )
    return {(e.metadata.name, e.type, e.reason) for e in evs.items}


def create(api_client: Any, ns: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, ns, "communitymodels", body
    )


def test_unknown_pool_is_invalid_until_the_pool_exists(
    api_client: Any, ns: str, control_plane: ControlPlane
) -> None:
    pool_name = f"later-{ns}"
    create(api_client, ns, model("orphan", pool_name))
    wait_for(lambda: phase(api_client, ns, "orphan") == "Invalid", what="Invalid")
    cond = valid_condition(api_client, ns, "orphan")
    assert cond["status"] == "False" and cond["reason"] == "PoolNotFound"
    assert pool_name in cond["message"] and "spec.pool" in cond["message"]
    wait_for(lambda: events(api_client, ns, "orphan", "PoolNotFound"), what="event")
    table = control_plane.kubectl("get", "cmodel", "orphan", "-n", ns).stdout
    assert "Invalid" in table and "does not exist" in table

    objs = client.CustomObjectsApi(api_client)
    objs.create_cluster_custom_object(GROUP, VERSION, "computepools", pool(pool_name, ns, ns))
    try:
        wait_for(lambda: phase(api_client, ns, "orphan") in VALID_PHASES, what="Pending")
        st = get_model(api_client, ns, "orphan")["status"]
        assert st["waiting"]["reason"], st  # it says why it waits
        assert valid_condition(api_client, ns, "orphan")["status"] == "True"
    finally:
        objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", pool_name)


def test_community_not_admitted_and_never_fits_are_invalid(api_client: Any, ns: str) -> None:
    pool_name = f"small-{ns}"
    objs = client.CustomObjectsApi(api_client)
    create_gpu_node(api_client, f"node-{ns}", "ada", 4, labels={"judged": pool_name})
    objs.create_cluster_custom_object(
        GROUP, VERSION, "computepools", pool(pool_name, ns, pool_name)
    )
    try:
        wait_for(
            lambda: (
                objs.get_cluster_custom_object(GROUP, VERSION, "computepools", pool_name).get(
                    "status"
                )
                or {}
            ).get("largestNodeGPUs"),
            what="pool discovered its node",
        )
        create(api_client, ns, model("outsider", pool_name, community="someone-else"))
        create(api_client, ns, model("too-wide", pool_name, workers=1, gpus=8))
        create(api_client, ns, model("fine", pool_name, workers=2, gpus=2))
        wait_for(lambda: phase(api_client, ns, "outsider") == "Invalid", what="outsider")
        wait_for(lambda: phase(api_client, ns, "too-wide") == "Invalid", what="too-wide")
        # judged valid; its node has room, so the loop may already have moved it along
        wait_for(lambda: judged_valid(api_client, ns, "fine"), what="fine judged valid")
        assert phase(api_client, ns, "fine") != "Invalid"
        assert valid_condition(api_client, ns, "outsider")["reason"] == "CommunityNotAdmitted"
        too_wide = valid_condition(api_client, ns, "too-wide")
        assert too_wide["reason"] == "NeverFits" and "spec.training" in too_wide["message"]
        wait_for(lambda: events(api_client, ns, "too-wide", "NeverFits"), what="event")

        # nothing else touched: the valid model's verdict and Events and the pool's spec stay
        # as they were (the admission loop goes on moving "fine" along, which is its job)
        fine_valid = valid_condition(api_client, ns, "fine")
        fine_events = _event_names(api_client, ns, "fine")
        pool_gen = objs.get_cluster_custom_object(GROUP, VERSION, "computepools", pool_name)[
            "metadata"
        ]["generation"]
        create(api_client, ns, model("also-bad", pool_name, community="nobody"))
        wait_for(lambda: phase(api_client, ns, "also-bad") == "Invalid", what="also-bad")
        time.sleep(1)
        assert valid_condition(api_client, ns, "fine") == fine_valid
        new_events = _event_names(api_client, ns, "fine") - fine_events
        assert not [e for e in new_events if e[1] == "Warning"], new_events
        after = objs.get_cluster_custom_object(GROUP, VERSION, "computepools", pool_name)
        assert after["metadata"]["generation"] == pool_gen
    finally:
        objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", pool_name)
        client.CoreV1Api(api_client).delete_node(f"node-{ns}")


def test_fixing_the_spec_makes_an_invalid_model_pending(api_client: Any, ns: str) -> None:
    pool_name = f"fix-{ns}"
    objs = client.CustomObjectsApi(api_client)
    objs.create_cluster_custom_object(
        GROUP, VERSION, "computepools", pool(pool_name, ns, pool_name)
    )
    try:
        create(api_client, ns, model("typo", "no-such-pool"))
        wait_for(lambda: phase(api_client, ns, "typo") == "Invalid", what="Invalid")
        objs.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "communitymodels", "typo", {"spec": {"pool": pool_name}}
        )
        wait_for(lambda: phase(api_client, ns, "typo") in VALID_PHASES, what="Pending after fix")
    finally:
        objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", pool_name)
