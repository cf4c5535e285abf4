"""The admission loop's kopf glue: a daemon per pool, a finalizer per model.

The daemon (a thread: nothing here blocks kopf's event loop) owns the pool's
:class:`~polyculture.loop.pool.PoolLoop` and calls it every ``TICK_S`` with the indexed pool,
models and nodes. When the pool is deleted, its models' clusters are torn down and the models
become ``Invalid`` (``PoolNotFound``). A model's finalizer tears its clusters down.

Settings come from ``polyculture run``: ``POLYCULTURE_RAY_STATE_DIR`` (the local backend's
state and default checkpoints) and ``POLYCULTURE_RAY_FATE_SHARE=1`` (local clusters die with
the operator: no adoption after a restart).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import kopf

from polyculture import metrics
from polyculture.api.meta import GROUP, VERSION
from polyculture.handlers.clock import CLOCK
from polyculture.handlers.models import MODELS
from polyculture.handlers.nodes import current_nodes
from polyculture.handlers.pools import Claims
from polyculture.kube.status import ADMISSION_MANAGER, apply_pool_status, patch_model_status
from polyculture.loop.actions import READY_TIMEOUT_S
from polyculture.loop.backends import BackendSettings, BackendUnavailableError
from polyculture.loop.pool import PoolLoop, Writer, parse_model
from polyculture.ray.backend import Role, WorkloadRef
from polyculture.reconcile.models import parse_pools, verdict

TICK_S = 0.5
STATE_DIR_ENV = "POLYCULTURE_RAY_STATE_DIR"
FATE_SHARE_ENV = "POLYCULTURE_RAY_FATE_SHARE"
START_TIMEOUT_ENV = "POLYCULTURE_CLUSTER_START_TIMEOUT"
DEFAULT_STATE_DIR = Path(".polyculture/ray")
#: status fields the loop owns, cleared when its pool is gone
LOOP_FIELDS = (
    "admission",
    "queuePosition",
    "rayJobId",
    "endpoint",
    "preemptedAt",
    "usageUpdatedAt",
    "requestedGPUs",
)


@dataclass
class Admission:
    """The operator-wide part of the loop: backend settings and the live loops by pool."""

    settings: BackendSettings
    loops: dict[str, PoolLoop] = field(default_factory=dict)


def _post(body: Any, type_: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message[:1024])


def _apply_pool(name: str, status: Mapping[str, Any]) -> None:
    apply_pool_status(name, ADMISSION_MANAGER, status)


WRITER = Writer(patch_model=patch_model_status, apply_pool=_apply_pool, post_event=_post)


@kopf.on.startup()
def start_admission(memo: kopf.Memo, **_: Any) -> None:
    settings = BackendSettings(
        local_state_dir=Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR).resolve(),
        local_fate_share=os.environ.get(FATE_SHARE_ENV) == "1",
        ready_timeout_s=float(os.environ.get(START_TIMEOUT_ENV) or READY_TIMEOUT_S),
    )
    memo.admission = Admission(settings)


def _models(index: kopf.Index[str, dict[str, Any]], pool: str) -> list[dict[str, Any]]:
    return list(index[pool]) if pool in index else []


@kopf.daemon(GROUP, VERSION, "computepools", cancellation_timeout=120.0)
def admission_loop(
    *,
    name: str,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    registry: Admission = memo.admission
    claims: Claims = memo.claims
    loop = PoolLoop(name, backends=registry.settings, writer=WRITER, now=CLOCK.now)
    registry.loops[name] = loop
    index: kopf.Index[str, dict[str, Any]] = kwargs["models_by_pool"]
    seniority = (str(body.metadata.get("creationTimestamp", "")), name)
    try:
        while not stopped:
            try:
                senior, _ = claims.others(name, seniority)
                nodes = current_nodes(kwargs["nodes_index"])
                loop.step(dict(body), _models(index, name), nodes, senior)
            except Exception as err:  # reported on this pool; other pools go on
                logger.exception(f"pool {name}: admission loop step failed: {err}")
                metrics.record_reconcile_error(name, "loop")
                stopped.wait(5)
            stopped.wait(TICK_S)
    finally:
        registry.loops.pop(name, None)
        if stopped.reason is not None and stopped.reason & (
            kopf.DaemonStoppingReason.RESOURCE_DELETED
        ):
            _pool_gone(name, loop, _models(index, name), kwargs["pools_index"], logger)
        loop.close()


def _pool_gone(
    pool: str,
    loop: PoolLoop,
    models: list[dict[str, Any]],
    pools_index: kopf.Index[str, dict[str, Any]],
    logger: kopf.Logger,
) -> None:
    """The pool is deleted: tear its models' clusters down and judge them again."""
    others = {n: b for n, s in pools_index.items() if n != pool for b in s}
    parsed = parse_pools(others)
    for body in models:
        view = parse_model(body)
        if view is None:
            continue
        try:
            final = loop.release(view)  # its counter up to now: the loop accrued it in memory
            result = verdict({**body, "status": {}}, parsed, CLOCK.now())
            if result.status is not None:
                patch_model_status(
                    view.namespace,
                    view.name,
                    {**dict.fromkeys(LOOP_FIELDS), **final, **result.status},
                )
                for problem in result.events:
                    _post(body, "Warning", problem.reason, problem.message)
        except Exception as err:
            logger.error(f"model {view.key}: cleanup after pool {pool} was deleted: {err}")


@kopf.on.delete(GROUP, VERSION, MODELS)
def release_model(
    *, body: kopf.Body, spec: kopf.Spec, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Finalizer: no Ray process of a deleted model is left."""
    view = parse_model(dict(body))
    if view is None:
        return
    registry: Admission = memo.admission
    loop = registry.loops.get(str(spec.get("pool", "")))
    if loop is not None:
        loop.release(view)
        return
    try:  # no live loop (the pool is gone): look for its clusters on the local backend
        backend = registry.settings.local()
    except BackendUnavailableError:
        return
    for role in (Role.TRAINING, Role.SERVING):
        ref = WorkloadRef(namespace=view.namespace, name=view.name, role=role, uid=view.uid)
        cluster = backend.find(ref)
        if cluster is not None:
            backend.teardown(cluster)
            logger.info(f"model {view.key}: cluster {cluster.name} torn down")
