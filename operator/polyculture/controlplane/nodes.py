"""Fake GPU nodes that kwok keeps Ready: the stand-ins for owners' GPU servers.

Labels follow NVIDIA GPU Feature Discovery (``nvidia.com/gpu.product``, ``.memory``,
``.count``), which real clusters already carry, plus the owner label a cooperative member sets.
"""

from __future__ import annotations

from typing import Any, cast

OWNER_LABEL = "polyculture.dev/owner"
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}


def gpu_node_manifest(
    name: str,
    owner: str,
    gpus: int = 8,
    product: str = "NVIDIA-H100-80GB-HBM3",
    memory_mib: int = 81559,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Node body with its status, so that kwok keeps the declared capacity."""
    resources = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": dict(KWOK_ANNOTATION),
            "labels": {
                "kubernetes.io/hostname": name,
                "type": "kwok",
                OWNER_LABEL: owner,
                "nvidia.com/gpu.product": product,
                "nvidia.com/gpu.memory": str(memory_mib),
                "nvidia.com/gpu.count": str(gpus),
                **(labels or {}),
            },
        },
        "spec": {},
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }


def create_gpu_node(
    api_client: Any,
    name: str,
    owner: str,
    gpus: int = 8,
    product: str = "NVIDIA-H100-80GB-HBM3",
    memory_mib: int = 81559,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Create a fake GPU node through ``api_client`` (a ``kubernetes.client.ApiClient``).

    kwok ignores the status sent on create for conditions, but keeps capacity; it then marks
    the node Ready and renews its lease. The API server taints a new Node
    ``node.kubernetes.io/not-ready:NoSchedule``; the node lifecycle controller, which would lift
    it once the Node is Ready, does not run here, so the taint is lifted at once (Pods can then
    be bound by the scheduler, as on a real cluster).
    """
    from kubernetes import client  # imported here: the builders above stay pure

    body = gpu_node_manifest(name, owner, gpus, product, memory_mib, labels)
    core = client.CoreV1Api(api_client)
    core.create_node(cast(Any, body))
    created = core.patch_node(name, {"spec": {"taints": []}})
    result: dict[str, Any] = api_client.sanitize_for_serialization(created)
    return result
