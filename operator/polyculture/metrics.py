"""The operator's Prometheus metrics (served by ``polyculture run --metrics-port``).

Names follow Prometheus conventions: ``polyculture_`` prefix, base units, ``_total`` for
counters. Pool figures are set by the pool daemon on every tick; API writes are counted where
they are made (``polyculture.kube``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

API_WRITES = Counter(
    "polyculture_api_writes_total",
    "Writes the operator sent to the Kubernetes API server.",
    ["resource", "subresource"],
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
MEMBER_AVAILABLE_GPUS = Gauge(
    "polyculture_member_available_gpus",
    "GPUs an owner lends to the pool now.",
    ["pool", "owner"],
)
MEMBER_GPU_SECONDS_PROVIDED = Gauge(
    "polyculture_member_gpu_seconds_provided",
    "GPU-seconds an owner has provided to the pool (the ledger).",
    ["pool", "owner"],
)
POOL_CONFLICTS = Gauge(
    "polyculture_pool_node_conflicts", "Nodes claimed by two members or pools.", ["pool"]
)
MODEL_VERDICTS = Counter(
    "polyculture_model_verdicts_total",
    "Validation verdicts written for CommunityModels, by resulting phase and reason.",
    ["phase", "reason"],
)


def record_pool(pool: str, status: Mapping[str, Any]) -> None:
    """Set the pool gauges from a status the daemon computed."""
    for entry in status.get("capacity") or []:
        POOL_GPUS.labels(pool, entry["gpuClass"]).set(entry["gpus"])
    POOL_UNITS.labels(pool).set(float(status.get("totalUnits") or 0))
    POOL_UNHEALTHY_GPUS.labels(pool).set(float(status.get("unhealthyGPUs") or 0))
    POOL_CONFLICTS.labels(pool).set(len(status.get("conflicts") or []))
    for member in status.get("members") or []:
        MEMBER_AVAILABLE_GPUS.labels(pool, member["owner"]).set(member["availableGPUs"])
        MEMBER_GPU_SECONDS_PROVIDED.labels(pool, member["owner"]).set(member["gpuSecondsProvided"])


def forget_pool(pool: str) -> None:
    """Drop a deleted pool's series, so that dashboards do not show a ghost."""
    for gauge in (POOL_GPUS, MEMBER_AVAILABLE_GPUS, MEMBER_GPU_SECONDS_PROVIDED):
        for labels in list(gauge._metrics):  # no public API lists a metric's series
            if labels[0] == pool:
                gauge.remove(*labels)
    for gauge in (POOL_UNITS, POOL_UNHEALTHY_GPUS, POOL_CONFLICTS):
        if (pool,) in gauge._metrics:
            gauge.remove(pool)
