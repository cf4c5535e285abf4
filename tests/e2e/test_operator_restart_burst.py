"""SIGKILL of the operator in the middle of a burst of 200 models, on the ``kubernetes`` backend.

Real control plane, real kube-scheduler, kwok GPU nodes with room for 160 of the 200
single-GPU models. The operator is killed (no cleanup of any kind) after 100 creates and
started again while the rest arrive. Afterwards:

- every model is admitted (placed, within the nodes' GPUs) or queued with a reason;
- no model has two Ray clusters, and every Pod belongs to a model that holds an admission on
  the node the Pod is bound to (nothing orphaned, nothing bound elsewhere);
- no model's GPU-seconds exceed what its admission could have used (nothing counted twice).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from polyculture.controlplane.manifests import compute_pool, member, training_model
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

GROUP, VERSION = "polyculture.dev", "v1alpha1"
MODELS, NODES, GPUS = 200, 20, 8
HOLDING = {"Admitted", "Training", "Trained", "Serving"}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_sigkill_in_a_burst_loses_nothing_and_duplicates_nothing(
    control_plane: Any, api_client: Any, crds: object, operator: OperatorProcess
) -> None:
    tag = uuid.uuid4().hex[:6]
    core, objs = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    communities = [f"burst{i}-{tag}" for i in range(3)]
    nodes = [f"burst-{tag}-{i:02d}" for i in range(NODES)]
    for namespace in communities:
        core.create_namespace({"metadata": {"name": namespace}})
    for node in nodes:
        create_gpu_node(api_client, node, "ada", GPUS, labels={"burst": tag})
    pool = f"burst-{tag}"
    objs.create_cluster_custom_object(
        GROUP,
        VERSION,
        "computepools",
        compute_pool(pool, [member("ada", {"burst": tag})], communities),
    )

    def pool_counts_nodes() -> bool:
        got: Any = objs.get_cluster_custom_object(GROUP, VERSION, "computepools", pool)
        return bool((got.get("status") or {}).get("totalGPUs") == NODES * GPUS)

    wait_for(pool_counts_nodes, 60, f"pool status\n{operator.log_tail()}")

    keys = [(communities[i % 3], f"m-{i:03d}") for i in range(MODELS)]
    half = threading.Event()

    def send(i: int) -> None:
        namespace, name = keys[i]
        body = training_model(name, pool, community=namespace)
        objs.create_namespaced_custom_object(GROUP, VERSION, namespace, "communitymodels", body)
        if i == MODELS // 2:
            half.set()

    try:
        with ThreadPoolExecutor(4) as senders:
            results = [senders.submit(send, i) for i in range(MODELS)]
            half.wait(60)
            time.sleep(1.0)  # let the operator be in the middle of admitting
            operator.kill()
            operator.start()
            for result in results:
                result.result()

        def models() -> list[dict[str, Any]]:
            listed: Any = objs.list_cluster_custom_object(GROUP, VERSION, "communitymodels")
            return [m for m in listed["items"] if m["spec"]["pool"] == pool]

        def settled() -> list[dict[str, Any]]:
            items = models()
            done = [
                m
                for m in items
                if (m.get("status") or {}).get("phase") in HOLDING
                or (
                    (m.get("status") or {}).get("phase") == "Queued"
                    and ((m.get("status") or {}).get("waiting") or {}).get("reason")
                )
            ]
            return items if len(done) == MODELS else []

        items = wait_for(settled, 240, f"every model admitted or waiting\n{operator.log_tail()}")
        holding = [m for m in items if m["status"]["phase"] in HOLDING]
        waiting = [m for m in items if m["status"]["phase"] not in HOLDING]
        reasons = Counter(
            (m["status"]["phase"], (m["status"].get("waiting") or {}).get("reason")) for m in items
        )
        assert len(holding) == NODES * GPUS, (reasons, operator.log_tail(80))
        assert len(waiting) == MODELS - NODES * GPUS, reasons
        for m in waiting:
            assert m["status"]["phase"] == "Queued", m["status"]
            assert m["status"]["waiting"]["reason"] and m["status"].get("queuePosition")

        per_node: Counter[str] = Counter()
        admitted_on: dict[str, set[str]] = {}
        now = time.time() + float(operator.clock_file.read_text() or 0)  # the operator's clock
        for m in holding:
            admission = m["status"]["admission"]
            assert admission["gpus"] == 1
            for p in admission["placement"]:
                per_node[p["node"]] += p["gpus"]
            admitted_on[m["metadata"]["uid"]] = {p["node"] for p in admission["placement"]}
            # the ledger: never more than the admission could have used (+ one tick of slack)
            used = float(m["status"].get("gpuSecondsUsed") or 0)
            assert used <= now - _epoch(admission["admittedAt"]) + 5, m["status"]
        assert set(per_node) <= set(nodes) and max(per_node.values()) <= GPUS

        pods: list[Any] = []
        for namespace in communities:
            pods += core.list_namespaced_pod(namespace).items
        heads = Counter(
            (p.metadata.namespace, p.metadata.labels["polyculture.dev/model"])
            for p in pods
            if p.metadata.labels.get("app.kubernetes.io/component") == "head"
        )
        assert heads, "the operator created no Ray cluster at all"
        assert max(heads.values()) == 1, "a model with two Ray clusters"
        for pod in pods:
            (owner,) = pod.metadata.owner_references
            assert owner.uid in admitted_on, f"Pod {pod.metadata.name} of no admitted model"
            if pod.spec.node_name:
                assert pod.spec.node_name in admitted_on[owner.uid]
    finally:
        with contextlib.suppress(ApiException):
            objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", pool)
        for namespace in communities:
            with contextlib.suppress(ApiException):
                core.delete_namespace(namespace)
        for node in nodes:
            with contextlib.suppress(ApiException):
                core.delete_node(node)
