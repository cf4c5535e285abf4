"""One pool's admission loop: the single writer of its models' admission and lifecycle.

:meth:`PoolLoop.step` is called on a short tick by the pool's handler with what kopf indexes
(the pool, its models, the nodes). Each step:

1. applies the outcomes of finished backend actions (cluster ready, job ended, Serve
   healthy, drained) as lifecycle transitions (``reconcile.lifecycle``);
2. runs the core when its input changed (or ``RESCHEDULE_S`` passed: minimum runtimes and
   windows are time-driven), and writes the plan (``reconcile.admission``);
3. starts at most one backend action per model in a worker thread: create the cluster and
   submit the job or deploy Serve, follow the job or Serve health, drain a preempted model
   (stop the job, wait for its end or the grace period, tear the cluster down);
4. settles the users' ledger: GPU-seconds per model and per community.

What is stored is the truth: the loop keeps only what it wrote last (its own writes may not
be in kopf's index yet) and in-flight actions; a restarted operator rebuilds everything from
the stored status and adopts the clusters and jobs the backend still has.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from polyculture import metrics
from polyculture.api.admissibility import Problem
from polyculture.api.community_model import CommunityModelSpec, Phase, RuntimeEnv
from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.api.pool_validity import judge_spec
from polyculture.api.units import parse_duration
from polyculture.inventory import NodeInfo
from polyculture.loop.backends import BackendSettings, BackendUnavailableError
from polyculture.ray.backend import (
    ClusterBackend,
    ClusterHandle,
    ClusterPhase,
    JobState,
    NodePlacement,
    Placement,
    Role,
    ServeApp,
    ServeState,
    TrainingJob,
    WorkloadRef,
)
from polyculture.reconcile import lifecycle
from polyculture.reconcile.admission import (
    TRAINING,
    ModelEvent,
    ModelView,
    PoolView,
    epoch,
    held_gpus,
    held_units,
    model_usage,
    plan,
    pool_usage,
    pool_usage_changed,
    pool_view,
    snapshot,
)
from polyculture.reconcile.conditions import condition, parse_time
from polyculture.reconcile.provenance import ATTESTATION_TAIL_LINES, after_training, job_artifacts
from polyculture.scheduling import Decisions, schedule

log = logging.getLogger(__name__)

#: the core runs at least this often even when nothing it reads changed
RESCHEDULE_S = 5.0
#: a holding model's GPU-seconds are written at least this often
LEDGER_FLUSH_S = 30.0
POLL_TRAINING_S = 2.0
POLL_SERVING_S = 5.0
READY_TIMEOUT_S = 300.0
SERVE_TIMEOUT_S = 300.0
#: Ray clusters a pool starts at once: local ones compete for this machine's CPUs (a Ray
#: node that cannot start within Ray's own timeout fails), remote ones do not
LOCAL_MAX_STARTING = 1
REMOTE_MAX_STARTING = 16

PatchModel = Callable[[str, str, Mapping[str, Any]], Mapping[str, Any]]
PatchPool = Callable[[str, Mapping[str, Any]], None]
PostEvent = Callable[[Mapping[str, Any], str, str, str], None]


@dataclass(frozen=True)
class Writer:
    """How the loop writes: status patches (returning the stored object) and Events."""

    patch_model: PatchModel
    patch_pool: PatchPool
    post_event: PostEvent


class ClusterStartError(RuntimeError):
    """The workload's Ray cluster could not start: nothing of the workload ran."""


@dataclass(frozen=True)
class Outcome:
    """What a finished backend action found: ``kind`` is started, succeeded, failed,
    serving or drained; ``run`` is the admission it was about (stale outcomes are dropped)."""

    kind: str
    run: int
    detail: str = ""
    replicas: int = 0


def parse_model(body: Mapping[str, Any]) -> ModelView | None:
    """A model body as a view; None if its spec does not parse (the verdict step reports it)."""
    meta = body.get("metadata") or {}
    try:
        spec = CommunityModelSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError:
        return None
    return ModelView(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        created=epoch(meta.get("creationTimestamp")),
        generation=meta.get("generation"),
        spec=spec,
        status=dict(body.get("status") or {}),
    )


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


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


class PoolLoop:
    """The admission loop of one pool. Not thread-safe: one thread calls :meth:`step`."""

    def __init__(
        self,
        pool: str,
        *,
        backends: BackendSettings,
        writer: Writer,
        now: Callable[[], datetime],
        workers: int = 4,
    ) -> None:
        self.pool = pool
        self.backends = backends
        self.writer = writer
        self.now = now
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix=f"pool-{pool}")
        self.tasks: dict[str, Future[Outcome | None]] = {}
        self.next_poll: dict[str, float] = {}
        self.written: dict[str, tuple[int, dict[str, Any]]] = {}
        self.bodies: dict[str, Mapping[str, Any]] = {}
        self.pool_written: dict[str, Any] | None = None
        self.fingerprint: Any = None
        self.last_cycle = 0.0
        self.decisions: Decisions | None = None
        self.backend_kind = ""
        self.backend: ClusterBackend | None = None
        self.backend_error = ""
        #: models whose cluster is being started (a subset of ``tasks`` while in flight)
        self.starting: set[str] = set()
        self.serve_on_mismatch = False
        #: why the pool is unusable, as last logged (empty while it is usable)
        self.unusable: tuple[Problem, ...] = ()

    # -- the step ----------------------------------------------------------------------------

    def step(
        self,
        pool_body: Mapping[str, Any],
        model_bodies: Sequence[Mapping[str, Any]],
        nodes: Sequence[NodeInfo],
        senior_pools: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        started = time.monotonic()
        now = self.now()
        spec, problems = judge_spec(pool_body.get("spec") or {})
        if spec is None:
            # the pool daemon reports why (Valid=False, an Event) and the verdicts make its
            # models Invalid (PoolInvalid): nothing is scheduled on a pool judged unusable
            if problems != self.unusable:
                self.unusable = problems
                log.warning(f"pool {self.pool}: not scheduling, the pool is invalid: {problems}")
            return
        self.unusable = ()
        self._choose_backend(spec.ray.backend.value)
        self.serve_on_mismatch = spec.provenance.serve_on_mismatch
        stored = dict(pool_body.get("status") or {})
        ours = {k: v for k, v in (self.pool_written or {}).items() if k != "conditions"}
        pool_status = {**stored, **ours}
        views = self._views(model_bodies)
        pv = pool_view(self.pool, spec, nodes, now, senior_pools)

        for key, task in list(self.tasks.items()):
            if task.done() and self.tasks.pop(key, None) is task:
                self.starting.discard(key)
                self._apply_outcome(key, task, views, pv, now)
        views = self._views(model_bodies)

        ran = False
        if self.backend is not None:
            snap = snapshot(pv, spec, pool_status, list(views.values()), now)
            fingerprint = (snap.nodes, snap.communities, snap.running, snap.pending, snap.policy)
            if fingerprint != self.fingerprint or started - self.last_cycle >= RESCHEDULE_S:
                self.fingerprint, self.last_cycle, ran = fingerprint, started, True
                self.decisions = schedule(snap)
                self._write_plan(plan(self.decisions, snap, views, pv, now), views)
                views = self._views(model_bodies)
                metrics.observe_cycle(self.pool, time.monotonic() - started)
            self._act(views, pv, spec, now)
        self._flush_usage(views, now)
        self._write_pool(spec, pool_status, views, pv, now, refresh=ran)

    # -- views and writes --------------------------------------------------------------------

    def _views(self, bodies: Sequence[Mapping[str, Any]]) -> dict[str, ModelView]:
        """Models of the pool, each with the newer of its indexed and its last written status."""
        out: dict[str, ModelView] = {}
        for body in bodies:
            meta = body.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            if meta.get("deletionTimestamp"):
                continue
            written = self.written.get(key)
            if written is not None and written[0] > _rv(body):
                current = {**body, "status": written[1]}
            else:
                current = dict(body)
            view = parse_model(current)
            if view is not None:
                out[key] = view
                self.bodies[key] = current
        for key in set(self.written) - set(out):
            self.written.pop(key, None)
        return out

    def _patch(self, view: ModelView, patch: Mapping[str, Any]) -> None:
        stored = self.writer.patch_model(view.namespace, view.name, patch)
        self.written[view.key] = (_rv(stored), dict(stored.get("status") or {}))

    def _event(self, event: ModelEvent) -> None:
        body = self.bodies.get(event.key)
        if body is not None:
            self.writer.post_event(body, event.type, event.reason, event.message)
        log.info("pool %s: %s %s: %s", self.pool, event.key, event.reason, event.message)

    def _write_plan(self, p: Any, views: Mapping[str, ModelView]) -> None:
        for key, patch in p.patches.items():
            view = views[key]
            usage = model_usage(view, self.now()) if view.holding or view.draining else None
            self._safe(view, {**(usage or {}), **patch})
        for event in p.events:
            self._event(event)
        for key in p.admitted:
            metrics.record_admission(self.pool, views[key].community)
        for _, reason in p.preempted:
            metrics.record_preemption(self.pool, reason)

    def _safe(self, view: ModelView, patch: Mapping[str, Any]) -> None:
        try:
            self._patch(view, patch)
        except Exception as err:  # one bad write never stops the others
            log.warning("pool %s: writing %s failed: %s", self.pool, view.key, err)
            metrics.record_reconcile_error(self.pool, "write")

    def _transition(self, view: ModelView, result: lifecycle.Transition) -> None:
        patch, event = result
        self._safe(view, patch)
        self._event(event)

    # -- backend -----------------------------------------------------------------------------

    def _choose_backend(self, kind: str) -> None:
        if kind == self.backend_kind and (self.backend is not None or self.backend_error):
            return
        self.backend_kind = kind
        try:
            self.backend, self.backend_error = self.backends.backend(kind), ""
        except BackendUnavailableError as err:
            self.backend, self.backend_error = None, str(err)
            metrics.record_reconcile_error(self.pool, "backend")
            log.error("pool %s: %s", self.pool, err)

    def _ref(self, view: ModelView, role: Role) -> WorkloadRef:
        return WorkloadRef(
            namespace=view.namespace,
            name=view.name,
            role=role,
            uid=view.uid,
            pool=self.pool,
            community=view.community,
        )

    def _placement(self, view: ModelView, pv: PoolView) -> Placement:
        admission = view.admission or {}
        stage_spec = view.spec.training if view.stage == TRAINING else view.spec.serving
        per = (
            view.spec.training.gpus_per_worker
            if view.stage == TRAINING and view.spec.training is not None
            else (view.spec.serving.gpus_per_replica if view.spec.serving else 1)
        )
        assert stage_spec is not None
        nodes = []
        for p in admission.get("placement") or []:
            share = pv.shares.get(str(p["node"]))
            nodes.append(
                NodePlacement(
                    node=str(p["node"]),
                    owner=str(p["owner"]),
                    gpu_class=share.gpu_class if share else "unknown",
                    workers=max(1, int(p["gpus"]) // per),
                )
            )
        return Placement(gpus_per_worker=per, nodes=tuple(nodes))

    def checkpoint_uri(self, view: ModelView) -> str:
        if view.spec.training is not None and view.spec.training.checkpoint_uri:
            return view.spec.training.checkpoint_uri
        path = self.backends.checkpoint_root / view.namespace / f"{view.name}-{view.uid[:8]}"
        return Path(path).resolve().as_uri()

    def _act(
        self, views: Mapping[str, ModelView], pv: PoolView, spec: ComputePoolSpec, now: datetime
    ) -> None:
        draining_nodes = {
            str(p["node"])
            for v in views.values()
            if v.draining
            for p in (v.admission or {}).get("placement") or []
        }
        clock = time.monotonic()
        grace = parse_duration(spec.fair_share.preemption.grace_period).total_seconds()
        for key, view in views.items():
            if key in self.tasks:
                continue
            run = int(view.status.get("run") or 0)
            phase = view.phase
            if view.draining:
                self._submit(key, self._drain, view, run, grace)
            elif phase == Phase.ADMITTED.value and view.admission is not None:
                placed = {str(p["node"]) for p in view.admission.get("placement") or []}
                if placed & draining_nodes:
                    continue  # the GPUs are still being freed by a preempted workload
                if len(self.starting & set(self.tasks)) >= self._max_starting():
                    continue  # Ray clusters start one after another on this machine
                action = self._start_training if view.stage == TRAINING else self._start_serving
                self._submit(key, action, view, run, self._placement(view, pv))
                self.starting.add(key)
            elif phase in (Phase.TRAINING.value, Phase.SERVING.value):
                if clock < self.next_poll.get(key, 0.0):
                    continue
                training = phase == Phase.TRAINING.value
                self.next_poll[key] = clock + (POLL_TRAINING_S if training else POLL_SERVING_S)
                if training:
                    overdue = self._overdue(view, now)
                    self._submit(key, self._follow_job, view, run, overdue)
                else:
                    self._submit(key, self._follow_serve, view, run)

    def _max_starting(self) -> int:
        """Clusters started at once: the local backend's share this machine's CPUs."""
        return LOCAL_MAX_STARTING if self.backend_kind == "local" else REMOTE_MAX_STARTING

    def _overdue(self, view: ModelView, now: datetime) -> bool:
        limit = view.spec.training.max_runtime if view.spec.training else None
        admitted = parse_time((view.admission or {}).get("admittedAt"))
        if not limit or admitted is None:
            return False
        return (now - admitted).total_seconds() > parse_duration(limit).total_seconds()

    def _submit(self, key: str, action: Callable[..., Outcome | None], *args: Any) -> None:
        self.tasks[key] = self.executor.submit(action, *args)

    def _apply_outcome(
        self,
        key: str,
        future: Future[Outcome | None],
        views: Mapping[str, ModelView],
        pv: PoolView,
        now: datetime,
    ) -> None:
        view = views.get(key)
        try:
            outcome = future.result()
        except ClusterStartError as err:  # never ran: requeued, not counted
            log.warning("pool %s: %s: %s", self.pool, key, err)
            metrics.record_reconcile_error(self.pool, "cluster-start")
            if view is not None and view.phase == Phase.ADMITTED.value:
                self._transition(view, lifecycle.start_failed(view, str(err), now))
            return
        except Exception as err:  # a backend failure is this attempt's failure
            log.warning("pool %s: %s: backend action failed: %r", self.pool, key, err)
            metrics.record_reconcile_error(self.pool, "backend")
            outcome = (
                Outcome("failed", int(view.status.get("run") or 0), f"backend error: {err}")
                if view is not None and view.holding
                else None
            )
        if outcome is None or view is None or outcome.run != int(view.status.get("run") or 0):
            return
        max_attempts = view.spec.training.max_attempts if view.spec.training else 3
        if outcome.kind == "started" and view.phase == Phase.ADMITTED.value:
            self._transition(view, lifecycle.training_started(view, outcome.detail, now))
        elif outcome.kind == "succeeded" and view.phase == Phase.TRAINING.value:
            patch, event = lifecycle.training_succeeded(view, now)
            patch, checked = after_training(
                patch,
                outcome.detail,
                view.spec.provenance,
                previous_status=view.status,
                serves_next=view.spec.serving is not None,
                serve_on_mismatch=self.serve_on_mismatch,
                now=now,
                generation=view.generation,
            )
            self._transition(view, (patch, event))
            if checked is not None:
                self._event(ModelEvent(view.key, *checked))
        elif outcome.kind == "serving" and view.holding:
            if view.phase != Phase.SERVING.value or view.status.get("endpoint") != outcome.detail:
                self._transition(
                    view, lifecycle.serving_ready(view, outcome.detail, outcome.replicas, now)
                )
        elif outcome.kind == "failed" and view.holding:
            self._transition(
                view, lifecycle.attempt_failed(view, outcome.detail, max_attempts, now)
            )
        elif outcome.kind == "drained" and view.draining:
            self._transition(view, lifecycle.drained(view, now))

    # -- backend actions (worker threads) ----------------------------------------------------

    def _require(self) -> ClusterBackend:
        if self.backend is None:
            raise BackendUnavailableError(self.backend_error)
        return self.backend

    def _start_training(self, view: ModelView, run: int, placement: Placement) -> Outcome:
        backend = self._require()
        training = view.spec.training
        assert training is not None
        ref = self._ref(view, Role.TRAINING)
        cluster = backend.create(ref, placement)
        self._wait_ready(backend, cluster)
        job = TrainingJob(
            workload=ref,
            attempt=run,
            entrypoint=training.entrypoint,
            checkpoint_uri=self.checkpoint_uri(view),
            runtime_env=runtime_env(training.runtime_env),
            artifacts=job_artifacts(view.spec.provenance),
        )
        return Outcome("started", run, backend.submit_job(cluster, job))

    def _wait_ready(self, backend: ClusterBackend, cluster: ClusterHandle) -> None:
        """Until the cluster is ready; a cluster that cannot start is torn down and reported
        as :class:`ClusterStartError` (the workload is requeued, no attempt counted)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            status = backend.status(cluster)
            if status.ready:
                return
            problem = ""
            if status.phase in (ClusterPhase.FAILED, ClusterPhase.GONE):
                problem = f"Ray cluster {status.phase.value}: {status.message}"
            elif time.monotonic() > deadline:
                problem = f"Ray cluster not ready after {READY_TIMEOUT_S:g} s"
            if problem:
                backend.teardown(cluster)
                raise ClusterStartError(problem[-500:])
            time.sleep(0.5)

    def _follow_job(self, view: ModelView, run: int, overdue: bool) -> Outcome | None:
        backend = self._require()
        ref = self._ref(view, Role.TRAINING)
        cluster = backend.find(ref)
        if cluster is None:
            return Outcome("failed", run, "the Ray cluster of the job is gone")
        state = backend.status(cluster)
        if state.phase in (ClusterPhase.FAILED, ClusterPhase.GONE):
            backend.teardown(cluster)
            return Outcome("failed", run, f"the Ray cluster died: {state.message}")
        sid = str(view.status.get("rayJobId") or "")
        if overdue:
            backend.stop_job(cluster, sid)
            backend.teardown(cluster)
            return Outcome("failed", run, "ran longer than maxRuntime")
        report = backend.job(cluster, sid, tail_lines=ATTESTATION_TAIL_LINES)
        if not report.state.terminal:
            return None
        backend.teardown(cluster)
        if report.state is JobState.SUCCEEDED:
            return Outcome("succeeded", run, report.log_tail)  # with the attestations
        last = report.log_tail.strip().splitlines()[-1:] or [report.message]
        return Outcome("failed", run, f"job {report.state.value}: {last[0][:300]}")

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

    def _start_serving(self, view: ModelView, run: int, placement: Placement) -> Outcome:
        backend = self._require()
        ref = self._ref(view, Role.SERVING)
        cluster = backend.create(ref, placement)
        self._wait_ready(backend, cluster)
        app = self.serve_app(view, placement.workers)
        backend.deploy_serve(cluster, app)
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while True:
            report = backend.serve(cluster, app.name)
            if report.healthy and _answers(report.endpoint):
                return Outcome("serving", run, report.endpoint, report.running_replicas)
            if report.state is ServeState.DEPLOY_FAILED:
                backend.teardown(cluster)
                return Outcome("failed", run, f"Serve deploy failed: {report.message[:300]}")
            if time.monotonic() > deadline:
                backend.teardown(cluster)
                return Outcome("failed", run, f"Serve not healthy in {SERVE_TIMEOUT_S:g} s")
            time.sleep(1.0)

    def _follow_serve(self, view: ModelView, run: int) -> Outcome | None:
        backend = self._require()
        cluster = backend.find(self._ref(view, Role.SERVING))
        if cluster is None:
            return Outcome("failed", run, "the Ray cluster of the endpoint is gone")
        state = backend.status(cluster)
        if state.phase in (ClusterPhase.FAILED, ClusterPhase.GONE):
            backend.teardown(cluster)
            return Outcome("failed", run, f"the Ray cluster died: {state.message}")
        report = backend.serve(cluster, view.name)
        if report.state in (ServeState.DEPLOY_FAILED, ServeState.MISSING):
            backend.teardown(cluster)
            return Outcome("failed", run, f"Serve application {report.state.value}")
        if report.healthy:
            return Outcome("serving", run, report.endpoint, report.running_replicas)
        return None

    def _drain(self, view: ModelView, run: int, grace_s: float) -> Outcome:
        """Stop the job (it may checkpoint), wait for its end or the grace period, tear down."""
        backend = self._require()
        preempted = parse_time(view.status.get("preemptedAt"))
        deadline = (preempted.timestamp() if preempted else self.now().timestamp()) + grace_s
        for role in (Role.TRAINING, Role.SERVING):
            cluster = backend.find(self._ref(view, role))
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

    def release(self, view: ModelView) -> None:
        """Tear down every cluster of a model (deleted, or its pool is gone); waits."""
        task = self.tasks.pop(view.key, None)
        if task is not None:
            try:
                task.result(timeout=READY_TIMEOUT_S)
            except Exception as err:
                log.info("pool %s: %s: last action ended with %r", self.pool, view.key, err)
        backend = self.backend
        if backend is None:
            return
        for role in (Role.TRAINING, Role.SERVING):
            cluster = backend.find(self._ref(view, role))
            if cluster is not None:
                backend.teardown(cluster)
        self.written.pop(view.key, None)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- the users' ledger and the pool's status ---------------------------------------------

    def _flush_usage(self, views: Mapping[str, ModelView], now: datetime) -> None:
        for view in views.values():
            last = parse_time(view.status.get("usageUpdatedAt"))
            if last is None or (now - last).total_seconds() < LEDGER_FLUSH_S:
                continue
            usage = model_usage(view, now)
            if usage is not None:
                self._safe(view, usage)

    def _write_pool(
        self,
        spec: ComputePoolSpec,
        pool_status: Mapping[str, Any],
        views: Mapping[str, ModelView],
        pv: PoolView,
        now: datetime,
        refresh: bool,
    ) -> None:
        held = held_gpus(views.values())
        pending: dict[str, int] = {}
        for w in self.decisions.waiting if self.decisions else ():
            pending[w.workload.community] = pending.get(w.workload.community, 0) + w.workload.gpus
        new = pool_usage(
            spec,
            pool_status,
            self.decisions,
            held,
            held_units(views.values(), pv),
            pending,
            pv.half_life_s,
            now,
        )
        backend_ok = self.backend is not None
        new["conditions"] = [
            *[c for c in pool_status.get("conditions") or [] if c.get("type") != "BackendReady"],
            condition(
                pool_status,
                "BackendReady",
                "True" if backend_ok else "False",
                "BackendAvailable" if backend_ok else "BackendUnavailable",
                f"Ray backend {self.backend_kind}"
                + ("" if backend_ok else f": {self.backend_error}"),
                now,
                None,
            ),
        ]
        previous = self.pool_written or dict(pool_status)

        def backend_ready(status: Mapping[str, Any]) -> Any:
            found = [c for c in status.get("conditions") or [] if c.get("type") == "BackendReady"]
            return [(c.get("status"), c.get("message")) for c in found]

        conditions_changed = backend_ready(new) != backend_ready(pool_status)
        if not conditions_changed and not pool_usage_changed(previous, new, LEDGER_FLUSH_S):
            return
        try:
            # the conditions list is shared with the pool daemon: send ours only when it changed
            to_send = (
                new if conditions_changed else {k: v for k, v in new.items() if k != "conditions"}
            )
            self.writer.patch_pool(self.pool, to_send)
            self.pool_written = new
        except Exception as err:
            log.warning("pool %s: writing its status failed: %s", self.pool, err)
            metrics.record_reconcile_error(self.pool, "write")
            return
        before = {c.get("name"): c for c in pool_status.get("communities") or []}
        for row in new["communities"]:
            was = float(before.get(row["name"], {}).get("gpuSecondsConsumed") or 0.0)
            if row["gpuSecondsConsumed"] > was:
                metrics.record_gpu_seconds_used(
                    self.pool, row["name"], row["gpuSecondsConsumed"] - was
                )
        self._record(new, views, now)

    def _record(
        self, status: Mapping[str, Any], views: Mapping[str, ModelView], now: datetime
    ) -> None:
        rows = {
            c["name"]: (
                float(c["entitledUnits"]),
                float(c["allocatedUnits"]),
                float(c["pendingGPUs"]),
            )
            for c in status.get("communities") or []
        }
        metrics.record_communities(self.pool, rows)
        queues: dict[str, list[float]] = {}
        for v in views.values():
            if v.phase == Phase.QUEUED.value:
                since = parse_time((v.status.get("waiting") or {}).get("since"))
                wait = (now - since).total_seconds() if since else 0.0
                queues.setdefault(v.community, []).append(wait)
        for c in spec_names(status):
            waits = queues.get(c, [])
            metrics.record_queue(self.pool, c, len(waits), max(waits, default=0.0))


def spec_names(status: Mapping[str, Any]) -> list[str]:
    return [str(c["name"]) for c in status.get("communities") or []]


def _answers(endpoint: str) -> bool:
    """The endpoint answers an HTTP GET with 200."""
    try:
        with urllib.request.urlopen(endpoint, timeout=5) as response:
            return int(response.status) == 200
    except OSError:
        return False
