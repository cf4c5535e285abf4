"""A control plane of this package's own: here no other operator may act on the objects.

The session's ``operator`` fixture judges every object of the session's control plane; the
tests here run operators of their own (two replicas, or one scraped by Prometheus) and must
be the only ones acting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from polyculture.controlplane import ControlPlane, locate

REPO = Path(__file__).resolve().parents[3]
LEASE_NS = "polyculture-system"


@pytest.fixture(scope="package")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, Any]]:
    """A started control plane with the CRDs and the operator namespace, and an admin client."""
    if locate().missing():
        pytest.fail("control plane binaries missing: run `make control-plane`")
    cp = ControlPlane(run_dir=tmp_path_factory.mktemp("own-cp"))
    cp.start()
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    try:
        files = sorted((REPO / "crds").glob("*.yaml"))
        cp.kubectl("apply", "--server-side", *[a for f in files for a in ("-f", str(f))])
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        client.CoreV1Api(api).create_namespace({"metadata": {"name": LEASE_NS}})
        yield cp, api
    finally:
        api.close()
        cp.stop()
