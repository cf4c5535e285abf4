"""The replay loop and the two baselines, on traces small enough to check by hand.

Covers: best-effort first come first served (order, skipping a head that does not fit, waits),
best-fit placement, private partitions (slices, nodes, jobs too large for a slice), and the
timeline the replay records.
"""

from __future__ import annotations

import pytest

from polyculture.simulation.baselines import (
    FifoPolicy,
    PartitionPolicy,
    best_fit,
    partition_pool,
    partition_slices,
)
from polyculture.simulation.replay import Replay, build_pool, replay
from polyculture.simulation.trace import Trace, TraceJob


def trace_of(*jobs: tuple[str, float, float, int]) -> Trace:
    """Jobs as (community, arrival, duration, GPUs), keyed j0, j1, ... in the given order."""
    built = tuple(
        TraceJob(f"j{i}", community, arrival, duration, gpus)
        for i, (community, arrival, duration, gpus) in enumerate(jobs)
    )
    return Trace(jobs=built, communities=tuple(sorted({j.community for j in built})))


def waits(result: Replay) -> dict[str, float]:
    return {jobstate.job.key: jobstate.waited for jobstate in result.jobs}


def test_fifo_runs_jobs_in_arrival_order_across_communities() -> None:
    trace = trace_of(
        ("x", 0, 100, 4),  # j0 fills the node until 100
        ("x", 10, 50, 2),  # j1 starts at 100
        ("y", 20, 50, 2),  # j2 starts at 100 beside j1
        ("y", 30, 10, 4),  # j3 needs the whole node: 150
        ("x", 40, 10, 1),  # j4 came after j3, so it waits for j3 to finish: 160
    )
    nodes = build_pool(4, node_gpus=4)
    result = replay(trace, nodes, FifoPolicy(nodes), node_gpus=4)
    assert waits(result) == {"j0": 0, "j1": 90, "j2": 80, "j3": 120, "j4": 120}
    assert result.preemptions == 0
    assert result.timeline.end == 170  # j4 runs 160..170


def test_fifo_does_not_let_a_head_that_does_not_fit_block_smaller_jobs() -> None:
    trace = trace_of(("x", 0, 100, 3), ("x", 1, 10, 2), ("y", 2, 10, 1))
    nodes = build_pool(4, node_gpus=4)
    result = replay(trace, nodes, FifoPolicy(nodes), node_gpus=4)
    assert waits(result) == {"j0": 0, "j1": 99, "j2": 0}


def test_the_timeline_holds_allocation_and_queue_per_community() -> None:
    trace = trace_of(("x", 0, 10, 2), ("y", 5, 10, 2))
    nodes = build_pool(2, node_gpus=2)
    timeline = replay(trace, nodes, FifoPolicy(nodes), node_gpus=2).timeline
    assert timeline.times == [0, 5, 10, 20]
    assert timeline.allocated == [(2, 0), (2, 0), (0, 2), (0, 0)]
    assert timeline.pending == [(0, 0), (0, 2), (0, 0), (0, 0)]
    assert timeline.end == 20


@pytest.mark.parametrize(
    ("free", "workers", "per_worker", "want"),
    [
        pytest.param([8, 2, 4], 1, 2, [1], id="takes the tightest node that holds the worker"),
        pytest.param([8, 2, 4], 1, 3, [2], id="skips nodes too small"),
        pytest.param([8, 8, 3], 2, 8, [0, 1], id="spreads a gang of full nodes"),
        pytest.param([8, 7, 8], 2, 8, [0, 2], id="a gang of full nodes needs whole nodes"),
        pytest.param([4, 0], 2, 2, [0, 0], id="two small workers may share a node"),
        pytest.param([8, 7], 2, 8, [], id="a gang is whole or absent"),
    ],
)
def test_best_fit(free: list[int], workers: int, per_worker: int, want: list[int]) -> None:
    before = list(free)
    assert best_fit(free, range(len(free)), workers, per_worker) == want
    assert free == before  # a proposal, not an allocation


@pytest.mark.parametrize(
    ("capacity", "weights", "minimum", "want"),
    [
        pytest.param(10, {"a": 1, "b": 1, "c": 1}, {}, {"a": 4, "b": 3, "c": 3}, id="equal"),
        pytest.param(10, {"a": 2, "b": 1}, {}, {"a": 7, "b": 3}, id="by weight"),
        pytest.param(10, {"a": 2, "b": 1}, {"b": 5}, {"a": 5, "b": 5}, id="guarantee first"),
        pytest.param(
            600,
            {str(i): 1 for i in range(15)},
            {},
            {str(i): 40 for i in range(15)},
            id="Philly on 600 GPUs is 40 each",
        ),
    ],
)
def test_partition_slices(
    capacity: int, weights: dict[str, float], minimum: dict[str, int], want: dict[str, int]
) -> None:
    assert partition_slices(capacity, weights, minimum=minimum) == want


def test_partition_pool_builds_private_nodes_per_slice() -> None:
    nodes = partition_pool({"a": 12, "b": 8}, node_gpus=8)
    assert [(n.partition, n.gpus) for n in nodes] == [("a", 8), ("a", 4), ("b", 8)]


def test_partition_keeps_idle_gpus_private_and_sets_aside_jobs_too_large() -> None:
    trace = trace_of(("x", 0, 100, 4), ("x", 1, 10, 1), ("x", 2, 10, 6), ("y", 50, 10, 4))
    slices = partition_slices(8, {"x": 1, "y": 1})
    nodes = partition_pool(slices, node_gpus=8)
    result = replay(trace, nodes, PartitionPolicy(nodes))
    # j1 waits for x's four GPUs although y's four sit idle until 50
    assert waits(result) == {"j0": 0, "j1": 99, "j3": 0}
    assert [j.job.key for j in result.unplaceable] == ["j2"]
    shared = build_pool(8)
    fifo = replay(trace, shared, FifoPolicy(shared))
    # shared, j1 starts at once; j2 (6 GPUs) waits for j0, and y's j3 backfills meanwhile
    assert waits(fifo) == {"j0": 0, "j1": 0, "j2": 98, "j3": 0}


def test_a_slice_holds_a_gang_only_by_its_shape() -> None:
    # x's slice of 12 GPUs is a node of 8 and one of 4: 8 GPUs fit, 12 (2 × 6) do not
    trace = trace_of(("x", 0, 10, 8), ("x", 0, 10, 12), ("y", 0, 10, 4))
    nodes = partition_pool({"x": 12, "y": 4}, node_gpus=8)
    result = replay(trace, nodes, PartitionPolicy(nodes))
    assert [j.job.key for j in result.unplaceable] == ["j1"]
    assert waits(result) == {"j0": 0, "j2": 0}
