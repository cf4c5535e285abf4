"""Regimes cut from a trace by stated rules: usage-proportional weights and a small co-op.

Covers: weights follow each community's GPU-seconds (at least 1) and guarantees are half
the weighted slice; the co-op keeps the middle communities of the GPU-time ranking, gangs
of at most half the pool, and samples to the offered load asked, deterministically.
"""

from __future__ import annotations

import pytest

from polyculture.simulation.regimes import coop_trace, gpu_seconds, usage_weights
from polyculture.simulation.trace import Trace, TraceJob


def trace_of(*jobs: tuple[str, float, float, int]) -> Trace:
    built = tuple(
        TraceJob(f"j{i}", community, arrival, duration, gpus)
        for i, (community, arrival, duration, gpus) in enumerate(jobs)
    )
    return Trace(jobs=built, communities=tuple(sorted({j.community for j in built})))


def test_usage_weights_follow_gpu_time_and_guarantee_half_the_slice() -> None:
    # a asks 300 GPU-s, b 100, c almost nothing
    trace = trace_of(("a", 0, 100, 3), ("b", 0, 100, 1), ("c", 0, 0.01, 1))
    config = usage_weights(trace, 100)
    assert {n: c.weight for n, c in config.items()} == {"a": 75.0, "b": 25.0, "c": 1.0}
    # slices of 100 GPUs by weight 75:25:1, half of each, whole GPUs
    assert {n: c.guaranteed_gpus for n, c in config.items()} == {"a": 37, "b": 12, "c": 0}


def test_coop_keeps_the_middle_communities_and_gangs_up_to_half_the_pool() -> None:
    jobs = [("big", float(i), 1000.0, 8) for i in range(10)]  # ranked first: skipped
    jobs += [("mid", float(i), 100.0, 2) for i in range(10)]
    jobs += [("mid", 5.0, 100.0, 16)]  # larger than half of 16 GPUs: dropped
    jobs += [("low", float(i), 10.0, 1) for i in range(10)]
    trace = trace_of(*jobs)
    coop = coop_trace(trace, gpus=16, communities=2, skip=1, load=100.0)
    assert coop.communities == ("low", "mid")
    assert max(j.gpus for j in coop.jobs) <= 8
    assert len(coop.jobs) == 20  # a load above what is offered keeps every job


def test_coop_samples_to_the_offered_load_deterministically() -> None:
    trace = trace_of(*[("x", float(i), 100.0, 1) for i in range(2000)])
    offered = gpu_seconds(trace)["x"] / (4 * 1999)  # 4 GPUs over the arrival span
    coop = coop_trace(trace, gpus=4, communities=1, skip=0, load=1.0)
    assert len(coop.jobs) == pytest.approx(2000 / offered, rel=0.1)
    assert coop.jobs == coop_trace(trace, gpus=4, communities=1, skip=0, load=1.0).jobs


def test_a_coop_without_jobs_says_why() -> None:
    with pytest.raises(ValueError, match="no jobs of at most 2 GPUs"):
        coop_trace(trace_of(("x", 0, 10, 8)), gpus=4, communities=1, skip=0)
