"""The ``kubernetes`` backend's objects, by equality on tables (pure builders, no cluster)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from polyculture.ray import NodePlacement, Placement, Role, WorkloadRef
from polyculture.ray.manifests import (
    PodSize,
    RayCluster,
    head_service,
    label_value,
    node_affinity,
    objects,
    parse_placement,
    parse_workload,
    pods,
    selector,
    token_secret,
)

UID = "0b5c6b9e-0000-4000-8000-000000000001"
WORKLOAD = WorkloadRef(namespace="yoruba", name="yoruba-base", uid=UID, community="yoruba")
CLUSTER = WORKLOAD.cluster_name
ONE_NODE = Placement(
    gpus_per_worker=2,
    nodes=(NodePlacement(node="ada-0", owner="ada", gpu_class="H100", workers=2),),
)
THREE_NODES = Placement(
    gpus_per_worker=4,
    nodes=(
        NodePlacement(node="ada-0", owner="ada", gpu_class="H100"),
        NodePlacement(node="bob-1", owner="bob", gpu_class="H100", workers=2),
        NodePlacement(node="cy-2", owner="cy", gpu_class="A10"),
    ),
)
IMAGE = "rayproject/ray:2.60.0-py311-gpu"


def spec(placement: Placement = ONE_NODE, workload: WorkloadRef = WORKLOAD) -> RayCluster:
    return RayCluster(
        workload=workload, placement=placement, pool="coop", image=IMAGE, ray_version="2.60.0"
    )


OWNER_REF = {
    "apiVersion": "polyculture.dev/v1alpha1",
    "kind": "CommunityModel",
    "name": "yoruba-base",
    "uid": UID,
    "controller": True,
}
COMMON = {
    "app.kubernetes.io/managed-by": "polyculture",
    "polyculture.dev/pool": "coop",
    "polyculture.dev/community": "yoruba",
    "polyculture.dev/model": "yoruba-base",
    "polyculture.dev/cluster": CLUSTER,
    "polyculture.dev/role": "training",
    "polyculture.dev/workload-uid": UID,
    "polyculture.dev/ray-version": "2.60.0",
}
ENV = [
    {"name": "RAY_AUTH_MODE", "value": "token"},
    {"name": "RAY_AUTH_TOKEN_PATH", "value": "/etc/polyculture/ray-token/token"},
    {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
    {"name": "HOME", "value": "/tmp"},
]
HEAD_ARGS = [
    "--head",
    "--port=6379",
    "--dashboard-host=0.0.0.0",
    "--dashboard-port=8265",
    "--ray-client-server-port=10001",
    "--no-monitor",
]
WORKER_ARGS = [f"--address={CLUSTER}.yoruba.svc:6379"]


def node_args(node: str, owner: str, gpu_class: str, gpus: int) -> list[str]:
    resources = {
        f"polyculture.dev/gpu-class:{gpu_class}": gpus,
        f"polyculture.dev/owner:{owner}": gpus,
    }
    return [
        f"--num-gpus={gpus}",
        f"--resources={json.dumps(resources, sort_keys=True)}",
        f"--labels=polyculture.dev/owner={owner},polyculture.dev/gpu-class={gpu_class},"
        f"polyculture.dev/node={node}",
        f"--node-name={node}",
        "--disable-usage-stats",
        "--block",
    ]


def summary(pod: dict[str, Any]) -> tuple[Any, ...]:
    """What distinguishes the Pods of one cluster: name, node, GPUs, labels, Ray args."""
    container = pod["spec"]["containers"][0]
    term = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    labels = pod["metadata"]["labels"]
    return (
        pod["metadata"]["name"],
        term["nodeSelectorTerms"][0]["matchFields"][0]["values"],
        container["resources"]["requests"].get("nvidia.com/gpu"),
        container["resources"]["limits"].get("nvidia.com/gpu"),
        labels["app.kubernetes.io/component"],
        labels["polyculture.dev/owner"],
        labels["polyculture.dev/gpu-class"],
        container["args"],
    )


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        (
            ONE_NODE,  # a single-node workload: a head that holds its GPUs, no worker
            [
                (
                    f"{CLUSTER}-head",
                    ["ada-0"],
                    "4",
                    "4",
                    "head",
                    "ada",
                    "H100",
                    HEAD_ARGS + node_args("ada-0", "ada", "H100", 4),
                )
            ],
        ),
        (
            THREE_NODES,
            [
                (
                    f"{CLUSTER}-head",
                    ["ada-0"],
                    "4",
                    "4",
                    "head",
                    "ada",
                    "H100",
                    HEAD_ARGS + node_args("ada-0", "ada", "H100", 4),
                ),
                (
                    f"{CLUSTER}-w1",
                    ["bob-1"],
                    "8",
                    "8",
                    "worker",
                    "bob",
                    "H100",
                    WORKER_ARGS + node_args("bob-1", "bob", "H100", 8),
                ),
                (
                    f"{CLUSTER}-w2",
                    ["cy-2"],
                    "4",
                    "4",
                    "worker",
                    "cy",
                    "A10",
                    WORKER_ARGS + node_args("cy-2", "cy", "A10", 4),
                ),
            ],
        ),
        (
            Placement(  # a CPU-only share requests no GPU at all
                gpus_per_worker=0,
                nodes=(NodePlacement(node="ada-0", owner="ada", gpu_class="H100"),),
            ),
            [
                (
                    f"{CLUSTER}-head",
                    ["ada-0"],
                    None,
                    None,
                    "head",
                    "ada",
                    "H100",
                    HEAD_ARGS + node_args("ada-0", "ada", "H100", 0),
                )
            ],
        ),
    ],
)
def test_one_pod_per_placed_node_pinned_with_its_gpus(
    placement: Placement, expected: list[tuple[Any, ...]]
) -> None:
    assert [summary(p) for p in pods(spec(placement))] == expected


def test_head_pod_whole() -> None:
    (head,) = pods(spec())
    assert head == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{CLUSTER}-head",
            "namespace": "yoruba",
            "labels": {
                **COMMON,
                "app.kubernetes.io/component": "head",
                "polyculture.dev/owner": "ada",
                "polyculture.dev/gpu-class": "H100",
            },
            "ownerReferences": [OWNER_REF],
            "annotations": {
                "polyculture.dev/placed-node": "ada-0",
                "polyculture.dev/workload": json.dumps(
                    {
                        "community": "yoruba",
                        "name": "yoruba-base",
                        "namespace": "yoruba",
                        "pool": "coop",
                        "role": "training",
                        "uid": UID,
                    },
                    sort_keys=True,
                ),
                "polyculture.dev/placement": json.dumps(
                    {
                        "gpusPerWorker": 2,
                        "nodes": [
                            {"gpuClass": "H100", "node": "ada-0", "owner": "ada", "workers": 2}
                        ],
                    },
                    sort_keys=True,
                ),
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 30,
            "affinity": node_affinity("ada-0"),
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 100,
                "fsGroup": 100,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "ray",
                    "image": IMAGE,
                    "command": ["ray", "start"],
                    "args": HEAD_ARGS + node_args("ada-0", "ada", "H100", 4),
                    "env": ENV,
                    "ports": [
                        {"name": "gcs", "containerPort": 6379},
                        {"name": "dashboard", "containerPort": 8265},
                        {"name": "client", "containerPort": 10001},
                        {"name": "serve", "containerPort": 8000},
                    ],
                    "resources": {
                        "requests": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "4"},
                        "limits": {"memory": "4Gi", "nvidia.com/gpu": "4"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "shm", "mountPath": "/dev/shm"},
                        {
                            "name": "ray-token",
                            "mountPath": "/etc/polyculture/ray-token",
                            "readOnly": True,
                        },
                    ],
                }
            ],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                {
                    "name": "ray-token",
                    "secret": {"secretName": f"{CLUSTER}-token", "defaultMode": 0o440},
                },
            ],
        },
    }


def test_service_and_secret() -> None:
    meta = {"namespace": "yoruba", "labels": COMMON, "ownerReferences": [OWNER_REF]}
    assert head_service(spec()) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": CLUSTER, **meta},
        "spec": {
            "clusterIP": "None",
            "selector": {
                "polyculture.dev/cluster": CLUSTER,
                "app.kubernetes.io/component": "head",
            },
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": "gcs", "port": 6379, "targetPort": 6379, "protocol": "TCP"},
                {"name": "dashboard", "port": 8265, "targetPort": 8265, "protocol": "TCP"},
                {"name": "client", "port": 10001, "targetPort": 10001, "protocol": "TCP"},
                {"name": "serve", "port": 8000, "targetPort": 8000, "protocol": "TCP"},
            ],
        },
    }
    assert token_secret(spec(), "s3cret") == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{CLUSTER}-token", **meta},
        "type": "Opaque",
        "immutable": True,
        "stringData": {"token": "s3cret"},
    }


def test_objects_in_creation_order_with_stable_names() -> None:
    first = objects(spec(THREE_NODES), "t")
    assert [(o["kind"], o["metadata"]["name"]) for o in first] == [
        ("Secret", f"{CLUSTER}-token"),
        ("Service", CLUSTER),
        ("Pod", f"{CLUSTER}-head"),
        ("Pod", f"{CLUSTER}-w1"),
        ("Pod", f"{CLUSTER}-w2"),
    ]
    assert objects(spec(THREE_NODES), "t") == first  # same input, same objects
    serving = WorkloadRef(namespace="yoruba", name="yoruba-base", uid=UID, role=Role.SERVING)
    assert pods(spec(workload=serving))[0]["metadata"]["name"] != f"{CLUSTER}-head"
    assert all(len(o["metadata"]["name"]) <= 63 for o in first)


def test_annotations_round_trip_for_adoption() -> None:
    head = pods(spec(THREE_NODES))[0]["metadata"]["annotations"]
    assert parse_workload(head["polyculture.dev/workload"]) == WORKLOAD
    assert parse_workload(head["polyculture.dev/workload"]).community == "yoruba"
    assert parse_workload(head["polyculture.dev/workload"]).pool == "coop"
    assert parse_placement(head["polyculture.dev/placement"]) == THREE_NODES


def h8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("coop", "coop"),
        ("H100", "H100"),
        ("a_b.c-d", "a_b.c-d"),
        ("", ""),
        ("x" * 63, "x" * 63),
        ("x" * 64, "x" * 54 + "-" + h8("x" * 64)),
        ("NVIDIA H100 80GB", "NVIDIA-H100-80GB-" + h8("NVIDIA H100 80GB")),
        ("-lead", "lead-" + h8("-lead")),
        ("***", h8("***")),
    ],
)
def test_label_values(text: str, expected: str) -> None:
    assert label_value(text) == expected
    assert len(expected) <= 63


def test_pod_size_and_selector() -> None:
    small = RayCluster(
        workload=WORKLOAD,
        placement=ONE_NODE,
        pool="coop",
        image=IMAGE,
        ray_version="2.60.0",
        size=PodSize(cpu="500m", memory="1Gi", shm="256Mi"),
    )
    container = pods(small)[0]["spec"]["containers"][0]
    assert container["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "1Gi",
        "nvidia.com/gpu": "4",
    }
    assert selector("coop") == "app.kubernetes.io/managed-by=polyculture,polyculture.dev/pool=coop"
    assert selector(None) == "app.kubernetes.io/managed-by=polyculture"


def test_a_workload_without_uid_is_refused() -> None:
    with pytest.raises(ValueError, match="uid"):
        spec(workload=WorkloadRef(namespace="yoruba", name="m"))
