"""Fixtures shared by every tier.

- ``control_plane`` (session): a real control plane (etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler, kwok) on 127.0.0.1, built first if the cache lacks it,
  stopped at the end of the session — also when tests fail.
- ``api_client`` (session): a ``kubernetes.client.ApiClient`` for it, as the cluster admin.
- ``operator`` (session): the operator process against it, with a clock that tests move
  forward; tests request ``crds`` (``tests/cluster/conftest.py``) before it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyculture.controlplane import ControlPlane, locate
from polyculture.controlplane.runner import die_with_parent

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


class OperatorProcess:
    """The real operator (``polyculture run``) as a child process, restartable, with a movable
    clock (``POLYCULTURE_CLOCK_FILE``) and its log kept in the run directory."""

    def __init__(self, kubeconfig: Path, run_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.run_dir = run_dir
        self.clock_file = run_dir / "clock-offset"
        self.clock_file.write_text("0")
        self.log = run_dir / "operator.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, POLYCULTURE_CLOCK_FILE=str(self.clock_file))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "polyculture", "run", "--kubeconfig", str(self.kubeconfig)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def move_clock(self, seconds: float) -> None:
        """Move the operator's clock forward by ``seconds`` (cumulative)."""
        now = float(self.clock_file.read_text() or 0)
        self.clock_file.write_text(str(now + seconds))

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


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
