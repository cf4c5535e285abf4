"""``polyculture agent`` as a command, and its Prometheus metrics (no Kubernetes here:
publishing is covered against a real API server in ``tests/cluster/test_agent_node_labels.py``).

Covers: ``--print`` prints the discovery and its labels; without NVML (fake absent, or the
pynvml module missing) it says so on stderr, prints no GPU and exits 3; argument errors;
interval parsing; metrics follow the readings, leave unknown readings out and drop GPUs that
disappeared.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import pytest
from agent_nvml_fake import FakeNvml

from polyculture import cli as polyculture_cli
from polyculture.agent import cli
from polyculture.agent.metrics import AgentMetrics
from polyculture.agent.nvml_reader import NvmlReader


def test_print_shows_the_discovery_and_the_labels(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--once", "--print"], nvml=FakeNvml.h200(gpus=2)) == 0

    out = json.loads(capsys.readouterr().out)
    assert (out["count"], out["healthyCount"], out["health"]) == (2, 2, "ok")
    assert out["gpus"][0]["temperatureC"] == 39  # --print keeps the live readings
    assert out["gpus"][0]["powerW"] == 109.696
    assert out["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H200"


def test_without_nvml_it_says_so_and_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeNvml.absent()
    assert cli.main(["--once", "--print"], nvml=fake) == cli.EXIT_NVML_UNAVAILABLE

    captured = capsys.readouterr()
    assert captured.out == ""  # no GPU is invented
    assert "NVML is unavailable" in captured.err
    assert "NVML Shared Library Not Found" in captured.err
    assert fake.calls == ["nvmlInit"]


def test_without_the_pynvml_module_it_says_so_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    assert polyculture_cli.main(["agent", "--once", "--print"]) == cli.EXIT_NVML_UNAVAILABLE
    assert "pynvml module (nvidia-ml-py) cannot be imported" in capsys.readouterr().err


def test_publishing_needs_a_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--once"], nvml=FakeNvml.h200())
    assert exit_.value.code == cli.EXIT_USAGE


def test_node_name_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "gpu-node-7")
    assert cli.build_parser().parse_args([]).node == "gpu-node-7"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("2m", 120.0), ("500ms", 0.5), ("1h", 3600.0), ("45", 45.0), ("0.5s", 0.5)],
)
def test_interval(text: str, seconds: float) -> None:
    assert cli.parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "thirty", "-5s", "5d"])
def test_bad_interval(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_interval(text)


def test_metrics_follow_the_readings() -> None:
    fake = (
        FakeNvml.h200(gpus=2).ecc_error(1).error("nvmlDeviceGetPowerUsage", "NotSupported", gpu=0)
    )
    with NvmlReader(nvml=fake) as reader:
        discovery = reader.read()
    metrics = AgentMetrics()
    metrics.update(discovery, now=1_700_000_000.0)

    def sample(name: str, gpu: int | None = None, **extra: str) -> float | None:
        labels = {} if gpu is None else {**gpu_labels(gpu), **extra}
        return metrics.registry.get_sample_value(name, labels)

    def gpu_labels(index: int) -> dict[str, str]:
        g = discovery.gpus[index]
        return {"gpu": str(index), "uuid": g.uuid or "", "product": "NVIDIA H200"}

    assert sample("polyculture_gpu_temperature_celsius", 0) == 39
    assert sample("polyculture_gpu_power_watts", 0) is None  # refused: no made-up sample
    assert sample("polyculture_gpu_power_watts", 1) == pytest.approx(109.696)
    assert sample("polyculture_gpu_memory_total_bytes", 0) == 143771 * 1024**2
    assert sample("polyculture_gpu_ecc_uncorrected_errors", 1, counter="volatile") == 1
    assert sample("polyculture_gpu_healthy", 0) == 1
    assert sample("polyculture_gpu_healthy", 1) == 0
    assert sample("polyculture_node_gpus") == 2
    assert sample("polyculture_node_gpus_healthy") == 1
    assert sample("polyculture_agent_last_discovery_timestamp_seconds") == 1_700_000_000.0

    metrics.update(replace(discovery, gpus=discovery.gpus[:1]), now=1_700_000_030.0)
    assert sample("polyculture_gpu_healthy", 1) is None  # the GPU that left has no series
    assert sample("polyculture_node_gpus") == 1
