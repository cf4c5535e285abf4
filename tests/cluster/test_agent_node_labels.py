"""The node agent, in-process with a fake NVML, against the real API server and kwok nodes.

Covers: one run labels a kwok GPU node with the contract of ``polyculture.agent.labels``
(replacing the stale GFD-style labels it was created with, leaving the others alone) and
writes the detail annotation; an identical refresh writes nothing; in the refresh loop, an
uncorrectable ECC error flips the health labels within a refresh, and a repaired GPU flips
them back; without NVML the agent withdraws its GPU claims and exits 3.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from polyculture.agent import cli
from polyculture.controlplane import ControlPlane
from polyculture.controlplane.nodes import OWNER_LABEL, create_gpu_node
from polyculture.controlplane.waiting import wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def node(api_client: Any) -> Iterator[str]:
    """A kwok node created the way the pool tests create them (GFD-style H100 labels)."""
    name = f"agent-{uuid.uuid4().hex[:8]}"
    create_gpu_node(api_client, name, owner="acme", gpus=8)
    yield name
    client.CoreV1Api(api_client).delete_node(name)


def metadata(api_client: Any, name: str) -> client.V1ObjectMeta:
    meta = client.CoreV1Api(api_client).read_node(name).metadata
    assert meta is not None
    return meta


def agent_args(control_plane: ControlPlane, node: str, *extra: str) -> list[str]:
    return [
        "--node",
        node,
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--metrics-port",
        "0",
        *extra,
    ]


def test_one_run_writes_the_labels_and_the_detail(
    fake_nvml: Any, control_plane: ControlPlane, api_client: Any, node: str
) -> None:
    fake = fake_nvml.h200(gpus=8)
    assert cli.main(agent_args(control_plane, node, "--once"), nvml=fake) == 0

    meta = metadata(api_client, node)
    labels = meta.labels or {}
    assert {
        k: v for k, v in labels.items() if k.startswith(("nvidia.com/", "polyculture.dev/"))
    } == {
        "nvidia.com/gpu.product": "NVIDIA-H200",  # was NVIDIA-H100-80GB-HBM3
        "nvidia.com/gpu.memory": "143771",  # was 81559
        "nvidia.com/gpu.count": "8",
        "polyculture.dev/gpu.healthy-count": "8",
        "polyculture.dev/gpu.health": "ok",
        "polyculture.dev/gpu.checked": "true",
        OWNER_LABEL: "acme",  # not the agent's: left alone
    }
    assert labels["kubernetes.io/hostname"] == node
    detail = json.loads((meta.annotations or {})["polyculture.dev/gpu-detail"])
    assert (detail["version"], detail["count"], detail["healthyCount"]) == (1, 8, 8)
    assert detail["driverVersion"] == "580.159.04"
    assert [g["uuid"] for g in detail["gpus"]] == [d["uuid"] for d in fake.devices]
    assert "temperatureC" not in detail["gpus"][0]  # readings live in the metrics
    assert (meta.annotations or {})["kwok.x-k8s.io/node"] == "fake"  # kwok's, kept

    # the same GPUs again: nothing to write, so the Node is not touched
    assert cli.main(agent_args(control_plane, node, "--once"), nvml=fake) == 0
    assert metadata(api_client, node).resource_version == meta.resource_version


def test_an_ecc_error_flips_the_health_labels_in_the_refresh_loop(
    fake_nvml: Any, control_plane: ControlPlane, api_client: Any, node: str
) -> None:
    fake = fake_nvml.h200(gpus=8)
    stop = threading.Event()
    result: list[int] = []
    agent = threading.Thread(
        target=lambda: result.append(
            cli.main(agent_args(control_plane, node, "--interval", "100ms"), nvml=fake, stop=stop)
        ),
        daemon=True,
    )
    agent.start()
    try:

        def health() -> tuple[str | None, str | None]:
            labels = metadata(api_client, node).labels or {}
            return (
                labels.get("polyculture.dev/gpu.health"),
                labels.get("polyculture.dev/gpu.healthy-count"),
            )

        wait_for(lambda: health() == ("ok", "8"))

        fake.ecc_error(3, volatile=1)
        wait_for(lambda: health() == ("degraded", "7"))
        detail = json.loads(
            (metadata(api_client, node).annotations or {})["polyculture.dev/gpu-detail"]
        )
        assert detail["gpus"][3]["health"] == "unhealthy"
        assert detail["gpus"][3]["reasons"] == [
            "1 uncorrectable ECC error(s) since the driver loaded"
        ]
        assert (metadata(api_client, node).labels or {})["nvidia.com/gpu.count"] == "8"

        for gpu in range(8):
            fake.ecc_error(gpu, volatile=1)
        wait_for(lambda: health() == ("unhealthy", "0"))

        # a reset clears the volatile counter: the GPUs come back
        for device in fake.devices:
            device["ecc_volatile_uncorrected"] = 0
        wait_for(lambda: health() == ("ok", "8"))
    finally:
        stop.set()
        agent.join(timeout=10)
    assert not agent.is_alive()
    assert result == [0]


def test_without_nvml_the_agent_withdraws_its_claims(
    fake_nvml: Any,
    control_plane: ControlPlane,
    api_client: Any,
    node: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(agent_args(control_plane, node, "--once"), nvml=fake_nvml.h200(gpus=8)) == 0

    code = cli.main(agent_args(control_plane, node, "--once"), nvml=fake_nvml.absent())

    assert code == cli.EXIT_NVML_UNAVAILABLE
    assert "NVML is unavailable" in capsys.readouterr().err
    meta = metadata(api_client, node)
    labels = meta.labels or {}
    assert labels["polyculture.dev/gpu.health"] == "unhealthy"
    assert labels["polyculture.dev/gpu.healthy-count"] == "0"
    for withdrawn in ("nvidia.com/gpu.product", "nvidia.com/gpu.memory", "nvidia.com/gpu.count"):
        assert withdrawn not in labels
    detail = json.loads((meta.annotations or {})["polyculture.dev/gpu-detail"])
    assert "NVML Shared Library Not Found" in detail["error"]
    assert detail["gpus"] == []
