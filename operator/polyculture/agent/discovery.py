"""What the node agent knows about a node's GPUs, and the health rules applied to it.

Pure: no NVML, no Kubernetes, no clock. The NVML reader fills these values in; the label
builders and the metrics read them. A value of ``None`` means *unknown*: NVML refused the
query (``NotSupported``, ``NoPermission``, ...) and the refusal is kept in ``refused``, or the
query failed and the failure is kept in ``failures``. Unknown is never guessed.

Health rules for one GPU (``GPU.health`` and ``GPU.reasons``):

- ``unhealthy`` (the GPU is not counted as healthy capacity) when
  * any uncorrectable ECC error has happened since the driver loaded (the *volatile*
    counter; the aggregate, lifetime counter is reported but not judged, because on GPUs
    with row remapping an old error that a reset repaired stays in it forever),
  * row remapping failed (the memory cannot be repaired any more),
  * a query failed: an essential one (handle, UUID, name, memory) with any NVML error, or
    any other one with an error that is not a refusal (``GPU is lost``, ``Unknown Error``...).
- ``degraded`` (still counted, needs a reset soon) when a row remap or a page retirement
  is pending.
- ``ok`` otherwise.

A node is ``ok`` when every GPU is ``ok``, ``unhealthy`` when none is usable (or NVML shows
no GPU at all), and ``degraded`` in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Health(StrEnum):
    """Health of a GPU or of a node; the values are the label values."""

    OK = "ok"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class MigMode(StrEnum):
    """Current MIG mode of a GPU (NVML's ``NVML_DEVICE_MIG_ENABLE``/``DISABLE``)."""

    ENABLED = "enabled"
    DISABLED = "disabled"


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """A query that NVML declined to answer; its value is unknown, not wrong."""

    query: str
    #: the NVML error's name without the ``NVMLError_`` prefix, e.g. ``NotSupported``
    error: str


@dataclass(frozen=True, kw_only=True)
class QueryFailure:
    """A query that failed in a way that makes the GPU untrustworthy."""

    query: str
    error: str
    message: str


@dataclass(frozen=True, kw_only=True)
class GPU:
    """One GPU as NVML reported it at one moment. ``None`` = unknown (see the module doc)."""

    index: int
    uuid: str | None = None
    name: str | None = None
    memory_total_mib: int | None = None
    mig_mode: MigMode | None = None
    ecc_enabled: bool | None = None
    ecc_uncorrected_volatile: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    retired_pages_pending: bool | None = None
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failure: bool | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    refused: tuple[Refusal, ...] = ()
    failures: tuple[QueryFailure, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the GPU is not ``ok``, most serious first; empty when it is."""
        return _unhealthy_reasons(self) + _degraded_reasons(self)

    @property
    def health(self) -> Health:
        if _unhealthy_reasons(self):
            return Health.UNHEALTHY
        if _degraded_reasons(self):
            return Health.DEGRADED
        return Health.OK

    @property
    def usable(self) -> bool:
        """Counted as healthy capacity: ``ok`` or ``degraded``."""
        return self.health is not Health.UNHEALTHY


def _unhealthy_reasons(gpu: GPU) -> tuple[str, ...]:
    reasons = [f"{f.query} failed: {f.message} ({f.error})" for f in gpu.failures]
    if gpu.ecc_uncorrected_volatile:
        reasons.append(
            f"{gpu.ecc_uncorrected_volatile} uncorrectable ECC error(s) since the driver loaded"
        )
    if gpu.remapped_rows_failure:
        reasons.append("row remapping failed: memory can no longer be repaired")
    return tuple(reasons)


def _degraded_reasons(gpu: GPU) -> tuple[str, ...]:
    reasons = []
    if gpu.remapped_rows_pending:
        reasons.append("row remapping pending: reset the GPU")
    if gpu.retired_pages_pending:
        reasons.append("page retirement pending: reset the GPU")
    return tuple(reasons)


@dataclass(frozen=True, kw_only=True)
class NodeDiscovery:
    """Every GPU NVML shows on this node, plus the driver that showed them."""

    driver_version: str | None = None
    #: CUDA version the driver supports, as NVML encodes it (13000 = 13.0)
    cuda_driver_version: int | None = None
    gpus: tuple[GPU, ...] = field(default_factory=tuple)

    @property
    def count(self) -> int:
        return len(self.gpus)

    @property
    def healthy_count(self) -> int:
        return sum(1 for gpu in self.gpus if gpu.usable)

    @property
    def health(self) -> Health:
        if self.healthy_count == 0:
            return Health.UNHEALTHY
        if all(gpu.health is Health.OK for gpu in self.gpus):
            return Health.OK
        return Health.DEGRADED

    @property
    def product(self) -> str | None:
        """The first GPU's model name that is known (GFD also labels by the first GPU)."""
        return next((gpu.name for gpu in self.gpus if gpu.name is not None), None)

    @property
    def memory_total_mib(self) -> int | None:
        """Memory of the GPU that gave ``product``; mixed nodes are described in the detail."""
        return next(
            (gpu.memory_total_mib for gpu in self.gpus if gpu.name is not None),
            None,
        )


def gpu_as_dict(gpu: GPU, *, readings: bool = True) -> dict[str, Any]:
    """JSON-ready description of one GPU (camelCase keys, like Kubernetes objects).

    ``readings=False`` leaves out what changes from one second to the next (temperature,
    power), so that the result can be compared between two discoveries.
    """
    out: dict[str, Any] = {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "product": gpu.name,
        "memoryMiB": gpu.memory_total_mib,
        "migMode": None if gpu.mig_mode is None else str(gpu.mig_mode),
        "ecc": {
            "enabled": gpu.ecc_enabled,
            "uncorrectedVolatile": gpu.ecc_uncorrected_volatile,
            "uncorrectedAggregate": gpu.ecc_uncorrected_aggregate,
        },
        "retiredPagesPending": gpu.retired_pages_pending,
        "remappedRows": {
            "correctable": gpu.remapped_rows_correctable,
            "uncorrectable": gpu.remapped_rows_uncorrectable,
            "pending": gpu.remapped_rows_pending,
            "failure": gpu.remapped_rows_failure,
        },
        "health": str(gpu.health),
        "reasons": list(gpu.reasons),
        "unknown": {r.query: r.error for r in gpu.refused},
    }
    if readings:
        out["temperatureC"] = gpu.temperature_c
        out["powerW"] = gpu.power_w
    return out


def discovery_as_dict(discovery: NodeDiscovery, *, readings: bool = True) -> dict[str, Any]:
    """JSON-ready description of the node's GPUs; see ``gpu_as_dict`` for ``readings``."""
    return {
        "driverVersion": discovery.driver_version,
        "cudaDriverVersion": _cuda_version(discovery.cuda_driver_version),
        "count": discovery.count,
        "healthyCount": discovery.healthy_count,
        "health": str(discovery.health),
        "gpus": [gpu_as_dict(gpu, readings=readings) for gpu in discovery.gpus],
    }


def _cuda_version(encoded: int | None) -> str | None:
    # NVML encodes CUDA 12.4 as 12040: major * 1000 + minor * 10.
    if encoded is None:
        return None
    return f"{encoded // 1000}.{encoded % 1000 // 10}"
