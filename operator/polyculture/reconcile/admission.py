"""The admission adapter (pure): what the operator knows -> the core's snapshot -> status.

``snapshot`` turns a ComputePool (spec and status), the pool's Nodes and its CommunityModels
(with their stored admissions) into a :class:`polyculture.scheduling.Snapshot`; ``plan``
turns the core's :class:`~polyculture.scheduling.Decisions` into the status patches to write,
the Events to post and the workloads to start or drain. Nothing here reads a clock or talks
to anything: ``now`` comes in.

Rules this module decides:

- **Nodes**: one core node per member node with the GPUs that member lends on it now, in
  the inventory's order (the reserve is kept on the first nodes by name, the lent GPUs come
  after it, a member's ``maxGPUs`` caps the total). A member's reserve is on the node as well,
  for the communities the member credits only: an admission that would put another
  community on reserved GPUs is held back (``ReservedGPUs``). A reclaimed member, a closed
  window or a lost node makes its nodes unavailable: the core preempts what runs there with
  reason ``OwnerReclaim``.
- **Stages**: a model that trains then serves is two workloads in sequence under one key
  (``namespace/name``): training until ``trainedAt`` is set, serving after.
- **Units**: quantities in MiB, times in seconds since the epoch.
- **Draining**: a preempted model keeps its admission (and its GPUs) until its cluster is
  torn down, but it is out of the snapshot: the GPUs it frees already belong to the workload
  that preempted it, which starts once they are free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from polyculture.api.community_model import CommunityModelSpec, Phase
from polyculture.api.compute_pool import ComputePoolSpec, ShareBasis
from polyculture.api.units import parse_duration, parse_quantity
from polyculture.inventory import NodeInfo, classify, inventory
from polyculture.reconcile.conditions import condition, find_condition, format_time, parse_time
from polyculture.reconcile.pools import MAX_ACCRUAL_GAP_S, class_rules, member_rules
from polyculture.reconcile.provenance import serving_blocked
from polyculture.scheduling import (
    Community,
    Decisions,
    GPUClass,
    Node,
    Policy,
    Running,
    Snapshot,
    Workload,
    accrue,
)
from polyculture.scheduling.ordering import workload_order

TRAINING = "training"
SERVING = "serving"
MIB = 1024 * 1024
#: phases in which a model holds GPUs (with ``status.admission``)
HOLDING = (Phase.ADMITTED.value, Phase.TRAINING.value, Phase.SERVING.value)
RESERVED_GPUS = "ReservedGPUs"
ADMITTED = "Admitted"


@dataclass(frozen=True, slots=True)
class ModelView:
    """One CommunityModel as the loop sees it: parsed spec and the stored status."""

    namespace: str
    name: str
    uid: str
    created: float  # epoch seconds
    generation: int | None
    spec: CommunityModelSpec
    status: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def community(self) -> str:
        return str(self.status.get("community") or self.spec.community or self.namespace)

    @property
    def phase(self) -> str | None:
        phase = self.status.get("phase")
        return str(phase) if phase else None

    @property
    def stage(self) -> str:
        if self.spec.training is None or self.status.get("trainedAt"):
            return SERVING
        return TRAINING

    @property
    def admission(self) -> Mapping[str, Any] | None:
        admission = self.status.get("admission")
        return admission if admission else None

    @property
    def holding(self) -> bool:
        """Admitted and not preempted: counted as running by the core."""
        return self.phase in HOLDING and self.admission is not None

    @property
    def draining(self) -> bool:
        """Preempted, its cluster not torn down yet."""
        return self.phase == Phase.PREEMPTED.value and self.admission is not None

    @property
    def queueable(self) -> bool:
        """Waits for admission: valid and not holding, finished or failed."""
        phase = self.phase
        if phase in (Phase.PENDING.value, Phase.QUEUED.value):
            return True
        if phase == Phase.PREEMPTED.value:
            return self.admission is None
        if phase == Phase.TRAINED.value:
            return self.spec.serving is not None and not serving_blocked(self.status)
        return False


@dataclass(frozen=True, slots=True)
class NodeShare:
    """What a member lends on one node: all of it to anyone but ``reserved`` (credits only)."""

    owner: str
    gpu_class: str
    reserved: int
    credits: frozenset[str]


@dataclass(frozen=True, slots=True)
class PoolView:
    """The pool side of a snapshot: core nodes, the reserve per node, the policy."""

    nodes: tuple[Node, ...]
    shares: Mapping[str, NodeShare]
    policy: Policy
    half_life_s: float
    grace_s: float


def policy_of(spec: ComputePoolSpec) -> Policy:
    """``spec.fairShare`` as the core's Policy (every field reaches it)."""
    fair = spec.fair_share
    return Policy(
        basis=fair.basis.value,
        preemption=fair.preemption.enabled,
        min_runtime_s=parse_duration(fair.preemption.min_runtime).total_seconds(),
        reclaim=fair.preemption.reclaim_borrowed,
        gpu_classes=tuple(
            GPUClass(c.name, c.weight, int(parse_quantity(c.memory) / MIB))
            for c in fair.gpu_classes
        ),
        blend=fair.contribution_share if fair.basis is ShareBasis.BLEND else 0.5,
        consolidation=fair.preemption.consolidation,
        move_restarted_only=fair.preemption.move_restarted_only,
        spare_new=fair.preemption.spare_new,
        restart_backoff=fair.preemption.restart_backoff,
        restart_limit=fair.preemption.restart_limit,
        reclaim_delay_s=parse_duration(fair.preemption.reclaim_delay).total_seconds(),
        preemption_delay_s=parse_duration(fair.preemption.delay).total_seconds(),
        reservation=fair.reservation,
    )


def pool_view(
    pool: str,
    spec: ComputePoolSpec,
    nodes: Iterable[NodeInfo],
    now: datetime,
    senior_pools: Mapping[str, frozenset[str]] | None = None,
) -> PoolView:
    """Core nodes: per node, the GPUs its member lends now (reserve included, see above)."""
    classes = class_rules(spec)
    by_name = {n.name: n for n in nodes}
    inv = inventory(pool, member_rules(spec, now), by_name.values(), classes, senior_pools)
    credits = {m.owner: frozenset(m.credits) for m in spec.members}
    rules = {m.owner: m for m in spec.members}
    out: list[Node] = []
    shares: dict[str, NodeShare] = {}
    for member in inv.members:
        lending = member.unavailable_reason is None
        to_skip = rules[member.owner].reserved_gpus if lending else 0
        to_lend = member.available_gpus
        for name in member.nodes:  # name order, as the inventory counts the reserve
            info = by_name[name]
            healthy = info.healthy_gpus
            reserved = min(healthy, to_skip)
            to_skip -= reserved
            lent = min(healthy - reserved, to_lend)
            to_lend -= lent
            gpu_class, _ = classify(info.product, classes)
            available = lending and healthy > 0
            out.append(
                Node(
                    name=name,
                    owner=member.owner,
                    gpu_class=gpu_class,
                    gpus=lent + reserved if available else info.gpus,
                    available=available,
                    memory_mib=info.memory_mib,
                )
            )
            shares[name] = NodeShare(member.owner, gpu_class, reserved, credits[member.owner])
    fair = spec.fair_share
    return PoolView(
        nodes=tuple(out),
        shares=shares,
        policy=policy_of(spec),
        half_life_s=parse_duration(fair.usage_half_life).total_seconds() or math.inf,
        grace_s=parse_duration(fair.preemption.grace_period).total_seconds(),
    )


def workload_of(view: ModelView) -> Workload:
    """The gang of the model's current stage."""
    spec = view.spec
    if view.stage == TRAINING and spec.training is not None:
        t = spec.training
        workers, per, priority, serving = t.workers, t.gpus_per_worker, t.priority, False
        gpu_class, memory = t.gpu_class, t.min_gpu_memory
    else:
        s = spec.serving
        assert s is not None, "a model without training serves"
        workers, per, priority, serving = max(1, s.min_replicas), s.gpus_per_replica, 0, True
        gpu_class, memory = s.gpu_class, s.min_gpu_memory
    return Workload(
        key=view.key,
        community=view.community,
        workers=workers,
        gpus_per_worker=per,
        priority=priority,
        serving=serving,
        gpu_class=gpu_class,
        min_gpu_memory_mib=int(parse_quantity(memory) / MIB) if memory is not None else 0,
        created=view.created,
        waiting_since=waiting_since(view),
    )


def checkpoint_interval_s(view: ModelView) -> float:
    """Seconds between the training's checkpoints (``spec.training.checkpointInterval``); 0
    when unset or serving: the core then counts the whole run as at risk."""
    t = view.spec.training
    if view.stage != TRAINING or t is None or t.checkpoint_interval is None:
        return 0.0
    return parse_duration(t.checkpoint_interval).total_seconds()


def restarts_of(view: ModelView) -> int:
    """Times the model's training was admitted again without a failure before (preempted,
    reclaimed, or its cluster could not start): ``run - 1 - attempts`` from the status. A
    serving stage counts 0 (the status does not tell its restarts from training's runs)."""
    if view.stage != TRAINING:
        return 0
    run = int(view.status.get("run") or 0)
    return max(0, run - 1 - int(view.status.get("attempts") or 0))


def waiting_since(view: ModelView) -> float | None:
    """Since when a model that held GPUs before waits again: when its ``Admitted`` condition
    turned False (preempted, drained, failed, trained); None (since created) for a model
    never admitted."""
    if not view.status.get("run"):
        return None
    admitted = find_condition(view.status, ADMITTED)
    if admitted.get("status") != "False":
        return None
    when = parse_time(admitted.get("lastTransitionTime"))
    return when.timestamp() if when is not None else None


def placement_nodes(admission: Mapping[str, Any], gpus_per_worker: int) -> tuple[str, ...]:
    """The stored placement (GPUs per node) as the core's one node name per worker."""
    out: list[str] = []
    for p in admission.get("placement") or []:
        out.extend([str(p["node"])] * (int(p["gpus"]) // max(1, gpus_per_worker)))
    return tuple(out)


def epoch(text: str | None, default: float = 0.0) -> float:
    when = parse_time(text)
    return when.timestamp() if when is not None else default


def communities_of(spec: ComputePoolSpec, pool_status: Mapping[str, Any]) -> tuple[Community, ...]:
    stored = {c.get("name"): c for c in pool_status.get("communities") or []}
    out = []
    for c in spec.communities:
        row = stored.get(c.name, {})
        out.append(
            Community(
                name=c.name,
                weight=c.weight,
                guaranteed_gpus=c.guaranteed_gpus,
                max_gpus=c.max_gpus,
                usage_gpu_seconds=float(row.get("usageGPUSeconds") or 0.0),
                contribution_gpu_seconds=float(row.get("contributionGPUSeconds") or 0.0),
                owners=tuple(m.owner for m in spec.members if c.name in m.credits),
            )
        )
    return tuple(out)


def snapshot(
    pool: PoolView,
    spec: ComputePoolSpec,
    pool_status: Mapping[str, Any],
    models: Sequence[ModelView],
    now: datetime,
) -> Snapshot:
    """The core's view of the pool at ``now``: nodes, communities, running and pending
    (built from scratch; ``reconcile.snapshots.SnapshotBuilder`` makes the same one again
    only for the models whose view changed)."""
    running: list[Running] = []
    pending: list[Workload] = []
    for view in sorted(models, key=lambda v: v.key):
        part = model_part(view, now)
        if isinstance(part, Running):
            running.append(part)
        elif part is not None:
            pending.append(part)
    return assemble(pool, spec, pool_status, running, pending, now)


def model_part(view: ModelView, now: datetime) -> Running | Workload | None:
    """What one model is in the core's snapshot: running (holding GPUs), pending (waiting
    for admission) or nothing. Depends on the view alone, and on ``now`` only where
    :func:`part_reads_now` says so."""
    if view.holding:
        workload = workload_of(view)
        admission = view.admission or {}
        return Running(
            workload,
            placement_nodes(admission, workload.gpus_per_worker),
            epoch(admission.get("admittedAt"), now.timestamp()),
            restarts=restarts_of(view),
            # no checkpoint time is recorded: checkpoints every interval since the job started
            last_checkpoint=job_started(view),
            checkpoint_interval_s=checkpoint_interval_s(view),
        )
    if view.queueable:
        return workload_of(view)
    return None


def job_started(view: ModelView) -> float | None:
    """When the model's Ray job started (its ``Running`` condition turned True at submission),
    or None while its cluster starts: a run's checkpoint clock starts with its job, which
    resumes from the last checkpoint (nothing is at risk then), not at its admission."""
    running = find_condition(view.status, "Running")
    if running.get("status") != "True":
        return None
    when = parse_time(running.get("lastTransitionTime"))
    return when.timestamp() if when is not None else None


def part_reads_now(view: ModelView) -> bool:
    """Whether :func:`model_part` of ``view`` depends on ``now``: a holding model whose
    admission carries no time (taken as admitted now)."""
    return view.holding and not (view.admission or {}).get("admittedAt")


def assemble(
    pool: PoolView,
    spec: ComputePoolSpec,
    pool_status: Mapping[str, Any],
    running: Sequence[Running],
    pending: Sequence[Workload],
    now: datetime,
) -> Snapshot:
    """The snapshot of the models' parts (in key order) with the pool's side at ``now``."""
    return Snapshot(
        nodes=pool.nodes,
        communities=communities_of(spec, pool_status),
        running=tuple(running),
        pending=tuple(pending),
        now=now.timestamp(),
        policy=pool.policy,
    )


@dataclass(frozen=True, slots=True)
class ModelEvent:
    key: str
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(slots=True)
class Plan:
    """What one cycle's decisions mean for the objects: patches, Events, work to start."""

    patches: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[ModelEvent] = field(default_factory=list)
    admitted: list[str] = field(default_factory=list)
    preempted: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    pool_rows: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def set_condition(
    previous: Mapping[str, Any],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """The whole conditions list with ``type_`` replaced (a merge patch replaces lists)."""
    new = condition(previous, type_, status, reason, message, now, generation)
    rest = [dict(c) for c in previous.get("conditions") or [] if c.get("type") != type_]
    return [*rest, new]


def admission_status(
    placement: Sequence[str], workload: Workload, shares: Mapping[str, NodeShare], now: datetime
) -> dict[str, Any]:
    per_node: dict[str, int] = {}
    for node in placement:
        per_node[node] = per_node.get(node, 0) + workload.gpus_per_worker
    classes = sorted({shares[n].gpu_class for n in per_node if n in shares})
    return {
        "gpus": workload.gpus,
        "gpuClass": ",".join(classes) or None,
        "admittedAt": format_time(now),
        "placement": [
            {"owner": shares[n].owner if n in shares else "", "node": n, "gpus": g}
            for n, g in per_node.items()
        ],
    }


def _describe(admission: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{p['gpus']} on {p['node']} ({p['owner']})" for p in admission.get("placement") or []
    )


def reserve_violation(
    placement: Sequence[str],
    workload: Workload,
    shares: Mapping[str, NodeShare],
    outsiders_on: dict[str, int],
    nodes: Mapping[str, Node],
) -> str | None:
    """The node where ``workload`` would use GPUs its owner reserves for others, or None.

    ``outsiders_on``: GPUs per node already held by communities the node's owner does not
    credit (updated when the admission is kept).
    """
    wants: dict[str, int] = {}
    for node in placement:
        wants[node] = wants.get(node, 0) + workload.gpus_per_worker
    for node, gpus in wants.items():
        share = shares.get(node)
        if share is None or not share.reserved or workload.community in share.credits:
            continue
        shareable = nodes[node].gpus - share.reserved
        if outsiders_on.get(node, 0) + gpus > shareable:
            return node
    return None


def plan(
    decisions: Decisions,
    snap: Snapshot,
    views: Mapping[str, ModelView],
    pool: PoolView,
    now: datetime,
) -> Plan:
    """Status patches and Events for the decisions of one cycle.

    Writes only what changes: a waiting model whose reason, message and queue position are
    the same gets no patch.
    """
    out = Plan()
    nodes = {n.name: n for n in pool.nodes}
    outsiders_on: dict[str, int] = {}
    for r in snap.running:
        _count_outsider(r.placement, r.workload, pool.shares, outsiders_on)
    held_back: list[tuple[Workload, str, str]] = []

    for p in decisions.preemptions:
        key = p.running.workload.key
        view = views.get(key)
        if view is None or not view.holding:
            continue
        by = f" to admit {p.by}" if p.by else ""
        why = (
            f"owner reclaimed its nodes or a lending window closed{by}"
            if p.reason == "OwnerReclaim"
            else f"preempted for fair share{by}"
        )
        message = f"{why}; {pool.grace_s:g} s grace period to checkpoint, then requeued"
        out.patches[key] = {
            "phase": Phase.PREEMPTED.value,
            "preemptedAt": format_time(now),
            "queuePosition": None,
            "waiting": {"reason": p.reason, "message": message, "since": format_time(now)},
            "conditions": set_condition(
                view.status, ADMITTED, "False", p.reason, message, now, view.generation
            ),
        }
        out.events.append(ModelEvent(key, "Warning", "Preempted", f"{p.reason}: {message}"))
        out.preempted.append((key, p.reason))

    for a in decisions.admissions:
        key = a.workload.key
        view = views.get(key)
        if view is None or not view.queueable:
            continue
        node = reserve_violation(a.placement, a.workload, pool.shares, outsiders_on, nodes)
        if node is not None:
            owner = pool.shares[node].owner
            held_back.append(
                (
                    a.workload,
                    RESERVED_GPUS,
                    f"the free GPUs on {node} are reserved by {owner} for the communities it "
                    "credits",
                )
            )
            continue
        _count_outsider(a.placement, a.workload, pool.shares, outsiders_on)
        admission = admission_status(a.placement, a.workload, pool.shares, now)
        stage = "serving" if a.workload.serving else "training"
        message = f"{stage}: {a.workload.gpus} GPUs: {_describe(admission)}"
        out.patches[key] = {
            "phase": Phase.ADMITTED.value,
            "community": view.community,
            "requestedGPUs": a.workload.gpus,
            "queuePosition": None,
            "waiting": None,
            "admission": admission,
            "run": int(view.status.get("run") or 0) + 1,
            "rayJobId": None,
            "endpoint": None,
            "preemptedAt": None,
            "usageUpdatedAt": format_time(now),
            "conditions": set_condition(
                view.status, ADMITTED, "True", ADMITTED, message, now, view.generation
            ),
        }
        out.events.append(ModelEvent(key, "Normal", ADMITTED, message))
        out.admitted.append(key)

    waiting = [(w.workload, w.reason, w.message) for w in decisions.waiting] + held_back
    by_community: dict[str, list[Workload]] = {}
    for workload, _, _ in waiting:
        by_community.setdefault(workload.community, []).append(workload)
    position = {
        w.key: i + 1
        for queue in by_community.values()
        for i, w in enumerate(sorted(queue, key=workload_order))
    }
    for workload, reason, message in waiting:
        view = views.get(workload.key)
        if view is None or not view.queueable:
            continue
        patch = waiting_patch(view, workload, reason, message, position[workload.key], now)
        if patch is not None:
            out.patches[workload.key] = patch
    return out


def _count_outsider(
    placement: Sequence[str],
    workload: Workload,
    shares: Mapping[str, NodeShare],
    outsiders_on: dict[str, int],
) -> None:
    for node in placement:
        share = shares.get(node)
        if share is not None and workload.community not in share.credits:
            outsiders_on[node] = outsiders_on.get(node, 0) + workload.gpus_per_worker


def waiting_patch(
    view: ModelView,
    workload: Workload,
    reason: str,
    message: str,
    position: int,
    now: datetime,
) -> dict[str, Any] | None:
    """Queued with the core's reason and the queue position; None when nothing changed."""
    status = view.status
    before = status.get("waiting") or {}
    if (
        view.phase == Phase.QUEUED.value
        and before.get("reason") == reason
        and before.get("message") == message
        and status.get("queuePosition") == position
    ):
        return None
    same_reason = view.phase == Phase.QUEUED.value and before.get("reason") == reason
    patch: dict[str, Any] = {
        "phase": Phase.QUEUED.value,
        "community": view.community,
        "requestedGPUs": workload.gpus,
        "queuePosition": position,
        "waiting": {
            "reason": reason,
            "message": message,
            "since": before.get("since") if same_reason else format_time(now),
        },
    }
    if not same_reason:  # queued, or waiting for another reason (e.g. GPUs held: Reserved)
        patch["conditions"] = set_condition(
            status, ADMITTED, "False", "Queued", f"queued: {message}", now, view.generation
        )
    return patch


# -- the users' side of the ledger ----------------------------------------------------------


def model_usage(view: ModelView, now: datetime) -> dict[str, Any] | None:
    """GPU-seconds the model used since ``usageUpdatedAt`` (holding or draining), or None.

    Between writes the admission is constant (each change is written with the usage at that
    moment), so accruing from the stored figures is exact while the operator watched: the
    view must be *settled* (``reconcile.watching.settle``: a counter written under an earlier
    admission loop carried to the running loop's start), and then every second since
    ``usageUpdatedAt`` was watched.
    """
    if view.admission is None or not (view.holding or view.draining):
        return None
    last = parse_time(view.status.get("usageUpdatedAt"))
    elapsed = (now - last).total_seconds() if last else 0.0
    if elapsed <= 0:
        return None
    return credited(view.status, elapsed, now)


def credited(status: Mapping[str, Any], elapsed: float, until: datetime) -> dict[str, Any]:
    """The usage fields of a holding model's ``status`` with ``elapsed`` seconds more at its
    admission (per owner by placement), accrued to ``until``."""
    admission = status["admission"]
    by_owner = {str(k): float(v) for k, v in (status.get("gpuSecondsByOwner") or {}).items()}
    for p in admission.get("placement") or []:
        owner = str(p.get("owner") or "")
        by_owner[owner] = round(by_owner.get(owner, 0.0) + int(p["gpus"]) * elapsed, 3)
    used = float(status.get("gpuSecondsUsed") or 0.0) + int(admission["gpus"]) * elapsed
    return {
        "gpuSecondsUsed": round(used, 3),
        "gpuSecondsByOwner": by_owner,
        "usageUpdatedAt": format_time(until),
    }


def held_gpus(views: Iterable[ModelView]) -> dict[str, int]:
    """GPUs each community holds now (running and draining)."""
    out: dict[str, int] = {}
    for v in views:
        if (v.holding or v.draining) and v.admission is not None:
            out[v.community] = out.get(v.community, 0) + int(v.admission.get("gpus") or 0)
    return out


def per_community(counters: Iterable[tuple[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for community, used in counters:
        out[community] = out.get(community, 0.0) + used
    return out


def pool_usage(
    spec: ComputePoolSpec,
    previous: Mapping[str, Any],
    decisions: Decisions | None,
    held: Mapping[str, int],
    held_units: Mapping[str, float],
    pending: Mapping[str, int],
    half_life_s: float,
    now: datetime,
    *,
    used: Mapping[str, float],
    vanished: Mapping[str, float],
) -> dict[str, Any]:
    """The pool's ``communities``, ``allocatedGPUs`` and ``usageUpdatedAt`` (the loop's part).

    One integration: a community's ``gpuSecondsConsumed`` is the sum of its models' own
    counters (``used``: ``gpuSecondsUsed`` of the models that exist) plus
    ``gpuSecondsRetired``, the counters of its models that no longer exist (``vanished``:
    the counters of models gone since the last write). It never decreases: a model that
    vanished unseen (between a write and a restart) is retired at its last counted value.
    Usage (decayed with the usage half-life) accrues what consumption grew by since the last
    write; contribution accrues at what each crediting owner lent
    (``members[].availableGPUs``), split evenly among the communities it credits.
    """
    last = parse_time(previous.get("usageUpdatedAt"))
    elapsed = (now - last).total_seconds() if last else 0.0
    if elapsed < 0 or elapsed > MAX_ACCRUAL_GAP_S:
        elapsed = 0.0
    stored = {c.get("name"): c for c in previous.get("communities") or []}
    lent = {m.get("owner"): int(m.get("availableGPUs") or 0) for m in previous.get("members") or []}
    given: dict[str, float] = {}
    for m in spec.members:
        for credited in m.credits:
            share = lent.get(m.owner, 0) * elapsed / len(m.credits)
            given[credited] = given.get(credited, 0.0) + share
    rows = []
    for c in spec.communities:
        row = stored.get(c.name, {})
        was = float(row.get("gpuSecondsConsumed") or 0.0)
        live = used.get(c.name, 0.0)
        retired = float(row.get("gpuSecondsRetired") or 0.0) + vanished.get(c.name, 0.0)
        consumed = max(was, retired + live)
        entitled = decisions.entitlements.get(c.name, 0.0) if decisions else None
        rows.append(
            {
                "name": c.name,
                "entitledUnits": round(
                    entitled if entitled is not None else float(row.get("entitledUnits") or 0), 4
                ),
                "allocatedGPUs": int(held.get(c.name, 0)),
                "allocatedUnits": round(held_units.get(c.name, 0.0), 4),
                "pendingGPUs": int(pending.get(c.name, 0)),
                "gpuSecondsConsumed": round(consumed, 3),
                "gpuSecondsRetired": round(consumed - live, 3),
                "usageGPUSeconds": round(
                    accrue(
                        float(row.get("usageGPUSeconds") or 0), consumed - was, elapsed, half_life_s
                    ),
                    3,
                ),
                "contributionGPUSeconds": round(
                    accrue(
                        float(row.get("contributionGPUSeconds") or 0),
                        given.get(c.name, 0.0),
                        elapsed,
                        half_life_s,
                    ),
                    3,
                ),
            }
        )
    return {
        "allocatedGPUs": sum(held.values()),
        "communities": rows,
        "usageUpdatedAt": format_time(now),
    }


#: figures that accrue with time alone (the models' counters accrue in memory between their
#: writes): a change in them only is written every ``flush_s``
LEDGER_KEYS = (
    "gpuSecondsConsumed",
    "gpuSecondsRetired",
    "usageGPUSeconds",
    "contributionGPUSeconds",
)


def pool_usage_changed(old: Mapping[str, Any], new: Mapping[str, Any], flush_s: float) -> bool:
    """Write when anything but the time-driven figures changed, or those figures are
    ``flush_s`` old (a model that vanished is written at once by the caller)."""

    def strip(status: Mapping[str, Any]) -> Any:
        return (
            status.get("allocatedGPUs"),
            [
                {k: v for k, v in c.items() if k not in LEDGER_KEYS}
                for c in status.get("communities") or []
            ],
        )

    if strip(old) != strip(new):
        return True
    last = parse_time(old.get("usageUpdatedAt"))
    now = parse_time(new.get("usageUpdatedAt"))
    return last is None or now is None or (now - last).total_seconds() >= flush_s


def held_units(views: Iterable[ModelView], pool: PoolView) -> dict[str, float]:
    """Normalised units each community holds now (running and draining)."""
    weight = {c.name: c.weight for c in pool.policy.gpu_classes}
    out: dict[str, float] = {}
    for v in views:
        if (v.holding or v.draining) and v.admission is not None:
            for p in v.admission.get("placement") or []:
                share = pool.shares.get(str(p["node"]))
                w = weight.get(share.gpu_class, 1.0) if share is not None else 1.0
                out[v.community] = out.get(v.community, 0.0) + int(p["gpus"]) * w
    return out
