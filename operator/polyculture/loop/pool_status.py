"""The loop's part of a pool's status, and the users' ledger it keeps there.

:class:`PoolStatus` is what one pool's admission loop writes besides its models' admissions:

- per community, entitlement, allocation, pending GPUs and the GPU-seconds consumed (the sum
  of its models' counters accrued to now, plus those of deleted models, so that it never
  decreases), written when anything but the time-driven figures changes, else every
  ``LEDGER_FLUSH_S``;
- ``usageWatches``: the spans the loops watched the pool (``reconcile.watching``), the running
  one's end moved with each write, so that a model's counter accrues exactly between its
  writes, across restarts, and never over a time nobody watched;
- the ``BackendReady`` condition;

applied whole (server-side apply under the loop's own field manager) only when something in
it changed. A holding model's counter is written with each change of its admission (by the
plan and the lifecycle), and otherwise only by :meth:`PoolStatus.usage_patches`: once after a
restart (*settled*: carried over the earlier spans) and every ``REFRESH_S``, at most
``USAGE_WRITES_PER_S`` such writes a second. A deleted model's last counter is kept
(:meth:`PoolStatus.retire`) until a pool write has counted it.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from polyculture import metrics
from polyculture.api.community_model import Phase
from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.reconcile.admission import (
    ModelView,
    PoolView,
    credited,
    held_gpus,
    held_units,
    model_usage,
    per_community,
    pool_usage,
    pool_usage_changed,
)
from polyculture.reconcile.conditions import condition, parse_time
from polyculture.reconcile.watching import (
    Watches,
    accrues,
    settle,
    watches_from_status,
)
from polyculture.scheduling import Decisions

log = logging.getLogger(__name__)

#: the loop's part of the pool status (with the end of the running watch) is written at
#: least this often: the most watched time a crash loses per holding model
LEDGER_FLUSH_S = 30.0
#: a holding model's counter is written at least this often when nothing else writes it ...
REFRESH_S = 900.0
#: ... and such writes (refreshes, and settling counters after a restart) are capped at this
#: many a second: at 10,000 holding models a refresh every ~33 minutes
USAGE_WRITES_PER_S = 5.0
#: the cap's burst: writes saved up while none was due
USAGE_BURST = 25.0
#: earlier spans stay in the pool status at least this long after a loop starts (every
#: model has been seen by then), and until no counter needs them
SETTLE_AFTER_S = 60.0

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
        #: the spans the pool was watched, the running one from this loop's first step
        self.watches: Watches | None = None
        #: holding models whose stored counter earlier spans still credit, by key: the
        #: stored ``usageUpdatedAt`` (written soon, at the capped rate, oldest first)
        self.unsettled: dict[str, datetime] = {}
        self.budget = 0.0
        self.budget_at: datetime | None = None
        self.next_scan: datetime | None = None
        #: per live model, what its counter accrues from: (view, community, used, GPUs, since)
        self.accrual: dict[str, tuple[ModelView, str, float, int, float]] = {}

    def start(self, stored: Mapping[str, Any], now: datetime) -> None:
        """Begin the running watch at the loop's first step, after the spans the stored
        pool status records."""
        if self.watches is None:
            self.watches = watches_from_status(stored, now)
            self.budget_at = now

    def retire(self, uid: str, community: str, used: float) -> None:
        """A released model's last counter, kept for its community (any thread)."""
        with self.finals_lock:
            self.finals[uid] = (community, used)

    def settled(self, key: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """``body`` with its counter settled into the running watch (``watching.settle``):
        the same object when it needs nothing. Remembers the counters to write."""
        status = body.get("status") or {}
        if self.watches is None:
            return body
        out = settle(status, self.watches)
        if out is status:
            self.unsettled.pop(key, None)
            return body
        last = parse_time(status.get("usageUpdatedAt"))
        if last is not None and self.watches.earlier_s(last) > 0:
            self.unsettled[key] = last
        else:  # nothing to carry: the stored counter and the recorded spans say the same
            self.unsettled.pop(key, None)
        return {**body, "status": out}

    def final_used(self, status: Mapping[str, Any], now: datetime) -> float:
        """A released model's last counter: its newest status settled and accrued to now
        (only its stored counter before the loop's first step)."""
        return float(self.final_usage(status, now)["gpuSecondsUsed"])

    def final_usage(self, status: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """``gpuSecondsUsed`` and ``gpuSecondsByOwner`` of a model released at ``now``."""
        stored = {
            "gpuSecondsUsed": float(status.get("gpuSecondsUsed") or 0.0),
            "gpuSecondsByOwner": dict(status.get("gpuSecondsByOwner") or {}),
        }
        watches = self.watches
        last = parse_time(status.get("usageUpdatedAt"))
        if watches is None or last is None or not accrues(status):
            return stored
        settled = settle(status, watches)
        since = parse_time(settled.get("usageUpdatedAt")) or now
        elapsed = max(0.0, (now - since).total_seconds())
        usage = credited(settled, elapsed, now)
        return {k: usage[k] for k in stored}

    def usage_patches(
        self, views: Mapping[str, ModelView], now: datetime
    ) -> list[tuple[ModelView, dict[str, Any]]]:
        """The GPU-seconds patches due now, at most ``USAGE_WRITES_PER_S`` a second: the
        counters to settle after a restart (oldest first), then those ``REFRESH_S`` old."""
        for key in [k for k in self.unsettled if k not in views]:
            self.unsettled.pop(key, None)
        since = self.budget_at or now
        self.budget_at = now
        elapsed = max(0.0, (now - since).total_seconds())
        self.budget = min(USAGE_BURST, self.budget + elapsed * USAGE_WRITES_PER_S)
        due: list[tuple[int, datetime, str]] = [(0, at, k) for k, at in self.unsettled.items()]
        if self.next_scan is None or now >= self.next_scan:
            self.next_scan = now + _seconds(USAGE_BURST / USAGE_WRITES_PER_S)
            for key, view in views.items():
                if key in self.unsettled or not accrues(view.status):
                    continue
                last = parse_time(view.status.get("usageUpdatedAt"))
                if last is not None and (now - last).total_seconds() >= REFRESH_S:
                    due.append((1, last, key))
        out: list[tuple[ModelView, dict[str, Any]]] = []
        for _, _, key in heapq.nsmallest(int(self.budget), due):
            usage = model_usage(views[key], now)
            if usage is not None:
                out.append((views[key], usage))
        self.budget -= len(out)
        return out

    def _counters(
        self,
        bodies: Sequence[Mapping[str, Any]],
        views: Mapping[str, ModelView],
        written: Written,
        now: datetime,
    ) -> dict[str, tuple[str, float]]:
        """Every listed model's counter accrued to now (deleting ones too; a released one at
        its final counter)."""
        with self.finals_lock:
            finals = dict(self.finals)
        now_s = now.timestamp()
        if len(self.accrual) > len(views):
            for key in set(self.accrual) - set(views):
                self.accrual.pop(key, None)
        counters: dict[str, tuple[str, float]] = {}
        for body in bodies:
            meta = body.get("metadata") or {}
            uid = str(meta.get("uid") or "")
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            view = views.get(key)
            if view is not None and uid not in finals:
                counters[uid] = self._live(key, view, now_s)
                continue
            mine = written.get(key)
            fresh = mine is not None and mine[0] > resource_version(body)
            status = mine[1] if mine is not None and fresh else (body.get("status") or {})
            community = (
                status.get("community")
                or (body.get("spec") or {}).get("community")
                or meta.get("namespace")
            )
            final = finals.get(uid)
            if final is not None:  # released: its counter stopped there
                used = max(float(status.get("gpuSecondsUsed") or 0.0), final[1])
            else:
                used = self.final_used(status, now)
            counters[uid] = (str(community or ""), used)
        return counters  # a released model no longer listed is retired by ``write``

    def _live(self, key: str, view: ModelView, now_s: float) -> tuple[str, float]:
        """A live model's counter accrued to ``now_s`` (epoch seconds), as ``model_usage``
        would write it; what it needs from the view is read once per view (a step reuses
        unchanged views)."""
        cached = self.accrual.get(key)
        if cached is None or cached[0] is not view:
            status = view.status
            used = float(status.get("gpuSecondsUsed") or 0.0)
            last = parse_time(status.get("usageUpdatedAt")) if accrues(status) else None
            gpus = int(status["admission"]["gpus"]) if last is not None else 0
            cached = (view, view.community, used, gpus, last.timestamp() if last else 0.0)
            self.accrual[key] = cached
        _, community, used, gpus, since = cached
        if gpus and now_s > since:
            used = round(used + gpus * (now_s - since), 3)
        return community, used

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
        counters = self._counters(bodies, views, written, now)
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
        if self.watches is not None:
            started = (now - self.watches.since).total_seconds()
            keep = bool(self.unsettled) or started < SETTLE_AFTER_S
            new["usageWatches"] = self.watches.status(now, keep_earlier=keep)
        previous = self.written or dict(pool_status)
        conditions_changed = _backend_ready(new) != _backend_ready(previous)
        if (
            not gone
            and not conditions_changed
            and not pool_usage_changed(previous, new, LEDGER_FLUSH_S)
        ):
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


def _seconds(s: float) -> timedelta:
    return timedelta(seconds=s)


def spec_names(status: Mapping[str, Any]) -> list[str]:
    return [str(c["name"]) for c in status.get("communities") or []]


def _used(counter: tuple[str, float]) -> float:
    return counter[1]
