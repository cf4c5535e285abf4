"""One GPU product normaliser: the agent's label and the pool's class matching agree.

Product names are the ones NVML reports: the recorded H100 (``docs/figures``), the recorded
H200 the NVML fake is shaped after, and names of other boards as NVML spells them,
parentheses and all.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyculture.agent.labels import build_labels, label_value
from polyculture.agent.nvml_reader import NvmlReader
from polyculture.api.gpu_products import product_label, same_product
from polyculture.inventory import GPUClassRule, classify

REPO = Path(__file__).resolve().parents[3]
FIGURES = REPO / "docs" / "figures"


def recorded_names() -> list[str]:
    """Product names NVML reported on real GPUs, from the files the project keeps."""
    names = [json.loads((FIGURES / "gpu-check-h100.json").read_text())["gpus"][0]["product"]]
    with (FIGURES / "nvidia-smi-h100.csv").open() as f:
        names += [row["name"] for row in csv.DictReader(f, skipinitialspace=True)]
    return names


#: names as NVML reports them on other boards (nvidia-smi --query-gpu=name)
NVML_NAMES = [
    "NVIDIA H200",
    "NVIDIA H100 80GB HBM3",
    "NVIDIA H100 PCIe",
    "NVIDIA A100-SXM4-40GB",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA L4",
    "Tesla T4",
    "Tesla T4 (PCIe)",
    "Tesla V100-SXM2-16GB",
    "NVIDIA GeForce RTX 4090",
    "NVIDIA RTX A6000",
]


def test_the_recorded_names_are_real() -> None:
    assert recorded_names() == ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"]


@pytest.mark.parametrize("name", [*recorded_names()[:1], *NVML_NAMES])
def test_a_pool_naming_the_nvml_product_sees_the_agents_node(name: str) -> None:
    label = label_value(name)  # what the agent writes on the Node
    classes = [GPUClassRule("X", 0.5, (name,))]
    assert classify(label, classes) == ("X", 0.5)
    # a pool may also write the label form, or the name with other spacing
    assert classify(label, [GPUClassRule("X", 0.5, (label,))]) == ("X", 0.5)
    assert classify(label, [GPUClassRule("X", 0.5, (f"  {name}  ",))]) == ("X", 0.5)


def test_parentheses_and_spaces() -> None:
    assert product_label("Tesla T4 (PCIe)") == "Tesla-T4-PCIe"
    assert same_product("Tesla T4 (PCIe)", "Tesla-T4-PCIe")
    assert same_product("nvidia h200", "NVIDIA-H200")
    assert not same_product("NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3")
    assert not same_product("", "")


def test_the_agent_labels_with_the_normaliser(fake_nvml_h200_product: str) -> None:
    assert fake_nvml_h200_product == product_label("NVIDIA H200") == "NVIDIA-H200"


@pytest.fixture
def fake_nvml_h200_product(fake_nvml: Any) -> str:
    """The product label the agent writes for the recorded H200 (through its NVML reader)."""
    with NvmlReader(nvml=fake_nvml.h200(gpus=1)) as reader:
        return build_labels(reader.read())["nvidia.com/gpu.product"]


@given(st.text(max_size=120))
def test_every_name_normalises_to_a_label_value_and_matches_itself(name: str) -> None:
    label = product_label(name)
    assert len(label) <= 63
    assert product_label(label) == label  # idempotent: the pool may write the label form
    if label:
        assert same_product(name, label)
