"""The local control plane is the real thing.

Covers: server version and /readyz; a CRD with a status subresource round-trips an object;
the real kube-scheduler binds a GPU pod to a kwok node (and leaves an impossible one Pending
with its reason); kube-controller-manager garbage-collects dependents; RBAC denies a
ServiceAccount without roles; teardown — by stop() and by the starter dying — leaves no process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from polyculture.controlplane import ControlPlane, pid_alive
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.waiting import wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def namespace(api_client: Any) -> Iterator[str]:
    name = f"cp-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def test_server_reports_pinned_version_and_is_ready(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.37.2"
    status, body = control_plane.get("/readyz")
    assert (status, body) == (200, b"ok")


def test_custom_object_round_trips_with_status_subresource(api_client: Any) -> None:
    group, plural = "widgets.test.polyculture.dev", "gadgets"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"phase": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(crd)
    try:
        wait_for(
            lambda: any(
                c.type == "Established" and c.status == "True"
                for c in (
                    ext.read_custom_resource_definition(f"{plural}.{group}").status.conditions or []
                )
            )
        )
        objs = client.CustomObjectsApi(api_client)
        body = {
            "apiVersion": f"{group}/v1",
            "kind": "Gadget",
            "metadata": {"name": "g1"},
            "spec": {"size": 3},
            "status": {"phase": "ignored-on-create"},
        }
        created = wait_for(lambda: _try_create(objs, group, plural, body))
        assert created["spec"] == {"size": 3}
        # the status subresource: status is dropped on create, written only through /status
        assert "status" not in created
        created["status"] = {"phase": "Ready"}
        objs.replace_namespaced_custom_object_status(group, "v1", "default", plural, "g1", created)
        got = objs.get_namespaced_custom_object(group, "v1", "default", plural, "g1")
        assert got["spec"] == {"size": 3} and got["status"] == {"phase": "Ready"}
        # and a spec write does not touch status
        got["spec"]["size"] = 4
        got["status"] = {"phase": "Overwritten?"}
        objs.replace_namespaced_custom_object(group, "v1", "default", plural, "g1", got)
        again = objs.get_namespaced_custom_object(group, "v1", "default", plural, "g1")
        assert again["spec"] == {"size": 4} and again["status"] == {"phase": "Ready"}
    finally:
        ext.delete_custom_resource_definition(f"{plural}.{group}")


def _try_create(objs: Any, group: str, plural: str, body: dict[str, Any]) -> Any:
    try:
        return objs.create_namespaced_custom_object(group, "v1", "default", plural, body)
    except ApiException as err:
        if err.status == 404:  # discovery not caught up with the new CRD yet
            return None
        raise


def _gpu_pod(name: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.invalid/trainer:1",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
            "tolerations": [{"operator": "Exists"}],
        },
    }


def test_scheduler_binds_gpu_pod_to_fake_node_and_kwok_runs_it(
    api_client: Any, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    node = f"gpu-{namespace}"
    create_gpu_node(api_client, node, owner="alice", gpus=4)
    try:
        wait_for(lambda: _node_ready(core, node))
        core.create_namespaced_pod(namespace, _gpu_pod("fits", 2))
        core.create_namespaced_pod(namespace, _gpu_pod("too-big", 64))
        pod = wait_for(
            lambda: (
                (p := core.read_namespaced_pod("fits", namespace)).status.phase == "Running" and p
            )
        )
        assert pod.spec.node_name == node

        def unschedulable() -> Any:
            conds = core.read_namespaced_pod("too-big", namespace).status.conditions or []
            return next((c for c in conds if c.reason == "Unschedulable"), None)

        cond = wait_for(unschedulable)
        assert "Insufficient nvidia.com/gpu" in cond.message
        assert core.read_namespaced_pod("too-big", namespace).status.phase == "Pending"
    finally:
        core.delete_node(node)


def _node_ready(core: Any, name: str) -> bool:
    conds = core.read_node(name).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conds)


def test_deleting_owner_garbage_collects_dependents(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [ref]}}
    )
    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(gone, timeout=60)


def test_rbac_denies_service_account_without_roles(
    control_plane: ControlPlane, api_client: Any, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = control_plane.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    status, body = control_plane.get(f"/api/v1/namespaces/{namespace}/pods", token=token)
    assert status == 403, body
    assert f"system:serviceaccount:{namespace}:nobody" in body.decode()
    # the same path with the admin token is allowed: the 403 is RBAC, not a broken request
    assert control_plane.get(f"/api/v1/namespaces/{namespace}/pods")[0] == 200


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    cp = ControlPlane(run_dir=tmp_path / "cp")
    cp.start()
    pids = cp.pids()
    assert len(pids) == 5 and all(pid_alive(p) for p in pids.values())
    cp.stop()
    assert not [name for name, pid in pids.items() if pid_alive(pid)]


def test_control_plane_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A crashed test run (SIGKILL: no finally, no atexit) must not leave orphans."""
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from polyculture.controlplane import ControlPlane
        cp = ControlPlane(run_dir=Path({str(tmp_path / "cp")!r}))
        cp.start()
        print(json.dumps(cp.pids()), flush=True)
        time.sleep(600)
        """
    )
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        pids: dict[str, int] = json.loads(starter.stdout.readline())
        assert all(pid_alive(p) for p in pids.values())
    finally:
        starter.kill()
        starter.wait()
    wait_for(lambda: not any(pid_alive(p) for p in pids.values()), timeout=15)
