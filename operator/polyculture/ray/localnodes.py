"""The command lines and environment of a local Ray cluster's nodes (pure, no process started).

A head (no CPUs, no GPUs, the dashboard, Serve's HTTP proxy later) and one worker node per
placed node, declaring that node's GPUs (fake: a declared count, never detected hardware),
its owner and GPU class as custom resources and labels, and its name. Every port is chosen
by the caller (free on 127.0.0.1) and every node address is 127.0.0.1 (see
:mod:`polyculture.ray.nodestart`). Nodes are started by the keeper as
``python -c <run polyculture.ray.nodestart> <ray start options>``.
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polyculture
from polyculture.ray.backend import NodePlacement, placed_node_args
from polyculture.ray.nodestart import LOOPBACK
from polyculture.ray.processes import MARKER_ENV

HEAD_PORTS: Final = ("gcs", "dashboard", "client_server", "dashboard_metrics", "serve_http")
NODE_PORTS: Final = (
    "node_manager",
    "object_manager",
    "metrics_export",
    "agent_listen",
    "agent_grpc",
    "runtime_env_agent",
)
#: the ports a local cluster listens on: below the kernel's ephemeral range (32768-60999 by
#: default) and above Ray's worker ports (10002-19999)
PORT_RANGE: Final = (20000, 32768)
_RANDOM: Final = random.SystemRandom()
# The operator's own Ray settings must not leak into a cluster it starts.
_DROPPED_ENV_PREFIXES: Final = ("RAY_", "POLYCULTURE_RAY_")
PACKAGE_DIR: Final = Path(polyculture.__file__).resolve().parent
# Run a polyculture module by absolute import, without PYTHONPATH (which would leak into
# every Ray process and job) and without putting the module's own folder on sys.path.
_RUN_MODULE: Final = (
    "import sys; sys.path.insert(0, {root!r}); from {module} import main; "
    "sys.exit(main(sys.argv[1:]))"
)


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports free on ``host`` now (all held open while choosing).

    Chosen at random from :data:`PORT_RANGE`, not by the kernel (``bind(0)``): a port from the
    ephemeral range may be taken by any outgoing connection before the Ray process that is
    meant to listen on it starts (Serve's proxy binds its port only when Serve first deploys),
    and Ray's workers take theirs from 10002-19999.
    """
    low, high = PORT_RANGE
    sockets: list[socket.socket] = []
    try:
        for port in _RANDOM.sample(range(low, high), high - low):
            if len(sockets) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        if len(sockets) < count:
            raise OSError(f"fewer than {count} free ports in {low}-{high - 1} on {host}")
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def module_argv(python: str, module: str, args: list[str]) -> list[str]:
    """Run ``module``'s ``main(argv)`` with ``python``, importing polyculture from here."""
    return [python, "-c", _RUN_MODULE.format(root=str(PACKAGE_DIR.parent), module=module), *args]


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """What every node of a local cluster shares."""

    python: str
    object_store_bytes: int
    cpus_per_node: int

    def env(self, cluster: str, token_path: Path, ports: dict[str, int]) -> dict[str, str]:
        """The environment of every Ray process of ``cluster`` (inherited by its jobs)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_DROPPED_ENV_PREFIXES) and k != "PYTHONPATH"
        }
        env.update(
            {
                # `python` in an entrypoint must be the one that has Ray
                "PATH": str(Path(self.python).parent) + os.pathsep + env.get("PATH", ""),
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(token_path),
                "RAY_USAGE_STATS_ENABLED": "0",
                # every Ray process picks 127.0.0.1 as its address (see nodestart)
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                # fixed by default (44227): two clusters would collide
                "DASHBOARD_METRIC_PORT": str(ports["dashboard_metrics"]),
                MARKER_ENV: cluster,
            }
        )
        return env

    def _common_args(self, ports: dict[str, int], temp_dir: Path) -> list[str]:
        return [
            f"--node-ip-address={LOOPBACK}",
            f"--object-store-memory={self.object_store_bytes}",
            "--disable-usage-stats",
            "--include-log-monitor=false",
            # a temp dir per node: nodes starting at once race for the same socket names
            f"--temp-dir={temp_dir}",
            f"--node-manager-port={ports['node_manager']}",
            f"--object-manager-port={ports['object_manager']}",
            f"--metrics-export-port={ports['metrics_export']}",
            f"--dashboard-agent-listen-port={ports['agent_listen']}",
            f"--dashboard-agent-grpc-port={ports['agent_grpc']}",
            f"--runtime-env-agent-port={ports['runtime_env_agent']}",
        ]

    def head_args(self, ports: dict[str, int], temp_dir: Path) -> list[str]:
        return [
            "--head",
            f"--port={ports['gcs']}",
            "--num-cpus=0",
            "--num-gpus=0",
            "--include-dashboard=true",
            f"--dashboard-host={LOOPBACK}",
            f"--dashboard-port={ports['dashboard']}",
            # Ray's CLI insists on a Ray Client server (port 0 is refused): on loopback
            f"--ray-client-server-port={ports['client_server']}",
            "--no-monitor",  # hidden flag: no autoscaler for a fixed-size cluster
            "--node-name=head",
            *self._common_args(ports, temp_dir),
        ]

    def worker_args(
        self,
        node: NodePlacement,
        *,
        gpus: int,
        ports: dict[str, int],
        gcs_port: int,
        temp_dir: Path,
    ) -> list[str]:
        return [
            f"--address={LOOPBACK}:{gcs_port}",
            f"--num-cpus={self.cpus_per_node}",
            *placed_node_args(node, gpus),
            *self._common_args(ports, temp_dir),
        ]
