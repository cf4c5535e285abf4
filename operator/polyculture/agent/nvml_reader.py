"""Read the node's GPUs through NVML (the ``pynvml`` module of nvidia-ml-py).

The reader takes the NVML module as an argument (``NvmlReader(nvml=pynvml)``), so that tests
hand it a fake shaped like the real answers. It uses only these names of the module:
``nvmlInit``, ``nvmlShutdown``, ``nvmlSystemGetDriverVersion``,
``nvmlSystemGetCudaDriverVersion``, ``nvmlDeviceGetCount``, ``nvmlDeviceGetHandleByIndex``,
``nvmlDeviceGetUUID``, ``nvmlDeviceGetName``, ``nvmlDeviceGetMemoryInfo``,
``nvmlDeviceGetMigMode``, ``nvmlDeviceGetEccMode``, ``nvmlDeviceGetTotalEccErrors``,
``nvmlDeviceGetRetiredPagesPendingStatus``, ``nvmlDeviceGetRemappedRows``,
``nvmlDeviceGetTemperature``, ``nvmlDeviceGetPowerUsage``, the ``NVMLError`` class and its
``NVMLError_*`` subclasses, and the ``NVML_*`` constants those calls take.

Contract:

- NVML that cannot start (library missing, driver not loaded, version mismatch...) raises
  ``NvmlUnavailableError``; no GPU is ever invented.
- A query NVML *refuses* (``REFUSALS``: not supported on this GPU, no permission, ...) leaves
  its value unknown (``None``) and is recorded in ``GPU.refused``; the H200 recorded in
  ``shared/reference/gpu`` refuses retired pages, for instance.
- A failed *essential* query (UUID, name, memory), or any query failing with an error that is
  not a refusal (GPU lost, unknown error, timeout...), is recorded in ``GPU.failures``, which
  makes that GPU unhealthy (see ``discovery``); the other GPUs are still read.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

from polyculture.agent.discovery import GPU, MigMode, NodeDiscovery, QueryFailure, Refusal

T = TypeVar("T")

#: NVML errors that mean "this query has no answer here", not "this GPU is broken".
REFUSALS = (
    "NVMLError_NotSupported",
    "NVMLError_NoPermission",
    "NVMLError_FunctionNotFound",
    "NVMLError_NotFound",
    "NVMLError_NoData",
    "NVMLError_Deprecated",
    "NVMLError_ArgumentVersionMismatch",
)

_MIB = 1024 * 1024


class NvmlUnavailableError(RuntimeError):
    """NVML cannot be used on this machine; the message says why, for a human."""


def load_pynvml() -> Any:
    """Import the real ``pynvml``; a missing module is ``NvmlUnavailableError``, not a crash."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as error:
        raise NvmlUnavailableError(
            f"the pynvml module (nvidia-ml-py) cannot be imported: {error}"
        ) from error


def error_name(error: BaseException) -> str:
    """``NVMLError_NotSupported`` -> ``NotSupported``; other exceptions keep their class name."""
    return type(error).__name__.removeprefix("NVMLError_")


@dataclass
class _GpuQueries:
    """Collects one GPU's refusals and failures while its queries run."""

    nvml: Any
    refusals: tuple[type[BaseException], ...]
    refused: list[Refusal] = field(default_factory=list)
    failures: list[QueryFailure] = field(default_factory=list)

    def ask(self, query: str, call: Callable[[], T], *, essential: bool = False) -> T | None:
        try:
            return call()
        except self.nvml.NVMLError as error:
            if isinstance(error, self.refusals) and not essential:
                self.refused.append(Refusal(query=query, error=error_name(error)))
            else:
                self.failures.append(
                    QueryFailure(query=query, error=error_name(error), message=str(error))
                )
            return None


class NvmlReader:
    """Reads every GPU NVML shows. Use as a context manager, or ``open()``/``close()``.

    ``read()`` can be called many times between ``open()`` and ``close()`` (the agent's loop
    does), each call a fresh set of queries.
    """

    def __init__(self, *, nvml: Any) -> None:
        self._nvml = nvml
        self._open = False
        self._refusals = tuple(getattr(nvml, name) for name in REFUSALS if hasattr(nvml, name))

    def open(self) -> None:
        """Start NVML, or raise ``NvmlUnavailableError`` saying why it cannot start."""
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as error:
            raise NvmlUnavailableError(
                f"NVML cannot start: {error} ({error_name(error)}); "
                "is the NVIDIA driver loaded and the container started by the NVIDIA runtime?"
            ) from error
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            # Shutting down a half-broken NVML must not hide the reading's result.
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def read(self) -> NodeDiscovery:
        """Query every GPU once. Raises ``NvmlUnavailableError`` when NVML cannot count them."""
        nvml = self._nvml
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as error:
            raise NvmlUnavailableError(
                f"NVML cannot count the GPUs: {error} ({error_name(error)})"
            ) from error
        system = _GpuQueries(nvml=nvml, refusals=self._refusals)
        driver = system.ask("driverVersion", nvml.nvmlSystemGetDriverVersion)
        cuda = system.ask("cudaDriverVersion", nvml.nvmlSystemGetCudaDriverVersion)
        return NodeDiscovery(
            driver_version=None if driver is None else _text(driver),
            cuda_driver_version=None if cuda is None else int(cuda),
            gpus=tuple(self._read_gpu(index) for index in range(count)),
        )

    def _read_gpu(self, index: int) -> GPU:
        nvml = self._nvml
        q = _GpuQueries(nvml=nvml, refusals=self._refusals)
        handle = q.ask("handle", lambda: nvml.nvmlDeviceGetHandleByIndex(index), essential=True)
        if handle is None:
            return GPU(index=index, failures=tuple(q.failures))

        uuid = q.ask("uuid", lambda: nvml.nvmlDeviceGetUUID(handle), essential=True)
        name = q.ask("name", lambda: nvml.nvmlDeviceGetName(handle), essential=True)
        memory = q.ask("memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle), essential=True)
        mig = q.ask("migMode", lambda: nvml.nvmlDeviceGetMigMode(handle))
        ecc_mode = q.ask("eccMode", lambda: nvml.nvmlDeviceGetEccMode(handle))
        ecc_volatile = q.ask(
            "eccUncorrectedVolatile",
            lambda: nvml.nvmlDeviceGetTotalEccErrors(
                handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC
            ),
        )
        ecc_aggregate = q.ask(
            "eccUncorrectedAggregate",
            lambda: nvml.nvmlDeviceGetTotalEccErrors(
                handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_AGGREGATE_ECC
            ),
        )
        retired = q.ask(
            "retiredPagesPending", lambda: nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle)
        )
        remapped = q.ask("remappedRows", lambda: nvml.nvmlDeviceGetRemappedRows(handle))
        temperature = q.ask(
            "temperature",
            lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
        )
        power_mw = q.ask("power", lambda: nvml.nvmlDeviceGetPowerUsage(handle))

        # remapped rows: (correctable, uncorrectable, pending, failure occurred)
        corr, unc, pending, failure = remapped if remapped is not None else (None,) * 4
        return GPU(
            index=index,
            uuid=None if uuid is None else _text(uuid),
            name=None if name is None else _text(name),
            memory_total_mib=None if memory is None else int(memory.total) // _MIB,
            mig_mode=None if mig is None else _mig_mode(int(mig[0]), nvml),
            ecc_enabled=None if ecc_mode is None else bool(ecc_mode[0]),
            ecc_uncorrected_volatile=_int(ecc_volatile),
            ecc_uncorrected_aggregate=_int(ecc_aggregate),
            retired_pages_pending=None if retired is None else bool(retired),
            remapped_rows_correctable=_int(corr),
            remapped_rows_uncorrectable=_int(unc),
            remapped_rows_pending=None if pending is None else bool(pending),
            remapped_rows_failure=None if failure is None else bool(failure),
            temperature_c=_int(temperature),
            power_w=None if power_mw is None else int(power_mw) / 1000.0,
            refused=tuple(q.refused),
            failures=tuple(q.failures),
        )


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes for strings; current ones return str.
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _mig_mode(current: int, nvml: Any) -> MigMode:
    enabled = getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1)
    return MigMode.ENABLED if current == enabled else MigMode.DISABLED
