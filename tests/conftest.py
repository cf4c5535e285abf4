"""Fixtures shared by every tier.

- ``control_plane`` (session): a real control plane (etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler, kwok) on 127.0.0.1, built first if the cache lacks it,
  stopped at the end of the session — also when tests fail.
- ``api_client`` (session): a ``kubernetes.client.ApiClient`` for it, as the cluster admin.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyculture.controlplane import ControlPlane, locate

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if locate().missing():
        # setup builds what it needs (cached afterwards); `make test` has done this already
        subprocess.run(["bash", str(REPO / "hack" / "build-control-plane.sh")], check=True)
    cp = ControlPlane(run_dir=tmp_path_factory.mktemp("controlplane"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> Iterator[object]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield client
    finally:
        client.close()
