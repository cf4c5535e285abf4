"""The ``kubernetes`` Ray backend against the real control plane (kwok plays the kubelets).

Everything up to "Pods Running" is real: the objects go through the API server, the real
kube-scheduler binds the Pods (or says why it cannot), kwok marks them Running, the garbage
collector of kube-controller-manager removes what a deleted CommunityModel owned. Nothing
runs in a container on a kwok node, so the Ray dashboard never answers: the backend reports
the cluster as Starting with that reason, which these tests check too.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from polyculture.api.compute_pool import RaySettings
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.waiting import wait_for
from polyculture.ray import ClusterHandle, NodePlacement, Placement, Role, WorkloadRef
from polyculture.ray.backend import ClusterPhase
from polyculture.ray.kubernetes import KubernetesBackend

pytestmark = pytest.mark.cluster

GROUP, VERSION = "polyculture.dev", "v1alpha1"
IMAGE = "rayproject/ray:2.60.0-py311-gpu"


class Env:
    """One test's pool: namespaces, kwok GPU nodes and CommunityModels, removed at the end."""

    def __init__(self, api: Any, tmp: Path) -> None:
        self.api = api
        self.tag = uuid.uuid4().hex[:6]
        self.pool = f"kb-{self.tag}"
        self.core = client.CoreV1Api(api)
        self.objs = client.CustomObjectsApi(api)
        self.tmp = tmp
        self.namespaces: list[str] = []
        self.nodes: list[str] = []
        self.backends: list[KubernetesBackend] = []

    def backend(self, **kwargs: Any) -> KubernetesBackend:
        kwargs.setdefault("token_dir", self.tmp / f"tokens-{len(self.backends)}")
        backend = KubernetesBackend(self.pool, RaySettings(image=IMAGE), self.api, **kwargs)
        self.backends.append(backend)
        return backend

    def namespace(self, community: str) -> str:
        name = f"{community}-{self.tag}"
        self.core.create_namespace({"metadata": {"name": name}})
        self.namespaces.append(name)
        return name

    def node(self, owner: str, gpus: int, product: str = "NVIDIA-H100-80GB-HBM3") -> str:
        name = f"{owner}-{self.tag}-{len(self.nodes)}"
        create_gpu_node(self.api, name, owner, gpus, product=product, labels={"kb": self.tag})
        self.nodes.append(name)
        return name

    def model(self, namespace: str, name: str, community: str, role: Role) -> WorkloadRef:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CommunityModel",
            "metadata": {"name": name},
            "spec": {
                "pool": self.pool,
                "community": community,
                "training": {"entrypoint": "python train.py", "workers": 1, "gpusPerWorker": 1},
            },
        }
        made = self.objs.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "communitymodels", body
        )
        return WorkloadRef(
            namespace=namespace,
            name=name,
            role=role,
            uid=made["metadata"]["uid"],
            community=community,
        )

    def pods(self, namespace: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(namespace).items)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        for namespace in self.namespaces:
            with contextlib.suppress(ApiException):
                self.core.delete_namespace(namespace)
        for node in self.nodes:
            self.core.delete_node(node)


@pytest.fixture
def env(api_client: Any, crds: object, tmp_path: Path) -> Iterator[Env]:
    e = Env(api_client, tmp_path)
    try:
        yield e
    finally:
        e.close()


def placed(node: str, owner: str, gpu_class: str = "H100", workers: int = 1) -> NodePlacement:
    return NodePlacement(node=node, owner=owner, gpu_class=gpu_class, workers=workers)


def bound_and_running(env: Env, namespace: str, count: int) -> list[Any]:
    def ready() -> list[Any]:
        pods = env.pods(namespace)
        ok = len(pods) == count and all(
            p.spec.node_name and p.status.phase == "Running" for p in pods
        )
        return pods if ok else []

    return wait_for(ready, 60, f"{count} Pods bound and Running in {namespace}")


def gpu_request(pod: Any) -> str | None:
    requests = pod.spec.containers[0].resources.requests or {}
    return requests.get("nvidia.com/gpu")


def test_three_communities_pods_bound_where_placed(env: Env) -> None:
    ada, bob = env.node("ada", 8), env.node("bob", 8)
    cy = env.node("cy", 4, product="NVIDIA-A10")
    yoruba, quechua, sign = env.namespace("yoruba"), env.namespace("quechua"), env.namespace("sign")
    backend = env.backend()
    cases = [
        # (workload, placement, {pod name suffix: (node, GPUs, owner, class)})
        (
            env.model(yoruba, "yoruba-base", "yoruba", Role.TRAINING),
            Placement(gpus_per_worker=2, nodes=(placed(ada, "ada", workers=2),)),
            {"head": (ada, "4", "ada", "H100")},
        ),
        (
            env.model(quechua, "quechua-asr", "quechua", Role.TRAINING),
            Placement(
                gpus_per_worker=1,
                nodes=(
                    placed(ada, "ada"),
                    placed(bob, "bob", workers=2),
                    placed(cy, "cy", "A10"),
                ),
            ),
            {
                "head": (ada, "1", "ada", "H100"),
                "w1": (bob, "2", "bob", "H100"),
                "w2": (cy, "1", "cy", "A10"),
            },
        ),
        (
            env.model(sign, "sign-translator", "sign", Role.SERVING),
            Placement(gpus_per_worker=1, nodes=(placed(bob, "bob"),)),
            {"head": (bob, "1", "bob", "H100")},
        ),
    ]
    handles = [backend.create(w, p) for w, p, _ in cases]
    for (workload, placement, want), handle in zip(cases, handles, strict=True):
        assert handle.backend == "kubernetes" and handle.placement == placement
        assert handle.dashboard_url == f"http://{handle.name}.{workload.namespace}.svc:8265"
        pods = bound_and_running(env, workload.namespace, len(want))
        seen = {}
        for pod in pods:
            suffix = pod.metadata.name.removeprefix(f"{handle.name}-")
            labels = pod.metadata.labels
            seen[suffix] = (
                pod.spec.node_name,
                gpu_request(pod),
                labels["polyculture.dev/owner"],
                labels["polyculture.dev/gpu-class"],
            )
            assert labels["polyculture.dev/pool"] == env.pool
            assert labels["polyculture.dev/community"] == workload.community
            assert labels["polyculture.dev/model"] == workload.name
            assert labels["polyculture.dev/role"] == workload.role.value
            (owner_ref,) = pod.metadata.owner_references
            assert (owner_ref.kind, owner_ref.uid) == ("CommunityModel", workload.uid)
            assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == gpu_request(pod)
            assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
            assert pod.spec.security_context.run_as_non_root is True
            args = " ".join(pod.spec.containers[0].args)
            gpus = seen[suffix][1]
            assert f"--num-gpus={gpus}" in args
            assert f'"polyculture.dev/owner:{seen[suffix][2]}": {gpus}' in args
        assert seen == want  # every Pod on the node the core placed it on, nothing elsewhere
        secret = env.core.read_namespaced_secret(f"{handle.name}-token", workload.namespace)
        token = base64.b64decode(secret.data["token"]).decode()
        assert Path(handle.token_path).read_text() == token and len(token) == 32
        assert oct(Path(handle.token_path).stat().st_mode & 0o777) == "0o600"
        service = env.core.read_namespaced_service(handle.name, workload.namespace)
        assert service.spec.selector == {
            "polyculture.dev/cluster": handle.name,
            "app.kubernetes.io/component": "head",
        }
        # the Pods run (kwok), but nothing answers behind the Service on a kwok node
        expected = len(want)

        def all_running(h: ClusterHandle = handle, n: int = expected) -> Any:
            status = backend.status(h)
            return status.nodes_alive == n and status

        status = wait_for(all_running, 30, "status sees every Pod Running")
        assert status.phase is ClusterPhase.STARTING
        assert "Ray dashboard not reachable" in status.message
    # the two tokens differ: one per cluster
    assert len({Path(h.token_path).read_text() for h in handles}) == 3
    assert {h.name for h in backend.clusters()} >= {h.name for h in handles}


def test_a_pod_the_scheduler_cannot_bind_is_reported(env: Env) -> None:
    small = env.node("ada", 2)
    ns = env.namespace("yoruba")
    workload = env.model(ns, "too-wide", "yoruba", Role.TRAINING)
    backend = env.backend(unschedulable_after_s=3600)
    handle = backend.create(workload, Placement(gpus_per_worker=4, nodes=(placed(small, "ada"),)))

    def reported() -> Any:
        status = backend.status(handle)
        return "cannot be bound" in status.message and status

    status = wait_for(reported, 30, "the scheduler's refusal in the status")
    assert status.phase is ClusterPhase.STARTING
    assert "nvidia.com/gpu" in status.message
    assert not env.pods(ns)[0].spec.node_name  # not bound anywhere else either
    strict = env.backend(unschedulable_after_s=0)
    assert strict.status(handle).phase is ClusterPhase.FAILED


def pod_uids(env: Env, namespace: str) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in env.pods(namespace)}


def test_create_twice_and_a_restarted_backend_adopt(env: Env) -> None:
    a, b = env.node("ada", 8), env.node("bob", 8)
    ns = env.namespace("yoruba")
    workload = env.model(ns, "yoruba-base", "yoruba", Role.TRAINING)
    placement = Placement(gpus_per_worker=1, nodes=(placed(a, "ada"), placed(b, "bob")))
    first = env.backend()
    handle = first.create(workload, placement)
    bound_and_running(env, ns, 2)
    uids = pod_uids(env, ns)
    assert first.create(workload, placement) == handle
    assert pod_uids(env, ns) == uids

    restarted = env.backend()  # a new process: nothing in memory, only what the API holds
    found = restarted.find(workload)
    assert found is not None and found.name == handle.name and found.placement == placement
    assert [c.name for c in restarted.clusters()] == [handle.name]
    assert Path(found.token_path).read_text() == Path(handle.token_path).read_text()
    again = restarted.create(workload, placement)
    assert again.name == handle.name and pod_uids(env, ns) == uids
    # another model of the same name (new uid) does not adopt this cluster
    stranger = WorkloadRef(namespace=ns, name=workload.name, uid="not-the-same")
    assert restarted.find(stranger) is None

    # a create cut short (a worker Pod missing) is completed, not doubled
    env.core.delete_namespaced_pod(f"{handle.name}-w1", ns, grace_period_seconds=0)
    wait_for(lambda: f"{handle.name}-w1" not in pod_uids(env, ns), 30, "worker gone")
    wait_for(lambda: restarted.status(found).phase is ClusterPhase.FAILED, 30, "gang broken")
    restarted.create(workload, placement)
    pods = bound_and_running(env, ns, 2)
    assert {p.metadata.name for p in pods} == {f"{handle.name}-head", f"{handle.name}-w1"}
    assert pod_uids(env, ns)[f"{handle.name}-head"] == uids[f"{handle.name}-head"]


def test_teardown_leaves_nothing(env: Env) -> None:
    a, b = env.node("ada", 8), env.node("bob", 8)
    ns = env.namespace("quechua")
    workload = env.model(ns, "quechua-asr", "quechua", Role.SERVING)
    backend = env.backend()
    handle = backend.create(
        workload, Placement(gpus_per_worker=1, nodes=(placed(a, "ada"), placed(b, "bob")))
    )
    bound_and_running(env, ns, 2)
    backend.teardown(handle)
    assert_nothing_left(env, ns)
    assert backend.find(workload) is None
    assert backend.status(handle).phase is ClusterPhase.GONE
    backend.teardown(handle)  # idempotent
    assert not Path(handle.token_path).exists()


def assert_nothing_left(env: Env, ns: str) -> None:
    def empty() -> bool:
        return not (
            env.pods(ns)
            or env.core.list_namespaced_service(ns).items
            or env.core.list_namespaced_secret(ns, label_selector="polyculture.dev/cluster").items
        )

    wait_for(empty, 60, f"no Pod, Service or Secret left in {ns}")


def test_deleting_the_model_or_its_namespace_cascades(env: Env) -> None:
    a = env.node("ada", 8)
    ns = env.namespace("sign")
    backend = env.backend()
    one = env.model(ns, "one", "sign", Role.TRAINING)
    two = env.model(ns, "two", "sign", Role.SERVING)
    backend.create(one, Placement(gpus_per_worker=1, nodes=(placed(a, "ada"),)))
    two_handle: ClusterHandle = backend.create(
        two, Placement(gpus_per_worker=1, nodes=(placed(a, "ada"),))
    )
    bound_and_running(env, ns, 2)
    env.objs.delete_namespaced_custom_object(GROUP, VERSION, ns, "communitymodels", "one")

    def only_two_left() -> bool:
        names = {p.metadata.name for p in env.pods(ns)}
        services = {s.metadata.name for s in env.core.list_namespaced_service(ns).items}
        return names == {f"{two_handle.name}-head"} and services == {two_handle.name}

    wait_for(only_two_left, 60, "the garbage collector removes what the model owned")
    wait_for(lambda: backend.find(one) is None, 10, "the index forgets the deleted cluster")

    env.core.delete_namespace(ns)
    env.namespaces.remove(ns)

    def gone() -> bool:
        try:
            env.core.read_namespace(ns)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, 120, f"namespace {ns} deleted with everything in it")
    wait_for(lambda: not backend.clusters(), 10, "no cluster left in the index")
