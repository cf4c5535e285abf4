"""The measures of a replay, on timelines and waits small enough to compute by hand.

Covers: contended periods and utilization over them, the entitlement reference (weights,
guarantees, caps; and that it equals the core's water-filling), Jain's index over contended
periods, percentiles of waits, and the sharing incentive against a partition.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from polyculture.scheduling.entitlement import entitlements as core_entitlements
from polyculture.scheduling.snapshot import Community, Policy
from polyculture.simulation import metrics
from polyculture.simulation.replay import JobState, Replay, Timeline
from polyculture.simulation.trace import CommunityConfig, TraceJob


def replay_of(
    timeline: Timeline,
    capacity: int,
    waits: dict[str, list[float]],
    never: dict[str, int] | None = None,
) -> Replay:
    """A hand-made replay: the timeline, jobs of each community that arrive at 0, wait the
    given times and run 1 s, and ``never[c]`` jobs of ``c`` it could not place."""
    jobs = []
    for community, values in waits.items():
        for i, wait in enumerate(values):
            job = TraceJob(f"{community}-{i}", community, 0.0, 1.0, 1)
            jobs.append(JobState(job, 1, 1, 0.0, 0.0, waited=wait, finished=wait + 1))
    unplaceable = [
        JobState(TraceJob(f"{community}-never-{i}", community, 0.0, 1.0, 1), 1, 1, 1.0, 0.0)
        for community, count in (never or {}).items()
        for i in range(count)
    ]
    communities = tuple(sorted(waits)) or ("x", "y")
    return Replay(
        "test",
        communities,
        capacity,
        tuple(jobs),
        timeline,
        preemptions=0,
        cycles=0,
        unplaceable=tuple(unplaceable),
    )


# Two communities, 4 GPUs. [0, 10): x runs 2 of its 3, y 1 of its 3 — demand 6, contended.
# [10, 30): x runs 4 of 5, y 0 of 1 — demand 6, contended. [30, 40): nothing to do.
TIMELINE = Timeline(
    times=[0.0, 10.0, 30.0],
    allocated=[(2, 1), (4, 0), (0, 0)],
    pending=[(1, 2), (1, 1), (0, 0)],
    end=40.0,
)


def test_utilization_counts_only_contended_time() -> None:
    measured = metrics.fairness(replay_of(TIMELINE, 4, {}), {})
    assert measured["contended_fraction"] == pytest.approx(30 / 40)
    assert measured["utilization_contended"] == pytest.approx((3 * 10 + 4 * 20) / (4 * 30))


def test_jain_is_time_weighted_over_contended_periods() -> None:
    # [0, 10): entitled (2, 2), x = (1, 0.5), J = 1.5^2 / (2 * 1.25) = 0.9
    # [10, 30): entitled (3, 1), x = (4/3, 0), J = 0.5
    measured = metrics.fairness(replay_of(TIMELINE, 4, {}), {})
    assert measured["jain_contended"] == pytest.approx((0.9 * 10 + 0.5 * 20) / 30)


def test_a_pool_never_contended_is_fair_and_fully_used_by_convention() -> None:
    quiet = Timeline(times=[0.0], allocated=[(1, 0)], pending=[(0, 0)], end=10.0)
    assert metrics.fairness(replay_of(quiet, 4, {}), {}) == {
        "contended_fraction": 0.0,
        "utilization_contended": 1.0,
        "jain_contended": 1.0,
        "jain_span": 1.0,
    }


def test_jain_span_compares_gpu_time_held_with_gpu_time_entitled() -> None:
    # over the contended [0, 30): x held 2*10 + 4*20 = 100 of 2*10 + 3*20 = 80 entitled
    # (1.25), y held 1*10 of 2*10 + 1*20 = 40 (0.25): J = 1.5^2 / (2 * (1.5625 + 0.0625))
    measured = metrics.fairness(replay_of(TIMELINE, 4, {}), {})
    assert measured["jain_span"] == pytest.approx(1.5**2 / (2 * 1.625))
    # the same GPU-time over the span, however unequal at each instant: fair over time
    turns = Timeline(
        times=[0.0, 10.0, 20.0], allocated=[(4, 0), (0, 4), (0, 0)], pending=[(4, 4)] * 3, end=20
    )
    over_time = metrics.fairness(replay_of(turns, 4, {}), {})
    assert over_time["jain_span"] == pytest.approx(1.0)
    assert over_time["jain_contended"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("demand", "capacity", "config", "want"),
    [
        pytest.param([10, 1, 5], 12, {}, [6, 1, 5], id="what one leaves idle goes to others"),
        pytest.param([100, 100], 30, {"a": CommunityConfig(weight=2)}, [20, 10], id="weights"),
        pytest.param(
            [100, 100], 30, {"b": CommunityConfig(guaranteed_gpus=20)}, [10, 20], id="guarantee"
        ),
        pytest.param(
            [100, 3],
            30,
            {"b": CommunityConfig(guaranteed_gpus=20)},
            [27, 3],
            id="a guarantee is a floor only when demanded",
        ),
        pytest.param([100, 100], 30, {"a": CommunityConfig(max_gpus=5)}, [5, 25], id="cap"),
        pytest.param([0, 7], 30, {}, [0, 7], id="no demand, no entitlement"),
    ],
)
def test_entitlements(
    demand: list[float], capacity: float, config: dict[str, CommunityConfig], want: list[float]
) -> None:
    rows = np.array([demand], dtype=np.float64)
    got = metrics.entitlements(rows, capacity, ("a", "b", "c")[: len(demand)], config)
    assert got[0].tolist() == pytest.approx(want)


def test_entitlements_equal_the_cores_water_filling() -> None:
    rng = random.Random(4)
    names = ("a", "b", "c", "d", "e")
    for _ in range(200):
        config = {
            name: CommunityConfig(
                weight=rng.choice([0.5, 1, 2, 3]),
                guaranteed_gpus=rng.choice([0, 0, 4, 16]),
                max_gpus=rng.choice([None, None, 8, 40]),
            )
            for name in names
        }
        demand = [float(rng.choice([0, 1, 3, 10, 50])) for _ in names]
        capacity = rng.choice([8, 30, 64])
        ours = metrics.entitlements(np.array([demand]), capacity, names, config)[0]
        communities = [
            Community(n, c.weight, c.guaranteed_gpus, c.max_gpus) for n, c in config.items()
        ]
        theirs = core_entitlements(
            communities, dict(zip(names, demand, strict=True)), capacity, Policy()
        )
        assert ours.tolist() == pytest.approx([theirs[n] for n in names], abs=1e-6)


def test_waits_are_summarised_per_pool_and_per_community() -> None:
    result = replay_of(TIMELINE, 4, {"x": [0, 10, 20, 30], "y": [100]})
    summary = metrics.wait_summary(result)
    assert summary["wait_p50_s"] == 20
    assert summary["wait_p95_s"] == pytest.approx(30 + 0.8 * 70)  # between 30 and 100
    assert summary["wait_mean_s"] == 32
    assert summary["per_community"] == {
        "x": {"jobs": 4, "wait_p50_s": 15, "wait_p95_s": pytest.approx(28.5), "wait_mean_s": 15},
        "y": {"jobs": 1, "wait_p50_s": 100, "wait_p95_s": 100, "wait_mean_s": 100},
    }


def test_sharing_incentive_compares_mean_waits_with_the_partition() -> None:
    shared = replay_of(TIMELINE, 4, {"x": [5, 5], "y": [10], "z": [0]})
    private = replay_of(TIMELINE, 4, {"x": [0, 20], "y": [9], "z": [0]})
    fraction, verdict = metrics.sharing_incentive(shared, private)
    # x: 5 <= 10 yes; y: 10 > 9 no; z: 0 <= 0 yes (no worse is enough)
    assert verdict == {"x": True, "y": False, "z": True}
    assert fraction == pytest.approx(2 / 3)


def test_sharing_incentive_within_grace_tolerates_one_grace_period_only() -> None:
    shared = replay_of(TIMELINE, 4, {"x": [5, 5], "y": [10], "z": [3]})
    private = replay_of(TIMELINE, 4, {"x": [0, 0], "y": [9], "z": [0]})
    assert metrics.sharing_incentive(shared, private)[0] == 0.0
    # x: 5 <= 0 + 5 yes; y: 10 <= 9 + 5 yes; z: 3 <= 0 + 5 yes
    assert metrics.sharing_incentive(shared, private, 5.0) == (
        1.0,
        {"x": True, "y": True, "z": True},
    )
    # x: 5 > 0 + 4 no; y: 10 <= 13 yes; z: 3 <= 4 yes
    fraction, verdict = metrics.sharing_incentive(shared, private, 4.0)
    assert verdict == {"x": False, "y": True, "z": True}
    assert fraction == pytest.approx(2 / 3)
    # the summary reports both fractions (two communities, as the timeline has)
    shared = replay_of(TIMELINE, 4, {"x": [5, 5], "y": [10]})
    private = replay_of(TIMELINE, 4, {"x": [0, 0], "y": [9]})
    entry = metrics.summary(shared, private, {}, 4.0)
    assert entry["sharing_incentive_fraction"] == 0.0
    assert entry["sharing_incentive_grace_fraction"] == 0.5
    per = entry["per_community"]
    assert isinstance(per, dict)
    assert [per[n]["no_worse_within_grace"] for n in "xy"] == [False, True]


def test_a_job_the_partition_cannot_run_counts_as_never_served_there() -> None:
    shared = replay_of(TIMELINE, 4, {"x": [0, 30]})
    # x-1 was too large for x's slice: waited from 0 to the end of the replay (40 s)
    private = replay_of(TIMELINE, 4, {"x": [1]}, never={"x": 1})
    assert metrics.waits(private) == {"x": [1, 40]}
    fraction, verdict = metrics.sharing_incentive(shared, private)
    assert (fraction, verdict) == (1.0, {"x": True})  # 15 <= 20.5, on the same two jobs
    assert metrics.completion(private)["jct_p95_s"] == pytest.approx(2 + 0.95 * 38)


def test_churn_counts_restarts_and_the_gpu_time_lost() -> None:
    result = replay_of(TIMELINE, 4, {"x": [0, 0, 0, 0]})
    result.jobs[0].restarts, result.jobs[0].lost_gpu_s = 3, 2.0
    result.jobs[1].restarts = 1
    assert metrics.churn(result) == {
        "restarted_jobs": 2,
        "preempted_job_fraction": 0.5,
        "max_restarts": 3,
        "restarts_p99": pytest.approx(3 - 0.03 * 2),
        "gpu_time_lost_fraction": pytest.approx(2 / (4 + 2)),  # four 1-GPU jobs of 1 s
    }
