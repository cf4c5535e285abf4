"""The admission loop, end to end: the operator process, the real control plane, kwok GPU
nodes and real local Ray clusters (``spec.ray.backend: local``).

Covers, in order on one pool of three owners (one kwok node of 4 GPUs each):

- a training model goes Queued -> Admitted -> Training -> Trained, its checkpoint written,
  its GPU-seconds per owner recorded; a serving model reaches Serving and its endpoint answers
  HTTP; deleting a model leaves no Ray process of it;
- three communities of unequal weight and guarantee with more demand than capacity: the GPUs
  each holds match the core's entitlements within one workload, every waiting model says why
  and where it stands; a late heavy community preempts after the minimum runtime (moved with
  the operator's clock), the victim drains, requeues, and resumes from a checkpoint step > 0;
- an owner's reclaim drains exactly that owner's workloads; no attempt is counted;
- SIGINT stops the operator in seconds while a cluster starts; the next operator goes on;
- the operator SIGKILLed while a model trains adopts the same cluster and job;
- a deleted pool leaves its models Invalid (PoolNotFound) and their clusters gone.

Every figure printed (``FIGURE``) is measured here; all status read is what the operator wrote.
Ray clusters are the expensive part (~15 s, ~1 GiB each): at most four run at once.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.waiting import wait_for
from polyculture.ray import Role, WorkloadRef, processes
from polyculture.ray.local import LocalBackend

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.ray, pytest.mark.slow]

GROUP, VERSION = "polyculture.dev", "v1alpha1"
POOL = "admission-e2e"
OWNERS = ("ada", "bo", "cy")
COMMUNITIES = {"lingua": (3, 4), "medic": (1, 0), "arts": (1, 4)}  # weight, guarantee
REPO = Path(__file__).resolve().parents[2]
WORKDIR = str(REPO / "examples" / "ray")
#: bound for what starts Ray clusters: ~15-30 s each here, minutes when the 2 cores are shared
LOADED = 600.0


def figure(name: str, value: str) -> None:
    print(f"\nFIGURE {name}: {value}")


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
            "communities": [
                {"name": c, "weight": w, "guaranteedGPUs": g}
                for c, (w, g) in [*COMMUNITIES.items(), ("late", (20, 4))]
            ],
            "fairShare": {"preemption": {"minRuntime": "10m", "gracePeriod": "30s"}},
            "ray": {"backend": "local"},
        },
    }


def model_body(
    ns: str, name: str, *, steps: int = 4, gpus: int = 4, checkpoint: Path | None = None
) -> dict[str, Any]:
    training: dict[str, Any] = {
        "entrypoint": f"python train.py --steps {steps} --checkpoint-every 2 --step-seconds 0.5",
        "runtimeEnv": {"workingDir": WORKDIR},
        "workers": 1,
        "gpusPerWorker": gpus,
    }
    if checkpoint is not None:
        training["checkpointURI"] = checkpoint.as_uri()
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CommunityModel",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"pool": POOL, "training": training},
    }


class Cluster:
    """Reads and writes of the test, as the cluster admin."""

    #: the pool that :meth:`pool` and :meth:`patch_pool` read and write
    pool_name = POOL

    def __init__(self, api_client: Any, op: OperatorProcess) -> None:
        self.objs = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.op = op

    def create(self, body: dict[str, Any]) -> None:
        ns = body["metadata"]["namespace"]
        self.objs.create_namespaced_custom_object(GROUP, VERSION, ns, "communitymodels", body)

    def delete(self, ns: str, name: str) -> None:
        self.objs.delete_namespaced_custom_object(GROUP, VERSION, ns, "communitymodels", name)

    def model(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.objs.get_namespaced_custom_object(
                GROUP, VERSION, ns, "communitymodels", name
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return obj

    def status(self, ns: str, name: str) -> dict[str, Any]:
        obj = self.model(ns, name) or {}
        result: dict[str, Any] = obj.get("status") or {}
        return result

    def phase(self, ns: str, name: str) -> str | None:
        return self.status(ns, name).get("phase")

    def pool(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.objs.get_cluster_custom_object(
            GROUP, VERSION, "computepools", self.pool_name
        )
        return obj

    def patch_pool(self, patch: list[dict[str, Any]]) -> None:
        self.objs.patch_cluster_custom_object(
            GROUP,
            VERSION,
            "computepools",
            self.pool_name,
            patch,
            _content_type="application/json-patch+json",
        )

    def events(self, ns: str, name: str) -> list[str]:
        items = self.core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name}"
        ).items
        return [e.reason for e in sorted(items, key=lambda e: e.metadata.creation_timestamp)]

    def backend(self) -> LocalBackend:
        return LocalBackend(self.op.ray_state_dir)

    def cluster_of(self, ns: str, name: str, role: Role = Role.TRAINING) -> Any:
        uid = ((self.model(ns, name) or {}).get("metadata") or {}).get("uid", "")
        return self.backend().find(WorkloadRef(namespace=ns, name=name, role=role, uid=uid))

    def wait_phase(self, ns: str, name: str, *phases: str, timeout: float = LOADED) -> str:
        return str(
            wait_for(
                lambda: self.phase(ns, name) in phases and self.phase(ns, name),
                timeout,
                f"{ns}/{name} in {phases} (log: {self.op.log})",
                every=0.5,
            )
        )


@pytest.fixture(scope="module")
def cluster(crds: object, operator: OperatorProcess, api_client: Any) -> Iterator[Cluster]:
    c = Cluster(api_client, operator)
    for owner in OWNERS:
        create_gpu_node(api_client, f"{POOL}-{owner}", owner, 4, labels={"test": POOL})
    for ns in [*COMMUNITIES, "late"]:
        c.core.create_namespace({"metadata": {"name": ns}})
    c.objs.create_cluster_custom_object(GROUP, VERSION, "computepools", pool_body())
    yield c
    with contextlib.suppress(client.ApiException):
        c.objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", POOL)
    for ns in [*COMMUNITIES, "late"]:
        c.core.delete_namespace(ns)
    for node in c.core.list_node(label_selector=f"test={POOL}").items:
        c.core.delete_node(node.metadata.name)


def ask(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def test_training_and_serving_and_deletion(cluster: Cluster, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    created = time.monotonic()
    cluster.create(model_body("lingua", "tiny", gpus=1, checkpoint=ckpt))
    serve = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CommunityModel",
        "metadata": {"name": "echo", "namespace": "medic"},
        "spec": {
            "pool": POOL,
            "serving": {
                "importPath": "serve_app:app",
                "runtimeEnv": {"workingDir": WORKDIR},
                "routePrefix": "/echo",
            },
        },
    }
    cluster.create(serve)
    cluster.wait_phase("lingua", "tiny", "Admitted", "Training", "Trained", timeout=60)
    figure("create -> Admitted", f"{time.monotonic() - created:.1f} s")
    st = cluster.status("lingua", "tiny")
    assert st["admission"]["gpus"] == 1 and st["run"] == 1
    meta = (cluster.model("lingua", "tiny") or {})["metadata"]
    # kopf keeps only its finalizer on a model: no last-handled copy (one write less each)
    assert meta.get("finalizers")
    assert not [a for a in meta.get("annotations") or {} if "last-handled" in a]
    assert st["admission"]["placement"][0]["owner"] in OWNERS
    cluster.wait_phase("lingua", "tiny", "Training", "Trained")
    figure("create -> Training (job submitted)", f"{time.monotonic() - created:.1f} s")
    cluster.wait_phase("lingua", "tiny", "Trained")
    figure("create -> Trained (4 steps)", f"{time.monotonic() - created:.1f} s")
    st = cluster.status("lingua", "tiny")
    assert json.loads((ckpt / "checkpoint.json").read_text())["step"] == 4
    assert st["rayJobId"].endswith("-attempt-1") and st.get("attempts", 0) == 0
    assert st["gpuSecondsUsed"] > 0
    assert sum(st["gpuSecondsByOwner"].values()) == pytest.approx(st["gpuSecondsUsed"], abs=0.01)
    assert "admission" not in st
    assert cluster.cluster_of("lingua", "tiny") is None  # torn down once trained
    lifecycle = {"Admitted", "Training", "Trained", "Preempted", "Requeued", "AttemptFailed"}
    assert [e for e in cluster.events("lingua", "tiny") if e in lifecycle] == [
        "Admitted",
        "Training",
        "Trained",
    ]

    cluster.wait_phase("medic", "echo", "Serving")
    figure("create -> Serving, endpoint answering", f"{time.monotonic() - created:.1f} s")
    endpoint = cluster.status("medic", "echo")["endpoint"]
    assert endpoint.endswith("/echo")
    assert ask(f"{endpoint}?text=abc") == {
        "model": "polyculture-echo",
        "text": "abc",
        "reversed": "cba",
        "length": 3,
    }
    handle = cluster.cluster_of("medic", "echo", Role.SERVING)
    assert handle is not None
    pids = cluster.backend().pids(handle)
    cluster.delete("medic", "echo")
    wait_for(lambda: cluster.model("medic", "echo") is None, 60, "finalizer done")
    assert not {p for p in pids if processes.alive(p)}, "Ray processes of a deleted model"
    pool = cluster.pool()["status"]
    rows = {c["name"]: c for c in pool["communities"]}
    assert rows["lingua"]["gpuSecondsConsumed"] > 0


def held(cluster: Cluster) -> dict[str, int]:
    rows = cluster.pool()["status"].get("communities") or []
    return {r["name"]: r["allocatedGPUs"] for r in rows}


@pytest.mark.timeout(1800)
def test_fair_share_preemption_and_resume(cluster: Cluster, tmp_path: Path) -> None:
    # 12 GPUs, gangs of 4: three run at once; demand of 3 + 2 + 2 gangs
    names = {"lingua": ["l1", "l2", "l3"], "medic": ["m1", "m2"], "arts": ["a1", "a2"]}
    for ns, models in names.items():
        for name in models:
            cluster.create(model_body(ns, name, steps=400, checkpoint=tmp_path / name))
    everyone = [(ns, n) for ns, models in names.items() for n in models]

    seen: list[Any] = []

    def settled() -> bool:
        phases = [cluster.phase(ns, n) for ns, n in everyone]
        seen[:] = phases
        return phases.count("Training") == 3 and phases.count("Queued") == 4

    try:
        wait_for(settled, LOADED, "three gangs training, four queued", every=1)
    finally:
        print("PHASES", seen)
    pool = cluster.pool()["status"]
    for row in pool["communities"]:
        if row["name"] in names:
            assert abs(row["allocatedGPUs"] - row["entitledUnits"]) <= 4, row
    assert pool["allocatedGPUs"] == 12
    for ns, name in everyone:
        st = cluster.status(ns, name)
        if st["phase"] == "Queued":
            assert st["waiting"]["reason"] and st["waiting"]["message"], st
            assert st["queuePosition"] >= 1
    for ns, models in names.items():
        positions = sorted(
            cluster.status(ns, n)["queuePosition"]
            for n in models
            if cluster.phase(ns, n) == "Queued"
        )
        assert positions == list(range(1, len(positions) + 1))

    # a late heavy community: nothing is preemptible before the minimum runtime ...
    cluster.create(model_body("late", "urgent", steps=4))
    wait_for(lambda: cluster.phase("late", "urgent") == "Queued", 30, "late queued")
    time.sleep(3)
    assert cluster.phase("late", "urgent") == "Queued"
    before = {(ns, n): cluster.status(ns, n) for ns, n in everyone}
    running = [k for k, st in before.items() if st["phase"] == "Training"]
    # ... then it is, once the operator's clock passes it
    cluster.op.move_clock(11 * 60)
    victim = wait_for(
        lambda: next((k for k in running if cluster.phase(*k) == "Preempted"), None),
        30,
        "a victim preempted",
    )
    st = cluster.status(*victim)
    assert st["waiting"]["reason"] == "FairShare" and "30 s grace" in st["waiting"]["message"]
    cluster.wait_phase(*victim, "Queued", timeout=60)
    st = cluster.status(*victim)
    assert st.get("attempts", 0) == 0, st
    assert cluster.cluster_of(*victim) is None
    cluster.wait_phase("late", "urgent", "Training", "Trained", timeout=LOADED)
    assert "Preempted" in cluster.events(*victim) and "Requeued" in cluster.events(*victim)

    # make room: the others finish early by deletion, the victim comes back and resumes
    for key in [k for k in everyone if k not in running] + running:  # the queued first
        if key != victim:
            cluster.delete(*key)
    cluster.wait_phase(*victim, "Training", timeout=LOADED)
    st = cluster.status(*victim)
    assert st["run"] >= 2 and st["rayJobId"].endswith(f"-attempt-{st['run']}")
    assert st.get("attempts", 0) == 0
    handle = cluster.cluster_of(*victim)

    def second_log() -> str:
        return cluster.backend().job(handle, st["rayJobId"], tail_lines=10**6).log_tail

    try:
        wait_for(lambda: "resumed from step" in second_log(), LOADED, "the second run's log")
    finally:
        print("SECOND RUN LOG:", second_log()[:3000])
    log = second_log()
    step = int(str(log).split("resumed from step ", 1)[1].split()[0])
    assert step > 0
    figure("victim resumed from checkpoint step", str(step))
    cluster.delete(*victim)
    cluster.delete("late", "urgent")
    wait_for(lambda: sum(held(cluster).values()) == 0, 60, "all GPUs released")


def test_owner_reclaim_drains_exactly_its_workloads(cluster: Cluster, tmp_path: Path) -> None:
    models = [("arts", "r1"), ("medic", "r2")]
    for ns, name in models:
        cluster.create(model_body(ns, name, steps=400, checkpoint=tmp_path / name))
    for key in models:
        cluster.wait_phase(*key, "Training", timeout=LOADED)
    owner = {k: cluster.status(*k)["admission"]["placement"][0]["owner"] for k in models}
    target = owner[models[0]]
    index = OWNERS.index(target)
    started = time.monotonic()
    cluster.patch_pool([{"op": "add", "path": f"/spec/members/{index}/reclaim", "value": True}])
    for key in models:
        if owner[key] == target:
            wait_for(
                lambda k=key: cluster.status(*k).get("waiting", {}).get("reason") == "OwnerReclaim",
                30,
                "reclaim",
            )
            cluster.wait_phase(*key, "Queued", "Admitted", "Training", timeout=60)
            assert cluster.status(*key).get("attempts", 0) == 0
        else:
            assert cluster.phase(*key) == "Training"
    figure("owner reclaim -> its workloads drained", f"{time.monotonic() - started:.1f} s")
    assert all(
        p["owner"] != target
        for k in models
        for p in (cluster.status(*k).get("admission") or {}).get("placement", [])
    )
    cluster.patch_pool(
        [{"op": "replace", "path": f"/spec/members/{index}/reclaim", "value": False}]
    )
    for key in models:
        cluster.delete(*key)
    wait_for(lambda: sum(held(cluster).values()) == 0, 60, "all GPUs released")


def test_sigint_stops_the_operator_in_seconds(cluster: Cluster, tmp_path: Path) -> None:
    """SIGINT while a model's Ray cluster starts or its job runs: no worker thread is waited
    for, the operator exits in seconds, and the next one carries the model on."""
    key = ("medic", "prompt")
    cluster.create(model_body(*key, steps=40, gpus=1, checkpoint=tmp_path / "p"))
    cluster.wait_phase(*key, "Admitted", "Training", timeout=LOADED)
    started = time.monotonic()
    cluster.op.stop(keep_clusters=True)  # SIGINT; SIGKILL after 20 s
    took = time.monotonic() - started
    figure("SIGINT -> operator exited", f"{took:.1f} s")
    cluster.op.start()
    assert took < 10, cluster.op.log_tail()
    cluster.wait_phase(*key, "Trained", timeout=LOADED)
    cluster.delete(*key)


def test_restart_adopts_the_running_cluster_and_job(cluster: Cluster, tmp_path: Path) -> None:
    key = ("lingua", "survivor")
    cluster.create(model_body(*key, steps=80, gpus=1, checkpoint=tmp_path / "s"))
    cluster.wait_phase(*key, "Training", timeout=LOADED)
    before = cluster.status(*key)
    handle = cluster.cluster_of(*key)
    pids = cluster.backend().pids(handle)
    cluster.op.kill()
    time.sleep(2)
    cluster.op.start()
    time.sleep(8)  # the new operator has started and looked at its models
    if cluster.phase(*key) == "Training":
        again = cluster.cluster_of(*key)
        assert again is not None and again.name == handle.name
        assert pids <= cluster.backend().pids(again), "the same Ray processes, adopted"
        jobs = cluster.backend().client(again).submission_ids()
        assert jobs == [before["rayJobId"]], "no second copy of the job"
    cluster.wait_phase(*key, "Trained", timeout=LOADED)
    after = cluster.status(*key)
    assert after["rayJobId"] == before["rayJobId"] and after["run"] == 1
    assert after.get("attempts", 0) == 0
    admitted = time.mktime(time.strptime(before["admission"]["admittedAt"], "%Y-%m-%dT%H:%M:%SZ"))
    trained = time.mktime(time.strptime(after["trainedAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert after["gpuSecondsUsed"] <= (trained - admitted) + 2  # 1 GPU, not counted twice
    cluster.delete(*key)


def test_deleted_pool_leaves_its_models_invalid(cluster: Cluster, tmp_path: Path) -> None:
    key = ("arts", "orphan")
    cluster.create(model_body(*key, steps=400, gpus=1, checkpoint=tmp_path / "o"))
    cluster.wait_phase(*key, "Training", timeout=LOADED)
    handle = cluster.cluster_of(*key)
    pids = cluster.backend().pids(handle)
    cluster.objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", POOL)
    cluster.wait_phase(*key, "Invalid", timeout=60)
    st = cluster.status(*key)
    assert st["conditions"][0]["reason"] == "PoolNotFound" or any(
        c["reason"] == "PoolNotFound" for c in st["conditions"]
    )
    assert "admission" not in st
    assert not {p for p in pids if processes.alive(p)}
    cluster.delete(*key)
