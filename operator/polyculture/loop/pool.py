"""One pool's admission loop: the single writer of its models' admission and lifecycle.

:meth:`PoolLoop.step` is called on a short tick by the pool's handler with what kopf indexes
(the pool, its models, the nodes). Each step:

1. applies the outcomes of finished backend actions (cluster ready and job submitted, job
   ended, Serve healthy, drained) as lifecycle transitions (``reconcile.lifecycle``);
2. runs the core when its input changed (or ``RESCHEDULE_S`` passed: minimum runtimes and
   windows are time-driven), and writes the plan (``reconcile.admission``) at once, before
   any cluster is made: the admissions first, the status patches sent in parallel and not
   waited for (until the API server answers, a model's view is what is being written, and
   no backend action starts for it); a model the verdict step has not judged yet is judged
   here with the same pure verdict, so that its admission does not wait for that write;
3. starts at most one backend action per model in a worker thread (``loop.actions``): create
   the cluster (then look again on later ticks until it is ready, and submit the job or
   deploy Serve), follow the job or Serve health, drain a preempted model (stop the job, wait
   for its end or the grace period, tear the cluster down). No action waits for a cluster to
   start; local clusters start one at a time per pool (they compete for this machine's CPUs);
4. settles the users' ledger: GPU-seconds per model, and per community the sum of its
   models' counters, in the loop's part of the pool status (``loop.pool_status``).

What is stored is the truth: the loop keeps only what it wrote last (its own writes may not
be in kopf's index yet), the parsed specs (by generation) and in-flight actions; a restarted
operator rebuilds everything from the stored status and adopts the clusters and jobs the
backend still has.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from polyculture import metrics
from polyculture.api.admissibility import KnownPools, Problem
from polyculture.api.community_model import CommunityModelSpec, Phase
from polyculture.api.compute_pool import ComputePoolSpec, RaySettings
from polyculture.api.pool_validity import judge_spec
from polyculture.api.units import parse_duration
from polyculture.inventory import NodeInfo
from polyculture.loop.actions import (
    DEPLOYING,
    READY_TIMEOUT_S,
    STARTING,
    Actions,
    ClusterStartError,
    Outcome,
)
from polyculture.loop.backends import BackendSettings, BackendUnavailableError, settings_key
from polyculture.loop.pool_status import ApplyPool, PoolStatus, resource_version
from polyculture.loop.workers import Workers
from polyculture.ray.backend import ClusterBackend, NodePlacement, Placement
from polyculture.reconcile import lifecycle
from polyculture.reconcile.admission import (
    TRAINING,
    ModelEvent,
    ModelView,
    Plan,
    PoolView,
    epoch,
    model_usage,
    plan,
    pool_view,
)
from polyculture.reconcile.conditions import parse_time
from polyculture.reconcile.models import PoolsCache, pool_verdict_key, verdict
from polyculture.reconcile.pools import member_rules
from polyculture.reconcile.provenance import after_training
from polyculture.reconcile.snapshots import SnapshotBuilder
from polyculture.scheduling import Decisions, schedule

log = logging.getLogger(__name__)

#: the core runs at least this often even when nothing it reads changed
RESCHEDULE_S = 5.0
POLL_TRAINING_S = 2.0
POLL_SERVING_S = 5.0
#: a starting cluster is looked at again after this long, then every ``START_POLL_SLOW_S``
START_POLL_S = 1.0
START_POLL_SLOW_S = 5.0
START_POLL_FAST_FOR_S = 30.0
#: Ray clusters a pool starts at once: local ones compete for this machine's CPUs (a Ray
#: node that cannot start within Ray's own timeout fails); remote ones start in the
#: cluster, bounded only by the worker threads that send their creates
LOCAL_MAX_STARTING = 1
#: worker threads per pool for backend calls, and for status writes
ACTION_WORKERS = 16
#: looks at starting clusters queued at once: the rest wait for a later step, so that the
#: creates of new clusters never queue behind the checks of thousands that are starting
START_CHECKS_AT_ONCE = ACTION_WORKERS // 2
WRITE_WORKERS = 16

Judged = tuple[ComputePoolSpec | None, tuple[Problem, ...]]
PatchModel = Callable[[str, str, Mapping[str, Any]], Mapping[str, Any]]
PostEvent = Callable[[Mapping[str, Any], str, str, str], None]


@dataclass(frozen=True)
class Writer:
    """How the loop writes: model status patches (returning the stored object), its own part
    of the pool status (applied whole: fields and conditions it omits are dropped), Events."""

    patch_model: PatchModel
    apply_pool: ApplyPool
    post_event: PostEvent


@dataclass(frozen=True, slots=True)
class Made:
    """A model's view and its inputs: the indexed body, the loop's last write (when newer)
    and the status being written (the very objects: a new one means a new view)."""

    body: Mapping[str, Any]
    written: tuple[int, dict[str, Any]] | None
    sending: dict[str, Any] | None
    current: Mapping[str, Any]
    view: ModelView


@dataclass(frozen=True)
class Start:
    """A start in progress for admission ``run``: ``stage`` (starting or deploying) until
    ``deadline`` (epoch seconds); created ``since`` (monotonic), for the poll interval."""

    run: int
    stage: str
    deadline: float
    since: float


def parse_model(body: Mapping[str, Any]) -> ModelView | None:
    """A model body as a view; None if its spec does not parse (the verdict step reports it)."""
    spec = _parse_spec(body)
    return None if spec is None else _view(body, spec)


def _parse_spec(body: Mapping[str, Any]) -> CommunityModelSpec | None:
    try:
        return CommunityModelSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError:
        return None


def _view(body: Mapping[str, Any], spec: CommunityModelSpec) -> ModelView:
    meta = body.get("metadata") or {}
    return ModelView(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        created=epoch(meta.get("creationTimestamp")),
        generation=meta.get("generation"),
        spec=spec,
        status=dict(body.get("status") or {}),
    )


#: phases of the verdict step (``reconcile.models``): a model in one is judged before it is
#: queued or admitted
UNJUDGED = (None, Phase.PENDING.value)


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` as a JSON merge patch (RFC 7386) does."""
    if not isinstance(patch, Mapping):
        return patch
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class PoolLoop:
    """The admission loop of one pool. Not thread-safe: one thread calls :meth:`step`
    (:meth:`release` may be called from another)."""

    def __init__(
        self,
        pool: str,
        *,
        backends: BackendSettings,
        writer: Writer,
        now: Callable[[], datetime],
        workers: int = ACTION_WORKERS,
    ) -> None:
        self.pool = pool
        self.backends = backends
        self.writer = writer
        self.now = now
        self.workers = Workers(workers, f"pool-{pool}")
        self.writes = Workers(WRITE_WORKERS, f"pool-{pool}-write")
        self.actions = Actions(
            pool, self._require, backends.checkpoint_root, now, backends.ready_timeout_s
        )
        self.tasks: dict[str, Future[Outcome | None]] = {}
        self.next_poll: dict[str, float] = {}
        self.starts: dict[str, Start] = {}
        #: models whose start is being looked at (``check_start`` queued or running)
        self.checking: set[str] = set()
        self.written: dict[str, tuple[int, dict[str, Any]]] = {}
        #: writes sent and not answered yet, by key: (the write, the status it makes)
        self.inflight: dict[str, tuple[Future[None], dict[str, Any]]] = {}
        self.bodies: dict[str, Mapping[str, Any]] = {}
        #: parsed specs by key: ((uid, generation), spec or None when it does not parse)
        self.parsed: dict[str, tuple[tuple[str, Any], CommunityModelSpec | None]] = {}
        #: each model's view and what it was made from, by key: unchanged inputs, same view
        self._made: dict[str, Made] = {}
        #: the last pool view and what it was made from (``_pool_view``)
        self._pv_made: tuple[Any, ...] | None = None
        self.pool_spec: tuple[Any, Judged] | None = None
        #: verdicts made here, by key: ((uid, generation, pool), valid, the Pending status)
        self.verdicts: dict[str, tuple[tuple[Any, ...], bool, dict[str, Any] | None]] = {}
        self._pool_body: Mapping[str, Any] = {}
        #: models whose view this step carries a verdict made here (not stored yet)
        self.judged_here: set[str] = set()
        self._pool_key: Any = None
        self.pools_cache = PoolsCache()
        #: the pool as the verdicts see it, parsed at most once per step
        self._known: KnownPools | None = None
        self.status = PoolStatus(pool, writer.apply_pool)
        self.fingerprint: Any = None
        #: the core's snapshot, made again only for the models whose view changed
        self.snapshots = SnapshotBuilder()
        self.last_cycle = 0.0
        self.decisions: Decisions | None = None
        self.backend_key: tuple[str, str, str] | None = None
        self.backend_kind = ""
        self.backend: ClusterBackend | None = None
        self.backend_error = ""
        self.serve_on_mismatch = False
        #: why the pool is unusable, as last logged (empty while it is usable)
        self.unusable: tuple[Problem, ...] = ()
        self._patches: list[tuple[ModelView, Mapping[str, Any]]] = []
        self._events: list[ModelEvent] = []

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
        spec, problems = self._judge(pool_body)
        if spec is None:
            # the pool daemon reports why (Valid=False, an Event) and the verdicts make its
            # models Invalid (PoolInvalid): nothing is scheduled on a pool judged unusable
            if problems != self.unusable:
                self.unusable = problems
                log.warning(f"pool {self.pool}: not scheduling, the pool is invalid: {problems}")
            return
        self.unusable = ()
        self._choose_backend(spec.ray)
        self.serve_on_mismatch = spec.provenance.serve_on_mismatch
        stored = dict(pool_body.get("status") or {})
        self.status.start(stored, now)
        pool_status = {**stored, **(self.status.written or {})}
        self._pool_body = pool_body
        self._pool_key = pool_verdict_key(pool_body)
        self._known = None
        views = self._views(model_bodies)
        pv = self._pool_view(spec, nodes, now, senior_pools)

        for key, task in list(self.tasks.items()):
            if task.done() and self.tasks.pop(key, None) is task:
                self._apply_outcome(key, task, views, now)
        self._flush()
        views = self._views(model_bodies)

        if self.backend is not None:
            snap = self.snapshots.build(pv, spec, pool_status, list(views.values()), now)
            fingerprint = (snap.nodes, snap.communities, snap.running, snap.pending, snap.policy)
            if fingerprint != self.fingerprint or started - self.last_cycle >= RESCHEDULE_S:
                self.fingerprint, self.last_cycle = fingerprint, started
                self.decisions = schedule(snap)
                self._write_plan(plan(self.decisions, snap, views, pv, now), views, now)
                views = self._views(model_bodies)
                metrics.observe_cycle(self.pool, time.monotonic() - started)
            self._act(views, pv, spec, now)
        self._write_verdicts(views)
        self._patches.extend(self.status.usage_patches(views, now))
        self._flush()
        self.status.write(
            spec,
            pool_status,
            model_bodies,
            views,
            pv,
            now,
            decisions=self.decisions,
            written=self.written,
            backend_kind=self.backend_kind,
            backend_error=None if self.backend is not None else self.backend_error,
        )

    def _pool_view(
        self,
        spec: ComputePoolSpec,
        nodes: Sequence[NodeInfo],
        now: datetime,
        senior_pools: Mapping[str, frozenset[str]] | None,
    ) -> PoolView:
        """``pool_view``, again only when its input changed: the spec (parsed once per
        generation), the nodes (the index's own objects, new on each Node event), which
        lending windows are open now, and the senior pools' claims."""
        windows = tuple(rule.window_open for rule in member_rules(spec, now))
        senior = dict(senior_pools or {})
        made = self._pv_made
        if (
            made is not None
            and made[0] is spec
            and made[1] == windows
            and made[2] == senior
            and len(made[3]) == len(nodes)
            and all(a is b for a, b in zip(made[3], nodes, strict=True))
        ):
            view: PoolView = made[4]
            return view
        view = pool_view(self.pool, spec, nodes, now, senior_pools)
        self._pv_made = (spec, windows, senior, tuple(nodes), view)
        return view

    def writes_first_status(self) -> bool:
        """Whether this loop writes a new valid model's first status itself (with the
        verdict's fields), so that the verdict step need not write ``Pending`` first: yes
        unless it judges its pool unusable. With its backend up, that write is the model's
        admission or place in the queue; without, ``Pending`` (``_write_verdicts``); before
        the pool's status says what its nodes hold, the loop judges nothing and writes once
        it does."""
        return not self.unusable

    def _write_verdicts(self, views: Mapping[str, ModelView]) -> None:
        """Models judged here (valid, no phase stored) that no plan write covers in this step
        (the core did not run: no backend): their verdict's ``Pending`` is written here, the
        write the verdict step left to this loop. With a backend the plan writes them (their
        admission or place in the queue): a ``Pending`` here could land after it."""
        if self.backend is not None:
            return
        for key in self.judged_here:
            judged = self.verdicts.get(key)
            view = views.get(key)
            if key in self.inflight or judged is None or judged[2] is None or view is None:
                continue
            self._patches.append((view, dict(judged[2])))

    def _judge(self, body: Mapping[str, Any]) -> Judged:
        """The pool's spec judged (``judge_spec``), again only when its generation changed."""
        meta = body.get("metadata") or {}
        key = (meta.get("uid"), meta.get("generation"))
        if self.pool_spec is None or self.pool_spec[0] != key or key[1] is None:
            self.pool_spec = (key, judge_spec(body.get("spec") or {}))
        return self.pool_spec[1]

    # -- views and writes --------------------------------------------------------------------

    def _views(self, bodies: Sequence[Mapping[str, Any]]) -> dict[str, ModelView]:
        """Models of the pool, each with the newer of its indexed and its last written status;
        a spec is parsed once per generation."""
        out: dict[str, ModelView] = {}
        self.judged_here = set()
        seen: set[str] = set()
        for body in bodies:
            meta = body.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            if meta.get("deletionTimestamp"):
                continue
            written = self.written.get(key)
            current: Mapping[str, Any] = body
            if written is not None and written[0] > resource_version(body):
                current = {**body, "status": written[1]}
            else:
                written = None
            sending = self.inflight.get(key)
            if sending is not None:
                if sending[0].done():
                    self.inflight.pop(key, None)
                    sending = None
                else:  # what is being written stands until the API server answers
                    current = {**body, "status": sending[1]}
            made = self._made.get(key)
            if (
                made is not None
                and made.body is body
                and made.written is written
                and made.sending is (sending[1] if sending is not None else None)
            ):  # nothing new for this model since the last step: the same view
                seen.add(key)
                out[key] = made.view
                self.bodies[key] = made.current
                continue
            identity = (str(meta.get("uid") or ""), meta.get("generation"))
            cached = self.parsed.get(key)
            if cached is not None and cached[0] == identity and identity[1] is not None:
                spec = cached[1]
            else:
                spec = _parse_spec(body)
                self.parsed[key] = (identity, spec)
            seen.add(key)
            if spec is not None and (current.get("status") or {}).get("phase") in UNJUDGED:
                judged = self._judged(key, identity, current)
                if judged is None:
                    continue  # invalid as the pool stands: the verdict step reports it
                if judged is not current:
                    self.judged_here.add(key)
                current = judged
            if spec is not None:
                current = self.status.settled(key, current)  # carried into this loop's watch
                out[key] = view = _view(current, spec)
                self.bodies[key] = current
                if view.phase not in UNJUDGED:  # a verdict made here depends on the pool
                    sent = sending[1] if sending is not None else None
                    self._made[key] = Made(body, written, sent, current, view)
        if len(self._made) > len(out):
            for key in set(self._made) - set(out):
                self._made.pop(key, None)
        for key in set(self.written) - set(out):
            self.written.pop(key, None)
        if len(self.parsed) > len(out):
            for key in set(self.parsed) - set(out):
                if key not in self.written:
                    self.parsed.pop(key, None)
        for key in set(self.verdicts) - seen:
            self.verdicts.pop(key, None)
        return out

    def _judged(
        self, key: str, identity: tuple[str, Any], body: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """A model still in the verdict step's phases (none yet, ``Pending``), judged here
        by the same pure verdict against the pool as it stands: None if it is invalid (the
        loop must not queue or admit what the verdict step is about to make ``Invalid``);
        else the body, ``Pending`` at once when it had no phase yet (its admission need not
        wait for that write). A model without a phase is judged only once it carries a
        finalizer (the one its deletion handler needs to tear its clusters down)."""
        status = body.get("status") or {}
        if not (self._pool_body.get("status") or {}).get("members"):
            return None  # what the pool's nodes can hold is not known yet (NeverFits)
        if not status.get("phase") and not (body.get("metadata") or {}).get("finalizers"):
            return body
        ident = (*identity, self._pool_key)
        cached = self.verdicts.get(key)
        if cached is None or cached[0] != ident:
            if self._known is None:
                self._known = self.pools_cache.parse({self.pool: self._pool_body})
            result = verdict(body, self._known, self.now())
            new = result.status
            valid = new is None or new.get("phase") == Phase.PENDING.value
            cached = (ident, valid, new if valid else None)
            self.verdicts[key] = cached
        if not cached[1]:
            return None
        if status.get("phase") or cached[2] is None:
            return body
        return {**body, "status": {**status, **cached[2]}}

    def _patch(self, view: ModelView, patch: Mapping[str, Any]) -> None:
        try:
            stored = self.writer.patch_model(view.namespace, view.name, patch)
        except Exception as err:  # one bad write never stops the others
            log.warning("pool %s: writing %s failed: %s", self.pool, view.key, err)
            metrics.record_reconcile_error(self.pool, "write")
            return
        self.written[view.key] = (resource_version(stored), dict(stored.get("status") or {}))

    def _patch_after(
        self, before: Future[None] | None, view: ModelView, patch: Mapping[str, Any]
    ) -> None:
        if before is not None:
            wait([before])  # one model's writes reach the API server in order
        self._patch(view, patch)

    def _flush(self) -> None:
        """Send the patches queued in this step, in parallel, without waiting for them: until
        the API server answers, a model's view is what is being written (``inflight``), and
        no backend action starts for it. Then post their Events."""
        patches, self._patches = self._patches, []
        events, self._events = self._events, []
        for view, patch in patches:
            sending = self.inflight.get(view.key)
            before = sending[0] if sending is not None and not sending[0].done() else None
            base = sending[1] if sending is not None and before is not None else view.status
            status = merge_patch(base, patch)
            future = self.writes.submit(self._patch_after, before, view, patch)
            self.inflight[view.key] = (future, status)
        for event in events:
            self._event(event)

    def _event(self, event: ModelEvent) -> None:
        body = self.bodies.get(event.key)
        if body is not None:
            try:
                self.writer.post_event(body, event.type, event.reason, event.message)
            except Exception as err:  # an Event is a courtesy: its loss stops nothing
                log.warning("pool %s: event for %s failed: %s", self.pool, event.key, err)
        log.info("pool %s: %s %s: %s", self.pool, event.key, event.reason, event.message)

    def _write_plan(self, p: Plan, views: Mapping[str, ModelView], now: datetime) -> None:
        # admissions first: what the users wait for is the Admitted status
        admitted = set(p.admitted)
        first = [k for k in p.patches if k in admitted]
        for key in first + [k for k in p.patches if k not in admitted]:
            view = views[key]
            usage = model_usage(view, now) if view.holding or view.draining else None
            # judged here, not stored yet: the verdict's fields go with the first write
            judged = self.verdicts.get(key) if key in self.judged_here else None
            verdict_status = (judged[2] if judged is not None else None) or {}
            self._patches.append((view, {**verdict_status, **(usage or {}), **p.patches[key]}))
        self._events.extend(p.events)
        self._flush()
        for key in p.admitted:
            metrics.record_admission(self.pool, views[key].community)
        for _, reason in p.preempted:
            metrics.record_preemption(self.pool, reason)

    def _transition(self, view: ModelView, result: lifecycle.Transition) -> None:
        patch, event = result
        self._patches.append((view, patch))
        self._events.append(event)

    # -- backend -----------------------------------------------------------------------------

    def _choose_backend(self, ray: RaySettings) -> None:
        key = settings_key(ray)
        if key == self.backend_key and (self.backend is not None or self.backend_error):
            return
        self.backend_key, self.backend_kind = key, ray.backend.value
        try:
            self.backend, self.backend_error = self.backends.for_pool(self.pool, ray), ""
        except BackendUnavailableError as err:
            self.backend, self.backend_error = None, str(err)
            metrics.record_reconcile_error(self.pool, "backend")
            log.error("pool %s: %s", self.pool, err)

    def _require(self) -> ClusterBackend:
        if self.backend is None:
            raise BackendUnavailableError(self.backend_error)
        return self.backend

    def _placement(self, view: ModelView, pv: PoolView) -> Placement:
        admission = view.admission or {}
        per = (
            view.spec.training.gpus_per_worker
            if view.stage == TRAINING and view.spec.training is not None
            else (view.spec.serving.gpus_per_replica if view.spec.serving else 1)
        )
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
        for key in list(self.starts):
            view = views.get(key)
            if view is None or view.phase != Phase.ADMITTED.value:
                self.starts.pop(key, None)
        starting = sum(1 for s in self.starts.values() if s.stage == STARTING)
        self.checking &= self.tasks.keys()
        for key, view in views.items():
            if key in self.tasks or key in self.inflight:
                continue  # one action at a time; none before its status is stored
            run = int(view.status.get("run") or 0)
            phase = view.phase
            if view.draining:
                self._submit(key, self.actions.drain, view, run, grace)
            elif phase == Phase.ADMITTED.value and view.admission is not None:
                start = self.starts.get(key)
                if start is not None and start.run == run:
                    due = clock >= self.next_poll.get(key, 0.0)
                    if due and len(self.checking) < START_CHECKS_AT_ONCE:
                        self._submit(
                            key, self.actions.check_start, view, run, start.stage, start.deadline
                        )
                        self.checking.add(key)
                    continue
                placed = {str(p["node"]) for p in view.admission.get("placement") or []}
                if placed & draining_nodes:
                    continue  # the GPUs are still being freed by a preempted workload
                if starting >= self._max_starting():
                    continue  # local Ray clusters start one after another on this machine
                self._submit(key, self.actions.start, view, run, self._placement(view, pv))
                self.starts[key] = Start(run, STARTING, math.inf, clock)
                starting += 1
            elif phase in (Phase.TRAINING.value, Phase.SERVING.value):
                if clock < self.next_poll.get(key, 0.0):
                    continue
                training = phase == Phase.TRAINING.value
                self.next_poll[key] = clock + (POLL_TRAINING_S if training else POLL_SERVING_S)
                if training:
                    overdue = self._overdue(view, now)
                    self._submit(key, self.actions.follow_job, view, run, overdue)
                else:
                    self._submit(key, self.actions.follow_serve, view, run)

    def _max_starting(self) -> float:
        """Clusters started at once: the local backend's share this machine's CPUs."""
        return LOCAL_MAX_STARTING if self.backend_kind == "local" else math.inf

    def _overdue(self, view: ModelView, now: datetime) -> bool:
        limit = view.spec.training.max_runtime if view.spec.training else None
        admitted = parse_time((view.admission or {}).get("admittedAt"))
        if not limit or admitted is None:
            return False
        return (now - admitted).total_seconds() > parse_duration(limit).total_seconds()

    def _submit(self, key: str, action: Callable[..., Outcome | None], *args: Any) -> None:
        self.tasks[key] = self.workers.submit(action, *args)

    def _apply_outcome(
        self,
        key: str,
        future: Future[Outcome | None],
        views: Mapping[str, ModelView],
        now: datetime,
    ) -> None:
        view = views.get(key)
        try:
            outcome = future.result()
        except ClusterStartError as err:  # never ran: requeued, not counted
            self.starts.pop(key, None)
            log.warning("pool %s: %s: %s", self.pool, key, err)
            metrics.record_reconcile_error(self.pool, "cluster-start")
            if view is not None and view.phase == Phase.ADMITTED.value:
                self._transition(view, lifecycle.start_failed(view, str(err), now))
            return
        except Exception as err:  # a backend failure is this attempt's failure
            self.starts.pop(key, None)
            log.warning("pool %s: %s: backend action failed: %r", self.pool, key, err)
            metrics.record_reconcile_error(self.pool, "backend")
            outcome = (
                Outcome("failed", int(view.status.get("run") or 0), f"backend error: {err}")
                if view is not None and view.holding
                else None
            )
        if outcome is None or view is None or outcome.run != int(view.status.get("run") or 0):
            return
        if outcome.kind in (STARTING, DEPLOYING):
            if view.phase == Phase.ADMITTED.value:
                self._starting(key, outcome)
            return
        self.starts.pop(key, None)
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
                self._events.append(ModelEvent(view.key, *checked))
        elif outcome.kind == "serving" and view.holding:
            if (
                view.phase != Phase.SERVING.value
                or view.status.get("endpoint") != outcome.detail
                or lifecycle.serve_unhealthy_since(view) is not None  # healthy again
            ):
                self._transition(
                    view, lifecycle.serving_ready(view, outcome.detail, outcome.replicas, now)
                )
        elif outcome.kind == "unhealthy" and view.phase == Phase.SERVING.value:
            if lifecycle.serve_unhealthy_since(view) is None:
                self._transition(view, lifecycle.serve_unhealthy(view, outcome.detail, now))
        elif outcome.kind == "failed" and view.holding:
            self._transition(
                view, lifecycle.attempt_failed(view, outcome.detail, max_attempts, now)
            )
        elif outcome.kind == "drained" and view.draining:
            self._transition(view, lifecycle.drained(view, now))

    def _starting(self, key: str, outcome: Outcome) -> None:
        """A start goes on: look again soon while it is young, then less often."""
        clock = time.monotonic()
        before = self.starts.get(key)
        since = before.since if before is not None and before.run == outcome.run else clock
        self.starts[key] = Start(outcome.run, outcome.kind, outcome.deadline, since)
        young = clock - since < START_POLL_FAST_FOR_S
        self.next_poll[key] = clock + (START_POLL_S if young else START_POLL_SLOW_S)

    def release(self, view: ModelView) -> dict[str, Any]:
        """Tear down every cluster of a model (deleted, or its pool is gone) and retire its
        GPU-seconds counter into its community's; waits for the model's last action. Returns
        its final counter (``gpuSecondsUsed``, ``gpuSecondsByOwner``), for a model that stays."""
        task = self.tasks.pop(view.key, None)
        if task is not None:
            try:
                task.result(timeout=READY_TIMEOUT_S)
            except Exception as err:
                log.info("pool %s: %s: last action ended with %r", self.pool, view.key, err)
        written = self.written.get(view.key)
        newest = view if written is None else replace(view, status=written[1])
        final = self.status.final_usage(newest.status, self.now())
        self.status.retire(view.uid, newest.community, float(final["gpuSecondsUsed"]))
        if self.backend is not None:
            self.actions.teardown_all(view)
        self.written.pop(view.key, None)
        self.starts.pop(view.key, None)
        return final

    def close(self) -> None:
        """Stop at once: calls not started are cancelled, calls in flight are not waited for
        (their threads are daemons); the pool's backend stops watching."""
        self.workers.shutdown()
        self.writes.shutdown()
        self.backends.forget(self.pool)
