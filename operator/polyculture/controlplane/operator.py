"""The operator (``polyculture run``) as a child process: for tests and the demo.

Restartable, dies with its starter, logs to ``<run_dir>/operator.log``, and carries a movable
clock: ``POLYCULTURE_CLOCK_FILE`` holds seconds added to the operator's wall clock. Its local
Ray clusters live under ``<run_dir>/ray`` and outlive a restart or a SIGKILL (the restarted
operator adopts them); :meth:`OperatorProcess.stop` tears down whatever is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from polyculture.controlplane.runner import die_with_parent


class OperatorProcess:
    """The real operator (``polyculture run``) as a child process, restartable, with a movable
    clock (``POLYCULTURE_CLOCK_FILE``) and its log kept in the run directory."""

    def __init__(self, kubeconfig: Path, run_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.kubeconfig = kubeconfig
        self.extra_args = extra_args
        self.run_dir = run_dir
        self.clock_file = run_dir / "clock-offset"
        self.clock_file.write_text("0")
        self.log = run_dir / "operator.log"
        self.ray_state_dir = run_dir / "ray"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, POLYCULTURE_CLOCK_FILE=str(self.clock_file))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "polyculture",
                    "run",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--ray-state-dir",
                    str(self.ray_state_dir),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )

    def stop(self, keep_clusters: bool = False) -> None:
        """Stop the operator (SIGINT, then SIGKILL after 20 s) and, unless ``keep_clusters``,
        tear down the Ray clusters it left."""
        self._stop()
        if not keep_clusters:
            self.teardown_clusters()

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as a crash would leave things."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def teardown_clusters(self) -> None:
        if not self.ray_state_dir.exists():
            return
        from polyculture.ray.local import LocalBackend

        backend = LocalBackend(self.ray_state_dir)
        for cluster in backend.clusters():
            backend.teardown(cluster)

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._dump_stacks()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None

    def _dump_stacks(self) -> None:
        """Append every thread's stack to the log (py-spy, a dev tool): what holds a stopping
        operator up."""
        assert self.proc is not None
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            return
        with self.log.open("ab") as log:
            log.write(b"--- still running 10 s after SIGINT; its threads:\n")
            log.flush()
            subprocess.run(
                [str(spy), "dump", "--pid", str(self.proc.pid)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=30,
                check=False,
            )

    def restart(self) -> None:
        """Stop and start again; the Ray clusters stay for the new process to adopt."""
        self.stop(keep_clusters=True)
        self.start()

    def move_clock(self, seconds: float) -> None:
        """Move the operator's clock forward by ``seconds`` (cumulative)."""
        now = float(self.clock_file.read_text() or 0)
        self.clock_file.write_text(str(now + seconds))

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
