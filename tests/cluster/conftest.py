"""Cluster-tier fixtures shared by every cluster test.

- ``crds`` (session): the project's CRDs (``crds/*.yaml``) installed by server-side apply
  and Established; yields the CRD names. Idempotent: applying unchanged CRDs is a no-op.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polyculture.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"


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
