"""The ``fair`` policy: the pool's own scheduling core (:func:`polyculture.scheduling.schedule`).

Each cycle builds a :class:`~polyculture.scheduling.snapshot.Snapshot` from the replay's pool
state and applies the core's decisions unchanged. The snapshot is built incrementally: nodes
and each job's :class:`Workload` are made once, a :class:`Running` once per start, so a cycle
costs the core's time plus a few tuple copies.

What the core sees of each queue is a prefix, and the reason it is exact: in one cycle the
core can hand out at most ``B = free GPUs + sum over communities of max(0, entitled -
allocated)`` GPUs (what is free, plus what preemption may take back for communities below
their entitlement), entitlements being water-filled over the *full* demand. Each community's
queue is cut after the first jobs that hold ``2 B`` GPUs in jobs no larger than ``B`` (a
larger job cannot start this cycle): that keeps every community's demand at or above its
entitlement — so the core computes the same entitlements as on the full queues — and leaves
more startable jobs than the cycle can start, with room for jobs skipped because the free
GPUs are split across nodes. When ``B`` is 0 nothing can start or be preempted, and the
cycle is skipped without calling the core. A queue of thousands of jobs thus costs the core
a few dozen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from polyculture.scheduling import schedule
from polyculture.scheduling.entitlement import entitlements
from polyculture.scheduling.snapshot import Community, Node, Running, Snapshot, Workload
from polyculture.scheduling.snapshot import Policy as CorePolicy
from polyculture.simulation.replay import Cycle, JobState, PoolNode, PoolState, SimulationError
from polyculture.simulation.trace import CommunityConfig

_GPU_CLASS = "gpu"


class FairPolicy:
    """The fair-share core under ``basis="weight"``, with or without preemption."""

    name = "fair"

    def __init__(
        self,
        nodes: Sequence[PoolNode],
        config: Mapping[str, CommunityConfig],
        *,
        preemption: bool = True,
        min_runtime_s: float = 0.0,
    ) -> None:
        self._nodes = tuple(Node(n.name, n.owner, _GPU_CLASS, n.gpus) for n in nodes)
        self._node_index = {node.name: i for i, node in enumerate(nodes)}
        self._config = config
        self._policy = CorePolicy(
            basis="weight", preemption=preemption, min_runtime_s=min_runtime_s
        )
        self.preemptible_after_s: float | None = min_runtime_s if preemption else None
        self._workloads: dict[str, Workload] = {}
        self._running: dict[str, tuple[int, Running]] = {}
        self.core_calls = 0
        self.core_pending = 0

    def _workload(self, jobstate: JobState) -> Workload:
        workload = self._workloads.get(jobstate.job.key)
        if workload is None:
            workload = Workload(
                key=jobstate.job.key,
                community=jobstate.job.community,
                workers=jobstate.workers,
                gpus_per_worker=jobstate.gpus_per_worker,
                created=jobstate.job.arrival,
            )
            self._workloads[jobstate.job.key] = workload
        return workload

    def _running_of(self, jobstate: JobState) -> Running:
        cached = self._running.get(jobstate.job.key)
        if cached is not None and cached[0] == jobstate.attempt:
            return cached[1]
        running = Running(
            workload=self._workload(jobstate),
            placement=tuple(self._nodes[i].name for i in jobstate.placement),
            started=jobstate.started,
        )
        self._running[jobstate.job.key] = (jobstate.attempt, running)
        return running

    def cycle(self, state: PoolState, now: float) -> Cycle:
        communities = tuple(
            Community(
                name=name,
                weight=self._config.get(name, CommunityConfig()).weight,
                guaranteed_gpus=self._config.get(name, CommunityConfig()).guaranteed_gpus,
                max_gpus=self._config.get(name, CommunityConfig()).max_gpus,
                usage_gpu_seconds=state.usage[i],
            )
            for i, name in enumerate(state.communities)
        )
        demand = {
            name: float(state.allocated[i] + state.pending_gpus[i])
            for i, name in enumerate(state.communities)
        }
        entitled = entitlements(communities, demand, float(state.capacity), self._policy)
        budget = sum(state.free)
        if self._policy.preemption:
            budget += sum(
                max(0.0, entitled[name] - state.allocated[i])
                for i, name in enumerate(state.communities)
            )
        reach = math.ceil(budget - 1e-9)
        if reach <= 0:
            return Cycle()
        pending: list[Workload] = []
        shown: dict[str, JobState] = {}
        for queue in state.pending.values():
            held = 0
            for jobstate in queue:
                if held >= 2 * reach:
                    break
                pending.append(self._workload(jobstate))
                shown[jobstate.job.key] = jobstate
                if jobstate.job.gpus <= reach:
                    held += jobstate.job.gpus
        snapshot = Snapshot(
            nodes=self._nodes,
            communities=communities,
            running=tuple(self._running_of(j) for j in state.running.values()),
            pending=tuple(pending),
            now=now,
            policy=self._policy,
        )
        decisions = schedule(snapshot)
        self.core_calls += 1
        self.core_pending += len(pending)
        cycle = Cycle()
        for preemption in decisions.preemptions:
            key = preemption.running.workload.key
            victim = state.running.get(key)
            if victim is None:
                raise SimulationError(f"fair: preempts {key}, which is not running")
            cycle.preemptions.append(victim)
        for admission in decisions.admissions:
            jobstate = shown.get(admission.workload.key)
            if jobstate is None:
                raise SimulationError(f"fair: admits {admission.workload.key}, not pending")
            placement = tuple(self._node_index[name] for name in admission.placement)
            cycle.admissions.append((jobstate, placement))
        return cycle
