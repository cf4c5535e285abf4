"""``polyculture simulate``: the JSON report, the figures, errors, and a slice of real jobs.

Covers: the keys the report promises (and the same keys for each baseline), the text table,
PNG figures, exit codes for bad input, and a replay of the first 2,000 Philly arrivals where
fair share must beat both baselines on the measures it exists for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyculture.cli import main as polyculture
from polyculture.simulation.cli import main

PHILLY = Path(__file__).resolve().parent / "data" / "philly-head.csv"
KEYS = {
    "utilization_contended",
    "jain_contended",
    "jain_span",
    "sharing_incentive_fraction",
    "sharing_incentive_grace_fraction",
    "wait_p50_s",
    "wait_p95_s",
    "preemptions",
    "jct_p50_s",
    "jct_p95_s",
    "slowdown_p95",
    "preempted_job_fraction",
    "max_restarts",
    "restarts_p99",
    "gpu_time_lost_fraction",
    "never_served_jobs",
}


def small_trace(tmp_path: Path) -> Path:
    """x fills 8 GPUs for an hour from 00:00; y asks for 2 GPUs at 00:10."""
    path = tmp_path / "small.csv"
    rows = ["timestamp,duration,num_gpus,gpu_time,cluster"]
    rows += ["2017-10-01 00:00:00,3600.0,1,3600.0,x"] * 12
    rows += ["2017-10-01 00:10:00,600.0,2,1200.0,y"]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_json_report_holds_the_promised_keys_for_the_policy_and_each_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--trace", str(small_trace(tmp_path)), "--gpus", "8", "--json"]
    assert main([*argv, "--preemption-delay", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["policy"] == "fair"
    assert set(report) >= KEYS
    assert set(report["baselines"]) == {"fifo", "partition"}  # fair leads
    for baseline in report["baselines"].values():
        assert set(baseline) >= KEYS
    # y is below its share of 4 when it arrives: fair preempts two of x's jobs for it and
    # starts once they stopped (the 120 s grace period)...
    assert report["per_community"]["y"]["wait_mean_s"] == 120
    assert report["preemptions"] == 2
    assert (report["max_restarts"], report["restarted_jobs"]) == (1, 2)
    assert report["preemptions_by_reason"] == report["first_restarts_by_reason"] == {"FairShare": 2}
    assert "preemptions_by_reason" not in report["baselines"]["fifo"]
    # each victim redoes its 600 s (no checkpoint yet) and reloads 60 s; y's 2 GPUs sat
    # idle through the grace period; over all GPU-seconds held
    lost = 2 * (600 + 60) + 2 * 120
    assert report["gpu_time_lost_fraction"] == pytest.approx(lost / (12 * 3600 + 1200 + lost))
    # ...while first come first served makes it wait for x's first jobs to end
    fifo = report["baselines"]["fifo"]
    assert fifo["per_community"]["y"]["wait_mean_s"] == 3000
    assert (fifo["max_restarts"], fifo["gpu_time_lost_fraction"]) == (0, 0)
    # at the default delays too: y's 2 GPUs are within its nominal share (4 of 8), so the
    # preemption delay does not apply and it takes them back at once
    assert main(argv) == 0
    at_once = json.loads(capsys.readouterr().out)
    assert at_once["setup"]["reclaim_delay_s"] == 0
    assert at_once["per_community"]["y"]["wait_mean_s"] == 120
    # on its private slice y never waits: worse off by the grace period, no more
    assert at_once["per_community"]["y"]["no_worse_than_partition"] is False
    assert at_once["per_community"]["y"]["no_worse_within_grace"] is True
    # with a reclaim delay of one grace period it waits two
    assert main([*argv, "--reclaim-delay", "120"]) == 0
    delayed = json.loads(capsys.readouterr().out)
    assert delayed["per_community"]["y"]["wait_mean_s"] == 120 + 120
    assert delayed["per_community"]["y"]["no_worse_within_grace"] is False


def test_the_breakdown_counts_one_preemption_event_with_its_victims_and_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--trace", str(small_trace(tmp_path)), "--gpus", "8", "--json"]
    assert main(argv) == 0
    breakdown = json.loads(capsys.readouterr().out)["preemption_breakdown"]
    # y's 2-GPU job takes two of x's 1-GPU jobs back within y's nominal share (4 of 8)
    cause = "fair_share_within_nominal"
    assert breakdown["events"] == {cause: 1}
    assert breakdown["victims"] == breakdown["first_restarts"] == {cause: 2}
    assert breakdown["by_preemptor_gpus"] == {
        cause: {"2": {"events": 1, "victims": 2, "first_restarts": 2}}
    }
    assert breakdown["victims_per_event"] == {cause: {"2": 1}}
    assert breakdown["victim_restarts_before"] == {cause: {"0": 2}}
    assert breakdown["victim_gpus"] == {cause: {"1": 2}}
    top = breakdown["most_restarted"]
    assert len(top) == 2
    assert top[0]["community"] == "x"
    assert (top[0]["gpus"], top[0]["duration_s"], top[0]["restarts"]) == (1, 3600.0, 1)
    assert top[0]["causes"] == {cause: 1}
    assert top[0]["preemptor_gpus"] == {"2": 1}


def test_a_checkpoint_keeps_the_work_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--trace", str(small_trace(tmp_path)), "--gpus", "8", "--json", "--grace", "0"]
    argv += ["--preemption-delay", "0"]
    assert main([*argv, "--checkpoint-interval", "240"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["per_community"]["y"]["wait_mean_s"] == 0
    # preempted at 600 s, each victim keeps its checkpoint at 480 s: redoes 120 s, reloads 60
    lost = 2 * (120 + 60)
    assert report["gpu_time_lost_fraction"] == pytest.approx(lost / (12 * 3600 + 1200 + lost))


def test_the_command_prints_a_table_through_the_polyculture_entry_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = str(small_trace(tmp_path))
    assert polyculture(["simulate", "--trace", trace, "--gpus", "8", "--policy", "fifo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["measure", "fifo", "partition", "fair"]
    assert any(line.startswith("jain_contended") for line in lines)


@pytest.mark.parametrize(
    ("missing", "gpus", "message"),
    [
        pytest.param(True, "8", "no such file", id="a trace that is not there"),
        pytest.param(False, "0", "must be positive", id="a pool without GPUs"),
        pytest.param(False, "-1", "--grace must be >= 0", id="a negative grace period"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: bool, gpus: str, message: str
) -> None:
    trace = tmp_path / "missing.csv" if missing else small_trace(tmp_path)
    argv = ["--gpus", "8", "--grace", gpus] if gpus == "-1" else ["--gpus", gpus]
    assert main(["--trace", str(trace), *argv]) == 2
    assert message in capsys.readouterr().err.lower()


def test_a_slice_of_the_philly_trace_replays_fairly_with_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures"
    argv = ["--trace", str(PHILLY), "--gpus", "96", "--json", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    fifo, partition = report["baselines"]["fifo"], report["baselines"]["partition"]
    assert report["setup"]["jobs"] == 2000
    assert report["contended_fraction"] > 0.3  # the slice does contend for 96 GPUs
    assert (
        report["jain_contended"] > 0.95 > max(fifo["jain_contended"], partition["jain_contended"])
    )
    assert report["wait_p95_s"] < min(fifo["wait_p95_s"], partition["wait_p95_s"])
    assert report["utilization_contended"] > 2 * partition["utilization_contended"]
    assert report["sharing_incentive_fraction"] > fifo["sharing_incentive_fraction"]
    # 16-GPU jobs cannot run on an 8-GPU slice: never served there, and counted so
    assert partition["unplaceable_jobs"] > 0
    assert partition["never_served_jobs"] == partition["unplaceable_jobs"]
    assert report["never_served_jobs"] == fifo["never_served_jobs"] == 0
    assert report["jobs"] == partition["jobs"] == 2000  # both measured on the same jobs
    names = sorted(path.name for path in out.iterdir())
    assert names == [
        "allocation-fair.png",
        "allocation-fifo.png",
        "allocation-partition.png",
        "wait-cdf.png",
    ]
    for name in names:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_config_weights_the_partition_and_the_fair_share(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "four.csv"
    rows = ["timestamp,duration,num_gpus,gpu_time,cluster"]
    rows += ["2017-10-01 00:00:00,3600.0,1,3600.0,x"] * 12
    rows += ["2017-10-01 00:10:00,600.0,1,600.0,y"] * 4
    trace.write_text("\n".join(rows) + "\n")
    config = tmp_path / "pool.yaml"
    config.write_text("communities:\n  x: {weight: 3}\n")
    argv = ["--trace", str(trace), "--gpus", "8", "--json", "--grace", "0"]
    argv += ["--preemption-delay", "0"]

    assert main(argv) == 0
    equal = json.loads(capsys.readouterr().out)
    assert main([*argv, "--config", str(config)]) == 0
    weighted = json.loads(capsys.readouterr().out)

    assert equal["setup"]["partition_slices"] == {"x": 4, "y": 4}
    assert weighted["setup"]["partition_slices"] == {"x": 6, "y": 2}
    # y is entitled to 4 GPUs of 8 with equal weights, to 2 when x weighs 3
    assert (equal["preemptions"], weighted["preemptions"]) == (4, 2)
    assert equal["per_community"]["y"]["wait_p95_s"] == 0
    assert weighted["per_community"]["y"]["wait_p95_s"] > 0


def test_usage_weights_follow_gpu_time_and_set_the_slices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--trace", str(small_trace(tmp_path)), "--gpus", "100", "--json"]
    assert main([*argv, "--weights", "usage"]) == 0
    report = json.loads(capsys.readouterr().out)
    # x asks 12 × 3600 GPU-s, y 2 × 600: 97% and 3%
    config = report["setup"]["config"]
    assert {name: entry["weight"] for name, entry in config.items()} == {"x": 97.0, "y": 3.0}
    assert {name: entry["guaranteed_gpus"] for name, entry in config.items()} == {"x": 48, "y": 1}
    assert report["setup"]["partition_slices"] == {"x": 97, "y": 3}
