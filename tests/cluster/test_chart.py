"""The Helm chart: lint-clean, renders with default and non-default values, and everything it
renders passes a server-side dry run on the local API server; its user roles aggregate.

Covers: `helm lint --strict`; the values schema refuses bad values by name; one active
operator (more replicas need leader election, which the Deployment then passes); the operator
flags the chart passes are ones `polyculture run` parses; the PrometheusRule and the dashboard
ConfigMap carry files/alerts.yaml and files/dashboard.json; `kubectl apply --dry-run=server`
of the default and of a non-default rendering (ServiceMonitor and PrometheusRule against the
Prometheus Operator's own CRDs); a namespace's `edit` user may manage CommunityModels there
but no ComputePool (SubjectAccessReview against the aggregated roles).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from polyculture.controlplane import ControlPlane
from polyculture.controlplane.prometheus import operator_crds
from polyculture.controlplane.waiting import wait_for

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "polyculture"
NON_DEFAULT = [
    "operator.replicas=3",
    "operator.leaderElection.leaseDuration=12",
    "operator.metrics.port=9100",
    "operator.logLevel=debug",
    "operator.clusterStartTimeout=900",
    "operator.podDisruptionBudget.enabled=true",
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.serviceMonitor.labels.release=kube-prometheus",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.dashboard.enabled=false",
    "userRoles.aggregate=false",
    "image.repository=registry.example.org/polyculture",
    "image.tag=0.1.0-rc1",
    "agent.enabled=false",
]


def helm(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cp.binaries.helm), *args], capture_output=True, text=True, check=False, timeout=120
    )


def render(cp: ControlPlane, namespace: str, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "pc", str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    out = helm(cp, *args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kind(docs: list[dict[str, Any]], k: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == k]


def test_lint_strict(control_plane: ControlPlane) -> None:
    out = helm(control_plane, "lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr
    out = helm(
        control_plane,
        "lint",
        "--strict",
        str(CHART),
        *[a for s in NON_DEFAULT for a in ("--set", s)],
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("operator.replicas=many", "/operator/replicas"),
        ("operator.leaderElection.leaseDuration=1", "/operator/leaderElection/leaseDuration"),
        ("operator.clusterStartTimeout=0", "/operator/clusterStartTimeout"),
        ("monitoring.serviceMonitor.interval=soon", "/monitoring/serviceMonitor/interval"),
        ("operator.replicaz=2", "replicaz"),
        ("operator.leaderElection.enabled=false", "needs operator.leaderElection.enabled"),
    ],
)
def test_bad_values_are_refused_by_name(
    control_plane: ControlPlane, bad: str, message: str
) -> None:
    out = helm(control_plane, "template", "pc", str(CHART), "--set", bad)
    assert out.returncode != 0
    assert message in out.stderr


def test_default_rendering_runs_one_active_operator_of_the_built_image(
    control_plane: ControlPlane,
) -> None:
    from polyculture.handlers.main import parse_args

    docs = render(control_plane, "polyculture-system")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (deployment,) = kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/polyculture/polyculture:{chart['appVersion']}"
    assert deployment["spec"]["replicas"] == 2
    args = [a.replace("$(POD_NAMESPACE)", "polyculture-system") for a in container["args"]]
    assert args[0] == "run"
    parsed = parse_args(args[1:])
    assert parsed.leader_election and parsed.leader_election_namespace == "polyculture-system"
    assert parsed.metrics_port == 9741
    assert parsed.cluster_start_timeout == 300  # the operator's own default, said explicitly
    roles = {r["metadata"]["name"]: r for r in kind(docs, "Role")}
    assert {r["resources"][0] for r in roles["pc-operator-leader"]["rules"]} == {"leases"}
    assert {r["resources"][0] for r in roles["pc-operator-ledger"]["rules"]} == {"configmaps"}
    assert kind(docs, "PodDisruptionBudget")[0]["spec"]["minAvailable"] == 1
    (service,) = kind(docs, "Service")
    assert service["spec"]["ports"][0]["port"] == 9741
    assert not kind(docs, "ServiceMonitor") and not kind(docs, "PrometheusRule")
    dashboards = kind(docs, "ConfigMap")
    assert json.loads(dashboards[0]["data"]["polyculture.json"]) == json.loads(
        (CHART / "files" / "dashboard.json").read_text()
    )


def test_non_default_rendering(control_plane: ControlPlane) -> None:
    docs = render(control_plane, "ops", *NON_DEFAULT)
    (deployment,) = kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.org/polyculture:0.1.0-rc1"
    assert deployment["spec"]["replicas"] == 3
    assert "--lease-duration=12" in container["args"] and "--verbose" in container["args"]
    assert "--cluster-start-timeout=900" in container["args"]
    (monitor,) = kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    (rule,) = kind(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert not kind(docs, "ConfigMap") and not kind(docs, "DaemonSet")
    assert not [d for d in kind(docs, "ClusterRole") if "aggregate" in json.dumps(d)]


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane) -> None:
    files = operator_crds()
    control_plane.kubectl("apply", "--server-side", *[a for f in files for a in ("-f", str(f))])
    # a CRD just applied can be missing from a busy API server's answer for a moment: retry
    deadline = time.monotonic() + 120
    while True:
        proc = control_plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
            check=False,
        )
        if proc.returncode == 0:
            break
        assert time.monotonic() < deadline, f"monitoring CRDs not Established: {proc.stderr}"
        time.sleep(2)


@pytest.mark.parametrize("sets", [[], NON_DEFAULT], ids=["default", "non-default"])
def test_server_side_dry_run(
    control_plane: ControlPlane,
    crds: object,
    api_client: Any,
    monitoring_crds: None,
    tmp_path: Path,
    sets: list[str],
) -> None:
    namespace = f"chart-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
    try:
        docs = render(control_plane, namespace, *sets)
        rendered = tmp_path / "rendered.yaml"
        rendered.write_text(yaml.safe_dump_all(docs))
        out = control_plane.kubectl(
            "apply",
            "--dry-run=server",
            "--server-side",
            "--field-manager=helm",
            "-f",
            str(rendered),
        )
        assert out.stdout.count("(server dry run)") == len(docs), out.stdout + out.stderr
    finally:
        client.CoreV1Api(api_client).delete_namespace(namespace)


@pytest.fixture
def installed_roles(
    control_plane: ControlPlane, crds: object, api_client: Any, tmp_path: Path
) -> Iterator[str]:
    docs = [d for d in render(control_plane, "polyculture-system") if d["kind"] == "ClusterRole"]
    roles = [d for d in docs if "polyculture-" in d["metadata"]["name"]]
    rbac = client.RbacAuthorizationV1Api(api_client)
    for role in roles:
        role["metadata"]["name"] += f"-{uuid.uuid4().hex[:4]}"
        rbac.create_cluster_role(role)
    namespace = f"edit-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "editors"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [{"kind": "User", "name": "ada", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    try:
        yield namespace
    finally:
        client.CoreV1Api(api_client).delete_namespace(namespace)
        for role in roles:
            rbac.delete_cluster_role(role["metadata"]["name"])


def allowed(api: Any, namespace: str | None, resource: str, verb: str) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "spec": {
                "user": "ada",
                "resourceAttributes": {
                    "group": "polyculture.dev",
                    "resource": resource,
                    "verb": verb,
                    **({"namespace": namespace} if namespace else {}),
                },
            }
        }
    )
    return bool(review.status.allowed)


def test_edit_users_manage_models_but_never_pools(installed_roles: str, api_client: Any) -> None:
    ns = installed_roles
    # the aggregation controller folds the labelled roles into `edit` within seconds
    wait_for(lambda: allowed(api_client, ns, "communitymodels", "create"), 30, "edit aggregates")
    for verb in ("get", "list", "update", "patch", "delete"):
        assert allowed(api_client, ns, "communitymodels", verb), verb
    assert not allowed(api_client, "default", "communitymodels", "create")
    for verb in ("create", "update", "patch", "delete", "get"):
        assert not allowed(api_client, None, "computepools", verb), verb
        assert not allowed(api_client, ns, "computepools", verb), verb
