"""The Node labels and annotation contract, and the patch that applies it.

Covers: label values are always valid Kubernetes label values (GFD's spaces -> '-');
the labels of the recorded H200 and of a degraded node; the detail annotation is stable
across refreshes whose only changes are temperature and power; the patch touches only
managed keys, deletes the ones no longer wanted and is empty when nothing changed.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from agent_nvml_fake import FakeNvml
from hypothesis import given
from hypothesis import strategies as st

from polyculture.agent import labels
from polyculture.agent.discovery import NodeDiscovery
from polyculture.agent.nvml_reader import NvmlReader

# Kubernetes' label value syntax (k8s.io/apimachinery validation.IsValidLabelValue)
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def discover(fake: FakeNvml) -> NodeDiscovery:
    with NvmlReader(nvml=fake) as reader:
        return reader.read()


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("NVIDIA H200", "NVIDIA-H200"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB"),
        ("Tesla T4 (PCIe)", "Tesla-T4-PCIe"),
        ("  NVIDIA  L4 ", "NVIDIA-L4"),
    ],
)
def test_product_label_value(name: str, want: str) -> None:
    assert labels.label_value(name) == want


@given(st.text(max_size=200))
def test_label_value_is_always_a_valid_label_value(text: str) -> None:
    value = labels.label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value)


def test_labels_of_the_recorded_h200_node() -> None:
    assert labels.build_labels(discover(FakeNvml.h200(gpus=8))) == {
        "nvidia.com/gpu.product": "NVIDIA-H200",
        "nvidia.com/gpu.memory": "143771",
        "nvidia.com/gpu.count": "8",
        "polyculture.dev/gpu.healthy-count": "8",
        "polyculture.dev/gpu.health": "ok",
        "polyculture.dev/gpu.checked": "true",
    }


def test_labels_of_a_node_with_an_ecc_error() -> None:
    got = labels.build_labels(discover(FakeNvml.h200(gpus=8).ecc_error(5)))
    assert got["nvidia.com/gpu.count"] == "8"
    assert got["polyculture.dev/gpu.healthy-count"] == "7"
    assert got["polyculture.dev/gpu.health"] == "degraded"


def test_detail_annotation_is_the_documented_json() -> None:
    detail = json.loads(labels.build_detail(discover(FakeNvml.h200())))
    assert detail == {
        "version": 1,
        "driverVersion": "580.159.04",
        "cudaDriverVersion": "13.0",
        "count": 1,
        "healthyCount": 1,
        "health": "ok",
        "gpus": [
            {
                "index": 0,
                "uuid": "GPU-f6b3dd68-5625-48ee-de9d-bf24ac197e2f",
                "product": "NVIDIA H200",
                "memoryMiB": 143771,
                "migMode": "disabled",
                "ecc": {"enabled": True, "uncorrectedVolatile": 0, "uncorrectedAggregate": 0},
                "retiredPagesPending": None,
                "remappedRows": {
                    "correctable": 0,
                    "uncorrectable": 0,
                    "pending": False,
                    "failure": False,
                },
                "health": "ok",
                "reasons": [],
                "unknown": {"retiredPagesPending": "NotSupported"},
            }
        ],
    }


def test_detail_does_not_change_with_temperature_or_power() -> None:
    first = discover(FakeNvml.h200(gpus=2))
    warmer = replace(
        first, gpus=tuple(replace(g, temperature_c=71, power_w=650.0) for g in first.gpus)
    )
    assert labels.build_detail(warmer) == labels.build_detail(first)
    assert labels.build_labels(warmer) == labels.build_labels(first)


def test_detail_changes_with_an_ecc_error() -> None:
    before = labels.build_detail(discover(FakeNvml.h200(gpus=2)))
    after = labels.build_detail(discover(FakeNvml.h200(gpus=2).ecc_error(1)))
    assert before != after
    assert json.loads(after)["gpus"][1]["health"] == "unhealthy"


WANTED = {
    "nvidia.com/gpu.product": "NVIDIA-H200",
    "nvidia.com/gpu.count": "8",
    "polyculture.dev/gpu.health": "ok",
}


def test_patch_is_none_when_the_node_already_matches() -> None:
    current = {**WANTED, "kubernetes.io/hostname": "n1"}
    assert (
        labels.node_metadata_patch(
            current_labels=current,
            current_annotations={labels.DETAIL: "{}", "other": "x"},
            labels=WANTED,
            annotations={labels.DETAIL: "{}"},
        )
        is None
    )


def test_patch_sets_changed_keys_and_deletes_managed_keys_no_longer_wanted() -> None:
    current = {
        "kubernetes.io/hostname": "n1",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",  # stale value from elsewhere
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "81559",  # managed, not wanted any more
    }
    patch = labels.node_metadata_patch(
        current_labels=current, current_annotations=None, labels=WANTED, annotations={}
    )
    assert patch == {
        "metadata": {
            "labels": {
                "nvidia.com/gpu.product": "NVIDIA-H200",
                "nvidia.com/gpu.memory": None,
                "polyculture.dev/gpu.health": "ok",
            }
        }
    }


def test_patch_refuses_keys_the_agent_does_not_own() -> None:
    with pytest.raises(ValueError, match="not managed"):
        labels.node_metadata_patch(
            current_labels={},
            current_annotations={},
            labels={"kubernetes.io/hostname": "x"},
            annotations={},
        )


def test_unavailable_nvml_withdraws_the_gpu_claims() -> None:
    current = labels.build_labels(discover(FakeNvml.h200(gpus=8)))
    patch = labels.node_metadata_patch(
        current_labels=current,
        current_annotations={},
        labels=labels.build_unavailable_labels(),
        annotations={
            labels.DETAIL: labels.build_unavailable_detail("NVML Shared Library Not Found")
        },
    )
    assert patch is not None
    assert patch["metadata"]["labels"] == {
        "nvidia.com/gpu.product": None,
        "nvidia.com/gpu.memory": None,
        "nvidia.com/gpu.count": None,
        "polyculture.dev/gpu.healthy-count": "0",
        "polyculture.dev/gpu.health": "unhealthy",
    }
    detail = json.loads(patch["metadata"]["annotations"][labels.DETAIL])
    assert (detail["error"], detail["healthyCount"], detail["gpus"]) == (
        "NVML Shared Library Not Found",
        0,
        [],
    )
