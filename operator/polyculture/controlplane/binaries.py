"""Where the control-plane binaries live, and which versions (pinned in ``versions.env``).

The binaries are built from Go modules by ``hack/build-control-plane.sh`` into a cache outside
the repository (``$POLYCULTURE_CACHE``, default ``~/.cache/polyculture``) and never committed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VERSIONS_FILE = Path(__file__).with_name("versions.env")


def versions() -> dict[str, str]:
    """The pinned versions, read from ``versions.env`` (``KEY=value`` lines)."""
    out: dict[str, str] = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("POLYCULTURE_CACHE", Path.home() / ".cache" / "polyculture"))


@dataclass(frozen=True, slots=True)
class Binaries:
    """Paths of every binary the local control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwok_stages: Path  # kwok's "fast" node and pod stages, taken from its module
    kubectl: Path
    helm: Path

    def missing(self) -> list[Path]:
        files = [p for p in vars_of(self) if p.suffix == ".yaml"]
        return [
            p for p in vars_of(self) if not (p.is_file() if p in files else os.access(p, os.X_OK))
        ]


def vars_of(b: Binaries) -> list[Path]:
    return [getattr(b, name) for name in Binaries.__slots__]


def locate() -> Binaries:
    """The binaries for the pinned versions (they may not exist yet: see ``missing()``)."""
    v = versions()
    bin_dir = cache_dir() / "bin"
    kube = v["KUBE_VERSION"]
    wheel_tag = v["KUBECTL_WHEEL"].split("==", 1)[1]
    return Binaries(
        etcd=bin_dir / f"etcd-{v['ETCD_VERSION']}",
        kube_apiserver=bin_dir / f"kube-apiserver-{kube}",
        kube_controller_manager=bin_dir / f"kube-controller-manager-{kube}",
        kube_scheduler=bin_dir / f"kube-scheduler-{kube}",
        kwok=bin_dir / f"kwok-{v['KWOK_VERSION']}",
        kwok_stages=bin_dir / f"kwok-stages-{v['KWOK_VERSION']}.yaml",
        kubectl=bin_dir / f"kubectl-{wheel_tag}",
        helm=bin_dir / f"helm-{wheel_tag}",
    )
