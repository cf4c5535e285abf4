"""The backend interface's value types and pure helpers — no Ray cluster needed.

Covers: submission ids (stable, distinct per attempt and identity), cluster names, placement
and Serve-app validation, the runtime environment of a job (contract variables), Serve's
declarative config, the local backend's node arguments (GPUs, owner, class, labels, ports),
and the process table helpers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import ServeDeploySchema

from polyculture.ray import (
    CHECKPOINT_URI_ENV,
    ClusterBackend,
    NodePlacement,
    Placement,
    Role,
    ServeApp,
    TrainingJob,
    WorkloadRef,
    processes,
    submission_id,
)
from polyculture.ray.clients import job_runtime_env, serve_application_config, serve_config
from polyculture.ray.local import LocalBackend
from polyculture.ray.localnodes import NODE_PORTS, PORT_RANGE, NodeSettings, free_ports

MODEL = WorkloadRef(namespace="lab-a", name="Tiny_LM", uid="u-1")
TWO_NODES = Placement(
    gpus_per_worker=2,
    nodes=(
        NodePlacement(node="alice-gpu-0", owner="alice", gpu_class="H100", workers=2),
        NodePlacement(node="bob-gpu-3", owner="bob", gpu_class="H100"),
    ),
)


def test_submission_id_is_stable_and_distinct_per_attempt_and_identity() -> None:
    assert submission_id(MODEL, 1) == submission_id(WorkloadRef(**vars(MODEL)), 1)
    assert submission_id(MODEL, 1) != submission_id(MODEL, 2)
    assert submission_id(MODEL, 1) != submission_id(
        WorkloadRef(namespace="lab-a", name="Tiny_LM"), 1
    )
    assert submission_id(MODEL, 3).endswith("-attempt-3")
    assert submission_id(MODEL, 1).startswith("pc-lab-a-tiny-lm-")
    with pytest.raises(ValueError):
        submission_id(MODEL, 0)


def test_training_and_serving_of_one_model_get_different_clusters() -> None:
    serving = WorkloadRef(namespace="lab-a", name="Tiny_LM", uid="u-1", role=Role.SERVING)
    assert MODEL.cluster_name != serving.cluster_name
    assert len(MODEL.cluster_name) <= 63 and MODEL.cluster_name == MODEL.cluster_name.lower()


def test_placement_counts_and_validation() -> None:
    assert TWO_NODES.workers == 3 and TWO_NODES.gpus == 6
    assert [TWO_NODES.gpus_on(n) for n in TWO_NODES.nodes] == [4, 2]
    with pytest.raises(ValueError, match="at least one node"):
        Placement(gpus_per_worker=1, nodes=())
    with pytest.raises(ValueError, match="twice"):
        node = NodePlacement(node="n", owner="o", gpu_class="c")
        Placement(gpus_per_worker=1, nodes=(node, node))
    with pytest.raises(ValueError, match="workers"):
        NodePlacement(node="n", owner="o", gpu_class="c", workers=0)


def test_serve_app_replicas_stay_within_bounds() -> None:
    app = ServeApp(name="a", import_path="m:app", replicas=2, min_replicas=1, max_replicas=3)
    assert app.scaled(3).replicas == 3 and app.scaled(1).replicas == 1
    for wrong in (0, 4):
        with pytest.raises(ValueError, match="outside"):
            app.scaled(wrong)
    with pytest.raises(ValueError, match="route_prefix"):
        ServeApp(name="a", import_path="m:app", route_prefix="no-slash")


def test_job_runtime_env_carries_the_contract() -> None:
    job = TrainingJob(
        workload=MODEL,
        attempt=2,
        entrypoint="python train.py",
        checkpoint_uri="file:///ckpt/tiny",
        runtime_env={"working_dir": "/src", "env_vars": {"MINE": "1"}},
    )
    env = job_runtime_env(job, TWO_NODES)
    assert env["working_dir"] == "/src"
    assert env["env_vars"] == {
        "MINE": "1",
        CHECKPOINT_URI_ENV: "file:///ckpt/tiny",
        "POLYCULTURE_ATTEMPT": "2",
        "POLYCULTURE_NUM_WORKERS": "3",
        "POLYCULTURE_GPUS_PER_WORKER": "2",
        "POLYCULTURE_WORKLOAD": "lab-a/Tiny_LM",
    }
    assert job.runtime_env["env_vars"] == {"MINE": "1"}, "the job itself is not changed"


def test_serve_config_is_declarative_with_replicas_and_gpus() -> None:
    app = ServeApp(name="echo", import_path="serve_app:app", route_prefix="/e", gpus_per_replica=1)
    config = serve_config(
        [serve_application_config(app, {"working_dir": "gcs://pkg.zip"})],
        http_host="127.0.0.1",
        http_port=8123,
    )
    assert config["proxy_location"] == "HeadOnly"
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8123}
    (entry,) = config["applications"]
    assert entry["route_prefix"] == "/e" and entry["runtime_env"] == {
        "working_dir": "gcs://pkg.zip"
    }
    assert entry["deployments"] == [
        {
            "name": "Model",
            "autoscaling_config": {
                "min_replicas": 1,
                "max_replicas": 1,
                "initial_replicas": 1,
                "target_ongoing_requests": 2,
            },
            "ray_actor_options": {"num_cpus": 0, "num_gpus": 1},
        }
    ]


def test_serve_bounds_reach_autoscaling_and_pass_ray_schema() -> None:
    app = ServeApp(
        name="echo", import_path="serve_app:app", replicas=2, min_replicas=1, max_replicas=3
    )
    config = serve_config(
        [serve_application_config(app, {})], http_host="127.0.0.1", http_port=8123
    )
    (deployment,) = ServeDeploySchema.model_validate(config).applications[0].deployments
    assert "num_replicas" not in deployment.model_dump(exclude_unset=True)  # Serve scales
    bounds = AutoscalingConfig.model_validate(deployment.autoscaling_config)
    assert (bounds.min_replicas, bounds.initial_replicas, bounds.max_replicas) == (1, 2, 3)
    assert app.bounded(3, 4).replicas == 3 and app.bounded(0, 1).replicas == 1
    with pytest.raises(ValueError, match="outside"):
        app.scaled(4)


def test_worker_node_declares_gpus_owner_class_and_labels(tmp_path: Path) -> None:
    settings = NodeSettings(python=sys.executable, object_store_bytes=80 << 20, cpus_per_node=1)
    node = TWO_NODES.nodes[0]
    ports = dict(zip(NODE_PORTS, range(20001, 20001 + len(NODE_PORTS)), strict=True))
    args = settings.worker_args(
        node, gpus=TWO_NODES.gpus_on(node), ports=ports, gcs_port=20000, temp_dir=tmp_path / "w0"
    )
    flags = dict(a.split("=", 1) for a in args if "=" in a)
    assert flags["--address"] == "127.0.0.1:20000"
    assert flags["--node-ip-address"] == "127.0.0.1"
    assert flags["--num-gpus"] == "4"
    assert json.loads(flags["--resources"]) == {
        "polyculture.dev/owner:alice": 4,
        "polyculture.dev/gpu-class:H100": 4,
    }
    assert set(flags["--labels"].split(",")) == {
        "polyculture.dev/owner=alice",
        "polyculture.dev/gpu-class=H100",
        "polyculture.dev/node=alice-gpu-0",
    }
    assert flags["--node-name"] == "alice-gpu-0"
    assert flags["--node-manager-port"] == "20001"
    assert flags["--temp-dir"] == str(tmp_path / "w0")


def test_local_backend_implements_the_interface(tmp_path: Path) -> None:
    backend: ClusterBackend = LocalBackend(tmp_path)  # checked by mypy
    assert backend.name == "local"
    assert backend.find(MODEL) is None and backend.clusters() == []


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    ports = free_ports(20)
    low, high = PORT_RANGE
    assert len(set(ports)) == 20 and all(low <= p < high for p in ports)
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert high <= ephemeral_low, "no outgoing connection can take a chosen port"
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_process_table_sees_sessions_descendants_and_markers() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, processes.MARKER_ENV: "pc-test-marker"},
        start_new_session=True,
    )
    try:
        me = processes.read_proc(os.getpid())
        assert me is not None and processes.alive(os.getpid(), me.start_ticks)
        assert not processes.alive(os.getpid(), me.start_ticks + 1), "a recycled pid is not us"
        assert child.pid in processes.descendants(os.getpid(), processes.snapshot())
        assert processes.cluster_members(sid=None, marker="pc-test-marker") == {child.pid}
        assert processes.cluster_members(sid=child.pid, marker="other") == {child.pid}
        assert processes.kill_members(sid=child.pid, marker="pc-test-marker", grace_s=1) == set()
        child.wait(timeout=5)
        assert not processes.alive(child.pid)
    finally:
        child.kill()
        child.wait()
