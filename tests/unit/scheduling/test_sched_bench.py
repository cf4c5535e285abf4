"""The benchmark command, at toy sizes: output keys, JSON, argument checks, reproducibility.

The timings themselves are figures to record, not test assertions (the machine is shared).
"""

from __future__ import annotations

import json

import pytest

from polyculture import cli
from polyculture.scheduling import schedule
from polyculture.simulation.bench import main, synthetic_snapshot

SMALL = ["--nodes", "20", "--gpus-per-node", "8", "--communities", "4", "--pending", "60"]


def test_json_output_has_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scheduler", *SMALL, "--cycles", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nodes"] == 20 and out["pending"] == 60 and out["cycles"] == 2
    assert 0 < out["cycle_ms_p50"] <= out["cycle_ms_p95"]
    assert out["admitted"] + out["waiting"] == 60
    assert out["admitted"] > 0


def test_lookahead_leaves_the_rest_of_each_queue_waiting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scheduler", *SMALL, "--cycles", "1", "--lookahead", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lookahead"] == 2
    # four communities, at most two tried each
    assert 0 < out["admitted"] <= 8 and out["admitted"] + out["waiting"] == 60


def test_table_output_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "scheduler", *SMALL, "--cycles", "1"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert "p50 (ms)" in header and row.split()[:4] == ["20", "8", "4", "60"]


@pytest.mark.parametrize(
    "bad", [["--nodes", "0"], ["--cycles", "0"], ["--pending", "-1"], ["--lookahead", "-1"]]
)
def test_bad_sizes_are_refused(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scheduler", *bad]) == 2
    assert "must be" in capsys.readouterr().err


def test_synthetic_snapshots_are_reproducible_and_valid() -> None:
    one = synthetic_snapshot(nodes=30, gpus_per_node=4, communities=5, pending=50, seed=7)
    two = synthetic_snapshot(nodes=30, gpus_per_node=4, communities=5, pending=50, seed=7)
    assert one == two
    used: dict[str, int] = {}
    for r in one.running:
        for name in r.placement:
            used[name] = used.get(name, 0) + r.workload.gpus_per_worker
    assert all(used.get(n.name, 0) <= n.gpus for n in one.nodes)
    assert schedule(one) == schedule(two)
