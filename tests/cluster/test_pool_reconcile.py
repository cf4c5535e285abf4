"""ComputePool reconciliation by the real operator process against the real API server.

Covers (issue: federate many owners' GPU nodes): capacity per owner and GPU class for 3 owners
over 12 kwok nodes of two classes; cordon, delete, relabel and GPU-count changes reflected
within 5 s; a node matched by two members is a conflict counted once; reclaim and a lending
window (moved by the operator's test clock, not by sleeping) remove exactly that owner's
capacity with an Event; the GPU-seconds ledger grows only for available GPUs and survives an
operator restart; the agent's health labels make GPUs unhealthy in the pool's status; the
pool daemon and the admission loop each own their condition types (server-side apply), so
neither drops the other's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.waiting import wait_for as _wait_for

pytestmark = pytest.mark.cluster


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Node changes must show in the pool's status within 5 s: that is the default here."""
    return _wait_for(predicate, timeout, what)


GROUP, VERSION, PLURAL = "polyculture.dev", "v1alpha1", "computepools"
H100, L4 = "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"
POOL = "federation"
OWNERS = {"ada": (H100, 8), "bo": (H100, 4), "cy": (L4, 4)}  # 4 nodes each


def pool_body(**member_overrides: dict[str, Any]) -> dict[str, Any]:
    members = []
    for owner in OWNERS:
        m: dict[str, Any] = {
            "owner": owner,
            "nodeSelector": {"polyculture.dev/owner": owner, "test": POOL},
        }
        m.update(member_overrides.get(owner, {}))
        members.append(m)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComputePool",
        "metadata": {"name": POOL},
        "spec": {
            "members": members,
            "communities": [{"name": "lingua"}, {"name": "medic"}],
            "fairShare": {
                "gpuClasses": [
                    {"name": "H100", "weight": 1.0, "memory": "80Gi", "products": [H100]},
                    {"name": "L4", "weight": 0.25, "memory": "24Gi", "products": [L4]},
                ]
            },
        },
    }


@pytest.fixture(scope="module")
def pool(crds: object, operator: Any, api_client: Any) -> Iterator[dict[str, Any]]:
    core = client.CoreV1Api(api_client)
    for owner, (product, gpus) in OWNERS.items():
        for i in range(4):
            create_gpu_node(api_client, f"{owner}-{i}", owner, gpus, product, labels={"test": POOL})
    objs = client.CustomObjectsApi(api_client)
    body = objs.create_cluster_custom_object(GROUP, VERSION, PLURAL, pool_body())
    yield body
    objs.delete_cluster_custom_object(GROUP, VERSION, PLURAL, POOL)
    for node in core.list_node(label_selector=f"test={POOL}").items:
        core.delete_node(node.metadata.name)


def status(api_client: Any, name: str = POOL) -> dict[str, Any]:
    obj = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        GROUP, VERSION, PLURAL, name
    )
    result: dict[str, Any] = obj.get("status") or {}
    return result


def members(api_client: Any) -> dict[str, dict[str, Any]]:
    return {m["owner"]: m for m in status(api_client).get("members", [])}


def available(api_client: Any) -> dict[str, int]:
    return {o: m["availableGPUs"] for o, m in members(api_client).items()}


def patch_pool(api_client: Any, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(api_client).patch_cluster_custom_object(
        GROUP, VERSION, PLURAL, POOL, {"spec": spec}
    )


def test_capacity_per_owner_and_class(pool: Any, api_client: Any, operator: Any) -> None:
    want = {"ada": 32, "bo": 16, "cy": 16}
    try:
        wait_for(lambda: available(api_client) == want, 10, "capacity per owner")
    except AssertionError:
        print(status(api_client), operator.log_tail())
        raise
    st = status(api_client)
    assert st["totalGPUs"] == 64
    assert st["totalUnits"] == pytest.approx(48 + 16 * 0.25)
    assert {c["gpuClass"]: c["gpus"] for c in st["capacity"]} == {"H100": 48, "L4": 16}
    assert st["largestNodeGPUs"] == {"H100": 8, "L4": 4}
    assert members(api_client)["ada"]["gpusByClass"] == {"H100": 32}
    ready = {c["type"]: c for c in st["conditions"]}["Ready"]
    assert ready["status"] == "True"


def condition_owners(api_client: Any) -> dict[str, set[str]]:
    """Per condition type of the pool's status, the field managers that own it."""
    obj = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        GROUP, VERSION, PLURAL, POOL
    )
    owners: dict[str, set[str]] = {}
    for entry in obj["metadata"].get("managedFields") or []:
        listed = ((entry.get("fieldsV1") or {}).get("f:status") or {}).get("f:conditions") or {}
        for key in listed:
            if key.startswith("k:"):
                kind = key.split('"type":"', 1)[1].split('"', 1)[0]
                owners.setdefault(kind, set()).add(entry["manager"])
    return owners


def test_each_condition_has_one_writer_and_none_drops_another(pool: Any, api_client: Any) -> None:
    """The pool daemon and the admission loop share status.conditions: each owns its types,
    and a write of one (here the daemon's, after a cordon) keeps the other's."""
    want = {
        "Ready": {"polyculture-pool"},
        "Degraded": {"polyculture-pool"},
        "Valid": {"polyculture-pool"},
        "Overcommitted": {"polyculture-pool"},
        "BackendReady": {"polyculture-admission"},
    }
    wait_for(lambda: condition_owners(api_client) == want, 10, "one writer per condition")
    core = client.CoreV1Api(api_client)
    core.patch_node("cy-0", {"spec": {"unschedulable": True}})
    try:
        wait_for(lambda: available(api_client)["cy"] == 12, what="cordon")
        types = {c["type"] for c in status(api_client)["conditions"]}
        assert types == set(want)
        assert condition_owners(api_client) == want
    finally:
        core.patch_node("cy-0", {"spec": {"unschedulable": False}})
    wait_for(lambda: available(api_client)["cy"] == 16, what="uncordon")
    assert {c["type"] for c in status(api_client)["conditions"]} == set(want)


def test_node_changes_show_within_five_seconds(pool: Any, api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    wait_for(lambda: available(api_client)["bo"] == 16, 10, "initial bo")
    core.patch_node("bo-0", {"spec": {"unschedulable": True}})  # cordon
    wait_for(lambda: available(api_client)["bo"] == 12, what="cordon")
    core.patch_node("bo-0", {"spec": {"unschedulable": False}})
    wait_for(lambda: available(api_client)["bo"] == 16, what="uncordon")
    # relabel: bo-1 changes hands to ada
    core.patch_node("bo-1", {"metadata": {"labels": {"polyculture.dev/owner": "ada"}}})
    wait_for(lambda: available(api_client) == {"ada": 36, "bo": 12, "cy": 16}, what="relabel")
    core.patch_node("bo-1", {"metadata": {"labels": {"polyculture.dev/owner": "bo"}}})
    # GPU count change (a GPU fell off the bus: the device plugin reports fewer)
    gpu = {"nvidia.com/gpu": "2"}
    core.patch_node_status("bo-2", {"status": {"allocatable": gpu, "capacity": gpu}})
    wait_for(lambda: available(api_client)["bo"] == 14, what="gpu count")
    # a new node of bo appears, then is deleted
    create_gpu_node(api_client, "bo-9", "bo", 4, H100, labels={"test": POOL})
    wait_for(lambda: available(api_client)["bo"] == 18, what="node added")
    core.delete_node("bo-9")
    wait_for(lambda: available(api_client)["bo"] == 14, what="node deleted")
    four = {"nvidia.com/gpu": "4"}
    core.patch_node_status("bo-2", {"status": {"allocatable": four, "capacity": four}})
    wait_for(lambda: available(api_client)["bo"] == 16, what="gpu count back")


def test_node_matched_by_two_members_is_counted_once(pool: Any, api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    wait_for(lambda: status(api_client).get("totalGPUs") == 64, 10, "steady")
    # a new member "dup" selects by a label that one of ada's nodes also carries
    core.patch_node("ada-3", {"metadata": {"labels": {"also": "cy"}}})
    body = pool_body()
    body["spec"]["members"].append({"owner": "dup", "nodeSelector": {"also": "cy"}})
    patch_pool(api_client, body["spec"])
    st = wait_for(
        lambda: (s := status(api_client)).get("conflicts") and s, what="conflict reported"
    )
    assert st["totalGPUs"] == 64  # counted once
    [conflict] = st["conflicts"]
    assert conflict["node"] == "ada-3" and conflict["countedIn"] == "member/ada"
    degraded = {c["type"]: c for c in st["conditions"]}["Degraded"]
    assert degraded["status"] == "True" and "ada-3" in degraded["message"]
    patch_pool(api_client, pool_body()["spec"])
    wait_for(lambda: not status(api_client).get("conflicts"), what="conflict cleared")


def test_node_in_two_pools_is_reported_on_both_and_counted_once(pool: Any, api_client: Any) -> None:
    objs = client.CustomObjectsApi(api_client)
    wait_for(lambda: status(api_client).get("totalGPUs") == 64, 10, "steady")
    second = pool_body()
    second["metadata"]["name"] = "second"
    second["spec"]["members"] = [
        {"owner": "cy", "nodeSelector": {"polyculture.dev/owner": "cy", "test": POOL}}
    ]
    objs.create_cluster_custom_object(GROUP, VERSION, PLURAL, second)
    try:
        st2 = wait_for(lambda: (s := status(api_client, "second")).get("conflicts") and s)
        st1 = wait_for(lambda: (s := status(api_client)).get("conflicts") and s)
        assert st2["totalGPUs"] == 0 and st1["totalGPUs"] == 64  # the older pool counts them
        assert {c["node"] for c in st1["conflicts"]} == {f"cy-{i}" for i in range(4)}
        assert all(c["countedIn"] == f"pool/{POOL}" for c in st2["conflicts"])
    finally:
        objs.delete_cluster_custom_object(GROUP, VERSION, PLURAL, "second")
    wait_for(lambda: not status(api_client).get("conflicts"), what="conflict cleared")


def events_for(api_client: Any, reason: str) -> list[Any]:
    evs = client.CoreV1Api(api_client).list_event_for_all_namespaces(
        field_selector=f"involvedObject.name={POOL},reason={reason}"
    )
    return list(evs.items)


def test_reclaim_removes_exactly_that_owners_capacity(pool: Any, api_client: Any) -> None:
    wait_for(lambda: available(api_client) == {"ada": 32, "bo": 16, "cy": 16}, 10, "steady")
    patch_pool(api_client, pool_body(bo={"reclaim": True})["spec"])
    wait_for(lambda: available(api_client) == {"ada": 32, "bo": 0, "cy": 16}, what="reclaim")
    assert members(api_client)["bo"]["unavailableReason"] == "Reclaimed"
    wait_for(lambda: events_for(api_client, "Reclaimed"), what="Reclaimed event")
    patch_pool(api_client, pool_body()["spec"])
    wait_for(lambda: available(api_client)["bo"] == 16, what="lending again")


def test_lending_window_follows_the_operator_clock(
    pool: Any, api_client: Any, operator: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    start = (now + timedelta(hours=2)).strftime("%H:%M")
    end = (now + timedelta(hours=4)).strftime("%H:%M")
    window = {"from": start, "to": end, "timeZone": "UTC"}
    patch_pool(api_client, pool_body(cy={"windows": [window]})["spec"])
    wait_for(lambda: available(api_client)["cy"] == 0, what="window not yet open")
    assert members(api_client)["cy"]["unavailableReason"] == "OutsideLendingWindow"
    operator.move_clock(3 * 3600)  # inside the window
    try:
        wait_for(lambda: available(api_client)["cy"] == 16, what="window open")
        assert available(api_client)["ada"] == 32
        operator.move_clock(2 * 3600)  # past its end
        wait_for(lambda: available(api_client)["cy"] == 0, what="window closed")
        wait_for(lambda: events_for(api_client, "OutsideLendingWindow"), what="window event")
    finally:
        operator.move_clock(-5 * 3600)
        patch_pool(api_client, pool_body()["spec"])
    wait_for(lambda: available(api_client)["cy"] == 16, what="no window")


def test_ledger_grows_only_for_available_gpus_and_survives_restart(
    pool: Any, api_client: Any, operator: Any
) -> None:
    wait_for(lambda: available(api_client) == {"ada": 32, "bo": 16, "cy": 16}, 10, "steady")
    patch_pool(api_client, pool_body(bo={"reclaim": True})["spec"])
    wait_for(lambda: available(api_client)["bo"] == 0, what="bo reclaimed")
    before = {o: m["gpuSecondsProvided"] for o, m in members(api_client).items()}
    operator.move_clock(40)  # past the ledger flush interval: the ledger is written
    after = wait_for(
        lambda: (
            (g := {o: m["gpuSecondsProvided"] for o, m in members(api_client).items()})["ada"]
            >= before["ada"] + 32 * 40
            and g
        ),
        what="ledger flush",
    )
    assert after["bo"] == before["bo"]  # reclaimed: provides nothing
    assert after["ada"] - before["ada"] < 32 * 60  # 40 s moved plus a little real time
    operator.restart()
    operator.move_clock(40)
    again = wait_for(
        lambda: (
            (g := {o: m["gpuSecondsProvided"] for o, m in members(api_client).items()})["ada"]
            >= after["ada"] + 32 * 40
            and g
        ),
        timeout=30,
        what="ledger after restart",
    )
    assert again["cy"] >= after["cy"] > before["cy"]
    patch_pool(api_client, pool_body()["spec"])


def test_unhealthy_gpus_reported_by_the_agent_leave_the_capacity(
    pool: Any, api_client: Any
) -> None:
    core = client.CoreV1Api(api_client)
    wait_for(lambda: available(api_client)["ada"] == 32, 10, "steady")
    sick = {
        "polyculture.dev/gpu.checked": "true",
        "polyculture.dev/gpu.healthy-count": "5",
        "polyculture.dev/gpu.health": "degraded",
    }
    core.patch_node("ada-0", {"metadata": {"labels": sick}})
    wait_for(lambda: available(api_client)["ada"] == 29, what="unhealthy gpus")
    st = status(api_client)
    assert st["unhealthyGPUs"] == 3
    degraded = {c["type"]: c for c in st["conditions"]}["Degraded"]
    assert degraded["status"] == "True" and degraded["reason"] == "UnhealthyGPUs"
    core.patch_node("ada-0", {"metadata": {"labels": dict.fromkeys(sick)}})
    wait_for(lambda: available(api_client)["ada"] == 32, what="healthy again")


def test_an_ecc_error_seen_by_the_agent_leaves_the_pools_capacity(
    pool: Any, api_client: Any, control_plane: Any, fake_nvml: Any
) -> None:
    """The whole chain: NVML (fake) -> agent -> Node labels -> operator -> pool status."""
    from polyculture.agent import cli

    wait_for(lambda: available(api_client)["ada"] == 32, 10, "steady")
    create_gpu_node(api_client, "ada-h200", "ada", 8, "NVIDIA-H200", labels={"test": POOL})
    args = ["--node", "ada-h200", "--kubeconfig", str(control_plane.kubeconfig)]
    args += ["--metrics-port", "0", "--once"]
    try:
        wait_for(lambda: available(api_client)["ada"] == 40, what="new node counted")
        nvml = fake_nvml.h200(gpus=8)
        nvml.ecc_error(3, volatile=1)
        assert cli.main(args, nvml=nvml) == 0
        wait_for(lambda: available(api_client)["ada"] == 39, what="one GPU unhealthy")
        assert status(api_client)["unhealthyGPUs"] == 1
        assert cli.main(args, nvml=fake_nvml.h200(gpus=8)) == 0  # repaired
        wait_for(lambda: available(api_client)["ada"] == 40, what="healthy again")
    finally:
        client.CoreV1Api(api_client).delete_node("ada-h200")
    wait_for(lambda: available(api_client)["ada"] == 32, what="node gone")
