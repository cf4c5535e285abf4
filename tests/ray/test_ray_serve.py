"""Serving on a real local Ray cluster with Ray Serve, driven through the backend interface.

Covers: the Serve application becomes healthy and its endpoint answers HTTP with the
application's output; the min/max bounds reach Serve's autoscaling (as Serve reports them)
and a new floor moves the replicas, a start outside the bounds is refused;
nothing of the cluster, Serve's proxy and replicas included, listens beyond loopback.

One cluster (head + one node of one owner with 2 fake GPUs) serves the whole module.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from pcray_support import EXAMPLES, figure, listeners, start_cluster

from polyculture.ray import (
    ClusterHandle,
    NodePlacement,
    Placement,
    Role,
    ServeApp,
    ServeReport,
    ServeState,
    WorkloadRef,
    processes,
    wait_for,
)
from polyculture.ray.local import LocalBackend

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(300)]

WORKLOAD = WorkloadRef(namespace="lab-b", name="echo", role=Role.SERVING, uid="77aa")
PLACEMENT = Placement(
    gpus_per_worker=1,
    nodes=(NodePlacement(node="carol-gpu-1", owner="carol", gpu_class="T4", workers=2),),
)
APP = ServeApp(
    name="echo",
    import_path="serve_app:app",
    route_prefix="/lab-b/echo",
    deployment="Model",
    replicas=1,
    min_replicas=1,
    max_replicas=2,
    gpus_per_replica=1,
    runtime_env={"working_dir": str(EXAMPLES)},
)


def expected_answer(text: str) -> dict[str, object]:
    # examples/ray/serve_app.py's answer(), restated: the test must not trust the app
    return {"model": "polyculture-echo", "text": text, "reversed": text[::-1], "length": len(text)}


def ask(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            answer: dict[str, object] = json.load(response)
            return answer
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.fixture(scope="module")
def cluster(backend: LocalBackend) -> Iterator[ClusterHandle]:
    with start_cluster(backend, WORKLOAD, PLACEMENT) as handle:
        yield handle


@pytest.fixture(scope="module")
def deployed(backend: LocalBackend, cluster: ClusterHandle) -> ServeReport:
    backend.deploy_serve(cluster, APP)
    report = wait_for(
        lambda: backend.serve(cluster, APP.name),
        lambda r: r.healthy or r.state is ServeState.DEPLOY_FAILED,
        timeout_s=120,
        what="echo healthy",
    )
    url = f"{report.endpoint}?text=hello"
    wait_for(lambda: ask(url), lambda a: a is not None, timeout_s=30, what="endpoint answers")
    figure("create->Serve endpoint answering", f"{time.time() - cluster.created_at:.1f} s")
    return report


def test_serve_app_becomes_healthy_and_answers_http(deployed: ServeReport) -> None:
    assert deployed.healthy, deployed
    assert deployed.state is ServeState.RUNNING
    assert deployed.running_replicas == deployed.target_replicas == 1
    assert deployed.endpoint.startswith("http://127.0.0.1:")
    assert deployed.endpoint.endswith("/lab-b/echo")

    assert ask(f"{deployed.endpoint}?text=polyculture") == expected_answer("polyculture")
    assert ask(f"{deployed.endpoint}?text=") == expected_answer("")


def test_replicas_change_within_bounds(
    backend: LocalBackend, cluster: ClusterHandle, deployed: ServeReport
) -> None:
    # Serve runs the deployment with the model's bounds (as Serve reports them), from 1
    assert (deployed.min_replicas, deployed.max_replicas) == (1, 2)

    # a floor of 2: Serve's autoscaler itself raises the deployment to 2 replicas
    backend.deploy_serve(cluster, APP.bounded(2, 2))
    two = wait_for(
        lambda: backend.serve(cluster, APP.name),
        lambda r: r.healthy and r.running_replicas == 2,
        timeout_s=120,
        what="2 replicas running",
    )
    assert (two.min_replicas, two.max_replicas, two.target_replicas) == (2, 2, 2)
    assert ask(f"{two.endpoint}?text=ab") == expected_answer("ab")

    with pytest.raises(ValueError, match="outside"):
        APP.scaled(3)  # max_replicas is 2: refused before the cluster is touched

    # the bounds back to 1..2, starting from 1: Serve goes back to one replica
    backend.deploy_serve(cluster, APP)
    back = wait_for(
        lambda: backend.serve(cluster, APP.name),
        lambda r: r.healthy and r.min_replicas == 1 and r.running_replicas == 1,
        timeout_s=120,
        what="bounds 1..2, one replica",
    )
    assert (back.max_replicas, back.target_replicas) == (2, 1), back
    assert ask(f"{back.endpoint}?text=cd") == expected_answer("cd")


def test_missing_application_is_reported(backend: LocalBackend, cluster: ClusterHandle) -> None:
    report = backend.serve(cluster, "no-such-app")
    assert report.state is ServeState.MISSING and not report.healthy


def test_nothing_listens_beyond_loopback_with_serve(
    backend: LocalBackend, cluster: ClusterHandle, deployed: ServeReport
) -> None:
    mine = backend.pids(cluster)
    sockets = [s for s in listeners() if s.pid in mine]
    serve_port = int(deployed.endpoint.split(":")[2].split("/")[0])
    assert any(s.port == serve_port and s.address == "127.0.0.1" for s in sockets)
    replicas = [s for s in sockets if s.process.startswith("ray::ServeRepli")]
    assert replicas, "each replica has its own gRPC server (moved to loopback by serve_loopback)"
    assert [s for s in sockets if not s.loopback] == []
    rss, pss = processes.memory(mine)
    figure(
        f"memory of a head + 1 worker cluster with Serve ({len(mine)} processes)",
        f"RSS sum {rss / 2**30:.2f} GiB, PSS sum {pss / 2**30:.2f} GiB",
    )
