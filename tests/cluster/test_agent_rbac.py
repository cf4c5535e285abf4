"""The chart's node-agent identity is least privilege, proven with a real pod-bound token.

The agent templates (``charts/polyculture/templates/agent-*.yaml``) are rendered with the
pinned helm and applied to the real API server (the DaemonSet too, so its manifest is
validated). A pod of the agent's service account is placed on one kwok node and a token is
requested for that pod, as the kubelet would: the API server then names the node in the
token's user extra. Covers: with that token the agent labels its own Node; writing another
Node is refused; on its own Node it cannot change a foreign label, an annotation that is not
its own, or the spec (cordon); it cannot list or delete Nodes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client import ApiException

from polyculture.agent import cli
from polyculture.controlplane import ControlPlane, locate
from polyculture.controlplane.nodes import create_gpu_node

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "charts" / "polyculture" / "templates"
RELEASE = "rbac"
AGENT = f"{RELEASE}-agent"


def render_agent_templates(namespace: str, workdir: Path) -> str:
    # Only the agent's templates, in a minimal chart: this test must not depend on the rest of
    # the chart (or its values) being renderable.
    chart = workdir / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: polyculture\nversion: 0.1.0\n")
    for template in TEMPLATES.glob("agent-*.yaml"):
        shutil.copy(template, chart / "templates" / template.name)
    return subprocess.run(
        [str(locate().helm), "template", RELEASE, str(chart), "--namespace", namespace],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def retry_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def agent_kubeconfig(
    control_plane: ControlPlane, api_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str, str]]:
    """(kubeconfig of the agent's pod on node A, node A, node B)."""
    workdir = tmp_path_factory.mktemp("agent-rbac")
    namespace = f"agent-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(cast(Any, {"metadata": {"name": namespace}}))
    rendered = render_agent_templates(namespace, workdir)
    control_plane.kubectl("apply", "-f", "-", input=rendered)
    own, other = (f"agent-{uuid.uuid4().hex[:6]}" for _ in range(2))
    for name in (own, other):
        create_gpu_node(api_client, name, owner="acme", gpus=8)

    pod: Any = core.create_namespaced_pod(
        namespace,
        cast(
            Any,
            {
                "metadata": {"name": "agent"},
                "spec": {
                    "nodeName": own,
                    "serviceAccountName": AGENT,
                    "containers": [{"name": "agent", "image": "polyculture:test"}],
                },
            },
        ),
    )
    token_request: Any = core.create_namespaced_service_account_token(
        AGENT,
        namespace,
        cast(Any, {
            "spec": {
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "agent",
                                   "uid": pod.metadata.uid},
                "expirationSeconds": 3600,
            }
        }),
    )  # fmt: skip
    token: str = token_request.status.token
    kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
    kubeconfig["users"] = [{"name": kubeconfig["users"][0]["name"], "user": {"token": token}}]
    path = workdir / "agent.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))

    # The admission policy starts enforcing a moment after it is created: wait for it with a
    # harmless probe (a label on the other node) before any test relies on it.
    probe = {"metadata": {"labels": {"polyculture.dev/rbac-probe": "x"}}}
    retry_until(lambda: denied(lambda: agent_core(path).patch_node(other, probe)) is not None)
    try:
        yield path, own, other
    finally:
        control_plane.kubectl("delete", "-f", "-", "--wait=false", input=rendered, check=False)
        for name in (own, other):
            core.delete_node(name)
        core.delete_namespace(namespace)


def agent_core(kubeconfig: Path) -> client.CoreV1Api:
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api)


def labels_of(api_client: Any, node: str) -> dict[str, str]:
    got: Any = client.CoreV1Api(api_client).read_node(node)
    return got.metadata.labels or {}


def denied(call: Callable[[], Any]) -> ApiException | None:
    try:
        call()
    except ApiException as error:
        return error
    return None


def test_the_agent_labels_its_own_node(
    fake_nvml: Any, agent_kubeconfig: tuple[Path, str, str], api_client: Any
) -> None:
    kubeconfig, own, _ = agent_kubeconfig
    args = ["--node", own, "--once", "--kubeconfig", str(kubeconfig), "--metrics-port", "0"]
    assert cli.main(args, nvml=fake_nvml.h200(gpus=8)) == 0
    assert labels_of(api_client, own)["nvidia.com/gpu.product"] == "NVIDIA-H200"


def test_the_agent_cannot_write_another_node(
    fake_nvml: Any, agent_kubeconfig: tuple[Path, str, str], api_client: Any
) -> None:
    kubeconfig, _, other = agent_kubeconfig
    core = agent_core(kubeconfig)
    patch = {"metadata": {"labels": {"polyculture.dev/gpu.health": "ok"}}}

    error = denied(lambda: core.patch_node(other, patch))
    assert error is not None and "only the Node its pod runs on" in str(error.body)
    args = ["--node", other, "--once", "--kubeconfig", str(kubeconfig), "--metrics-port", "0"]
    assert cli.main(args, nvml=fake_nvml.h200(gpus=8)) == cli.EXIT_PUBLISH_FAILED
    assert "polyculture.dev/gpu.health" not in labels_of(api_client, other)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"metadata": {"labels": {"polyculture.dev/owner": "mallory"}}}, "its own labels"),
        ({"metadata": {"labels": {"node-role.kubernetes.io/x": ""}}}, "its own labels"),
        ({"metadata": {"annotations": {"kwok.x-k8s.io/node": None}}}, "its own annotation"),
        ({"spec": {"unschedulable": True}}, "spec"),
    ],
    ids=["foreign label", "new foreign label", "foreign annotation", "cordon"],
)
def test_on_its_own_node_the_agent_changes_only_its_keys(
    agent_kubeconfig: tuple[Path, str, str], patch: dict[str, Any], message: str
) -> None:
    kubeconfig, own, _ = agent_kubeconfig
    core = agent_core(kubeconfig)

    error = denied(lambda: core.patch_node(own, patch))
    assert error is not None and message in str(error.body), error


def test_the_agent_cannot_list_or_delete_nodes(agent_kubeconfig: tuple[Path, str, str]) -> None:
    kubeconfig, own, _ = agent_kubeconfig
    core = agent_core(kubeconfig)
    listing = denied(core.list_node)
    deletion = denied(lambda: core.delete_node(own))
    assert listing is not None and listing.status == 403
    assert deletion is not None and deletion.status == 403
