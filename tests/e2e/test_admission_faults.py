"""The admission loop's fault paths, end to end: the operator process, the real control plane,
kwok GPU nodes and real local Ray clusters (``spec.ray.backend: local``).

Covers, each on one-GPU models of a pool of its own:

- the head of a Ray cluster dies under a running training job (its GCS server is killed):
  that attempt is a counted failure, the model is retried on a fresh cluster, and goes
  ``Failed`` once ``maxAttempts`` are used up; never a hang;
- ``maxRuntime`` exceeded ("fail the job after this long"): the job is stopped, its cluster
  torn down, the attempt counted, ``Failed`` at ``maxAttempts``;
- an owner's lending window closes while a model trains: preempted with reason
  ``OwnerReclaim``, drained within the grace period, back to ``Queued``, no attempt counted;
- Serve turns unhealthy after the model was ``Serving``: condition ``Serving=False`` (reason
  ``ServeUnhealthy``) and a Warning Event while the model keeps its GPUs and its endpoint; back
  to ``Serving=True`` once Serve is healthy again; unhealthy for longer than the loop's Serve
  timeout, a counted failure: its cluster torn down, the model requeued.

The operator's clock is moved forward (``OperatorProcess.move_clock``) instead of sleeping.
Everything read is what the operator wrote.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from test_admission import GROUP, LOADED, VERSION, WORKDIR, Cluster, ask, figure

from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.waiting import wait_for
from polyculture.ray import Role, processes

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.ray, pytest.mark.slow]

POOL = "faults-e2e"
OWNERS = ("ada", "bo")  # the second lends only within a window set by the test
COMMUNITY = "faults"
GRACE_S = 30
FAULTY_APP = Path(__file__).resolve().parent / "faulty_serve"
#: the loop's limit for an application that does not become (or stay) healthy
SERVE_TIMEOUT_S = 300


class FaultCluster(Cluster):
    """The admission tests' reads and writes, on this module's pool."""

    pool_name = POOL

    def operator_now(self) -> float:
        """The operator's wall clock (epoch seconds): this machine's, moved by the tests."""
        return time.time() + float(self.op.clock_file.read_text() or 0)

    def condition(self, ns: str, name: str, kind: str) -> dict[str, Any]:
        found = [c for c in self.status(ns, name).get("conditions") or [] if c["type"] == kind]
        return found[0] if found else {}


def pool_body() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComputePool",
        "metadata": {"name": POOL},
        "spec": {
            "members": [
                {"owner": o, "nodeSelector": {"polyculture.dev/owner": o, "test": POOL}}
                for o in OWNERS
            ],
            "communities": [{"name": COMMUNITY}],
            "fairShare": {"preemption": {"minRuntime": "10m", "gracePeriod": f"{GRACE_S}s"}},
            "ray": {"backend": "local"},
        },
    }


def model(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CommunityModel",
        "metadata": {"name": name, "namespace": COMMUNITY},
        "spec": {"pool": POOL, **spec},
    }


def training_model(
    name: str, *, steps: int = 400, max_attempts: int = 3, **training: Any
) -> dict[str, Any]:
    return model(
        name,
        training={
            "entrypoint": f"python train.py --steps {steps} --checkpoint-every 2 "
            "--step-seconds 0.5",
            "runtimeEnv": {"workingDir": WORKDIR},
            "workers": 1,
            "gpusPerWorker": 1,
            "maxAttempts": max_attempts,
            **training,
        },
    )


@pytest.fixture(scope="module")
def cluster(crds: object, operator: OperatorProcess, api_client: Any) -> Iterator[FaultCluster]:
    c = FaultCluster(api_client, operator)
    for owner in OWNERS:
        create_gpu_node(api_client, f"{POOL}-{owner}", owner, 1, labels={"test": POOL})
    c.core.create_namespace({"metadata": {"name": COMMUNITY}})
    c.objs.create_cluster_custom_object(GROUP, VERSION, "computepools", pool_body())
    yield c
    with contextlib.suppress(client.ApiException):
        c.objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", POOL)
    c.core.delete_namespace(COMMUNITY)
    for node in c.core.list_node(label_selector=f"test={POOL}").items:
        c.core.delete_node(node.metadata.name)


def gcs_server(cluster: FaultCluster, ns: str, name: str, role: Role = Role.TRAINING) -> int:
    handle = cluster.cluster_of(ns, name, role)
    assert handle is not None, f"{ns}/{name} has no Ray cluster"
    (pid,) = [
        p for p in cluster.backend().pids(handle) if processes.command_name(p) == "gcs_server"
    ]
    return pid


def released(cluster: FaultCluster, ns: str, name: str) -> None:
    cluster.delete(ns, name)
    wait_for(lambda: cluster.model(ns, name) is None, 120, f"{ns}/{name} deleted")


def test_head_dying_under_a_job_is_a_counted_failure(cluster: FaultCluster) -> None:
    key = (COMMUNITY, "headless")
    cluster.create(training_model(key[1], max_attempts=2))
    cluster.wait_phase(*key, "Training", timeout=LOADED)
    first = cluster.status(*key)
    killed = time.monotonic()
    os.kill(gcs_server(cluster, *key), signal.SIGKILL)

    # the first attempt failed: counted, retried on a fresh cluster as run 2
    wait_for(lambda: cluster.status(*key).get("attempts") == 1, 120, "attempt 1 counted")
    figure("head killed -> attempt counted", f"{time.monotonic() - killed:.1f} s")
    st = cluster.status(*key)
    assert st["phase"] in ("Queued", "Admitted", "Training"), st
    assert "died" in cluster.condition(*key, "Running")["message"], st
    assert "AttemptFailed" in cluster.events(*key)
    cluster.wait_phase(*key, "Training", timeout=LOADED)
    second = cluster.status(*key)
    assert second["run"] == first["run"] + 1
    assert second["rayJobId"].endswith(f"-attempt-{second['run']}")
    assert second["rayJobId"] != first["rayJobId"]

    # the second one dies too: maxAttempts (2) used up
    os.kill(gcs_server(cluster, *key), signal.SIGKILL)
    cluster.wait_phase(*key, "Failed", timeout=120)
    st = cluster.status(*key)
    assert st["attempts"] == 2 and "admission" not in st, st
    assert "attempt 2 of 2 failed" in cluster.condition(*key, "Running")["message"]
    assert cluster.cluster_of(*key) is None, "the dead cluster is torn down"
    assert "Failed" in cluster.events(*key)
    released(cluster, *key)


def test_max_runtime_exceeded_fails_the_job(cluster: FaultCluster) -> None:
    key = (COMMUNITY, "overtime")
    cluster.create(training_model(key[1], max_attempts=1, maxRuntime="10m"))
    cluster.wait_phase(*key, "Training", timeout=LOADED)
    handle = cluster.cluster_of(*key)
    assert handle is not None
    pids = cluster.backend().pids(handle)
    time.sleep(3)
    assert cluster.phase(*key) == "Training", "not overdue before maxRuntime"
    cluster.op.move_clock(11 * 60)
    cluster.wait_phase(*key, "Failed", timeout=60)
    st = cluster.status(*key)
    assert st["attempts"] == 1 and "admission" not in st, st
    assert "maxRuntime" in cluster.condition(*key, "Running")["message"]
    assert not {p for p in pids if processes.alive(p)}, "the overdue job's cluster is gone"
    released(cluster, *key)


def test_closing_lending_window_preempts_as_owner_reclaim(cluster: FaultCluster) -> None:
    # the first owner has reclaimed its node, so the model lands on the second owner's
    lender = OWNERS[1]
    cluster.patch_pool([{"op": "add", "path": "/spec/members/0/reclaim", "value": True}])
    # which lends from an hour ago until a few minutes from now (UTC, every day)
    now = cluster.operator_now()
    closes = math.ceil((now + 300) / 60) * 60
    window = {
        "from": datetime.fromtimestamp(now - 3600, UTC).strftime("%H:%M"),
        "to": datetime.fromtimestamp(closes, UTC).strftime("%H:%M"),
        "timeZone": "UTC",
    }
    cluster.patch_pool([{"op": "add", "path": "/spec/members/1/windows", "value": [window]}])
    key = (COMMUNITY, "evening-user")
    cluster.create(training_model(key[1]))
    cluster.wait_phase(*key, "Training", timeout=LOADED)
    assert cluster.status(*key)["admission"]["placement"][0]["owner"] == lender

    cluster.op.move_clock(closes + 5 - cluster.operator_now())  # the window has closed
    started = time.monotonic()
    wait_for(
        lambda: cluster.status(*key).get("waiting", {}).get("reason") == "OwnerReclaim",
        30,
        "preempted by the closing window",
    )
    st = cluster.status(*key)
    assert f"{GRACE_S} s grace" in st["waiting"]["message"], st
    cluster.wait_phase(*key, "Queued", timeout=GRACE_S + 30)
    figure("window closed -> drained and requeued", f"{time.monotonic() - started:.1f} s")
    st = cluster.status(*key)
    assert st.get("attempts", 0) == 0 and "admission" not in st, st
    assert cluster.cluster_of(*key) is None
    assert "Preempted" in cluster.events(*key) and "Requeued" in cluster.events(*key)
    time.sleep(6)  # a scheduling cycle or two: the closed window lends nothing
    assert cluster.phase(*key) == "Queued"
    released(cluster, *key)
    cluster.patch_pool(
        [
            {"op": "remove", "path": "/spec/members/1/windows"},
            {"op": "replace", "path": "/spec/members/0/reclaim", "value": False},
        ]
    )


def serving_model(name: str, sick_file: Path) -> dict[str, Any]:
    return model(
        name,
        serving={
            "importPath": "faulty_app:app",
            "runtimeEnv": {
                "workingDir": str(FAULTY_APP),
                "envVars": {"FAULTY_SERVE_SICK_FILE": str(sick_file)},
            },
            "routePrefix": "/faulty",
        },
    )


def test_serve_turning_unhealthy(cluster: FaultCluster, tmp_path: Path) -> None:
    sick = tmp_path / "sick"
    key = (COMMUNITY, "flaky")
    cluster.create(serving_model(key[1], sick))
    cluster.wait_phase(*key, "Serving", timeout=LOADED)
    endpoint = cluster.status(*key)["endpoint"]
    assert ask(f"{endpoint}?text=a") == {"text": "a"}
    assert cluster.condition(*key, "Serving")["status"] == "True"

    # unhealthy: said so on the model, which keeps its GPUs and its endpoint
    sick.touch()
    wait_for(
        lambda: cluster.condition(*key, "Serving").get("reason") == "ServeUnhealthy",
        120,
        "Serving=False ServeUnhealthy",
    )
    st = cluster.status(*key)
    assert st["phase"] == "Serving" and st["endpoint"] == endpoint and st["admission"], st
    assert cluster.condition(*key, "Serving")["status"] == "False"
    assert "ServeUnhealthy" in cluster.events(*key)

    # healthy again
    sick.unlink()
    wait_for(
        lambda: cluster.condition(*key, "Serving").get("status") == "True",
        120,
        "Serving=True again",
    )
    assert cluster.phase(*key) == "Serving" and cluster.status(*key).get("attempts", 0) == 0

    # unhealthy for longer than the loop waits: a counted failure, torn down, requeued
    sick.touch()
    wait_for(
        lambda: cluster.condition(*key, "Serving").get("reason") == "ServeUnhealthy",
        120,
        "Serving=False again",
    )
    handle = cluster.cluster_of(*key, Role.SERVING)
    assert handle is not None
    pids = cluster.backend().pids(handle)
    cluster.op.move_clock(SERVE_TIMEOUT_S + 10)
    wait_for(lambda: cluster.status(*key).get("attempts") == 1, 60, "the failure counted")
    assert not {p for p in pids if processes.alive(p)}, "the unhealthy cluster is torn down"
    assert "AttemptFailed" in cluster.events(*key)
    st = cluster.status(*key)
    assert st["phase"] in ("Queued", "Admitted", "Serving"), st  # requeued, not Failed
    if st["phase"] != "Serving":
        assert "endpoint" not in st, "no endpoint of the torn-down cluster"
    released(cluster, *key)
