"""Fixtures shared by every tier.

- ``control_plane`` (session): a real control plane (etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler, kwok) on 127.0.0.1, built first if the cache lacks it,
  stopped at the end of the session — also when tests fail.
- ``api_client`` (session): a ``kubernetes.client.ApiClient`` for it, as the cluster admin.
- ``crds`` (session): the project's CRDs (``crds/*.yaml``) installed by server-side apply
  and Established; yields the CRD names.
- ``fake_nvml`` (session): the fake NVML class of ``tests/unit/agent/agent_nvml_fake.py``
  (shaped like a recorded H200), for tiers other than the agent's unit tests.
- ``operator`` (session): the operator process against it, with a clock that tests move
  forward; tests request ``crds`` before it.
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polyculture.controlplane import ControlPlane, locate
from polyculture.controlplane.operator import OperatorProcess

REPO = Path(__file__).resolve().parent.parent
CRD_DIR = REPO / "crds"


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


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator process against the session's control plane (request ``crds`` too)."""
    op = OperatorProcess(control_plane.kubeconfig, tmp_path_factory.mktemp("operator"))
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> list[str]:
    files = sorted(CRD_DIR.glob("*.yaml"))
    assert files, f"no CRDs in {CRD_DIR}: run `polyculture crds`"
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",  # a session may re-apply after regenerating
        "--field-manager=polyculture-tests",
        *[arg for f in files for arg in ("-f", str(f))],
    )
    names = [f.name.split("_", 1)[1].removesuffix(".yaml") + ".polyculture.dev" for f in files]
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names]
    )
    return names


@pytest.fixture(scope="session")
def fake_nvml() -> Any:
    """The FakeNvml class; loaded by path since test folders are not packages."""
    path = REPO / "tests" / "unit" / "agent" / "agent_nvml_fake.py"
    spec = importlib.util.spec_from_file_location("agent_nvml_fake_shared", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeNvml
