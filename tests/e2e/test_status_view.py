"""`kubectl polyculture status`: the live view as a kubectl plugin, reading what the operator
wrote on the real control plane (a pool of one kwok node, a model admitted on the
``kubernetes`` backend, a model of a pool that does not exist)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from polyculture.controlplane import ControlPlane
from polyculture.controlplane.manifests import compute_pool, member, training_model
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

GROUP, VERSION = "polyculture.dev", "v1alpha1"


def kubectl_plugin(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl finds `kubectl-polyculture` (a console script of the project) on PATH."""
    scripts = str(Path(sys.executable).parent)
    env = dict(
        os.environ,
        PATH=f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}",
        KUBECONFIG=str(cp.kubeconfig),
        COLUMNS="200",
    )
    return subprocess.run(
        [str(cp.binaries.kubectl), "polyculture", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )


def test_kubectl_polyculture_status_shows_the_pool_and_its_models(
    control_plane: ControlPlane, api_client: Any, crds: object, operator: OperatorProcess
) -> None:
    tag = uuid.uuid4().hex[:6]
    ns, pool, node = f"view-{tag}", f"view-{tag}", f"view-{tag}-0"
    core, objs = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    core.create_namespace({"metadata": {"name": ns}})
    create_gpu_node(api_client, node, "ada", 8, labels={"view": tag})
    communities = [{"name": ns, "weight": 2, "guaranteedGPUs": 2}]
    objs.create_cluster_custom_object(
        GROUP,
        VERSION,
        "computepools",
        compute_pool(pool, [member("ada", {"view": tag})], communities),
    )
    try:
        for name, target in (("placed", pool), ("lost", f"gone-{tag}")):
            body = training_model(name, target, gpus=2)
            objs.create_namespaced_custom_object(GROUP, VERSION, ns, "communitymodels", body)

        def shown() -> str | None:
            out = kubectl_plugin(control_plane, "status")
            assert out.returncode == 0, out.stderr
            text = out.stdout
            ready = f"pool {pool}" in text and f"{ns}/placed" in text and f"{ns}/lost" in text
            return text if ready and f"ada/{node} ×2" in text and "PoolNotFound" in text else None

        text = wait_for(shown, 60, f"the view shows the operator's statuses\n{operator.log_tail()}")
        lines = text.splitlines()
        placed = next(line for line in lines if f"{ns}/placed" in line)
        assert "Admitted" in placed or "Training" in placed
        lost = next(line for line in lines if f"{ns}/lost" in line)
        assert "Invalid" in lost
        assert "models of no known pool" in text
        one = kubectl_plugin(control_plane, "status", "--pool", pool)
        assert one.returncode == 0 and f"{ns}/lost" not in one.stdout
        # this pool's owner row (other tests' pools have owners named ada too)
        owner = next(line for line in one.stdout.splitlines() if "│ ada " in line)
        assert " 8 " in owner  # lends its 8 GPUs
        missing = kubectl_plugin(control_plane, "status", "--pool", f"none-{tag}")
        assert missing.returncode == 1 and "no ComputePool named" in missing.stdout

        # --watch keeps redrawing until Ctrl-C, then exits 0
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "polyculture",
                "status",
                "--watch",
                "--interval",
                "0.5",
                "--pool",
                pool,
                "--kubeconfig",
                str(control_plane.kubeconfig),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, COLUMNS="200"),
        )
        time.sleep(6)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=20)
        assert watch.returncode == 0, err
        assert f"pool {pool}" in out  # the last frame (rich redraws only on a terminal)
    finally:
        with contextlib.suppress(ApiException):
            objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", pool)
        with contextlib.suppress(ApiException):
            core.delete_namespace(ns)
        with contextlib.suppress(ApiException):
            core.delete_node(node)
