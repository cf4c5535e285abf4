"""The live view's pure part: `render(pools, models)` shows what the objects say."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from polyculture.cli import main as cli_main
from polyculture.statusview import render

POOL: dict[str, Any] = {
    "metadata": {"name": "commons"},
    "spec": {
        "communities": [
            {"name": "yoruba", "weight": 2.0, "guaranteedGPUs": 4},
            {"name": "quechua", "weight": 1.0},
        ]
    },
    "status": {
        "totalGPUs": 12,
        "allocatedGPUs": 8,
        "totalUnits": 12.0,
        "conditions": [{"type": "Ready", "status": "True"}],
        "members": [
            {
                "owner": "lab-a",
                "nodes": 2,
                "gpusByClass": {"h100": 8},
                "availableGPUs": 8,
                "gpuSecondsProvided": 7200.0,
            },
            {
                "owner": "lab-b",
                "nodes": 1,
                "gpusByClass": {"l4": 4},
                "availableGPUs": 0,
                "unavailableReason": "Reclaimed",
                "gpuSecondsProvided": 0.0,
            },
        ],
        "communities": [
            {
                "name": "yoruba",
                "entitledUnits": 6.0,
                "allocatedUnits": 4.0,
                "allocatedGPUs": 4,
                "pendingGPUs": 4,
                "gpuSecondsConsumed": 3600.0,
            },
        ],
    },
}
MODELS: list[dict[str, Any]] = [
    {
        "metadata": {"namespace": "yoruba", "name": "yoruba-base"},
        "spec": {"pool": "commons"},
        "status": {
            "phase": "Queued",
            "community": "yoruba",
            "requestedGPUs": 4,
            "queuePosition": 2,
            "waiting": {"reason": "InsufficientQuota"},
            "summary": "waits for 4 GPUs",
        },
    },
    {
        "metadata": {"namespace": "quechua", "name": "quechua-asr"},
        "spec": {"pool": "commons"},
        "status": {
            "phase": "Serving",
            "community": "quechua",
            "admission": {"gpus": 1},
            "endpoint": "http://127.0.0.1:8000/quechua-asr",
        },
    },
    {
        "metadata": {"namespace": "yoruba", "name": "yoruba-large"},
        "spec": {"pool": "commons"},
        "status": {
            "phase": "Training",
            "community": "yoruba",
            "admission": {
                "gpus": 4,
                "placement": [{"owner": "lab-a", "node": "gpu-1", "gpus": 4}],
            },
            "summary": "",
        },
    },
    {
        "metadata": {"namespace": "lost", "name": "orphan"},
        "spec": {"pool": "gone"},
        "status": {
            "phase": "Invalid",
            "summary": "pool gone not found",
            "conditions": [{"type": "Valid", "status": "False", "reason": "PoolNotFound"}],
        },
    },
]


def text(pools: list[dict[str, Any]], models: list[dict[str, Any]]) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(render(pools, models, now=datetime(2026, 1, 1, tzinfo=UTC)))
    return console.export_text()


def test_view_shows_owners_communities_models_and_the_ledger() -> None:
    out = text([POOL], MODELS)
    assert "pool commons  Ready  8/12 GPUs allocated" in out
    lines = out.splitlines()
    lab_a = next(line for line in lines if "lab-a" in line)
    assert "h100: 8" in lab_a and "2.00" in lab_a  # 7200 GPU-seconds given = 2 GPU-hours
    lab_b = next(line for line in lines if "lab-b" in line)
    assert "Reclaimed" in lab_b
    yoruba = next(line for line in lines if line.strip("│ ").startswith("yoruba "))
    cells = [c.strip() for c in yoruba.split("│") if c.strip()]
    assert cells == ["yoruba", "2", "4", "6", "4", "4", "1.00"]
    queued = next(line for line in lines if "yoruba/yoruba-base" in line)
    assert "Queued" in queued and "InsufficientQuota" in queued and " 2 " in queued
    serving = next(line for line in lines if "quechua/quechua-asr" in line)
    assert "Serving" in serving and "http://127.0.0.1:8000/quechua-asr" in serving
    training = next(line for line in lines if "yoruba/yoruba-large" in line)
    assert "Training" in training and "lab-a/gpu-1 ×4" in training
    assert "models of no known pool" in out
    orphan = next(line for line in lines if "lost/orphan" in line)
    assert "Invalid" in orphan and "PoolNotFound" in orphan


def test_empty_cluster_says_so() -> None:
    assert "no ComputePools and no CommunityModels" in text([], [])


def test_status_command_is_registered(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["status", "--help"])
    assert exited.value.code == 0
    assert "--watch" in capsys.readouterr().out
