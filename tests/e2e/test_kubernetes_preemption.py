"""Preemption and owner reclaim on the ``kubernetes`` backend: exactly the victims' objects go.

The operator process, the real control plane, the real kube-scheduler and kwok GPU nodes (one
node of 2 GPUs per owner, models of 2 GPUs: one model per node). Each admitted model gets its
head Pod bound to its placed node, a Service and a token Secret. Then:

- an owner reclaims its nodes: the model on them is preempted (``OwnerReclaim``) and its Pod,
  Service and Secret are deleted, while the other owner's model keeps the very same Pod
  (same uid, still bound and Running); the victim is requeued without counting an attempt;
- a late community is owed its share after the minimum runtime (the operator's clock moved):
  one of the first community's models is preempted (``FairShare``), exactly its objects are
  deleted, and the newcomer's Pod is bound on the node it freed.

kwok runs no containers, so no Ray job ever runs in these Pods: the drain has no job to stop
and deletes the victim's objects at once, well within the grace period, which the tests bound.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client

from polyculture.controlplane.manifests import compute_pool, member, training_model
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.waiting import wait_for
from polyculture.ray import manifests

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

GROUP, VERSION = "polyculture.dev", "v1alpha1"
OWNERS = ("ada", "bo")
GPUS = 2
GRACE_S = 30


@dataclass
class Pool:
    """One test's pool of kwok nodes (one per owner), its namespaces and models."""

    api: Any
    op: OperatorProcess
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.objs = client.CustomObjectsApi(self.api)
        self.name = f"kp-{self.tag}"

    def create(self, communities: list[str]) -> None:
        for owner in OWNERS:
            create_gpu_node(self.api, f"{self.name}-{owner}", owner, GPUS, labels={"kp": self.tag})
        for community in communities:
            self.core.create_namespace({"metadata": {"name": community}})
            self.namespaces.append(community)
        body = compute_pool(
            self.name,
            [member(o, {"polyculture.dev/owner": o, "kp": self.tag}) for o in OWNERS],
            communities,
            fairShare={"preemption": {"minRuntime": "10m", "gracePeriod": f"{GRACE_S}s"}},
        )
        self.objs.create_cluster_custom_object(GROUP, VERSION, "computepools", body)

    def remove(self) -> None:
        with contextlib.suppress(client.ApiException):
            self.objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", self.name)
        for namespace in self.namespaces:
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespace(namespace)
        for node in self.core.list_node(label_selector=f"kp={self.tag}").items:
            self.core.delete_node(node.metadata.name)

    def model(self, namespace: str, name: str) -> None:
        body = training_model(name, self.name, gpus=GPUS, namespace=namespace)
        self.objs.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "communitymodels", body
        )

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        got: Any = self.objs.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "communitymodels", name
        )
        return dict(got.get("status") or {})

    def owner_of(self, namespace: str, name: str) -> str:
        return str(self.status(namespace, name)["admission"]["placement"][0]["owner"])

    def objects(self, namespace: str, name: str) -> dict[str, str]:
        """The model's Pods, Services and Secrets (kind/name -> uid), by the model's label."""
        selector = f"{manifests.MODEL_LABEL}={manifests.label_value(name)}"
        found: dict[str, str] = {}
        for kind, listed in (
            ("Pod", self.core.list_namespaced_pod(namespace, label_selector=selector)),
            ("Service", self.core.list_namespaced_service(namespace, label_selector=selector)),
            ("Secret", self.core.list_namespaced_secret(namespace, label_selector=selector)),
        ):
            for item in listed.items:
                if not item.metadata.deletion_timestamp:
                    found[f"{kind}/{item.metadata.name}"] = item.metadata.uid
        return found

    def bound(self, namespace: str, name: str) -> tuple[str, str] | None:
        """(node, uid) of the model's head Pod once bound and Running, else None."""
        selector = f"{manifests.MODEL_LABEL}={manifests.label_value(name)}"
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        running = [
            p
            for p in pods
            if p.spec.node_name
            and p.status.phase == "Running"
            and not p.metadata.deletion_timestamp
        ]
        return (running[0].spec.node_name, running[0].metadata.uid) if len(running) == 1 else None

    def patch_member(self, owner: str, patch: dict[str, Any]) -> None:
        index = OWNERS.index(owner)
        ops = [
            {"op": "add", "path": f"/spec/members/{index}/{key}", "value": value}
            for key, value in patch.items()
        ]
        self.objs.patch_cluster_custom_object(
            GROUP,
            VERSION,
            "computepools",
            self.name,
            ops,
            _content_type="application/json-patch+json",
        )


def figure(name: str, seconds: float) -> None:
    print(f"\nFIGURE {name}: {seconds:.1f} s")


@pytest.fixture
def pool(api_client: Any, crds: object, operator: OperatorProcess) -> Iterator[Pool]:
    made = Pool(api_client, operator)
    yield made
    made.remove()


def admitted_with_objects(pool: Pool, namespace: str, name: str) -> dict[str, str]:
    """Wait for the model's head Pod bound and Running on its placed node; its objects."""
    wait_for(lambda: pool.bound(namespace, name), 120, f"{namespace}/{name} Pod Running")
    node, _ = pool.bound(namespace, name) or ("", "")
    placed = pool.status(namespace, name)["admission"]["placement"][0]["node"]
    assert node == placed, f"bound on {node}, placed on {placed}"
    objects = pool.objects(namespace, name)
    kinds = sorted(k.split("/")[0] for k in objects)
    assert kinds == ["Pod", "Secret", "Service"], objects
    return objects


def test_owner_reclaim_deletes_exactly_the_victims_objects(pool: Pool) -> None:
    ns = f"kpa-{pool.tag}"
    pool.create([ns])
    pool.model(ns, "m1")
    pool.model(ns, "m2")
    first = {m: admitted_with_objects(pool, ns, m) for m in ("m1", "m2")}
    assert {pool.owner_of(ns, "m1"), pool.owner_of(ns, "m2")} == set(OWNERS)

    victim = "m1"
    (keeper,) = [m for m in first if m != victim]
    kept_pod = pool.bound(ns, keeper)
    started = time.monotonic()
    pool.patch_member(pool.owner_of(ns, victim), {"reclaim": True})
    wait_for(
        lambda: pool.status(ns, victim).get("waiting", {}).get("reason") == "OwnerReclaim",
        30,
        "the victim preempted",
    )
    wait_for(lambda: not pool.objects(ns, victim), GRACE_S + 30, "the victim's objects gone")
    figure("owner reclaim -> Pod, Service, Secret deleted", time.monotonic() - started)
    wait_for(lambda: pool.status(ns, victim).get("phase") == "Queued", 30, "victim requeued")
    st = pool.status(ns, victim)
    assert st.get("attempts", 0) == 0 and "admission" not in st, st
    assert pool.objects(ns, keeper) == first[keeper], "the other model's objects untouched"
    assert pool.bound(ns, keeper) == kept_pod, "the same Pod, still bound and Running"
    time.sleep(6)  # a scheduling cycle or two: nothing new lands on the reclaimed node
    assert not pool.objects(ns, victim)


def test_fair_share_preemption_deletes_exactly_the_victims_objects(pool: Pool) -> None:
    early, late = f"kpe-{pool.tag}", f"kpl-{pool.tag}"
    pool.create([early, late])
    pool.model(early, "e1")
    pool.model(early, "e2")
    first = {m: admitted_with_objects(pool, early, m) for m in ("e1", "e2")}

    pool.model(late, "l1")
    wait_for(lambda: pool.status(late, "l1").get("phase") == "Queued", 30, "late one queued")
    pool.op.move_clock(11 * 60)  # past the minimum runtime of the early models
    started = time.monotonic()

    def victim() -> str | None:
        for m in first:
            if pool.status(early, m).get("waiting", {}).get("reason") == "FairShare":
                return m
        return None

    preempted = str(wait_for(victim, 60, "one early model preempted"))
    (keeper,) = [m for m in first if m != preempted]
    wait_for(lambda: not pool.objects(early, preempted), GRACE_S + 30, "the victim's objects gone")
    figure("fair-share preemption -> Pod, Service, Secret deleted", time.monotonic() - started)
    assert pool.objects(early, keeper) == first[keeper], "the other model's objects untouched"

    # the newcomer gets the freed node, its Pod bound there by kube-scheduler
    admitted_with_objects(pool, late, "l1")
    keeper_node = pool.status(early, keeper)["admission"]["placement"][0]["node"]
    assert pool.status(late, "l1")["admission"]["placement"][0]["node"] != keeper_node
    wait_for(lambda: pool.status(early, preempted).get("phase") == "Queued", 30, "requeued")
    assert pool.status(early, preempted).get("attempts", 0) == 0
