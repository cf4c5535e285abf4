"""The chart's RBAC is enough for the operator, and no more than it needs.

The chart is rendered with the pinned helm, its operator ServiceAccount, ClusterRole and
binding are applied to the real API server, and the operator process runs with that account's
token: it must keep a pool's status and judge a model, and the ``kubernetes`` Ray backend must
create, watch, adopt and delete a cluster's Pods, Service and Secret with it. The same token
must be refused what the operator never does (delete nodes, list or change secrets, change or
exec into Pods, write a pool's spec).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from polyculture.api.compute_pool import RaySettings
from polyculture.controlplane import ControlPlane
from polyculture.controlplane.manifests import compute_pool, member, training_model
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.waiting import wait_for
from polyculture.kube.ledger_store import NAMESPACE_ENV
from polyculture.ray import NodePlacement, Placement, WorkloadRef
from polyculture.ray.kubernetes import KubernetesBackend

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = "polyculture.dev", "v1alpha1"
RELEASE, NAMESPACE = "pc", "polyculture-system"


def render_chart(cp: ControlPlane) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            str(cp.binaries.helm),
            "template",
            RELEASE,
            str(REPO / "charts" / "polyculture"),
            "--namespace",
            NAMESPACE,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def chart_operator(
    control_plane: ControlPlane,
    crds: object,
    api_client: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OperatorProcess, str]]:
    docs = render_chart(control_plane)
    # the operator's account, its ClusterRole, and its Roles in its own namespace (ledger, lease)
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    rbac = [
        d
        for d in docs
        if d["kind"] in wanted and d["metadata"]["name"].startswith(f"{RELEASE}-operator")
    ]
    assert {d["kind"] for d in rbac} == wanted
    control_plane.kubectl("create", "namespace", NAMESPACE, check=False)
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    token = control_plane.kubectl(
        "create", "token", f"{RELEASE}-operator", "-n", NAMESPACE, "--duration=2h"
    ).stdout.strip()
    run_dir = tmp_path_factory.mktemp("chart-operator")
    admin = yaml.safe_load(control_plane.kubeconfig.read_text())
    admin["users"] = [{"name": "operator", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "operator"
    kubeconfig = run_dir / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(admin))
    op = OperatorProcess(kubeconfig, run_dir)
    # in a Pod the operator reads its namespace from the service account; here it is told
    os.environ[NAMESPACE_ENV] = NAMESPACE
    try:
        op.start()
    finally:
        os.environ.pop(NAMESPACE_ENV, None)
    try:
        yield op, token
    finally:
        op.stop()
        # refusals of the chart's Role; a namespace being deleted refuses new Events to anyone
        refused = [
            line
            for line in op.log.read_text().splitlines()
            if "Forbidden" in line and "NamespaceTerminating" not in line
        ]
        assert not refused, op.log_tail()


def test_operator_works_with_the_charts_role(chart_operator: Any, api_client: Any) -> None:
    op, _ = chart_operator
    tag = uuid.uuid4().hex[:6]
    objs = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    create_gpu_node(api_client, f"rbac-{tag}", "ada", 4, labels={"rbac": tag})
    pool = compute_pool(
        f"rbac-{tag}", [member("ada", {"rbac": tag}, reclaim=False)], ["default"], backend=None
    )
    objs.create_cluster_custom_object(GROUP, VERSION, "computepools", pool)
    model = training_model(f"rbac-{tag}", "missing")
    objs.create_namespaced_custom_object(GROUP, VERSION, "default", "communitymodels", model)
    try:

        def total() -> Any:
            st = objs.get_cluster_custom_object(GROUP, VERSION, "computepools", f"rbac-{tag}")
            return (st.get("status") or {}).get("totalGPUs") == 4

        wait_for(total, what=f"pool status by the chart's account\n{op.log_tail()}")
        # the reclaim Event is posted with the chart's account too
        pool["spec"]["members"][0]["reclaim"] = True
        objs.patch_cluster_custom_object(
            GROUP, VERSION, "computepools", f"rbac-{tag}", {"spec": pool["spec"]}
        )

        def reclaim_event() -> Any:
            evs = core.list_event_for_all_namespaces(
                field_selector=f"involvedObject.name=rbac-{tag},reason=Reclaimed"
            )
            return evs.items

        wait_for(reclaim_event, what="Reclaimed event")

        def invalid() -> Any:
            m = objs.get_namespaced_custom_object(
                GROUP, VERSION, "default", "communitymodels", f"rbac-{tag}"
            )
            return (m.get("status") or {}).get("phase") == "Invalid"

        wait_for(invalid, what="model judged by the chart's account")
    finally:
        objs.delete_namespaced_custom_object(
            GROUP, VERSION, "default", "communitymodels", f"rbac-{tag}"
        )
        objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", f"rbac-{tag}")
        core.delete_node(f"rbac-{tag}")


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("DELETE", "/api/v1/nodes/anything"),
        ("GET", "/api/v1/namespaces/default/secrets"),
        ("GET", "/api/v1/secrets"),
        ("PUT", "/api/v1/namespaces/default/secrets/anything"),
        ("DELETE", "/api/v1/namespaces/default/pods"),
        ("PUT", "/api/v1/namespaces/default/pods/anything"),
        ("GET", "/api/v1/namespaces/default/pods/anything/exec"),
        ("GET", "/api/v1/namespaces/default/pods/anything/log"),
        ("PUT", "/api/v1/namespaces/default/services/anything"),
        ("GET", "/api/v1/namespaces/default/configmaps"),
        ("GET", "/api/v1/namespaces/default/configmaps/anything"),
        ("GET", "/apis/apps/v1/deployments"),
        ("PUT", "/apis/polyculture.dev/v1alpha1/computepools/anything"),
        ("DELETE", "/apis/polyculture.dev/v1alpha1/namespaces/default/communitymodels/x"),
    ],
)
def test_charts_role_refuses_what_the_operator_never_does(
    chart_operator: Any, control_plane: ControlPlane, verb: str, path: str
) -> None:
    import urllib.error
    import urllib.request

    _, token = chart_operator
    req = urllib.request.Request(
        control_plane.server + path,
        method=verb,
        data=b"{}" if verb in {"PUT", "POST"} else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=control_plane.ssl_context(), timeout=10)
    assert err.value.code == 403


def test_kubernetes_backend_works_with_the_charts_role(
    chart_operator: Any, api_client: Any, tmp_path: Path
) -> None:
    """A cluster's whole life under the chart's account: create, watch, adopt, tear down."""
    op, _ = chart_operator
    tag = uuid.uuid4().hex[:6]
    core = client.CoreV1Api(api_client)
    objs = client.CustomObjectsApi(api_client)
    namespace, node = f"rbac-{tag}", f"rbac-ray-{tag}"
    core.create_namespace({"metadata": {"name": namespace}})
    create_gpu_node(api_client, node, "ada", 4, labels={"rbac": tag})
    model = objs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "communitymodels", training_model("m", f"rbac-{tag}", gpus=2)
    )
    workload = WorkloadRef(namespace=namespace, name="m", uid=model["metadata"]["uid"])
    placement = Placement(
        gpus_per_worker=2, nodes=(NodePlacement(node=node, owner="ada", gpu_class="H100"),)
    )
    as_operator = config.new_client_from_config(config_file=str(op.kubeconfig))
    backends: list[KubernetesBackend] = []
    try:
        first = KubernetesBackend(
            f"rbac-{tag}", RaySettings(), as_operator, token_dir=tmp_path / "a"
        )
        backends.append(first)
        handle = first.create(workload, placement)

        def running() -> Any:
            pods = core.list_namespaced_pod(namespace).items
            return [p for p in pods if p.spec.node_name == node and p.status.phase == "Running"]

        wait_for(running, 60, "the head Pod, created with the chart's account, Running")
        wait_for(lambda: first.status(handle).nodes_alive == 1, 30, "the watch sees it")
        # a restarted operator adopts: it reads the token back from the Secret
        second = KubernetesBackend(
            f"rbac-{tag}", RaySettings(), as_operator, token_dir=tmp_path / "b"
        )
        backends.append(second)
        adopted = second.find(workload)
        assert adopted is not None and adopted.name == handle.name
        assert Path(adopted.token_path).read_text() == Path(handle.token_path).read_text()
        second.teardown(adopted)

        def nothing_left() -> bool:
            return not (
                core.list_namespaced_pod(namespace).items
                or core.list_namespaced_service(namespace).items
                or core.list_namespaced_secret(
                    namespace, label_selector="polyculture.dev/cluster"
                ).items
            )

        wait_for(nothing_left, 60, "teardown with the chart's account")
    finally:
        for backend in backends:
            backend.close()
        as_operator.close()
        core.delete_namespace(namespace)
        core.delete_node(node)
