"""The Node labels and annotation the agent publishes: the contract the pool reads.

Pure builders (no Kubernetes client). Written by the agent on **its own Node**, replacing
whatever an earlier run wrote; read by the operator's pool reconciliation.

Labels (GPU Feature Discovery's names where GFD has one, so both agree when both run):

=====================================  ===================================================
``nvidia.com/gpu.product``             model of the first GPU, spaces -> ``-`` and made
                                       label-safe: ``NVIDIA-H200``, ``NVIDIA-H100-80GB-HBM3``
``nvidia.com/gpu.memory``              that GPU's memory in MiB: ``143771``
``nvidia.com/gpu.count``               GPUs NVML shows, healthy or not: ``8``
``polyculture.dev/gpu.healthy-count``  GPUs that count as capacity (``ok`` or ``degraded``)
``polyculture.dev/gpu.health``         ``ok`` (all GPUs ok) | ``degraded`` (some GPU is
                                       unhealthy or needs a reset, at least one usable) |
                                       ``unhealthy`` (no usable GPU, or NVML unavailable)
``polyculture.dev/gpu.checked``        ``true``: the agent read this node with NVML.
                                       Timestamp-free on purpose: labels only change when
                                       the GPUs do, so a refresh writes nothing.
=====================================  ===================================================

When NVML becomes unavailable the agent withdraws its claims: ``gpu.health`` is
``unhealthy``, ``gpu.healthy-count`` is ``0``, and product/memory/count are removed.

A reader of the pool should take **healthy GPUs = min(``polyculture.dev/gpu.healthy-count``,
``nvidia.com/gpu`` allocatable)** when ``polyculture.dev/gpu.checked`` is ``true``, and treat
a node without that label as not checked (its GPUs as reported by the device plugin).

Annotation ``polyculture.dev/gpu-detail``: compact JSON with sorted keys, ``version`` 1::

    {"count": 1, "cudaDriverVersion": "13.0", "driverVersion": "580.159.04",
     "health": "ok", "healthyCount": 1, "version": 1,
     "gpus": [{"index": 0, "uuid": "GPU-...", "product": "NVIDIA H200", "memoryMiB": 143771,
               "migMode": "disabled", "health": "ok", "reasons": [],
               "ecc": {"enabled": true, "uncorrectedVolatile": 0, "uncorrectedAggregate": 0},
               "remappedRows": {"correctable": 0, "uncorrectable": 0, "pending": false,
                                "failure": false},
               "retiredPagesPending": null, "unknown": {"retiredPagesPending": "NotSupported"}}]}

``null`` means unknown (``unknown`` says which NVML error refused it). Temperature and power
are left out of the annotation (they change every second, and every change would be a Node
write seen by every watcher); they are in the agent's metrics and ``--print`` output. When
NVML is unavailable the detail is ``{"version": 1, "error": "<why>", "health": "unhealthy",
"count": null, "healthyCount": 0, "gpus": []}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from polyculture.agent.discovery import Health, NodeDiscovery, discovery_as_dict
from polyculture.api.gpu_products import product_label

PRODUCT: Final = "nvidia.com/gpu.product"
MEMORY: Final = "nvidia.com/gpu.memory"
COUNT: Final = "nvidia.com/gpu.count"
HEALTHY_COUNT: Final = "polyculture.dev/gpu.healthy-count"
HEALTH: Final = "polyculture.dev/gpu.health"
CHECKED: Final = "polyculture.dev/gpu.checked"
DETAIL: Final = "polyculture.dev/gpu-detail"

#: every label the agent owns: one it does not set now is removed from the Node
MANAGED_LABELS: Final = (PRODUCT, MEMORY, COUNT, HEALTHY_COUNT, HEALTH, CHECKED)
MANAGED_ANNOTATIONS: Final = (DETAIL,)

DETAIL_VERSION: Final = 1

#: the product's label value, in the one normal form pools match (``api.gpu_products``)
label_value = product_label


def build_labels(discovery: NodeDiscovery) -> dict[str, str]:
    """The managed labels for this discovery (a managed label absent here is to be removed)."""
    labels = {
        COUNT: str(discovery.count),
        HEALTHY_COUNT: str(discovery.healthy_count),
        HEALTH: str(discovery.health),
        CHECKED: "true",
    }
    if discovery.product is not None and label_value(discovery.product):
        labels[PRODUCT] = label_value(discovery.product)
    if discovery.memory_total_mib is not None:
        labels[MEMORY] = str(discovery.memory_total_mib)
    return labels


def build_unavailable_labels() -> dict[str, str]:
    """Labels when NVML cannot be used: no claim about the GPUs, none of them healthy."""
    return {HEALTHY_COUNT: "0", HEALTH: str(Health.UNHEALTHY), CHECKED: "true"}


def build_detail(discovery: NodeDiscovery) -> str:
    """The ``polyculture.dev/gpu-detail`` annotation: stable JSON (same GPUs, same text)."""
    detail = discovery_as_dict(discovery, readings=False)
    detail["version"] = DETAIL_VERSION
    return _stable_json(detail)


def build_unavailable_detail(reason: str) -> str:
    return _stable_json(
        {
            "version": DETAIL_VERSION,
            "error": reason,
            "health": str(Health.UNHEALTHY),
            "count": None,
            "healthyCount": 0,
            "gpus": [],
        }
    )


def _stable_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def node_metadata_patch(
    *,
    current_labels: Mapping[str, str] | None,
    current_annotations: Mapping[str, str] | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> dict[str, Any] | None:
    """The strategic merge patch that takes a Node's managed keys to the wanted values.

    Only managed keys are touched (other labels are left alone); a managed key that is not
    wanted is set to ``null``, which deletes it. ``None`` when the Node already matches, so
    that an unchanged refresh costs no write.
    """
    metadata: dict[str, dict[str, str | None]] = {}
    for section, current, wanted, managed in (
        ("labels", current_labels or {}, labels, MANAGED_LABELS),
        ("annotations", current_annotations or {}, annotations, MANAGED_ANNOTATIONS),
    ):
        unknown = set(wanted) - set(managed)
        if unknown:
            raise ValueError(f"not managed by the agent: {sorted(unknown)}")
        changes: dict[str, str | None] = {}
        for key in managed:
            if key in wanted:
                if current.get(key) != wanted[key]:
                    changes[key] = wanted[key]
            elif key in current:
                changes[key] = None
        if changes:
            metadata[section] = changes
    return {"metadata": metadata} if metadata else None
