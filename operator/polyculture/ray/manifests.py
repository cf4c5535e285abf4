"""The Kubernetes objects of one workload's Ray cluster, as plain dicts (pure: no client, no I/O).

For an admitted workload of pool ``P`` placed on nodes ``n0, n1, ...``:

- a **head Pod** ``<cluster>-head`` on ``n0`` that holds ``n0``'s share of the gang's GPUs (a
  single-node workload is this head alone), and one **worker Pod** ``<cluster>-w<i>`` per
  further placed node ``n<i>``, holding that node's share;
- a headless **Service** ``<cluster>`` for the head (GCS, dashboard, Ray Client, Serve HTTP):
  its DNS name is the head Pod's address; the workers join through it and the operator
  reaches the dashboard through it;
- a **Secret** ``<cluster>-token`` holding the cluster's Ray auth token, mounted read-only in
  every Pod (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH``).

``<cluster>`` is :attr:`WorkloadRef.cluster_name`: stable for a workload, so a restarted
operator finds (and adopts) what exists instead of creating a second cluster. Every object is
owned by the CommunityModel (``ownerReferences`` with ``controller: true``): deleting the model,
or its namespace, removes them all through the garbage collector.

Each Pod is pinned to its placed node by required node affinity on the node's name (the
kube-scheduler still checks the fit and binds it), requests exactly the placed
``nvidia.com/gpu`` count, declares the node's owner and GPU class as Ray resources and Ray
labels (as the ``local`` backend does), and carries the pool, community, model, owner and GPU
class as labels. It runs the pool's ``spec.ray.image`` as a non-root user with a read-only
root filesystem; Ray's writable paths (``/tmp`` for its session files, ``/dev/shm`` for the
object store) are emptyDir volumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Final

from polyculture.ray.backend import (
    GPU_CLASS_LABEL,
    OWNER_LABEL,
    NodePlacement,
    Placement,
    Role,
    WorkloadRef,
    placed_node_args,
)

GPU_RESOURCE: Final = "nvidia.com/gpu"
OWNER_API_VERSION: Final = "polyculture.dev/v1alpha1"
OWNER_KIND: Final = "CommunityModel"

# labels of every object (selectors of the backend's watches and of the Service)
MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGER: Final = "polyculture"
COMPONENT: Final = "app.kubernetes.io/component"
POOL_LABEL: Final = "polyculture.dev/pool"
COMMUNITY_LABEL: Final = "polyculture.dev/community"
MODEL_LABEL: Final = "polyculture.dev/model"
CLUSTER_LABEL: Final = "polyculture.dev/cluster"
ROLE_LABEL: Final = "polyculture.dev/role"
UID_LABEL: Final = "polyculture.dev/workload-uid"
RAY_VERSION_LABEL: Final = "polyculture.dev/ray-version"
HEAD: Final = "head"
WORKER: Final = "worker"

# annotations of the head Pod: enough to rebuild a ClusterHandle after a restart
WORKLOAD_ANNOTATION: Final = "polyculture.dev/workload"
PLACEMENT_ANNOTATION: Final = "polyculture.dev/placement"
POD_NODE_ANNOTATION: Final = "polyculture.dev/placed-node"

TOKEN_KEY: Final = "token"
TOKEN_DIR: Final = "/etc/polyculture/ray-token"
PORTS: Final = {"gcs": 6379, "dashboard": 8265, "client": 10001, "serve": 8000}
RAY_UID: Final = 1000  # the `ray` user of rayproject/ray images
RAY_GID: Final = 100


@dataclass(frozen=True, kw_only=True)
class PodSize:
    """CPU and memory of each Ray Pod (requests; memory is also the limit)."""

    cpu: str = "1"
    memory: str = "4Gi"
    shm: str = "1Gi"


@dataclass(frozen=True, kw_only=True)
class RayCluster:
    """What the objects of one workload's cluster are built from."""

    workload: WorkloadRef
    placement: Placement
    pool: str
    image: str
    ray_version: str
    size: PodSize = PodSize()

    def __post_init__(self) -> None:
        if not self.workload.uid:
            raise ValueError(
                f"{self.workload}: the CommunityModel's uid is needed for ownerReferences"
            )

    @property
    def name(self) -> str:
        return self.workload.cluster_name

    @property
    def namespace(self) -> str:
        return self.workload.namespace


def head_pod_name(cluster: str) -> str:
    return f"{cluster}-{HEAD}"


def worker_pod_name(cluster: str, index: int) -> str:
    return f"{cluster}-w{index}"


def service_name(cluster: str) -> str:
    return cluster


def secret_name(cluster: str) -> str:
    return f"{cluster}-token"


def service_host(cluster: str, namespace: str) -> str:
    return f"{service_name(cluster)}.{namespace}.svc"


def dashboard_url(cluster: str, namespace: str) -> str:
    return f"http://{service_host(cluster, namespace)}:{PORTS['dashboard']}"


def serve_url(cluster: str, namespace: str) -> str:
    return f"http://{service_host(cluster, namespace)}:{PORTS['serve']}"


_LABEL_OK = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else a readable slug with a hash (63 chars max)."""
    if _LABEL_OK.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")[:54].strip("-_.")
    return f"{slug}-{digest}" if slug else digest


def owner_reference(workload: WorkloadRef) -> dict[str, Any]:
    return {
        "apiVersion": OWNER_API_VERSION,
        "kind": OWNER_KIND,
        "name": workload.name,
        "uid": workload.uid,
        "controller": True,
    }


def common_labels(spec: RayCluster) -> dict[str, str]:
    """Labels of every object of the cluster."""
    w = spec.workload
    labels = {
        MANAGED_BY: MANAGER,
        POOL_LABEL: label_value(spec.pool),
        MODEL_LABEL: label_value(w.name),
        CLUSTER_LABEL: spec.name,
        ROLE_LABEL: w.role.value,
        UID_LABEL: label_value(w.uid),
        RAY_VERSION_LABEL: label_value(spec.ray_version),
    }
    if w.community:
        labels[COMMUNITY_LABEL] = label_value(w.community)
    return labels


def selector(pool: str | None) -> str:
    """The label selector of every object of ``pool``'s clusters (None: of every pool)."""
    if pool is None:
        return f"{MANAGED_BY}={MANAGER}"
    return f"{MANAGED_BY}={MANAGER},{POOL_LABEL}={label_value(pool)}"


def _metadata(spec: RayCluster, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(spec.workload)],
    }


def token_secret(spec: RayCluster, token: str) -> dict[str, Any]:
    """The Secret with the cluster's Ray auth token (immutable: one token per cluster)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(spec, secret_name(spec.name), common_labels(spec)),
        "type": "Opaque",
        "immutable": True,
        "stringData": {TOKEN_KEY: token},
    }


def head_service(spec: RayCluster) -> dict[str, Any]:
    """The Service in front of the head: workers join through it, the operator calls it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, service_name(spec.name), common_labels(spec)),
        "spec": {
            # headless: the name resolves to the head Pod itself; no virtual IP to allocate
            # (a cluster's range is finite) and no proxy rules per cluster
            "clusterIP": "None",
            "selector": {CLUSTER_LABEL: spec.name, COMPONENT: HEAD},
            # workers must reach the GCS while the head is still starting
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
                for name, port in PORTS.items()
            ],
        },
    }


def ray_node_args(node: NodePlacement, gpus: int) -> list[str]:
    """``ray start`` options that declare the node's GPUs, owner and class (resources, labels)."""
    return [*placed_node_args(node, gpus), "--disable-usage-stats", "--block"]


def head_args() -> list[str]:
    return [
        "--head",
        f"--port={PORTS['gcs']}",
        "--dashboard-host=0.0.0.0",
        f"--dashboard-port={PORTS['dashboard']}",
        f"--ray-client-server-port={PORTS['client']}",
        "--no-monitor",  # a fixed-size cluster: no autoscaler
    ]


def worker_args(spec: RayCluster) -> list[str]:
    return [f"--address={service_host(spec.name, spec.namespace)}:{PORTS['gcs']}"]


def node_affinity(node: str) -> dict[str, Any]:
    """Required node affinity on the node's name: only that node, checked by the scheduler."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


def _pod(
    spec: RayCluster,
    *,
    name: str,
    component: str,
    node: NodePlacement,
    args: list[str],
    annotations: dict[str, str],
) -> dict[str, Any]:
    gpus = spec.placement.gpus_on(node)
    size = spec.size
    requests: dict[str, str] = {"cpu": size.cpu, "memory": size.memory}
    limits: dict[str, str] = {"memory": size.memory}
    if gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    labels = {
        **common_labels(spec),
        COMPONENT: component,
        OWNER_LABEL: label_value(node.owner),
        GPU_CLASS_LABEL: label_value(node.gpu_class),
    }
    container = {
        "name": "ray",
        "image": spec.image,
        "command": ["ray", "start"],
        "args": [*args, *ray_node_args(node, gpus)],
        "env": [
            {"name": "RAY_AUTH_MODE", "value": "token"},
            {"name": "RAY_AUTH_TOKEN_PATH", "value": f"{TOKEN_DIR}/{TOKEN_KEY}"},
            {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
            {"name": "HOME", "value": "/tmp"},  # the root filesystem is read-only
        ],
        "ports": [
            {"name": name, "containerPort": port}
            for name, port in PORTS.items()
            if component == HEAD
        ],
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "ray-token", "mountPath": TOKEN_DIR, "readOnly": True},
        ],
    }
    if not container["ports"]:
        del container["ports"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **_metadata(spec, name, labels),
            "annotations": {POD_NODE_ANNOTATION: node.node, **annotations},
        },
        "spec": {
            "restartPolicy": "Never",  # a Ray node that dies breaks the gang: seen, not hidden
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 30,
            "affinity": node_affinity(node.node),
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RAY_UID,
                "runAsGroup": RAY_GID,
                "fsGroup": RAY_GID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": size.shm}},
                {
                    "name": "ray-token",
                    "secret": {"secretName": secret_name(spec.name), "defaultMode": 0o440},
                },
            ],
        },
    }


def workload_annotation(workload: WorkloadRef) -> str:
    return json.dumps(
        {
            "namespace": workload.namespace,
            "name": workload.name,
            "role": workload.role.value,
            "uid": workload.uid,
            "community": workload.community,
            "pool": workload.pool,
        },
        sort_keys=True,
    )


def placement_annotation(placement: Placement) -> str:
    return json.dumps(
        {
            "gpusPerWorker": placement.gpus_per_worker,
            "nodes": [
                {"node": n.node, "owner": n.owner, "gpuClass": n.gpu_class, "workers": n.workers}
                for n in placement.nodes
            ],
        },
        sort_keys=True,
    )


def parse_workload(text: str) -> WorkloadRef:
    data = json.loads(text)
    return WorkloadRef(
        namespace=data["namespace"],
        name=data["name"],
        role=Role(data["role"]),
        uid=data["uid"],
        community=data.get("community", ""),
        pool=data.get("pool", ""),
    )


def parse_placement(text: str) -> Placement:
    data = json.loads(text)
    return Placement(
        gpus_per_worker=int(data["gpusPerWorker"]),
        nodes=tuple(
            NodePlacement(
                node=n["node"], owner=n["owner"], gpu_class=n["gpuClass"], workers=n["workers"]
            )
            for n in data["nodes"]
        ),
    )


def pods(spec: RayCluster) -> list[dict[str, Any]]:
    """The head Pod (on the first placed node), then one worker Pod per further node."""
    first, *rest = spec.placement.nodes
    head = _pod(
        spec,
        name=head_pod_name(spec.name),
        component=HEAD,
        node=first,
        args=head_args(),
        annotations={
            WORKLOAD_ANNOTATION: workload_annotation(replace(spec.workload, pool=spec.pool)),
            PLACEMENT_ANNOTATION: placement_annotation(spec.placement),
        },
    )
    workers = [
        _pod(
            spec,
            name=worker_pod_name(spec.name, i),
            component=WORKER,
            node=node,
            args=worker_args(spec),
            annotations={},
        )
        for i, node in enumerate(rest, start=1)
    ]
    return [head, *workers]


def objects(spec: RayCluster, token: str) -> list[dict[str, Any]]:
    """Every object of the cluster, in creation order: Secret, Service, head, workers."""
    return [token_secret(spec, token), head_service(spec), *pods(spec)]
