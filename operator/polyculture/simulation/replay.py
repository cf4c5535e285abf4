"""The virtual-time event loop: a trace replayed on a pool through one scheduling policy.

Time jumps from event to event; nothing happens between them. Events are job arrivals, job
completions and, for policies that preempt after a minimum runtime, the moment a running job
becomes preemptible. All events at the same instant form one batch, and the policy runs one
scheduling cycle per batch that changed something (not one per second): the pool state is
kept incrementally (free GPUs per node, running jobs, per-community queues in arrival order)
so a cycle costs what the policy costs, not a rebuild.

A cycle returns preemptions and admissions. Preemptions are applied first (their GPUs are
free for the admissions of the same cycle). What a preemption costs:

- **lost work**: a job saves a checkpoint every ``checkpoint_interval_s`` seconds of work
  (0: continuously); a preempted job keeps the work up to its last checkpoint and redoes the
  rest. It keeps its place in its community's queue (its arrival time).
- **restart cost**: every attempt after the first spends ``restart_cost_s`` seconds on its
  GPUs reloading before it makes progress.
- **grace period**: a victim gets ``grace_s`` seconds to stop, so a job admitted on GPUs a
  preemption freed in the same cycle (the preemptor, or anything placed on a victim's node)
  and a moved job start ``grace_s`` after the cycle; their GPUs are held, idle, meanwhile.
- a consolidation **move** is a preemption followed by an admission of the same job: it
  pays all three.

A job's *lost GPU-seconds* are the GPU-seconds it held without making progress it kept:
work redone, restart cost, and GPUs held idle waiting for a grace period. When a cycle
preempted, another cycle runs at once (at most ``_MAX_CYCLES_PER_BATCH`` per batch) so that
GPUs freed by preemption are not left idle until the next event.

Jobs that can never start — larger than every place that could hold them: the pool, or
under ``partition`` the community's private slice, judged by gang shape on its nodes — are
set aside in ``Replay.unplaceable``; the measures count them as never served.

The replay records, after every batch, the GPUs allocated to and demanded by each community
(a step function of time); :mod:`polyculture.simulation.metrics` reads it.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from polyculture.simulation.trace import Trace, TraceJob, gang_shape

_MAX_CYCLES_PER_BATCH = 4


class SimulationError(RuntimeError):
    """A policy returned a decision the pool cannot carry out (a bug in the policy)."""


@dataclass(frozen=True, slots=True)
class PoolNode:
    """A node of the simulated pool; ``partition`` names the community owning it privately."""

    name: str
    owner: str
    gpus: int
    partition: str | None = None


@dataclass(slots=True, eq=False)
class JobState:
    """A trace job as the replay sees it. Identity equality: one object per job."""

    job: TraceJob
    workers: int
    gpus_per_worker: int
    #: seconds of work left (its last checkpoint's progress is already taken off)
    remaining: float
    queued_since: float
    waited: float = 0.0
    first_start: float | None = None
    #: when the current attempt starts running (after any grace period it waits for)
    started: float = 0.0
    placement: tuple[int, ...] = ()
    attempt: int = 0
    finished: float | None = None
    #: when the current attempt was admitted (its GPUs held from then on)
    admitted: float = 0.0
    #: seconds of the current attempt spent reloading before any progress
    overhead: float = 0.0
    #: times preempted or moved
    restarts: int = 0
    #: GPU-seconds held without progress kept (redone work, restart cost, idle in grace)
    lost_gpu_s: float = 0.0

    @property
    def order(self) -> tuple[float, str]:
        """Queue order within a community: arrival, then key."""
        return (self.job.arrival, self.job.key)


@dataclass(slots=True)
class Cycle:
    """What a policy decided in one cycle: jobs to stop, then jobs to start on node indices."""

    preemptions: list[JobState] = field(default_factory=list)
    admissions: list[tuple[JobState, tuple[int, ...]]] = field(default_factory=list)


@dataclass(slots=True)
class PoolState:
    """The pool at the current instant, kept up to date by the replay (policies only read it).

    ``pending[c]`` is community ``c``'s queue sorted by :attr:`JobState.order`; ``running``
    is in start order; ``allocated`` and ``pending_gpus`` are per community in the order of
    ``communities``.
    """

    nodes: tuple[PoolNode, ...]
    communities: tuple[str, ...]
    free: list[int]
    running: dict[str, JobState]
    pending: dict[str, list[JobState]]
    allocated: list[int]
    pending_gpus: list[int]
    usage: list[float]
    index: dict[str, int]
    #: the same queues split by gang shape (workers, GPUs per worker), each in queue order
    by_shape: dict[str, dict[tuple[int, int], list[JobState]]] = field(default_factory=dict)
    #: when a policy sets it to a list, every start and stop is appended as (started?, job)
    #: so that the policy can mirror the running set incrementally (it clears what it read)
    journal: list[tuple[bool, JobState]] | None = None

    @property
    def capacity(self) -> int:
        return sum(node.gpus for node in self.nodes)

    def pending_count(self) -> int:
        return sum(len(queue) for queue in self.pending.values())


class Policy(Protocol):
    """A scheduling policy: one cycle over the pool state at virtual time ``now``."""

    name: str
    #: seconds a job must run before it may be preempted; None when the policy never preempts
    preemptible_after_s: float | None
    #: seconds a queued job waits before it may preempt others; None when it need not wait
    patience_s: float | None
    #: the same within its community's nominal share (a shorter wait, or None)
    reclaim_patience_s: float | None

    def cycle(self, state: PoolState, now: float) -> Cycle: ...

    def protected_s(self, jobstate: JobState) -> float | None:
        """Seconds after its start that ``jobstate`` becomes preemptible (None: never)."""
        ...


@dataclass(frozen=True, slots=True)
class Timeline:
    """Allocation and demand per community as step functions of time.

    Row ``i`` holds from ``times[i]`` to ``times[i + 1]`` (the last row to ``end``);
    ``allocated[i][c]`` / ``pending[i][c]`` are GPUs of community ``c`` running / queued.
    """

    times: list[float]
    allocated: list[tuple[int, ...]]
    pending: list[tuple[int, ...]]
    end: float


@dataclass(frozen=True, slots=True)
class Replay:
    """The outcome of one replay: every job's final state, the timeline and counters."""

    policy: str
    communities: tuple[str, ...]
    capacity: int
    jobs: tuple[JobState, ...]
    timeline: Timeline
    preemptions: int
    cycles: int
    #: jobs that can never start on this pool (larger than any place that could hold them)
    unplaceable: tuple[JobState, ...] = ()


def build_pool(gpus: int, *, node_gpus: int = 8, owners: int = 4) -> tuple[PoolNode, ...]:
    """``gpus`` GPUs in nodes of ``node_gpus`` (the last one smaller when it does not divide),
    contributed by ``owners`` owners in turn."""
    if gpus <= 0 or node_gpus <= 0:
        raise ValueError("a pool needs GPUs and nodes of at least one GPU")
    sizes = [node_gpus] * (gpus // node_gpus) + ([gpus % node_gpus] if gpus % node_gpus else [])
    return tuple(
        PoolNode(name=f"node-{i:04d}", owner=f"owner-{i % owners}", gpus=size)
        for i, size in enumerate(sizes)
    )


@dataclass(frozen=True, slots=True)
class Costs:
    """What a preemption costs (module docstring): seconds."""

    restart_s: float = 0.0
    checkpoint_interval_s: float = 0.0
    grace_s: float = 0.0


def fits_empty(nodes: Sequence[PoolNode], workers: int, per_worker: int) -> bool:
    """Whether a gang of ``workers`` × ``per_worker`` GPUs fits ``nodes`` when they are empty."""
    return sum(node.gpus // per_worker for node in nodes) >= workers


def replay(
    trace: Trace,
    nodes: Sequence[PoolNode],
    policy: Policy,
    *,
    node_gpus: int = 8,
    restart_cost_s: float = 0.0,
    usage_half_life_s: float = 7 * 86400.0,
    checkpoint_interval_s: float = 0.0,
    grace_s: float = 0.0,
    observe: Callable[[float, PoolState], None] | None = None,
) -> Replay:
    """Replay ``trace`` on ``nodes`` under ``policy`` until every job that can run has finished.

    A job that fits no place it may use — the pool, or the nodes whose ``partition`` is its
    community when the pool is partitioned — is set aside as unplaceable instead of waiting
    forever. ``observe`` is called after every batch with the time and the pool state.
    """
    costs = Costs(restart_cost_s, checkpoint_interval_s, grace_s)
    communities = trace.communities
    index = {name: i for i, name in enumerate(communities)}
    state = PoolState(
        nodes=tuple(nodes),
        communities=communities,
        free=[node.gpus for node in nodes],
        running={},
        pending={name: [] for name in communities},
        allocated=[0] * len(communities),
        pending_gpus=[0] * len(communities),
        usage=[0.0] * len(communities),
        index=index,
    )
    capacity = state.capacity
    jobs, unplaceable = _admissible(trace, nodes, node_gpus)

    # completion heap: (finish, sequence, job, attempt); stale entries (preempted) are skipped
    completions: list[tuple[float, int, JobState, int]] = []
    wakeups: list[float] = []
    sequence = 0
    arrivals = jobs
    next_arrival = 0
    times: list[float] = []
    allocated_rows: list[tuple[int, ...]] = []
    pending_rows: list[tuple[int, ...]] = []
    preemptions = cycles = 0
    last = 0.0
    half_life = usage_half_life_s

    while next_arrival < len(arrivals) or completions:
        now = math.inf
        if next_arrival < len(arrivals):
            now = arrivals[next_arrival].job.arrival
        if completions and completions[0][0] < now:
            now = completions[0][0]
        if wakeups and wakeups[0] < now:
            now = wakeups[0]
        if half_life > 0 and now > last:
            kept = 0.5 ** ((now - last) / half_life)
            gained = (1.0 - kept) * half_life / math.log(2)
            state.usage = [
                u * kept + a * gained for u, a in zip(state.usage, state.allocated, strict=True)
            ]
        last = now
        changed = False
        while wakeups and wakeups[0] <= now:
            heapq.heappop(wakeups)
            changed = True
        while next_arrival < len(arrivals) and arrivals[next_arrival].job.arrival <= now:
            jobstate = arrivals[next_arrival]
            next_arrival += 1
            _enqueue(state, jobstate)
            _wake_after_patience(wakeups, policy, now)
            changed = True
        while completions and completions[0][0] <= now:
            _, _, jobstate, attempt = heapq.heappop(completions)
            if attempt != jobstate.attempt or jobstate.job.key not in state.running:
                continue
            _release(state, jobstate)
            # held idle in a grace period, then reloading: the rest was progress
            idle = jobstate.started - jobstate.admitted + jobstate.overhead
            jobstate.lost_gpu_s += jobstate.job.gpus * idle
            jobstate.remaining = 0.0
            jobstate.finished = now
            changed = True

        for _ in range(_MAX_CYCLES_PER_BATCH):
            if not changed or not any(state.pending.values()):
                break
            if policy.preemptible_after_s is None and not any(state.free):
                break
            decided = policy.cycle(state, now)
            cycles += 1
            changed = bool(decided.preemptions)
            # GPUs (and jobs) that wait for a victim's grace period before anything starts
            held: set[int] = set()
            stopped: set[str] = set()
            for victim in decided.preemptions:
                if state.running.get(victim.job.key) is not victim:
                    raise SimulationError(f"{policy.name}: preempts {victim.job.key}, not running")
                _release(state, victim)
                _preempted(victim, now, costs)
                held.update(victim.placement)
                stopped.add(victim.job.key)
                _enqueue(state, victim)
                _wake_after_patience(wakeups, policy, now)
                preemptions += 1
            for jobstate, placement in decided.admissions:
                waits = jobstate.job.key in stopped or not held.isdisjoint(placement)
                start = now + costs.grace_s if waits else now
                _start(state, jobstate, placement, now, start, policy.name)
                jobstate.overhead = costs.restart_s if jobstate.restarts else 0.0
                sequence += 1
                finish = start + jobstate.overhead + jobstate.remaining
                heapq.heappush(completions, (finish, sequence, jobstate, jobstate.attempt))
                protected = policy.protected_s(jobstate)
                if protected:
                    heapq.heappush(wakeups, start + protected)

        if observe is not None:
            observe(now, state)
        times.append(now)
        allocated_rows.append(tuple(state.allocated))
        pending_rows.append(tuple(state.pending_gpus))

    return Replay(
        policy=policy.name,
        communities=communities,
        capacity=capacity,
        jobs=tuple(jobs),
        timeline=Timeline(times, allocated_rows, pending_rows, end=last),
        preemptions=preemptions,
        cycles=cycles,
        unplaceable=tuple(unplaceable),
    )


def _wake_after_patience(wakeups: list[float], policy: Policy, now: float) -> None:
    """Cycle again when a job queued at ``now`` may preempt (either delay)."""
    for patience in {policy.patience_s, policy.reclaim_patience_s}:
        if patience:
            heapq.heappush(wakeups, now + patience)


def _admissible(
    trace: Trace, nodes: Sequence[PoolNode], node_gpus: int
) -> tuple[list[JobState], list[JobState]]:
    """The jobs that can ever start on ``nodes`` (by gang shape), and those that cannot."""
    private: dict[str, list[PoolNode]] = {}
    for node in nodes:
        if node.partition is not None:
            private.setdefault(node.partition, []).append(node)
    jobs: list[JobState] = []
    unplaceable: list[JobState] = []
    verdicts: dict[tuple[str | None, int, int], bool] = {}
    for job in trace.jobs:
        workers, per_worker = gang_shape(job.gpus, node_gpus)
        jobstate = JobState(job, workers, per_worker, job.duration, queued_since=job.arrival)
        where = job.community if private else None
        fits = verdicts.get((where, workers, per_worker))
        if fits is None:
            usable = nodes if where is None else private.get(where, [])
            fits = verdicts[(where, workers, per_worker)] = fits_empty(usable, workers, per_worker)
        (jobs if fits else unplaceable).append(jobstate)
    return jobs, unplaceable


def _preempted(victim: JobState, now: float, costs: Costs) -> None:
    """Charge ``victim`` what stopping it at ``now`` costs; it keeps its last checkpoint."""
    progress = max(0.0, now - victim.started - victim.overhead)
    interval = costs.checkpoint_interval_s
    kept = progress if interval <= 0 else math.floor(progress / interval) * interval
    kept = min(kept, victim.remaining)
    victim.remaining -= kept
    victim.lost_gpu_s += victim.job.gpus * (now - victim.admitted - kept)
    victim.restarts += 1
    victim.queued_since = now


def _insert(queue: list[JobState], jobstate: JobState) -> None:
    if not queue or queue[-1].order < jobstate.order:
        queue.append(jobstate)
    else:
        keys = [queued.order for queued in queue]
        queue.insert(bisect.bisect(keys, jobstate.order), jobstate)


def _enqueue(state: PoolState, jobstate: JobState) -> None:
    _insert(state.pending[jobstate.job.community], jobstate)
    shapes = state.by_shape.setdefault(jobstate.job.community, {})
    _insert(shapes.setdefault((jobstate.workers, jobstate.gpus_per_worker), []), jobstate)
    state.pending_gpus[state.index[jobstate.job.community]] += jobstate.job.gpus


def _start(
    state: PoolState,
    jobstate: JobState,
    placement: tuple[int, ...],
    now: float,
    start: float,
    policy: str,
) -> None:
    """Hold ``placement`` for ``jobstate`` from ``now``; it runs from ``start``."""
    queue = state.pending[jobstate.job.community]
    if len(placement) != jobstate.workers:
        raise SimulationError(f"{policy}: {jobstate.job.key} placed on {len(placement)} nodes")
    try:
        queue.remove(jobstate)
    except ValueError:
        raise SimulationError(
            f"{policy}: admits {jobstate.job.key}, which is not pending"
        ) from None
    shape = (jobstate.workers, jobstate.gpus_per_worker)
    state.by_shape[jobstate.job.community][shape].remove(jobstate)
    for node in placement:
        state.free[node] -= jobstate.gpus_per_worker
        if state.free[node] < 0:
            raise SimulationError(f"{policy}: over-allocates {state.nodes[node].name}")
    slot = state.index[jobstate.job.community]
    state.pending_gpus[slot] -= jobstate.job.gpus
    state.allocated[slot] += jobstate.job.gpus
    jobstate.waited += start - jobstate.queued_since
    if jobstate.first_start is None:
        jobstate.first_start = start
    jobstate.started = start
    jobstate.admitted = now
    jobstate.placement = placement
    jobstate.attempt += 1
    state.running[jobstate.job.key] = jobstate
    if state.journal is not None:
        state.journal.append((True, jobstate))


def _release(state: PoolState, jobstate: JobState) -> None:
    del state.running[jobstate.job.key]
    if state.journal is not None:
        state.journal.append((False, jobstate))
    for node in jobstate.placement:
        state.free[node] += jobstate.gpus_per_worker
    state.allocated[state.index[jobstate.job.community]] -= jobstate.job.gpus
