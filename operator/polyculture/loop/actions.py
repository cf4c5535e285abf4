"""What the admission loop asks of a pool's Ray backend, one short call at a time.

Each function runs in a worker thread and returns an :class:`Outcome` (or None: nothing new)
that the loop's next step turns into a lifecycle transition. None of them waits for a cluster
to start: :func:`start` creates it (idempotent: a restarted operator adopts what exists) and
says where it stands; :func:`check_start` looks again on a later tick, from the backend's
watch-fed state. A cluster that is not ready by its deadline (its creation plus the start
timeout, ``READY_TIMEOUT_S`` unless the operator is told otherwise, so a restart does not
extend it) is torn down and reported as
:class:`ClusterStartError`. Serving deploys once its cluster is ready and is then followed
the same way until it answers or ``SERVE_TIMEOUT_S`` passed.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from polyculture.api.community_model import RuntimeEnv
from polyculture.ray.backend import (
    ClusterBackend,
    ClusterHandle,
    ClusterPhase,
    JobState,
    Placement,
    Role,
    ServeApp,
    ServeState,
    TrainingJob,
    WorkloadRef,
)
from polyculture.reconcile import lifecycle
from polyculture.reconcile.admission import TRAINING, ModelView
from polyculture.reconcile.conditions import parse_time
from polyculture.reconcile.provenance import ATTESTATION_TAIL_LINES, job_artifacts

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 300.0
SERVE_TIMEOUT_S = 300.0

#: the stages of a start, as :attr:`Outcome.kind`
STARTING = "starting"  # the cluster exists and is not ready yet
DEPLOYING = "deploying"  # Serve is deployed on the ready cluster and does not answer yet


class ClusterStartError(RuntimeError):
    """The workload's Ray cluster could not start: nothing of the workload ran."""


@dataclass(frozen=True)
class Outcome:
    """What a finished backend action found: ``kind`` is starting, deploying, started,
    succeeded, failed, serving or drained; ``run`` is the admission it was about (stale
    outcomes are dropped); ``deadline`` (epoch seconds) bounds a start in progress."""

    kind: str
    run: int
    detail: str = ""
    replicas: int = 0
    deadline: float = 0.0


def runtime_env(env: RuntimeEnv | None) -> dict[str, Any]:
    if env is None:
        return {}
    out: dict[str, Any] = {}
    if env.working_dir:
        out["working_dir"] = env.working_dir
    if env.pip:
        out["pip"] = list(env.pip)
    if env.env_vars:
        out["env_vars"] = dict(env.env_vars)
    return out


@dataclass(frozen=True)
class Actions:
    """The backend calls of one pool's loop (see the module docstring)."""

    pool: str
    backend: Callable[[], ClusterBackend]
    checkpoint_root: Path
    now: Callable[[], datetime]
    #: seconds a new cluster may take to become ready before it is torn down and requeued
    ready_timeout_s: float = READY_TIMEOUT_S

    def ref(self, view: ModelView, role: Role) -> WorkloadRef:
        return WorkloadRef(
            namespace=view.namespace,
            name=view.name,
            role=role,
            uid=view.uid,
            pool=self.pool,
            community=view.community,
        )

    def checkpoint_uri(self, view: ModelView) -> str:
        if view.spec.training is not None and view.spec.training.checkpoint_uri:
            return view.spec.training.checkpoint_uri
        path = self.checkpoint_root / view.namespace / f"{view.name}-{view.uid[:8]}"
        return Path(path).resolve().as_uri()

    def serve_app(self, view: ModelView, replicas: int) -> ServeApp:
        serving = view.spec.serving
        assert serving is not None
        env = runtime_env(serving.runtime_env)
        if view.spec.training is not None:
            env["env_vars"] = {
                **env.get("env_vars", {}),
                "POLYCULTURE_CHECKPOINT_URI": self.checkpoint_uri(view),
            }
        return ServeApp(
            name=view.name,
            import_path=serving.import_path,
            route_prefix=serving.route_prefix or f"/{view.namespace}/{view.name}",
            deployment=serving.deployment,
            replicas=replicas,
            min_replicas=min(serving.min_replicas, replicas),
            max_replicas=max(serving.max_replicas, replicas),
            gpus_per_replica=serving.gpus_per_replica,
            runtime_env=env,
        )

    # -- starting (never waits) --------------------------------------------------------------

    def start(self, view: ModelView, run: int, placement: Placement) -> Outcome:
        """Create the cluster of the model's stage (or adopt it) and go on if it is ready."""
        backend = self.backend()
        role = Role.TRAINING if view.stage == TRAINING else Role.SERVING
        cluster = backend.create(self.ref(view, role), placement)
        deadline = cluster.created_at + self.ready_timeout_s
        return self._when_ready(view, run, backend, cluster, deadline)

    def check_start(self, view: ModelView, run: int, stage: str, deadline: float) -> Outcome:
        """Look again at a start in progress (``stage`` is :data:`STARTING` or
        :data:`DEPLOYING`)."""
        backend = self.backend()
        role = Role.TRAINING if view.stage == TRAINING else Role.SERVING
        cluster = backend.find(self.ref(view, role))
        if cluster is None:
            raise ClusterStartError("the Ray cluster vanished before it was ready")
        if stage == DEPLOYING:
            return self._serve_answers(view, run, backend, cluster, deadline)
        return self._when_ready(view, run, backend, cluster, deadline)

    def _when_ready(
        self,
        view: ModelView,
        run: int,
        backend: ClusterBackend,
        cluster: ClusterHandle,
        deadline: float,
    ) -> Outcome:
        status = backend.status(cluster)
        problem = ""
        if status.phase in (ClusterPhase.FAILED, ClusterPhase.GONE):
            problem = f"Ray cluster {status.phase.value}: {status.message}"
        elif not status.ready and time.time() > deadline:
            problem = f"Ray cluster not ready after {self.ready_timeout_s:g} s: {status.message}"
        if problem:
            backend.teardown(cluster)
            raise ClusterStartError(problem[-500:])
        if not status.ready:
            return Outcome(STARTING, run, status.message, deadline=deadline)
        if view.stage == TRAINING:
            training = view.spec.training
            assert training is not None
            job = TrainingJob(
                workload=cluster.workload,
                attempt=run,
                entrypoint=training.entrypoint,
                checkpoint_uri=self.checkpoint_uri(view),
                runtime_env=runtime_env(training.runtime_env),
                artifacts=job_artifacts(view.spec.provenance),
            )
            return Outcome("started", run, backend.submit_job(cluster, job))
        app = self.serve_app(view, cluster.placement.workers)
        backend.deploy_serve(cluster, app)
        serve_deadline = time.time() + SERVE_TIMEOUT_S
        return self._serve_answers(view, run, backend, cluster, serve_deadline)

    def _serve_answers(
        self,
        view: ModelView,
        run: int,
        backend: ClusterBackend,
        cluster: ClusterHandle,
        deadline: float,
    ) -> Outcome:
        report = backend.serve(cluster, view.name)
        if report.healthy and answers(report.endpoint):
            return Outcome("serving", run, report.endpoint, report.running_replicas)
        if report.state is ServeState.DEPLOY_FAILED:
            backend.teardown(cluster)
            return Outcome("failed", run, f"Serve deploy failed: {report.message[:300]}")
        if time.time() > deadline:
            backend.teardown(cluster)
            return Outcome("failed", run, f"Serve not healthy in {SERVE_TIMEOUT_S:g} s")
        return Outcome(DEPLOYING, run, report.message[:300], deadline=deadline)

    # -- following ---------------------------------------------------------------------------

    def follow_job(self, view: ModelView, run: int, overdue: bool) -> Outcome | None:
        backend = self.backend()
        cluster = self._alive(backend, view, Role.TRAINING, run)
        if isinstance(cluster, Outcome):
            return cluster
        sid = str(view.status.get("rayJobId") or "")
        if overdue:
            backend.stop_job(cluster, sid)
            backend.teardown(cluster)
            return Outcome("failed", run, "ran longer than maxRuntime")
        try:
            report = backend.job(cluster, sid, tail_lines=ATTESTATION_TAIL_LINES)
        except Exception:
            died = self._died(backend, cluster, run)  # between the status and this call
            if died is None:
                raise
            return died
        if not report.state.terminal:
            return None
        backend.teardown(cluster)
        if report.state is JobState.SUCCEEDED:
            return Outcome("succeeded", run, report.log_tail)  # with the attestations
        last = report.log_tail.strip().splitlines()[-1:] or [report.message]
        return Outcome("failed", run, f"job {report.state.value}: {last[0][:300]}")

    def follow_serve(self, view: ModelView, run: int) -> Outcome | None:
        backend = self.backend()
        cluster = self._alive(backend, view, Role.SERVING, run)
        if isinstance(cluster, Outcome):
            return cluster
        try:
            report = backend.serve(cluster, view.name)
        except Exception:
            died = self._died(backend, cluster, run)
            if died is None:
                raise
            return died
        if report.state in (ServeState.DEPLOY_FAILED, ServeState.MISSING):
            backend.teardown(cluster)
            return Outcome("failed", run, f"Serve application {report.state.value}")
        if report.healthy:
            return Outcome("serving", run, report.endpoint, report.running_replicas)
        why = f"application {report.state.value}, {report.running_replicas} replica(s) running"
        why += f": {report.message[:300]}" if report.message else ""
        since = lifecycle.serve_unhealthy_since(view)
        if since is not None and self.now().timestamp() - since > SERVE_TIMEOUT_S:
            backend.teardown(cluster)
            return Outcome("failed", run, f"Serve unhealthy for {SERVE_TIMEOUT_S:g} s: {why}")
        return Outcome("unhealthy", run, why)

    def _alive(
        self, backend: ClusterBackend, view: ModelView, role: Role, run: int
    ) -> ClusterHandle | Outcome:
        """The model's cluster for ``role``, or the failed attempt if it is gone or died."""
        cluster = backend.find(self.ref(view, role))
        if cluster is None:
            what = "job" if role is Role.TRAINING else "endpoint"
            return Outcome("failed", run, f"the Ray cluster of the {what} is gone")
        died = self._died(backend, cluster, run)
        return cluster if died is None else died

    def _died(self, backend: ClusterBackend, cluster: ClusterHandle, run: int) -> Outcome | None:
        """After a failed call: a failed attempt, its cluster torn down, if the cluster died
        (else None: the call failed on a live cluster)."""
        state = backend.status(cluster)
        if state.phase not in (ClusterPhase.FAILED, ClusterPhase.GONE):
            return None
        backend.teardown(cluster)
        return Outcome("failed", run, f"the Ray cluster died: {state.message}")

    def drain(self, view: ModelView, run: int, grace_s: float) -> Outcome:
        """Stop the job (it may checkpoint), wait for its end or the grace period, tear down."""
        backend = self.backend()
        preempted = parse_time(view.status.get("preemptedAt"))
        deadline = (preempted.timestamp() if preempted else self.now().timestamp()) + grace_s
        for role in (Role.TRAINING, Role.SERVING):
            cluster = backend.find(self.ref(view, role))
            if cluster is None:
                continue
            sid = str(view.status.get("rayJobId") or "")
            if role is Role.TRAINING and sid:
                try:
                    backend.stop_job(cluster, sid)
                    while self.now().timestamp() < deadline:
                        if backend.job(cluster, sid, tail_lines=0).state.terminal:
                            break
                        time.sleep(0.5)
                except Exception as err:  # a dead cluster cannot stop a job: tear down anyway
                    log.info("pool %s: %s: stopping its job: %s", self.pool, view.key, err)
            backend.teardown(cluster)
        return Outcome("drained", run)

    def teardown_all(self, view: ModelView) -> None:
        """Tear down every cluster of the model (deleted, or its pool is gone)."""
        backend = self.backend()
        for role in (Role.TRAINING, Role.SERVING):
            cluster = backend.find(self.ref(view, role))
            if cluster is not None:
                backend.teardown(cluster)


def answers(endpoint: str) -> bool:
    """The endpoint answers an HTTP GET with 200."""
    try:
        with urllib.request.urlopen(endpoint, timeout=5) as response:
            return int(response.status) == 200
    except OSError:
        return False
