"""Run a real Kubernetes control plane as plain processes on 127.0.0.1.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which plays every
kubelet) are started with free loopback ports, a CA made at start, token authentication and
RBAC authorization. Each component logs to ``<run_dir>/logs/<name>.log``. ``stop()`` stops
them all; when the starting process dies first, the kernel kills them (``PR_SET_PDEATHSIG``),
so that no test failure or Ctrl-C leaves a control plane behind. A *detached* control plane
(``polyculture cluster up``) outlives its starter and is stopped by ``cluster down``, which
reads the pids from ``<run_dir>/state.json``.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime as dt
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from polyculture.controlplane.binaries import Binaries, locate
from polyculture.controlplane.certs import CertPaths, make_certs

_PR_SET_PDEATHSIG = 1
#: order of start; stop goes the other way
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

#: every request but WATCH, at the ``Metadata`` level (no bodies), once it is answered
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "None", "verbs": ["watch"]}, {"level": "Metadata"}],
}


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message holds the failing component's log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); it is dead for our purposes
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@dataclass
class ControlPlane:
    """A local control plane. Use as a context manager, or ``start()`` / ``stop()``."""

    run_dir: Path
    binaries: Binaries = field(default_factory=locate)
    detach: bool = False
    startup_timeout_s: float = 120.0
    #: Go's garbage-collector target for every component (``GOGC``; None: Go's default,
    #: 100). A benchmark sets 400: etcd and the API server then spend about a fifth less
    #: CPU per request (measured: 1.85 -> 1.5 ms of API server CPU per CommunityModel
    #: create) for a few hundred MB more memory, CPU this 2-core machine shares with the
    #: operator under test
    go_gc: int | None = None
    #: client QPS (burst twice as much) of kube-scheduler and kube-controller-manager (None:
    #: theirs, 50 and 20). At 50 the scheduler binds at most about 25 Pods/s (a binding and an
    #: Event each): a benchmark that admits faster than that sets it higher, as large clusters
    #: configure their schedulers
    component_qps: int | None = None
    #: the API server writes an audit log of every request but WATCH (who sent it: user,
    #: user agent; verb and object) to ``<run_dir>/logs/audit.log`` (``audit_log``): a
    #: benchmark that must say which client sends a kind of request turns it on (it costs the
    #: API server a little CPU per request)
    audit: bool = False

    admin_token: str = field(default_factory=lambda: secrets.token_hex(16), init=False)
    ports: dict[str, int] = field(default_factory=dict, init=False)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    certs: CertPaths | None = field(default=None, init=False)

    # ---------------------------------------------------------------- paths
    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def audit_log(self) -> Path:
        return self.logs / "audit.log"

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        missing = self.binaries.missing()
        if missing:
            raise ControlPlaneError(
                "control-plane binaries missing (run hack/build-control-plane.sh): "
                + ", ".join(str(p) for p in missing)
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.ports = {
            k: free_port() for k in ("etcd", "etcd_peer", "etcd_metrics", "apiserver", "kwok")
        }
        self.certs = make_certs(self.run_dir / "pki", now=dt.datetime.now(dt.UTC))
        tokens = self.run_dir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},admin,admin-uid,"system:masters"\n')
        tokens.chmod(0o600)
        self._write_kubeconfig()
        try:
            self._spawn("etcd", self._etcd_args())
            self._spawn("kube-apiserver", self._apiserver_args(tokens))
            self._wait_ready()
            self._spawn("kube-controller-manager", self._controller_manager_args())
            self._spawn("kube-scheduler", self._scheduler_args())
            self._spawn("kwok", self._kwok_args())
            self._wait_default_service_account()
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop every component (SIGTERM, then SIGKILL after ``timeout_s``); idempotent."""
        for name in reversed(COMPONENTS):
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5)
        state = self.run_dir / "state.json"
        with contextlib.suppress(FileNotFoundError):
            state.unlink()

    # ---------------------------------------------------------------- clients
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this control plane."""
        proc = subprocess.run(
            [str(self.binaries.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, proc.args, output=proc.stdout, stderr=proc.stderr
            )
        return proc

    def ssl_context(self) -> ssl.SSLContext:
        assert self.certs is not None
        return ssl.create_default_context(cafile=str(self.certs.ca_crt))

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET a raw API path with a bearer token (the admin's by default)."""
        req = urllib.request.Request(
            self.server + path,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
        )
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=10) as resp:
                status: int = resp.status
                return status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    # ---------------------------------------------------------------- internals
    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        env = None if self.go_gc is None else {**os.environ, "GOGC": str(self.go_gc)}
        self.processes[name] = subprocess.Popen(
            args,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.run_dir,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop them in order
            preexec_fn=None if self.detach else die_with_parent,
        )
        log.close()

    def _log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {proc.returncode}; last lines of its log:\n"
                    + self._log_tail(name)
                )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return
            time.sleep(0.25)
        raise ControlPlaneError(
            "kube-apiserver not ready in time:\n" + self._log_tail("kube-apiserver")
        )

    def _wait_default_service_account(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            if self.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200:
                return
            time.sleep(0.25)
        raise ControlPlaneError(
            "no default ServiceAccount in time:\n" + self._log_tail("kube-controller-manager")
        )

    def _write_kubeconfig(self) -> None:
        assert self.certs is not None
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "polyculture-local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(
                            self.certs.ca_crt.read_bytes()
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.admin_token}}],
            "contexts": [
                {
                    "name": "polyculture-local",
                    "context": {"cluster": "polyculture-local", "user": "admin"},
                }
            ],
            "current-context": "polyculture-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _write_state(self) -> None:
        state = {"pids": self.pids(), "server": self.server, "kubeconfig": str(self.kubeconfig)}
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2))

    def _etcd_args(self) -> list[str]:
        p = self.ports
        return [
            str(self.binaries.etcd),
            "--name=default",
            f"--data-dir={self.run_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-cluster=default=http://127.0.0.1:{p['etcd_peer']}",
            f"--listen-metrics-urls=http://127.0.0.1:{p['etcd_metrics']}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]

    def _apiserver_args(self, tokens: Path) -> list[str]:
        assert self.certs is not None
        c = self.certs
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--tls-cert-file={c.server_crt}",
            f"--tls-private-key-file={c.server_key}",
            f"--client-ca-file={c.ca_crt}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={c.sa_key}",
            f"--service-account-signing-key-file={c.sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # the kubernetes Service endpoint may not be a loopback address; nothing needs it here
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
            *self._audit_args(),
        ]

    def _audit_args(self) -> list[str]:
        if not self.audit:
            return []
        policy = self.run_dir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
        ]

    def _controller_manager_args(self) -> list[str]:
        assert self.certs is not None
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            f"--service-account-private-key-file={self.certs.sa_key}",
            f"--root-ca-file={self.certs.ca_crt}",
            "--use-service-account-credentials=false",
            # kwok renews node leases, but tests set NotReady by hand; no taint-based eviction
            "--controllers=*,-nodelifecycle",
            "--v=1",
            *self._qps_args(),
        ]

    def _qps_args(self) -> list[str]:
        if self.component_qps is None:
            return []
        return [
            f"--kube-api-qps={self.component_qps}",
            f"--kube-api-burst={2 * self.component_qps}",
        ]

    def _scheduler_args(self) -> list[str]:
        # the client's settings live in the scheduler's configuration file (its flags for them
        # are deprecated and ignored once a file is given)
        config = self.run_dir / "kube-scheduler.yaml"
        connection: dict[str, Any] = {"kubeconfig": str(self.kubeconfig)}
        if self.component_qps is not None:
            connection.update(qps=self.component_qps, burst=2 * self.component_qps)
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": connection,
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        return [
            str(self.binaries.kube_scheduler),
            f"--config={config}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--v=1",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            str(self.binaries.kwok),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.binaries.kwok_stages}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.0.0.0/24",
            "--node-ip=127.0.0.1",
            f"--server-address=127.0.0.1:{self.ports['kwok']}",
            "--node-lease-duration-seconds=40",
        ]
