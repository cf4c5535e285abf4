"""Health rules of one GPU and of a node (pure: GPUs built by hand).

Covers: which readings make a GPU unhealthy, degraded or leave it ok; refusals alone never
change health; how a node's health and healthy count follow from its GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from polyculture.agent.discovery import GPU, Health, NodeDiscovery, QueryFailure, Refusal

HEALTHY = GPU(
    index=0,
    uuid="GPU-0",
    name="NVIDIA H200",
    memory_total_mib=143771,
    ecc_enabled=True,
    ecc_uncorrected_volatile=0,
    ecc_uncorrected_aggregate=0,
    remapped_rows_pending=False,
    remapped_rows_failure=False,
)


@dataclass(frozen=True)
class Case:
    gpu: GPU
    want_health: Health
    want_reasons: tuple[str, ...] = ()


CASES = {
    "ok when nothing is wrong": Case(HEALTHY, Health.OK),
    "unhealthy on an uncorrectable ECC error since the driver loaded": Case(
        replace(HEALTHY, ecc_uncorrected_volatile=1, ecc_uncorrected_aggregate=1),
        Health.UNHEALTHY,
        ("1 uncorrectable ECC error(s) since the driver loaded",),
    ),
    "ok when uncorrectable ECC errors are only history (aggregate)": Case(
        replace(HEALTHY, ecc_uncorrected_aggregate=3), Health.OK
    ),
    "unhealthy when row remapping failed": Case(
        replace(HEALTHY, remapped_rows_failure=True),
        Health.UNHEALTHY,
        ("row remapping failed: memory can no longer be repaired",),
    ),
    "degraded when a row remap waits for a reset": Case(
        replace(HEALTHY, remapped_rows_pending=True),
        Health.DEGRADED,
        ("row remapping pending: reset the GPU",),
    ),
    "degraded when a page retirement waits for a reset": Case(
        replace(HEALTHY, retired_pages_pending=True),
        Health.DEGRADED,
        ("page retirement pending: reset the GPU",),
    ),
    "unhealthy on a failed query": Case(
        replace(HEALTHY, failures=(QueryFailure(query="power", error="Unknown", message="x"),)),
        Health.UNHEALTHY,
        ("power failed: x (Unknown)",),
    ),
    "ok when every optional query was refused": Case(
        GPU(
            index=0,
            uuid="GPU-0",
            name="Tesla T4",
            memory_total_mib=15360,
            refused=(
                Refusal(query="eccUncorrectedVolatile", error="NotSupported"),
                Refusal(query="remappedRows", error="NotSupported"),
                Refusal(query="temperature", error="NoPermission"),
            ),
        ),
        Health.OK,
    ),
    "unhealthy reasons come before degraded ones": Case(
        replace(HEALTHY, ecc_uncorrected_volatile=1, remapped_rows_pending=True),
        Health.UNHEALTHY,
        (
            "1 uncorrectable ECC error(s) since the driver loaded",
            "row remapping pending: reset the GPU",
        ),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_gpu_health(case: Case) -> None:
    assert case.gpu.health is case.want_health
    assert case.gpu.reasons == case.want_reasons
    assert case.gpu.usable is (case.want_health is not Health.UNHEALTHY)


def gpus(*healths: Health) -> tuple[GPU, ...]:
    changes = {
        Health.OK: {},
        Health.DEGRADED: {"remapped_rows_pending": True},
        Health.UNHEALTHY: {"ecc_uncorrected_volatile": 1},
    }
    return tuple(
        replace(HEALTHY, index=i, uuid=f"GPU-{i}", **changes[h])  # type: ignore[arg-type]
        for i, h in enumerate(healths)
    )


@pytest.mark.parametrize(
    ("node_gpus", "want_healthy", "want_health"),
    [
        (gpus(*[Health.OK] * 8), 8, Health.OK),
        (gpus(*[Health.OK] * 7, Health.UNHEALTHY), 7, Health.DEGRADED),
        (gpus(Health.OK, Health.DEGRADED), 2, Health.DEGRADED),
        (gpus(Health.UNHEALTHY, Health.UNHEALTHY), 0, Health.UNHEALTHY),
        ((), 0, Health.UNHEALTHY),
    ],
    ids=[
        "ok when every GPU is ok",
        "degraded with one unhealthy GPU of eight, seven counted",
        "degraded GPUs still count as capacity",
        "unhealthy when no GPU is usable",
        "unhealthy when NVML shows no GPU",
    ],
)
def test_node_health(node_gpus: tuple[GPU, ...], want_healthy: int, want_health: Health) -> None:
    node = NodeDiscovery(driver_version="580.159.04", gpus=node_gpus)
    assert node.count == len(node_gpus)
    assert node.healthy_count == want_healthy
    assert node.health is want_health


def test_node_product_and_memory_come_from_the_first_gpu_with_a_name() -> None:
    nameless = GPU(index=0, failures=(QueryFailure(query="handle", error="GpuIsLost", message=""),))
    h100 = replace(HEALTHY, index=1, name="NVIDIA H100 80GB HBM3", memory_total_mib=81559)
    node = NodeDiscovery(gpus=(nameless, h100, replace(HEALTHY, index=2)))
    assert (node.product, node.memory_total_mib) == ("NVIDIA H100 80GB HBM3", 81559)
    assert NodeDiscovery(gpus=(nameless,)).product is None
    assert nameless.health is Health.UNHEALTHY
