"""The node agent's NVML reader on a real NVIDIA GPU (marker ``gpu``; skipped without one).

Covers: the real pynvml starts, every GPU has a UUID, a name and its memory; no query
*failed* (refusals are fine: the H200 refuses retired pages); the answers agree with
``nvidia-smi`` when it is installed; ``polyculture agent --once --print`` prints the same
GPUs as JSON.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from polyculture.agent import cli
from polyculture.agent.discovery import NodeDiscovery
from polyculture.agent.nvml_reader import NvmlReader, NvmlUnavailableError, load_pynvml

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def discovery() -> Iterator[NodeDiscovery]:
    try:
        reader = NvmlReader(nvml=load_pynvml())
        reader.open()
    except NvmlUnavailableError as error:
        pytest.skip(f"no NVIDIA driver/NVML on this machine ({error})")
    try:
        yield reader.read()
    finally:
        reader.close()


def test_every_gpu_is_identified(discovery: NodeDiscovery) -> None:
    assert discovery.count >= 1
    assert discovery.driver_version
    for gpu in discovery.gpus:
        assert gpu.uuid is not None and gpu.uuid.startswith(("GPU-", "MIG-")), gpu
        assert gpu.name, gpu
        assert gpu.memory_total_mib is not None and gpu.memory_total_mib > 1024, gpu


def test_no_query_failed(discovery: NodeDiscovery) -> None:
    assert [(gpu.index, gpu.failures) for gpu in discovery.gpus if gpu.failures] == []


def test_agrees_with_nvidia_smi(discovery: NodeDiscovery) -> None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi is not installed here; NVML alone was checked")
    out = subprocess.run(
        [smi, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    rows = [[cell.strip() for cell in row] for row in csv.reader(out.splitlines())]
    assert [(int(i), uuid, name, int(mib)) for i, uuid, name, mib in rows] == [
        (gpu.index, gpu.uuid, gpu.name, gpu.memory_total_mib) for gpu in discovery.gpus
    ]


def test_print_mode_prints_the_gpus(
    discovery: NodeDiscovery, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--once", "--print"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [g["uuid"] for g in out["gpus"]] == [gpu.uuid for gpu in discovery.gpus]
    assert out["labels"]["nvidia.com/gpu.count"] == str(discovery.count)
