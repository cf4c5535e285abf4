"""The operator's Prometheus metrics (served by ``polyculture run --metrics-port``).

Names follow Prometheus conventions: ``polyculture_`` prefix, base units in the name
(``_gpus``, ``_seconds``), ``_total`` for counters. Labels are bounded: a pool, an owner, a
community, a GPU class, or a small fixed vocabulary (reasons, kinds). Series of a pool, owner,
community or class that goes away are removed, so that dashboards show no ghost.

Pool figures are set by the pool daemon on every tick; scheduling figures by each pool's
admission loop; API writes are counted where they are made (``polyculture.kube``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

API_WRITES = Counter(
    "polyculture_api_writes_total",
    "Writes the operator sent to the Kubernetes API server.",
    ["resource", "subresource"],
)
LEADER = Gauge(
    "polyculture_leader",
    "1 while this operator replica is the active one (holds the peering lead), else 0.",
)
POOL_GPUS = Gauge(
    "polyculture_pool_gpus",
    "GPUs lendable now, per pool and GPU class.",
    ["pool", "gpu_class"],
)
POOL_UNITS = Gauge(
    "polyculture_pool_units",
    "Normalised GPU units lendable now, per pool.",
    ["pool"],
)
POOL_UNHEALTHY_GPUS = Gauge(
    "polyculture_pool_unhealthy_gpus", "GPUs of Ready nodes that are unhealthy.", ["pool"]
)
POOL_CONDITION = Gauge(
    "polyculture_pool_condition",
    "1 when the pool's condition (Ready, Degraded) is True, else 0.",
    ["pool", "condition"],
)
MEMBER_AVAILABLE_GPUS = Gauge(
    "polyculture_member_available_gpus",
    "GPUs an owner lends to the pool now.",
    ["pool", "owner"],
)
MEMBER_GPUS = Gauge(
    "polyculture_member_gpus",
    "GPUs an owner's matched nodes carry, per GPU class (lent or not).",
    ["pool", "owner", "gpu_class"],
)


class _StatusCounter(Collector):
    """A counter whose value is a running total kept in an object's status (the ledger).

    The total survives operator restarts (it is read back from the status), so the series
    never resets; it is exposed with the counter type and the ``_total`` suffix.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def set(self, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            self._values[labels] = float(value)

    def series(self) -> list[tuple[str, ...]]:
        with self._lock:
            return list(self._values)

    def remove(self, *labels: str) -> None:
        with self._lock:
            self._values.pop(tuple(labels), None)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            for labels, value in sorted(self._values.items()):
                family.add_metric(list(labels), value)
        yield family


MEMBER_GPU_SECONDS_PROVIDED = _StatusCounter(
    "polyculture_member_gpu_seconds_provided",
    "GPU-seconds an owner has provided to the pool (the ledger, as kept in the pool status).",
    ("pool", "owner"),
)
POOL_CONFLICTS = Gauge(
    "polyculture_pool_node_conflicts", "Nodes claimed by two members or pools.", ["pool"]
)
MODEL_VERDICTS = Counter(
    "polyculture_model_verdicts_total",
    "Validation verdicts written for CommunityModels, by resulting phase and reason.",
    ["phase", "reason"],
)
COMMUNITY_ENTITLED_GPUS = Gauge(
    "polyculture_community_entitled_gpus",
    "GPUs (normalised units) a community is entitled to now, as the scheduler computed.",
    ["pool", "community"],
)
COMMUNITY_ALLOCATED_GPUS = Gauge(
    "polyculture_community_allocated_gpus",
    "GPUs (normalised units) a community's admitted workloads hold.",
    ["pool", "community"],
)
COMMUNITY_PENDING_GPUS = Gauge(
    "polyculture_community_pending_gpus",
    "GPUs (normalised units) a community's queued workloads ask for.",
    ["pool", "community"],
)
COMMUNITY_GUARANTEED_GPUS = Gauge(
    "polyculture_community_guaranteed_gpus",
    "A community's guaranteed floor (normalised units), from the pool spec.",
    ["pool", "community"],
)
QUEUE_LENGTH = Gauge(
    "polyculture_queue_length",
    "Workloads of a community waiting for admission.",
    ["pool", "community"],
)
QUEUE_OLDEST_WAIT_SECONDS = Gauge(
    "polyculture_queue_oldest_wait_seconds",
    "How long the community's longest-waiting workload has waited.",
    ["pool", "community"],
)
ADMISSIONS = Counter(
    "polyculture_admissions_total",
    "Workloads admitted (placed on the pool's nodes).",
    ["pool", "community"],
)
PREEMPTIONS = Counter(
    "polyculture_preemptions_total",
    "Workloads stopped to give GPUs back, by reason (FairShare, OwnerReclaim, ...).",
    ["pool", "reason"],
)
COMMUNITY_GPU_SECONDS_USED = Counter(
    "polyculture_community_gpu_seconds_used_total",
    "GPU-seconds a community's workloads used on the pool (the ledger's consumption side).",
    ["pool", "community"],
)
CYCLE_SECONDS = Histogram(
    "polyculture_scheduler_cycle_duration_seconds",
    "Time one scheduling cycle of a pool took (snapshot, core, decisions).",
    ["pool"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RECONCILE_ERRORS = Counter(
    "polyculture_reconcile_errors_total",
    "Errors met while reconciling a pool, by kind (spec, backend, api, ...).",
    ["pool", "kind"],
)

#: every metric whose first label is the pool
_BY_POOL: tuple[MetricWrapperBase | _StatusCounter, ...] = (
    POOL_GPUS,
    POOL_UNITS,
    POOL_UNHEALTHY_GPUS,
    POOL_CONDITION,
    POOL_CONFLICTS,
    MEMBER_AVAILABLE_GPUS,
    MEMBER_GPUS,
    MEMBER_GPU_SECONDS_PROVIDED,
    COMMUNITY_ENTITLED_GPUS,
    COMMUNITY_ALLOCATED_GPUS,
    COMMUNITY_PENDING_GPUS,
    COMMUNITY_GUARANTEED_GPUS,
    QUEUE_LENGTH,
    QUEUE_OLDEST_WAIT_SECONDS,
    ADMISSIONS,
    PREEMPTIONS,
    COMMUNITY_GPU_SECONDS_USED,
    CYCLE_SECONDS,
    RECONCILE_ERRORS,
)
#: metrics labelled (pool, community, ...)
_BY_COMMUNITY: tuple[MetricWrapperBase, ...] = (
    COMMUNITY_ENTITLED_GPUS,
    COMMUNITY_ALLOCATED_GPUS,
    COMMUNITY_PENDING_GPUS,
    QUEUE_LENGTH,
    QUEUE_OLDEST_WAIT_SECONDS,
    ADMISSIONS,
    COMMUNITY_GPU_SECONDS_USED,
)
_BY_OWNER: tuple[MetricWrapperBase | _StatusCounter, ...] = (
    MEMBER_AVAILABLE_GPUS,
    MEMBER_GPUS,
    MEMBER_GPU_SECONDS_PROVIDED,
)


def _series(metric: MetricWrapperBase | _StatusCounter) -> list[tuple[str, ...]]:
    """The label values of a metric's series (no public API lists them)."""
    if isinstance(metric, _StatusCounter):
        return metric.series()
    with metric._lock:
        return [tuple(labels) for labels in metric._metrics]


def _prune(
    metrics: Iterable[MetricWrapperBase | _StatusCounter],
    pool: str,
    keep: Callable[[tuple[str, ...]], bool],
) -> None:
    """Remove the pool's series for which ``keep(labels)`` is false."""
    for metric in metrics:
        for labels in _series(metric):
            if labels[0] == pool and not keep(labels):
                metric.remove(*labels)


def record_pool(
    pool: str, status: Mapping[str, Any], guarantees: Mapping[str, float] | None = None
) -> None:
    """Set the pool gauges from a status the daemon computed; gone owners/classes lose theirs.

    ``guarantees`` (community -> guaranteed GPU units, from the spec) sets those series too.
    """
    if guarantees is not None:
        record_guarantees(pool, guarantees)
    classes = {entry["gpuClass"]: entry["gpus"] for entry in status.get("capacity") or []}
    for gpu_class, gpus in classes.items():
        POOL_GPUS.labels(pool, gpu_class).set(gpus)
    _prune([POOL_GPUS], pool, lambda labels: labels[1] in classes)
    POOL_UNITS.labels(pool).set(float(status.get("totalUnits") or 0))
    POOL_UNHEALTHY_GPUS.labels(pool).set(float(status.get("unhealthyGPUs") or 0))
    POOL_CONFLICTS.labels(pool).set(len(status.get("conflicts") or []))
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    for condition in ("Ready", "Degraded"):
        POOL_CONDITION.labels(pool, condition).set(1 if conditions.get(condition) == "True" else 0)
    owners: set[str] = set()
    member_classes: set[tuple[str, str]] = set()
    for member in status.get("members") or []:
        owner = member["owner"]
        owners.add(owner)
        MEMBER_AVAILABLE_GPUS.labels(pool, owner).set(member.get("availableGPUs") or 0)
        MEMBER_GPU_SECONDS_PROVIDED.set((pool, owner), member.get("gpuSecondsProvided") or 0)
        for gpu_class, gpus in (member.get("gpusByClass") or {}).items():
            member_classes.add((owner, gpu_class))
            MEMBER_GPUS.labels(pool, owner, gpu_class).set(gpus)
    _prune(_BY_OWNER, pool, lambda labels: labels[1] in owners)
    _prune([MEMBER_GPUS], pool, lambda labels: (labels[1], labels[2]) in member_classes)


def record_guarantees(pool: str, guarantees: Mapping[str, float]) -> None:
    """Set each community's guaranteed floor (from the pool spec); others lose the series."""
    for community, gpus in guarantees.items():
        COMMUNITY_GUARANTEED_GPUS.labels(pool, community).set(gpus)
    _prune([COMMUNITY_GUARANTEED_GPUS], pool, lambda labels: labels[1] in guarantees)


def record_communities(pool: str, rows: Mapping[str, tuple[float, float, float]]) -> None:
    """Set community -> (entitled, allocated, pending) GPUs; communities not in rows are dropped.

    A dropped community loses every per-community series of the pool (queue, admissions,
    GPU-seconds used included).
    """
    for community, (entitled, allocated, pending) in rows.items():
        COMMUNITY_ENTITLED_GPUS.labels(pool, community).set(entitled)
        COMMUNITY_ALLOCATED_GPUS.labels(pool, community).set(allocated)
        COMMUNITY_PENDING_GPUS.labels(pool, community).set(pending)
    _prune(_BY_COMMUNITY, pool, lambda labels: labels[1] in rows)


def record_queue(pool: str, community: str, length: int, oldest_wait_s: float) -> None:
    """A community's queue: how many wait, and the oldest one's wait in seconds."""
    QUEUE_LENGTH.labels(pool, community).set(length)
    QUEUE_OLDEST_WAIT_SECONDS.labels(pool, community).set(oldest_wait_s if length else 0.0)


def record_admission(pool: str, community: str) -> None:
    ADMISSIONS.labels(pool, community).inc()


def record_preemption(pool: str, reason: str) -> None:
    PREEMPTIONS.labels(pool, reason).inc()


def observe_cycle(pool: str, seconds: float) -> None:
    CYCLE_SECONDS.labels(pool).observe(seconds)


def record_gpu_seconds_used(pool: str, community: str, seconds: float) -> None:
    """Add GPU-seconds a community used (negative or zero amounts are ignored)."""
    if seconds > 0:
        COMMUNITY_GPU_SECONDS_USED.labels(pool, community).inc(seconds)


def record_reconcile_error(pool: str, kind: str) -> None:
    RECONCILE_ERRORS.labels(pool, kind).inc()


def set_leader(active: bool) -> None:
    LEADER.set(1 if active else 0)


def forget_pool(pool: str) -> None:
    """Drop a deleted pool's series, so that dashboards do not show a ghost."""
    _prune(_BY_POOL, pool, lambda labels: False)
