"""The ``local`` cluster backend: real Ray processes on this machine, one cluster per workload.

Each cluster is a head node plus one Ray worker node per placed node, all ``ray start``
processes on 127.0.0.1. A worker node declares the GPUs placed on it (``--num-gpus``; fake
GPUs are declared resources, never detected hardware), its owner and GPU class as custom
resources (``polyculture.dev/owner:<owner>``, ``polyculture.dev/gpu-class:<class>``) and as
labels, plus the placed node's name as a label and as the Ray node name. The head declares
no CPUs and no GPUs, so that work lands on the placed nodes only.

Security and hygiene:

- token authentication on (``RAY_AUTH_MODE=token``), a fresh random token per cluster in a
  0600 file that the Ray processes read through ``RAY_AUTH_TOKEN_PATH``;
- every port chosen free on 127.0.0.1 and every Ray listener bound to loopback (see
  :mod:`polyculture.ray.nodestart`); Serve's HTTP proxy runs on the head only, on loopback;
- usage stats off, the dashboard on the head only, small object stores, no autoscaler
  monitor, no log monitor;
- Ray's temp dir is short (``/tmp/pc-ray/<random>``: unix socket paths are limited to 107
  bytes) and lies outside every working directory (a folder named ``ray`` in a job's
  working directory would shadow the ``ray`` package).

Lifetime: a keeper process (:mod:`polyculture.ray.keeper`) owns each cluster. With
``fate_share=True`` (the default) the cluster dies with the process that created it, however
that process ends; with ``fate_share=False`` it outlives it, and a restarted operator adopts
it. State lives in ``<state_dir>/<cluster>/``: ``cluster.json`` (keeper pid and start time,
ports, token path, Ray temp dir), ``keeper.json`` (the keeper's progress), ``token``, and
the nodes' startup logs. :meth:`LocalBackend.find` trusts a state file only while its keeper
runs; a stale one is cleaned up (any leftover process killed).

Environment contract of a training run: see :mod:`polyculture.ray` (``POLYCULTURE_*``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Final

from polyculture.ray import processes, serve_loopback
from polyculture.ray.backend import (
    ClusterHandle,
    ClusterPhase,
    ClusterStatus,
    NodePlacement,
    Placement,
    Role,
    ServeApp,
    WorkloadRef,
)
from polyculture.ray.clients import RayClients, RayClusterClient, dashboard_json, read_token
from polyculture.ray.keeper import KEEP_TEMP_ENV
from polyculture.ray.localnodes import (
    HEAD_PORTS,
    NODE_PORTS,
    PACKAGE_DIR,
    NodeSettings,
    free_ports,
    module_argv,
)
from polyculture.ray.nodestart import LOOPBACK

log = logging.getLogger(__name__)

DEFAULT_RAY_TEMP_ROOT: Final = Path("/tmp/pc-ray")
#: the command name of the head's GCS server process (one per cluster)
GCS_SERVER: Final = "gcs_server"
# Keepers started by this process, by cluster name. Module-level on purpose: the pipe to a
# fate-sharing keeper must stay open as long as this *process* lives, not as long as the
# backend object that started it (a new backend object adopts the cluster).
_KEEPERS: dict[str, subprocess.Popen[bytes]] = {}


def _placement_from_json(data: dict[str, Any]) -> Placement:
    return Placement(
        gpus_per_worker=data["gpus_per_worker"],
        nodes=tuple(NodePlacement(**n) for n in data["nodes"]),
    )


def _workload_from_json(data: dict[str, Any]) -> WorkloadRef:
    return WorkloadRef(
        namespace=data["namespace"], name=data["name"], role=Role(data["role"]), uid=data["uid"]
    )


def _with_loopback_replicas(app: ServeApp) -> ServeApp:
    """``app`` whose replicas keep their gRPC server on loopback (see serve_loopback)."""
    runtime_env = dict(app.runtime_env)
    modules = runtime_env.get("py_modules") or []
    env_vars = runtime_env.get("env_vars") or {}
    if not isinstance(modules, list) or not isinstance(env_vars, dict):
        raise TypeError("runtime_env: py_modules must be a list and env_vars a mapping")
    if serve_loopback.HOOK_ENV in env_vars:
        log.warning("%s has its own worker setup hook: its replicas listen on [::]", app.name)
        return app
    runtime_env["py_modules"] = [*modules, str(PACKAGE_DIR)]
    runtime_env["env_vars"] = {**env_vars, serve_loopback.HOOK_ENV: serve_loopback.HOOK}
    return replace(app, runtime_env=runtime_env)


class LocalBackend(RayClients):
    """Ray clusters as local processes. See the module docstring for the layout and contract."""

    name = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        fate_share: bool = True,
        python: str = sys.executable,
        ray_temp_root: Path = DEFAULT_RAY_TEMP_ROOT,
        object_store_bytes: int = 80 * 1024 * 1024,
        cpus_per_node: int = 1,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.fate_share = fate_share
        self.python = python
        self.ray_temp_root = Path(ray_temp_root)
        self.nodes = NodeSettings(
            python=python, object_store_bytes=object_store_bytes, cpus_per_node=cpus_per_node
        )

    # -- create / find / status / teardown ---------------------------------------------------

    def create(self, workload: WorkloadRef, placement: Placement) -> ClusterHandle:
        existing = self.find(workload)
        if existing is not None:
            log.info("cluster %s for %s exists; adopting it", existing.name, workload)
            return existing
        name = workload.cluster_name
        cluster_dir = self.state_dir / name
        shutil.rmtree(cluster_dir, ignore_errors=True)
        (cluster_dir / "cwd").mkdir(parents=True)
        token_path = cluster_dir / "token"
        token_path.touch(mode=0o600)
        token_path.write_text(secrets.token_hex(16))
        self.ray_temp_root.mkdir(parents=True, exist_ok=True)
        ray_temp_dir = self.ray_temp_root / secrets.token_hex(4)

        ports_needed = len(HEAD_PORTS) + len(NODE_PORTS) * (1 + len(placement.nodes))
        pool = iter(free_ports(ports_needed))
        head_ports = {key: next(pool) for key in (*HEAD_PORTS, *NODE_PORTS)}
        node_ports = [{key: next(pool) for key in NODE_PORTS} for _ in placement.nodes]

        env = self.nodes.env(name, token_path, head_ports)
        start = "polyculture.ray.nodestart"
        nodes: dict[str, dict[str, Any]] = {
            "head": {
                "argv": module_argv(
                    self.python, start, self.nodes.head_args(head_ports, ray_temp_dir / "h")
                ),
                "env": env,
                "log": str(cluster_dir / "head.log"),
            }
        }
        for i, (node, ports) in enumerate(zip(placement.nodes, node_ports, strict=True)):
            args = self.nodes.worker_args(
                node,
                gpus=placement.gpus_on(node),
                ports=ports,
                gcs_port=head_ports["gcs"],
                temp_dir=ray_temp_dir / f"w{i}",
            )
            nodes[f"worker-{i}"] = {
                "argv": module_argv(self.python, start, args),
                "env": env,
                "log": str(cluster_dir / f"worker-{i}-{node.node}.log"),
            }
        spec = {
            "cluster": name,
            "marker": name,
            "nodes": nodes,
            "cwd": str(cluster_dir / "cwd"),
            "status_file": str(cluster_dir / "keeper.json"),
            "ray_temp_dir": str(ray_temp_dir),
            "fate_share": self.fate_share,
        }
        spec_path = cluster_dir / "keeper-spec.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        spec_path.chmod(0o600)

        with open(cluster_dir / "keeper.log", "ab") as keeper_log:
            keeper = subprocess.Popen(
                module_argv(self.python, "polyculture.ray.keeper", [str(spec_path)]),
                stdin=subprocess.PIPE if self.fate_share else subprocess.DEVNULL,
                stdout=keeper_log,
                stderr=keeper_log,
                cwd=cluster_dir / "cwd",
                start_new_session=True,
            )
        if self.fate_share:
            _KEEPERS[name] = keeper
        keeper_proc = processes.read_proc(keeper.pid)
        created_at = time.time()
        state = {
            "name": name,
            "backend": self.name,
            "workload": {**asdict(workload), "role": workload.role.value},
            "placement": asdict(placement),
            "keeper_pid": keeper.pid,
            "keeper_start_ticks": keeper_proc.start_ticks if keeper_proc else None,
            "fate_share": self.fate_share,
            "ports": {"head": head_ports, "nodes": node_ports},
            "token_path": str(token_path),
            "ray_temp_dir": str(ray_temp_dir),
            "created_at": created_at,
        }
        tmp = cluster_dir / "cluster.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(cluster_dir / "cluster.json")
        log.info("creating cluster %s for %s (keeper pid %d)", name, workload, keeper.pid)
        return self._handle(state)

    def find(self, workload: WorkloadRef) -> ClusterHandle | None:
        state = self._load(workload.cluster_name)
        if state is None:
            return None
        if not self._keeper_alive(state):
            log.info("cluster %s: keeper gone, removing what is left", state["name"])
            self._remove(state)
            return None
        return self._handle(state)

    def clusters(self) -> list[ClusterHandle]:
        found = []
        for path in sorted(self.state_dir.glob("*/cluster.json")):
            state = self._load(path.parent.name)
            if state is not None:
                handle = self.find(_workload_from_json(state["workload"]))
                if handle is not None:
                    found.append(handle)
        return found

    def status(self, cluster: ClusterHandle) -> ClusterStatus:
        expected = 1 + len(cluster.placement.nodes)
        state = self._load(cluster.name)
        keeper = self._keeper_status(cluster.name)
        if state is None or not self._keeper_alive(state):
            if keeper.get("phase") == "failed":
                return ClusterStatus(
                    phase=ClusterPhase.FAILED, nodes_expected=expected, message=keeper["message"]
                )
            return ClusterStatus(phase=ClusterPhase.GONE, nodes_expected=expected)
        phase = keeper.get("phase", "starting")
        if phase == "failed":
            return ClusterStatus(
                phase=ClusterPhase.FAILED, nodes_expected=expected, message=keeper["message"]
            )
        if phase != "running":
            return ClusterStatus(phase=ClusterPhase.STARTING, nodes_expected=expected)
        try:
            states = self._node_states(cluster)
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            if not self._head_alive(state):  # the head died under a running cluster
                return ClusterStatus(
                    phase=ClusterPhase.FAILED,
                    nodes_expected=expected,
                    message=f"the head's GCS server is gone ({error})",
                )
            return ClusterStatus(
                phase=ClusterPhase.STARTING, nodes_expected=expected, message=str(error)
            )
        alive = states.count("ALIVE")
        if "DEAD" in states:  # a node that joined and died: the gang is broken
            return ClusterStatus(
                phase=ClusterPhase.FAILED,
                nodes_alive=alive,
                nodes_expected=expected,
                message=f"{states.count('DEAD')} Ray node(s) died",
            )
        return ClusterStatus(
            phase=ClusterPhase.READY if alive >= expected else ClusterPhase.STARTING,
            nodes_alive=alive,
            nodes_expected=expected,
        )

    def teardown(self, cluster: ClusterHandle) -> None:
        state = self._load(cluster.name)
        if state is None:
            return
        pid = state["keeper_pid"]
        if self._keeper_alive(state):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while self._keeper_alive(state) and time.monotonic() < deadline:
                self._reap_keeper(cluster.name)
                time.sleep(0.1)
        self._remove(state)
        log.info("cluster %s torn down", cluster.name)

    def pids(self, cluster: ClusterHandle) -> set[int]:
        """Every live process of the cluster, the keeper included (for checks and figures)."""
        state = self._load(cluster.name)
        if state is None:
            return set()
        members = processes.cluster_members(sid=self._session(state), marker=cluster.name)
        if self._keeper_alive(state):
            members.add(state["keeper_pid"])
        return members

    # -- jobs and serve ----------------------------------------------------------------------

    def client(self, cluster: ClusterHandle) -> RayClusterClient:
        state = self._load(cluster.name)
        if state is None:
            raise LookupError(f"cluster {cluster.name} does not exist")
        return RayClusterClient(
            cluster.dashboard_url,
            read_token(cluster.token_path),
            serve_url=cluster.serve_url,
            http_host=LOOPBACK,
            http_port=state["ports"]["head"]["serve_http"],
        )

    def serve_app(self, app: ServeApp) -> ServeApp:
        return _with_loopback_replicas(app)

    # -- internals ---------------------------------------------------------------------------

    def _load(self, name: str) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads((self.state_dir / name / "cluster.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return state

    def _keeper_status(self, name: str) -> dict[str, Any]:
        try:
            status: dict[str, Any] = json.loads((self.state_dir / name / "keeper.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return status

    def _keeper_alive(self, state: dict[str, Any]) -> bool:
        self._reap_keeper(state["name"])
        return processes.alive(state["keeper_pid"], state.get("keeper_start_ticks"))

    @staticmethod
    def _session(state: dict[str, Any]) -> int | None:
        """The keeper's session id, unless its pid now belongs to another process."""
        proc = processes.read_proc(state["keeper_pid"])
        if proc is not None and proc.start_ticks != state.get("keeper_start_ticks"):
            return None
        return int(state["keeper_pid"])

    def _reap_keeper(self, name: str) -> None:
        keeper = _KEEPERS.get(name)
        if keeper is not None and keeper.poll() is not None:
            _KEEPERS.pop(name, None)
            if keeper.stdin is not None:
                keeper.stdin.close()

    def _remove(self, state: dict[str, Any]) -> None:
        """Kill whatever is left of a cluster whose keeper is gone, then delete its state."""
        left = processes.kill_members(sid=self._session(state), marker=state["name"])
        if left:
            raise RuntimeError(f"cluster {state['name']}: processes {sorted(left)} survived")
        if os.environ.get(KEEP_TEMP_ENV):  # keep the logs for debugging, forget the cluster
            (self.state_dir / state["name"] / "cluster.json").unlink(missing_ok=True)
        else:
            shutil.rmtree(state["ray_temp_dir"], ignore_errors=True)
            shutil.rmtree(self.state_dir / state["name"], ignore_errors=True)
        keeper = _KEEPERS.pop(state["name"], None)
        if keeper is not None and keeper.stdin is not None:
            keeper.stdin.close()

    def _head_alive(self, state: dict[str, Any]) -> bool:
        """Whether the head's GCS server, which every node and job needs, still runs."""
        members = processes.cluster_members(sid=self._session(state), marker=state["name"])
        return any(processes.command_name(pid) == GCS_SERVER for pid in members)

    def _node_states(self, cluster: ClusterHandle) -> list[str]:
        body = dashboard_json(cluster, "/api/v0/nodes?limit=1000")
        return [str(n.get("state")) for n in body["data"]["result"]["result"]]

    def _handle(self, state: dict[str, Any]) -> ClusterHandle:
        head = state["ports"]["head"]
        return ClusterHandle(
            name=state["name"],
            backend=self.name,
            workload=_workload_from_json(state["workload"]),
            placement=_placement_from_json(state["placement"]),
            dashboard_url=f"http://{LOOPBACK}:{head['dashboard']}",
            serve_url=f"http://{LOOPBACK}:{head['serve_http']}",
            token_path=state["token_path"],
            created_at=state["created_at"],
        )
