"""The ``fair`` policy: the pool's own scheduling core (:func:`polyculture.scheduling.schedule`).

Each cycle builds a :class:`~polyculture.scheduling.snapshot.Snapshot` from the replay's pool
state and applies the core's decisions unchanged. Consolidation is on unless turned off: a
workload the core moves is preempted (reason ``Consolidation``) and started again on its new
node once its grace period is over, paying what any preempted job pays (lost work, restart
cost). The core is told each running job's restarts and checkpoints (unless
``victim_costs`` is off) and a requeued job's ``waiting_since``. The snapshot is
built incrementally: nodes and each job's :class:`Workload` are made once, a
:class:`Running` once per start, so a cycle costs the core's time plus a few tuple copies.

What the core sees of each queue is a part of it. With entitlements water-filled over the *full*
demand, community ``c`` can start in one cycle only jobs no larger than ``S = free GPUs +
sum over communities above their entitlement of (surplus + largest running job)`` (free, or
left over by a victim larger than its preemptor: victims are taken from a community only
while it is above its entitlement, so at most its surplus plus one job) or no larger than
its own shortfall ``D_c`` below entitlement (preemption admits only a job that keeps its
community within entitlement; a community above its entitlement may become short by up to
its largest running job in the cycle, which ``D_c`` then counts), and at most ``S + D_c``
GPUs in all. It sees the head of each queue up to its shortfall — so every community's
demand stays at or above its entitlement and the core computes the same entitlements as on
the full queues — and, of each gang shape it could start (workers × GPUs per worker no
larger than ``S`` or ``D_c``), the first ``2 (S + D_c) / GPUs + 1`` jobs: more than it can
start of that shape, in the core's own order, so a job of that shape further back could
start only if one shown before it could not, though it is the same gang. (The replay keeps
each queue split by shape, so the cut costs no scan.) That the cut changes no decision is
checked on real jobs by the unit tests. A queue of thousands of jobs thus costs the core a
few dozen.

The cycle is skipped without calling the core when it provably decides nothing: no queued
job fits the free GPUs (in total, and — without consolidation, which can build a block from
scattered free GPUs — per worker in the largest free block of a node), and no queued job
could be admitted by preemption — the core preempts only for a job that keeps its community
within its entitlement, and only from a community above its own, so nothing is preempted
when nobody is above its entitlement or nobody is short of it by a whole job. A call that
would show the core what the last call, which decided nothing, was shown, apart from time
and usage it reads the same way, is skipped too (:mod:`polyculture.simulation.quiet`).

With ``reservation`` the core holds free GPUs for the first job (in its order) that waits for
room in an owed community; so that the cut cannot change who that is, the core also sees the
first job of each queue that the rules above leave out: the first job of a community that
waits is then always shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from polyculture.scheduling import schedule
from polyculture.scheduling.entitlement import entitlements, weights
from polyculture.scheduling.shares import nominal_shares
from polyculture.scheduling.snapshot import (
    Community,
    Node,
    Preemption,
    Running,
    Snapshot,
    Workload,
)
from polyculture.scheduling.snapshot import Policy as CorePolicy
from polyculture.simulation.breakdown import PreemptionLog
from polyculture.simulation.quiet import QuietCalls
from polyculture.simulation.replay import Cycle, JobState, PoolNode, PoolState, SimulationError
from polyculture.simulation.trace import CommunityConfig

_GPU_CLASS = "gpu"
_EPSILON = 1e-9
#: of each gang shape, a queue shows the core this many times the jobs the cycle could start
_PREFIX_FACTOR = 2


def _could_start(queue: Sequence[JobState], free: int, block: int, deficit: float) -> bool:
    """Whether a job of ``queue`` fits the free GPUs (``block``: the largest free on a node),
    or is no larger than its community's ``deficit`` below entitlement (preemption)."""
    if deficit < 1 and (free < 1 or block < 1):
        return False  # no job is that small: skip the scan of a long queue
    for jobstate in queue:
        gpus = jobstate.job.gpus
        if gpus <= deficit or (gpus <= free and jobstate.gpus_per_worker <= block):
            return True
    return False


class FairPolicy:
    """The fair-share core under ``basis="weight"``, with or without preemption/consolidation."""

    name = "fair"

    def __init__(
        self,
        nodes: Sequence[PoolNode],
        config: Mapping[str, CommunityConfig],
        *,
        preemption: bool = True,
        min_runtime_s: float = 0.0,
        consolidation: bool = True,
        reclaim: bool = True,
        restart_backoff: float = 1.0,
        preemption_delay_s: float = 0.0,
        reclaim_delay_s: float = 0.0,
        restart_limit: int = 0,
        reservation: bool = False,
        move_restarted_only: bool = False,
        spare_new: bool = False,
        checkpoint_interval_s: float = 0.0,
        victim_costs: bool = False,
    ) -> None:
        self._nodes = tuple(Node(n.name, n.owner, _GPU_CLASS, n.gpus) for n in nodes)
        self._node_index = {node.name: i for i, node in enumerate(nodes)}
        self._largest_node = max((node.gpus for node in nodes), default=0)
        self._config = config
        self._policy = CorePolicy(
            basis="weight",
            preemption=preemption,
            min_runtime_s=min_runtime_s,
            consolidation=consolidation,
            reclaim=reclaim,
            restart_backoff=restart_backoff,
            preemption_delay_s=preemption_delay_s,
            reclaim_delay_s=reclaim_delay_s,
            restart_limit=restart_limit,
            reservation=reservation,
            move_restarted_only=move_restarted_only,
            spare_new=spare_new,
        )
        #: whether the core is told each running job's restarts and checkpoints
        self._victim_costs = victim_costs
        self._checkpoint_interval_s = checkpoint_interval_s if victim_costs else 0.0
        # a job becomes preemptible or movable once it ran the minimum runtime
        moves = preemption or consolidation
        self.preemptible_after_s: float | None = min_runtime_s if moves else None
        self.patience_s: float | None = preemption_delay_s if moves else None
        self.reclaim_patience_s: float | None = (
            min(reclaim_delay_s, preemption_delay_s) if moves else None
        )
        self._workloads: dict[str, Workload] = {}
        self._live: dict[str, Running] = {}
        #: per community: GPUs of a running job -> how many of its running jobs have that many
        self._sizes: dict[str, dict[int, int]] = {}
        self.core_calls = 0
        #: the last core call while it decided nothing: the next may be recognised as quiet
        self.quiet = QuietCalls()
        #: the core's preemptions by reason, and by the reason of each job's first restart
        self.preemptions_by_reason: dict[str, int] = {}
        self.first_restarts_by_reason: dict[str, int] = {}
        #: the preemptions by cause, preemptor and victim (``simulation.breakdown``)
        self.breakdown = PreemptionLog()
        self._configs: tuple[tuple[str, ...], tuple[CommunityConfig, ...]] | None = None
        self.core_pending = 0

    def _community_configs(self, names: tuple[str, ...]) -> tuple[CommunityConfig, ...]:
        """Each community's configuration (the default for one not configured), looked up once
        per set of communities."""
        if self._configs is None or self._configs[0] != names:
            default = CommunityConfig()
            self._configs = (names, tuple(self._config.get(name, default) for name in names))
        return self._configs[1]

    def protected_s(self, jobstate: JobState) -> float | None:
        """The core's minimum runtime for ``jobstate``: it grows with the job's restarts (None:
        never preemptible, also once restarted ``restart_limit`` times)."""
        if self.preemptible_after_s is None:
            return None
        limit = self._policy.restart_limit
        if limit and self._victim_costs and jobstate.restarts >= limit:
            return None  # the core is told its restarts (victim costs) and never takes it
        return self.preemptible_after_s * self._policy.restart_backoff**jobstate.restarts

    def _workload(self, jobstate: JobState) -> Workload:
        workload = self._workloads.get(jobstate.job.key)
        # a requeued victim waits since it was preempted
        since = jobstate.queued_since if jobstate.restarts else None
        if workload is None or workload.waiting_since != since:
            workload = Workload(
                key=jobstate.job.key,
                community=jobstate.job.community,
                workers=jobstate.workers,
                gpus_per_worker=jobstate.gpus_per_worker,
                created=jobstate.job.arrival,
                waiting_since=since,
            )
            self._workloads[jobstate.job.key] = workload
        return workload

    def _sync(self, state: PoolState) -> tuple[Running, ...]:
        """The running set as the core sees it, updated from the replay's journal."""
        if state.journal is None:
            state.journal = []
            self._live = {}
            self._sizes = {}
            for jobstate in state.running.values():
                state.journal.append((True, jobstate))
        told = self._victim_costs
        for started, jobstate in state.journal:
            sizes = self._sizes.setdefault(jobstate.job.community, {})
            gpus = jobstate.job.gpus
            if started:
                sizes[gpus] = sizes.get(gpus, 0) + 1
                self._live[jobstate.job.key] = Running(
                    workload=self._workload(jobstate),
                    placement=tuple(self._nodes[i].name for i in jobstate.placement),
                    started=jobstate.started,
                    restarts=jobstate.restarts if told else 0,
                    # it resumes from a checkpoint once reloaded, then saves periodically
                    last_checkpoint=jobstate.started + jobstate.overhead if told else None,
                    checkpoint_interval_s=self._checkpoint_interval_s,
                )
            else:
                del self._live[jobstate.job.key]
                sizes[gpus] -= 1
                if not sizes[gpus]:
                    del sizes[gpus]
        state.journal.clear()
        return tuple(self._live.values())

    def cycle(self, state: PoolState, now: float) -> Cycle:
        configs = self._community_configs(state.communities)
        communities = tuple(
            Community(
                name=name,
                weight=config.weight,
                guaranteed_gpus=config.guaranteed_gpus,
                max_gpus=config.max_gpus,
                usage_gpu_seconds=usage,
            )
            for name, config, usage in zip(state.communities, configs, state.usage, strict=True)
        )
        demand = {
            name: float(state.allocated[i] + state.pending_gpus[i])
            for i, name in enumerate(state.communities)
        }
        entitled = entitlements(communities, demand, float(state.capacity), self._policy)
        free = sum(state.free)
        # consolidation can start a job that fits the free GPUs in total, whatever the blocks
        block = self._largest_node if self._policy.consolidation else max(state.free)
        shortfall = [
            max(0.0, entitled[name] - state.allocated[i])
            for i, name in enumerate(state.communities)
        ]
        over = [
            max(0.0, state.allocated[i] - entitled[name])
            for i, name in enumerate(state.communities)
        ]
        # preemption takes victims only from communities above their entitlement
        may_preempt = self._policy.preemption and sum(over) > _EPSILON
        # preemption admits only a job within its community's shortfall
        reach = [short + _EPSILON if may_preempt else _EPSILON for short in shortfall]
        if not any(
            _could_start(state.pending[name], free, block, reach[i])
            for i, name in enumerate(state.communities)
        ):
            return Cycle()  # nothing fits the free GPUs, nobody may preempt for what it needs
        running = self._sync(state)
        exposed = [0] * len(over)
        if may_preempt and self._policy.reclaim:
            # reclaiming takes victims from a community while it is above its entitlement: at
            # most its surplus plus one job; so much more it may then be short of itself
            largest = [max(self._sizes.get(name) or (0,)) for name in state.communities]
            exposed = [
                most if above > _EPSILON else 0 for most, above in zip(largest, over, strict=True)
            ]
        if may_preempt:
            deficits = [short + more for short, more in zip(shortfall, exposed, strict=True)]
            # GPUs any community may start on: free now, or left over by a larger victim
            spare = free + sum(over) + sum(exposed) + _EPSILON
        else:
            deficits = [0.0] * len(shortfall)
            spare = free + _EPSILON
        shown: dict[str, JobState] = {}
        for i, name in enumerate(state.communities):
            # enough of the queue's head to keep the demand at or above the entitlement
            held = 0
            for jobstate in state.pending[name]:
                if held >= shortfall[i] - _EPSILON:
                    break
                shown[jobstate.job.key] = jobstate
                held += jobstate.job.gpus
            # and, of each shape it could start, more jobs than it can start
            deficit = deficits[i] + _EPSILON
            most = spare + deficit
            for (workers, per_worker), queue in state.by_shape.get(name, {}).items():
                gpus = workers * per_worker
                if queue and (gpus <= spare or gpus <= deficit):
                    for jobstate in queue[: int(_PREFIX_FACTOR * most / gpus) + 1]:
                        shown[jobstate.job.key] = jobstate
            if self._policy.reservation:
                # and its first job not shown yet: it could be the first to wait, and hold
                for jobstate in state.pending[name]:
                    if jobstate.job.key not in shown:
                        shown[jobstate.job.key] = jobstate
                        break
        pending = [self._workload(jobstate) for jobstate in shown.values()]
        snapshot = Snapshot(
            nodes=self._nodes,
            communities=communities,
            running=running,
            pending=tuple(pending),
            now=now,
            policy=self._policy,
        )
        if self.quiet.quiet(snapshot):
            return Cycle()  # it would decide nothing, as the call before (simulation.quiet)
        decisions = schedule(snapshot, waiting_reasons=False)  # it reads no reason
        self.quiet.called(snapshot, decisions)
        self.core_calls += 1
        self.core_pending += len(pending)
        cycle = Cycle()
        for preemption in decisions.preemptions:
            key = preemption.running.workload.key
            victim = state.running.get(key)
            if victim is None:
                raise SimulationError(f"fair: preempts {key}, which is not running")
            cycle.preemptions.append(victim)
            reason = preemption.reason
            self.preemptions_by_reason[reason] = self.preemptions_by_reason.get(reason, 0) + 1
            if not victim.restarts:
                first = self.first_restarts_by_reason
                first[reason] = first.get(reason, 0) + 1
        if decisions.preemptions:
            self._log(state, communities, decisions.preemptions, shown)
        for admission in decisions.admissions:
            admitted = shown.get(admission.workload.key)
            if admitted is None:
                raise SimulationError(f"fair: admits {admission.workload.key}, not pending")
            placement = tuple(self._node_index[name] for name in admission.placement)
            cycle.admissions.append((admitted, placement))
        for move in decisions.moves:
            # preempted above (reason Consolidation) and started again at once
            moved = state.running.get(move.workload.key)
            if moved is None:
                raise SimulationError(f"fair: moves {move.workload.key}, which is not running")
            placement = tuple(self._node_index[name] for name in move.placement)
            cycle.admissions.append((moved, placement))
        return cycle

    def _log(
        self,
        state: PoolState,
        communities: tuple[Community, ...],
        preemptions: Sequence[Preemption],
        shown: Mapping[str, JobState],
    ) -> None:
        """Count the call's preemptions in :attr:`breakdown` (the victims not yet restarted
        by them); a preemptor is within its nominal share when its community's allocation
        before the call plus its GPUs is."""
        nominal = nominal_shares(
            weights(communities, self._policy),
            [float(c.guaranteed_gpus) for c in communities],
            [float("inf") if c.max_gpus is None else float(c.max_gpus) for c in communities],
            float(state.capacity),
        )
        preemptor: dict[str, tuple[int, bool]] = {}
        for p in preemptions:
            job = shown.get(p.by) or state.running.get(p.by)
            if job is not None and p.by not in preemptor:
                i = state.index[job.job.community]
                within = state.allocated[i] + job.job.gpus <= nominal[i] + _EPSILON
                preemptor[p.by] = (job.job.gpus, within)
        victims = [state.running[p.running.workload.key] for p in preemptions]
        self.breakdown.record(
            preemptions,
            restarts={v.job.key: v.restarts for v in victims},
            preemptor=preemptor,
            victim={v.job.key: (v.job.gpus, v.job.duration, v.job.community) for v in victims},
        )
