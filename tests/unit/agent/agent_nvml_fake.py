# The methods carry pynvml's camelCase names: that is the point of the fake.
# ruff: noqa: N802
"""A fake ``pynvml`` that answers like the H200 recorded in ``shared/reference/gpu``.

``data/h200-nvml.json`` is a copy of that recording (driver 580.159.04, nvidia-ml-py
13.610): the fake returns its values and raises its refusals (retired pages:
``NVMLError_NotSupported``) with the real ``pynvml`` exception classes and constants, so the
reader sees exactly what it would see on the machine. Switches:

- ``FakeNvml.h200(gpus=8)``: that GPU ``gpus`` times (distinct index and UUID);
- ``fake.error(function, "NotSupported" | "GpuIsLost" | ..., gpu=None)``: that NVML call
  raises that error (for every GPU, or one);
- ``fake.ecc_error(gpu, volatile=1)``: uncorrectable ECC errors on one GPU;
- ``FakeNvml.absent()``: ``nvmlInit`` fails as it does on a machine without the driver
  (``NVMLError_LibraryNotFound``, the error this repository's CI machine gives).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

RECORDING = Path(__file__).resolve().parent / "data" / "h200-nvml.json"


class FakeHandle:
    def __init__(self, index: int) -> None:
        self.index = index


class FakeNvml:
    """Shaped like the ``pynvml`` module, for ``NvmlReader(nvml=FakeNvml.h200())``."""

    def __init__(self, recording: dict[str, Any], *, init_error: str | None = None) -> None:
        self.recording = recording
        self.devices: list[dict[str, Any]] = recording["devices"]
        self.init_error = init_error
        self.errors: dict[tuple[str, int | None], str] = {}
        self.initialised = 0
        self.calls: list[str] = []

    # --- constructors and switches ------------------------------------------------------

    @classmethod
    def h200(cls, gpus: int = 1) -> FakeNvml:
        recording = json.loads(RECORDING.read_text())
        template = recording["devices"][0]
        devices = []
        for index in range(gpus):
            device = copy.deepcopy(template)
            device["index"] = device["minor_number"] = index
            # keep the recorded UUID for GPU 0, vary the last digits for the others
            if index:
                device["uuid"] = template["uuid"][:-4] + f"{index:04x}"
            devices.append(device)
        recording["devices"] = devices
        recording["device_count"] = gpus
        return cls(recording)

    @classmethod
    def absent(cls, error: str = "LibraryNotFound") -> FakeNvml:
        return cls({"devices": [], "device_count": 0}, init_error=error)

    def error(self, function: str, error: str, *, gpu: int | None = None) -> FakeNvml:
        if not hasattr(pynvml, function):
            raise AttributeError(f"pynvml has no {function}: the fake would test nothing")
        self.errors[function, gpu] = error
        return self

    def ecc_error(self, gpu: int, *, volatile: int = 1) -> FakeNvml:
        device = self.devices[gpu]
        device["ecc_volatile_uncorrected"] += volatile
        device["ecc_aggregate_uncorrected"] += volatile
        return self

    # --- the pynvml surface ---------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # constants (NVML_*) and exception classes (NVMLError*) are the real module's
        if name.startswith("NVML"):
            return getattr(pynvml, name)
        raise AttributeError(name)

    def _call(self, function: str, handle: FakeHandle | None = None) -> None:
        self.calls.append(function)
        if not self.initialised and function != "nvmlInit":
            raise pynvml.NVMLError_Uninitialized()
        gpu = None if handle is None else handle.index
        error = self.errors.get((function, gpu)) or self.errors.get((function, None))
        if error is not None:
            raise getattr(pynvml, f"NVMLError_{error}")()

    def _answer(self, function: str, handle: FakeHandle, key: str) -> Any:
        self._call(function, handle)
        value = self.devices[handle.index][key]
        if isinstance(value, dict) and "error" in value:
            raise getattr(pynvml, value["error"])()
        return value

    def nvmlInit(self) -> None:
        self._call("nvmlInit")
        if self.init_error is not None:
            raise getattr(pynvml, f"NVMLError_{self.init_error}")()
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._call("nvmlSystemGetDriverVersion")
        return str(self.recording["driver_version"])

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._call("nvmlSystemGetCudaDriverVersion")
        return int(self.recording["cuda_driver_version"])

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        handle = FakeHandle(index)
        self._call("nvmlDeviceGetHandleByIndex", handle)
        if not 0 <= index < len(self.devices):
            raise pynvml.NVMLError_InvalidArgument()
        return handle

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        return str(self._answer("nvmlDeviceGetUUID", handle, "uuid"))

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        return str(self._answer("nvmlDeviceGetName", handle, "name"))

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle) -> SimpleNamespace:
        return SimpleNamespace(**self._answer("nvmlDeviceGetMemoryInfo", handle, "memory"))

    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        return list(self._answer("nvmlDeviceGetMigMode", handle, "mig_mode"))

    def nvmlDeviceGetEccMode(self, handle: FakeHandle) -> list[int]:
        return list(self._answer("nvmlDeviceGetEccMode", handle, "ecc_mode"))

    def nvmlDeviceGetTotalEccErrors(
        self, handle: FakeHandle, error_type: int, counter_type: int
    ) -> int:
        if error_type != pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            raise AssertionError("only uncorrected errors were recorded")
        key = {
            pynvml.NVML_VOLATILE_ECC: "ecc_volatile_uncorrected",
            pynvml.NVML_AGGREGATE_ECC: "ecc_aggregate_uncorrected",
        }[counter_type]
        return int(self._answer("nvmlDeviceGetTotalEccErrors", handle, key))

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: FakeHandle) -> int:
        return int(
            self._answer("nvmlDeviceGetRetiredPagesPendingStatus", handle, "retired_pages_pending")
        )

    def nvmlDeviceGetRemappedRows(self, handle: FakeHandle) -> tuple[int, int, int, int]:
        corr, unc, pending, failure = self._answer(
            "nvmlDeviceGetRemappedRows", handle, "remapped_rows"
        )
        return (corr, unc, pending, failure)

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise AssertionError("only the GPU sensor was recorded")
        return int(self._answer("nvmlDeviceGetTemperature", handle, "temperature_gpu_c"))

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        return int(self._answer("nvmlDeviceGetPowerUsage", handle, "power_usage_mw"))
