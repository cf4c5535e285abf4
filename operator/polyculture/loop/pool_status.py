"""The loop's part of a pool's status, and the users' ledger it keeps there.

:class:`PoolStatus` is what one pool's admission loop writes besides its models' admissions:

- each holding model's GPU-seconds, flushed to the model's status at least every
  ``LEDGER_FLUSH_S`` (less often with many models holding GPUs, see ``USAGE_WRITES_PER_S``);
- per community, entitlement, allocation, pending GPUs and the GPU-seconds consumed (the sum
  of its models' counters, plus those of deleted models, so that it never decreases);
- the ``BackendReady`` condition;

applied whole (server-side apply under the loop's own field manager) only when something in
it changed. A deleted model's last counter is kept (:meth:`PoolStatus.retire`) until a pool
write has counted it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from polyculture import metrics
from polyculture.api.community_model import Phase
from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.reconcile.admission import (
    ModelView,
    PoolView,
    held_gpus,
    held_units,
    model_usage,
    models_used,
    per_community,
    pool_usage,
    pool_usage_changed,
)
from polyculture.reconcile.conditions import condition, parse_time
from polyculture.reconcile.pools import MAX_ACCRUAL_GAP_S
from polyculture.scheduling import Decisions

log = logging.getLogger(__name__)

#: a holding model's GPU-seconds are written at least this often ...
LEDGER_FLUSH_S = 30.0
#: ... and, with many models holding GPUs, about this many such writes per second (1,000
#: models every 30 s would cost the API server 33 writes a second), up to 90 s apart
USAGE_WRITES_PER_S = 10.0

ApplyPool = Callable[[str, Mapping[str, Any]], None]
#: (resourceVersion, status) of the loop's last write of a model, by key
Written = Mapping[str, tuple[int, dict[str, Any]]]


def resource_version(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class PoolStatus:
    """The loop's fields of one pool's status and the users' ledger behind them."""

    def __init__(self, pool: str, apply_pool: ApplyPool) -> None:
        self.pool = pool
        self.apply_pool = apply_pool
        #: the loop's part of the pool status as last applied
        self.written: dict[str, Any] | None = None
        #: the models' counters (uid -> community, GPU-seconds) in the last pool write
        self.counted: dict[str, tuple[str, float]] = {}
        #: final counters of models released (deleted) since, by uid
        self.finals: dict[str, tuple[str, float]] = {}
        self.finals_lock = threading.Lock()

    def retire(self, uid: str, community: str, used: float) -> None:
        """A released model's last counter, kept for its community (any thread)."""
        with self.finals_lock:
            self.finals[uid] = (community, used)

    @staticmethod
    def usage_patches(
        views: Mapping[str, ModelView], now: datetime
    ) -> list[tuple[ModelView, dict[str, Any]]]:
        """The GPU-seconds patches due now, one per holding model whose counter is old."""
        holding = sum(1 for v in views.values() if v.holding or v.draining)
        # below the gap that counts as the operator being down (model_usage drops it)
        every = min(max(LEDGER_FLUSH_S, holding / USAGE_WRITES_PER_S), MAX_ACCRUAL_GAP_S * 0.75)
        out: list[tuple[ModelView, dict[str, Any]]] = []
        for view in views.values():
            last = parse_time(view.status.get("usageUpdatedAt"))
            if last is None or (now - last).total_seconds() < every:
                continue
            usage = model_usage(view, now)
            if usage is not None:
                out.append((view, usage))
        return out

    def _counters(
        self, bodies: Sequence[Mapping[str, Any]], written: Written
    ) -> dict[str, tuple[str, float]]:
        """Every model's counter (deleting ones too), the newest known, finals included."""
        current: list[Mapping[str, Any]] = []
        for body in bodies:
            meta = body.get("metadata") or {}
            mine = written.get(f"{meta.get('namespace')}/{meta.get('name')}")
            if mine is not None and mine[0] > resource_version(body):
                current.append({**body, "status": mine[1]})
            else:
                current.append(body)
        counters = models_used(current)
        with self.finals_lock:
            finals = dict(self.finals)
        for uid, (community, used) in finals.items():
            was = counters.get(uid, (community, 0.0))[1]
            counters[uid] = (community, max(was, used))
        return counters

    def write(
        self,
        spec: ComputePoolSpec,
        pool_status: Mapping[str, Any],
        bodies: Sequence[Mapping[str, Any]],
        views: Mapping[str, ModelView],
        pv: PoolView,
        now: datetime,
        *,
        decisions: Decisions | None,
        written: Written,
        backend_kind: str,
        backend_error: str | None,
    ) -> None:
        """Apply the loop's part of the pool status if it changed (``backend_error`` None:
        the backend is up)."""
        held = held_gpus(views.values())
        pending: dict[str, int] = {}
        for w in decisions.waiting if decisions else ():
            pending[w.workload.community] = pending.get(w.workload.community, 0) + w.workload.gpus
        counters = self._counters(bodies, written)
        with self.finals_lock:
            finals = dict(self.finals)
        gone = (set(self.counted) | set(finals)) - set(counters)
        vanished = per_community(
            max(self.counted.get(uid, ("", 0.0)), finals.get(uid, ("", 0.0)), key=_used)
            for uid in gone
        )
        new = pool_usage(
            spec,
            pool_status,
            decisions,
            held,
            held_units(views.values(), pv),
            pending,
            pv.half_life_s,
            now,
            used=per_community(counters.values()),
            vanished=vanished,
        )
        backend_ok = backend_error is None
        new["conditions"] = [
            condition(
                pool_status,
                "BackendReady",
                "True" if backend_ok else "False",
                "BackendAvailable" if backend_ok else "BackendUnavailable",
                f"Ray backend {backend_kind}" + ("" if backend_ok else f": {backend_error}"),
                now,
                None,
            ),
        ]
        previous = self.written or dict(pool_status)
        conditions_changed = _backend_ready(new) != _backend_ready(previous)
        if not conditions_changed and not pool_usage_changed(previous, new, LEDGER_FLUSH_S):
            return
        try:
            self.apply_pool(self.pool, new)
            self.written = new
        except Exception as err:
            log.warning("pool %s: writing its status failed: %s", self.pool, err)
            metrics.record_reconcile_error(self.pool, "write")
            return
        self.counted = counters
        with self.finals_lock:
            for uid in gone:
                self.finals.pop(uid, None)
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
                wait_s = (now - since).total_seconds() if since else 0.0
                queues.setdefault(v.community, []).append(wait_s)
        for c in spec_names(status):
            waits = queues.get(c, [])
            metrics.record_queue(self.pool, c, len(waits), max(waits, default=0.0))


def _backend_ready(status: Mapping[str, Any]) -> Any:
    found = [c for c in status.get("conditions") or [] if c.get("type") == "BackendReady"]
    return [(c.get("status"), c.get("message")) for c in found]


def spec_names(status: Mapping[str, Any]) -> list[str]:
    return [str(c["name"]) for c in status.get("communities") or []]


def _used(counter: tuple[str, float]) -> float:
    return counter[1]
