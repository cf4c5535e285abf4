"""The ``fair`` policy (the scheduling core) in the replay, against first come first served.

Covers: a community arriving behind another's backlog goes first under fair share (at once
with preemption, at the next free GPUs without), a preempted job resumes from its last
checkpoint plus the restart cost, and the queue prefix the core is shown changes no decision
(at the simulator's default costs and minimum runtime).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import polyculture.simulation.fair as fair_module
from polyculture.simulation.baselines import FifoPolicy
from polyculture.simulation.fair import FairPolicy
from polyculture.simulation.replay import Cycle, JobState, PoolState, Replay, build_pool, replay
from polyculture.simulation.trace import Trace, TraceJob, load_philly

PHILLY = Path(__file__).resolve().parent / "data" / "philly-head.csv"

# x floods a 4-GPU node with eight 100 s jobs; y brings one 10 s job at t=10
BACKLOG = (
    *[("x", 0.0, 100.0, 1)] * 4,
    *[("x", 1.0, 100.0, 1)] * 4,
    ("y", 10.0, 10.0, 1),
)


def trace_of(*jobs: tuple[str, float, float, int]) -> Trace:
    built = tuple(
        TraceJob(f"j{i}", community, arrival, duration, gpus)
        for i, (community, arrival, duration, gpus) in enumerate(jobs)
    )
    return Trace(jobs=built, communities=tuple(sorted({j.community for j in built})))


def job(result: Replay, key: str) -> JobState:
    return next(j for j in result.jobs if j.job.key == key)


def test_fifo_makes_a_newcomer_wait_behind_the_whole_backlog() -> None:
    nodes = build_pool(4, node_gpus=4)
    result = replay(trace_of(*BACKLOG), nodes, FifoPolicy(nodes), node_gpus=4)
    assert job(result, "j8").waited == 190  # behind j4..j7, which start at 100 and end at 200


def test_fair_share_without_preemption_serves_the_newcomer_at_the_next_free_gpu() -> None:
    nodes = build_pool(4, node_gpus=4)
    policy = FairPolicy(nodes, {}, preemption=False)
    result = replay(trace_of(*BACKLOG), nodes, policy, node_gpus=4)
    assert job(result, "j8").waited == 90  # y is furthest below its share when j0..j3 end
    assert result.preemptions == 0


def test_fair_share_preempts_the_community_over_its_share_for_the_newcomer() -> None:
    nodes = build_pool(4, node_gpus=4)
    policy = FairPolicy(nodes, {}, preemption=True, min_runtime_s=0)
    result = replay(trace_of(*BACKLOG), nodes, policy, node_gpus=4, restart_cost_s=5)
    assert job(result, "j8").waited == 0
    assert result.preemptions == 1
    (victim,) = [j for j in result.jobs if j.attempt > 1]
    assert victim.job.community == "x"
    # ran 10 s, waited, then ran its remaining 90 s plus 5 s to restart from its checkpoint
    assert victim.finished is not None
    assert victim.finished - victim.started == pytest.approx(95)
    assert victim.waited == pytest.approx(victim.started - 10)


def test_the_preemptor_starts_after_the_grace_period_and_the_victim_redoes_its_work() -> None:
    nodes = build_pool(4, node_gpus=4)
    policy = FairPolicy(nodes, {}, preemption=True, min_runtime_s=0)
    result = replay(
        trace_of(*BACKLOG),
        nodes,
        policy,
        node_gpus=4,
        restart_cost_s=5,
        checkpoint_interval_s=4,
        grace_s=7,
    )
    newcomer = job(result, "j8")
    assert (newcomer.waited, newcomer.started) == (7, 17)  # its GPU frees once the victim stops
    (victim,) = [j for j in result.jobs if j.restarts]
    # preempted at 10 s with checkpoints at 4 and 8 s: 92 s of work left, 5 s to reload
    assert victim.finished is not None
    assert victim.finished - victim.started == pytest.approx(92 + 5)
    # 2 s redone, 5 s reloading, and the newcomer's GPU idle for 7 s
    assert victim.lost_gpu_s == pytest.approx(2 + 5)
    assert newcomer.lost_gpu_s == pytest.approx(7)


def test_minimum_runtime_defers_preemption_to_when_the_victim_may_stop() -> None:
    nodes = build_pool(4, node_gpus=4)
    policy = FairPolicy(nodes, {}, preemption=True, min_runtime_s=30)
    result = replay(trace_of(*BACKLOG), nodes, policy, node_gpus=4)
    assert job(result, "j8").waited == 20  # x's jobs become preemptible at 30
    assert result.preemptions == 1


@pytest.mark.parametrize(
    ("reclaim", "reservation"),
    [(True, False), (False, False), (True, True)],
    ids=["reclaim", "strict", "reservation"],
)
def test_the_queue_prefix_shown_to_the_core_changes_no_decision(
    monkeypatch: pytest.MonkeyPatch, reclaim: bool, reservation: bool
) -> None:
    trace = load_philly(PHILLY, limit=600)
    nodes = build_pool(48)

    def decisions() -> list[tuple[float, tuple[str, ...], tuple[tuple[str, tuple[int, ...]], ...]]]:
        # the simulator's defaults: 10 minutes' minimum runtime, checkpoints, grace period
        policy = FairPolicy(nodes, {}, reclaim=reclaim, min_runtime_s=600, reservation=reservation)
        seen = []
        decide = policy.cycle

        def recorded(state: PoolState, now: float) -> Cycle:
            cycle = decide(state, now)
            stopped = tuple(j.job.key for j in cycle.preemptions)
            started = tuple((j.job.key, placement) for j, placement in cycle.admissions)
            if stopped or started:
                seen.append((now, stopped, started))
            return cycle

        monkeypatch.setattr(policy, "cycle", recorded)
        result = replay(
            trace, nodes, policy, restart_cost_s=60, checkpoint_interval_s=1800, grace_s=120
        )
        assert result.preemptions > 0  # the cut is checked where preemption happens
        return seen

    pruned = decisions()
    # show the core every queued job, and never skip a cycle
    monkeypatch.setattr(fair_module, "_could_start", lambda *_: True)
    monkeypatch.setattr(fair_module, "_PREFIX_FACTOR", 10**9)
    assert decisions() == pruned


# x fills two 4-GPU nodes with 2-GPU jobs, one short job on each node ends at 10 s, and y
# brings a 4-GPU job at 15 s: 4 GPUs are free, but 2 on each node
SCATTERED = (
    ("x", 0.0, 100.0, 2),
    ("x", 0.0, 10.0, 2),
    ("x", 0.0, 10.0, 2),
    ("x", 0.0, 100.0, 2),
    ("y", 15.0, 10.0, 4),
)


@pytest.mark.parametrize("consolidation", [False, True])
def test_consolidation_moves_a_job_to_clear_a_node_for_a_gang(consolidation: bool) -> None:
    nodes = build_pool(8, node_gpus=4)
    policy = FairPolicy(nodes, {}, preemption=False, consolidation=consolidation)
    # z comes last: with three communities x's 4 GPUs are above its nominal share (8 / 3),
    # so its jobs may be moved
    trace = trace_of(*SCATTERED, ("z", 200.0, 1.0, 1))
    result = replay(trace, nodes, policy, node_gpus=4, restart_cost_s=5)
    scattered = [j for j in result.jobs if j.job.key in ("j1", "j2")]
    assert {j.placement for j in scattered} != {scattered[0].placement}  # one on each node
    if not consolidation:
        assert job(result, "j4").waited == 85  # until x's long jobs end at 100
        return
    assert job(result, "j4").waited == 0
    (moved,) = [j for j in result.jobs if j.attempt > 1]
    assert moved.job.community == "x" and moved.waited == 0
    # ran 15 s, then its remaining 85 s plus 5 s to restart, on the other node
    assert moved.finished == pytest.approx(105)
    assert result.preemptions == 1


@pytest.mark.parametrize(("limit", "restarts"), [(0, 3), (1, 1)], ids=["no limit", "limit 1"])
def test_a_restart_limit_stops_preemptions_of_a_job_restarted_that_often(
    limit: int, restarts: int
) -> None:
    # x runs one 4-GPU job of 1,000 s; y brings a 5 s job at 10, 30 and 50 s
    trace = trace_of(("x", 0.0, 1000.0, 4), *[("y", t, 5.0, 1) for t in (10.0, 30.0, 50.0)])
    nodes = build_pool(4, node_gpus=4)
    # the core is told each job's restarts (victim costs), as under simulate's defaults
    policy = FairPolicy(
        nodes, {}, preemption=True, min_runtime_s=0, restart_limit=limit, victim_costs=True
    )
    result = replay(trace, nodes, policy, node_gpus=4)
    assert job(result, "j0").restarts == restarts
    assert result.preemptions == restarts
    # once at the limit, y waits for x's job to end
    late = [job(result, f"j{i}").waited for i in (1, 2, 3)]
    assert (max(late) > 900) == (limit == 1)
