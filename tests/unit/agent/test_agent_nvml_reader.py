"""The NVML reader against a fake shaped like the recorded H200.

Covers: every recorded value lands in the right field and unit; the recorded refusal
(retired pages) becomes unknown, not a failure; refusals of other queries stay unknown; a
failed query or a refused essential query makes only that GPU unhealthy; ECC errors; NVML
missing or unable to count GPUs raises ``NvmlUnavailableError``; NVML is shut down after use.
"""

from __future__ import annotations

import pytest
from agent_nvml_fake import FakeNvml

from polyculture.agent.discovery import GPU, Health, MigMode, QueryFailure, Refusal
from polyculture.agent.nvml_reader import NvmlReader, NvmlUnavailableError


def read(fake: FakeNvml):  # type: ignore[no-untyped-def]
    with NvmlReader(nvml=fake) as reader:
        return reader.read()


def test_reads_the_recorded_h200_as_it_is() -> None:
    discovery = read(FakeNvml.h200())

    assert discovery.driver_version == "580.159.04"
    assert discovery.cuda_driver_version == 13000
    assert discovery.gpus == (
        GPU(
            index=0,
            uuid="GPU-f6b3dd68-5625-48ee-de9d-bf24ac197e2f",
            name="NVIDIA H200",
            memory_total_mib=143771,  # 150,754,820,096 bytes; nvidia-smi shows 143771 MiB
            mig_mode=MigMode.DISABLED,
            ecc_enabled=True,
            ecc_uncorrected_volatile=0,
            ecc_uncorrected_aggregate=0,
            retired_pages_pending=None,
            remapped_rows_correctable=0,
            remapped_rows_uncorrectable=0,
            remapped_rows_pending=False,
            remapped_rows_failure=False,
            temperature_c=39,
            power_w=109.696,
            refused=(Refusal(query="retiredPagesPending", error="NotSupported"),),
        ),
    )
    assert discovery.health is Health.OK


def test_nvml_is_shut_down_after_reading() -> None:
    fake = FakeNvml.h200()
    read(fake)
    assert fake.initialised == 0
    assert fake.calls[0] == "nvmlInit"
    assert fake.calls[-1] == "nvmlShutdown"


def test_reads_every_gpu_of_an_eight_gpu_node() -> None:
    discovery = read(FakeNvml.h200(gpus=8))

    assert [gpu.index for gpu in discovery.gpus] == list(range(8))
    assert len({gpu.uuid for gpu in discovery.gpus}) == 8
    assert (discovery.count, discovery.healthy_count, discovery.health) == (8, 8, Health.OK)


@pytest.mark.parametrize(
    ("function", "error", "field"),
    [
        ("nvmlDeviceGetTemperature", "NotSupported", "temperature_c"),
        ("nvmlDeviceGetPowerUsage", "NoPermission", "power_w"),
        ("nvmlDeviceGetTotalEccErrors", "NotSupported", "ecc_uncorrected_volatile"),
        ("nvmlDeviceGetMigMode", "NotSupported", "mig_mode"),
        ("nvmlDeviceGetRemappedRows", "FunctionNotFound", "remapped_rows_failure"),
    ],
    ids=["temperature", "power", "ecc", "mig", "remapped-rows"],
)
def test_a_refused_query_is_unknown_and_the_gpu_stays_healthy(
    function: str, error: str, field: str
) -> None:
    gpu = read(FakeNvml.h200().error(function, error)).gpus[0]

    assert getattr(gpu, field) is None
    assert error in {r.error for r in gpu.refused}
    assert gpu.failures == ()
    assert gpu.health is Health.OK


def test_a_failed_query_makes_that_gpu_unhealthy_and_only_that_one() -> None:
    fake = FakeNvml.h200(gpus=8).error("nvmlDeviceGetTemperature", "GpuIsLost", gpu=3)
    discovery = read(fake)

    lost = discovery.gpus[3]
    assert lost.failures == (
        QueryFailure(query="temperature", error="GpuIsLost", message="GPU is lost"),
    )
    assert lost.health is Health.UNHEALTHY
    assert lost.reasons == ("temperature failed: GPU is lost (GpuIsLost)",)
    assert lost.uuid is not None  # the other answers are still kept
    assert (discovery.healthy_count, discovery.health) == (7, Health.DEGRADED)


@pytest.mark.parametrize(
    ("function", "query"),
    [
        ("nvmlDeviceGetUUID", "uuid"),
        ("nvmlDeviceGetName", "name"),
        ("nvmlDeviceGetMemoryInfo", "memory"),
    ],
)
def test_a_refused_essential_query_is_a_failure(function: str, query: str) -> None:
    gpu = read(FakeNvml.h200().error(function, "NotSupported")).gpus[0]

    assert [f.query for f in gpu.failures] == [query]
    assert gpu.health is Health.UNHEALTHY


def test_a_gpu_without_a_handle_is_reported_unhealthy_not_dropped() -> None:
    fake = FakeNvml.h200(gpus=2).error("nvmlDeviceGetHandleByIndex", "GpuIsLost", gpu=1)
    discovery = read(fake)

    assert discovery.count == 2
    assert discovery.gpus[1] == GPU(
        index=1, failures=(QueryFailure(query="handle", error="GpuIsLost", message="GPU is lost"),)
    )
    assert discovery.healthy_count == 1


def test_an_uncorrectable_ecc_error_makes_the_gpu_unhealthy() -> None:
    discovery = read(FakeNvml.h200(gpus=2).ecc_error(1, volatile=2))

    gpu = discovery.gpus[1]
    assert (gpu.ecc_uncorrected_volatile, gpu.ecc_uncorrected_aggregate) == (2, 2)
    assert gpu.health is Health.UNHEALTHY
    assert gpu.reasons == ("2 uncorrectable ECC error(s) since the driver loaded",)
    assert discovery.gpus[0].health is Health.OK


@pytest.mark.parametrize("error", ["LibraryNotFound", "DriverNotLoaded", "LibRmVersionMismatch"])
def test_nvml_that_cannot_start_is_unavailable(error: str) -> None:
    fake = FakeNvml.absent(error)
    with pytest.raises(NvmlUnavailableError, match="NVML cannot start"):
        NvmlReader(nvml=fake).open()
    assert fake.calls == ["nvmlInit"]  # nothing asked after that: no GPU invented


def test_nvml_that_cannot_count_gpus_is_unavailable() -> None:
    fake = FakeNvml.h200().error("nvmlDeviceGetCount", "Unknown")
    with NvmlReader(nvml=fake) as reader, pytest.raises(NvmlUnavailableError, match="count"):
        reader.read()
    assert fake.initialised == 0
