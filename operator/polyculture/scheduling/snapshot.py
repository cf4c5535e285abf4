"""What the scheduler reads and what it decides: small frozen value types.

A :class:`Snapshot` is everything one cycle needs about one pool; :class:`Decisions` is all it
produces. Both are plain data so that the operator, the simulator, the benchmark and the tests
build them the same way. GPU quantities on communities (guarantees, caps, entitlements) are
in normalised units (GPUs times their class weight, see ``DESIGN.md``); quantities on nodes
and workloads are raw GPUs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Basis = Literal["weight", "contribution", "blend"]

#: the reasons of a :class:`Preemption`
OWNER_RECLAIM = "OwnerReclaim"
FAIR_SHARE = "FairShare"
CONSOLIDATION = "Consolidation"


@dataclass(frozen=True, slots=True)
class Node:
    """A contributed GPU node. ``available`` is false when reclaimed or outside its window."""

    name: str
    owner: str
    gpu_class: str
    gpus: int
    available: bool = True
    #: GPU memory per GPU; 0 means "the class's memory"
    memory_mib: int = 0


@dataclass(frozen=True, slots=True)
class GPUClass:
    """A GPU model and its worth in normalised units per GPU."""

    name: str
    weight: float = 1.0
    memory_mib: int = 0


@dataclass(frozen=True, slots=True)
class Community:
    """A community admitted to the pool, with its fair-share parameters."""

    name: str
    weight: float = 1.0
    #: floor of the entitlement, in normalised units, when the community has that much demand
    guaranteed_gpus: int = 0
    #: cap on allocation and entitlement, in normalised units; None means no cap
    max_gpus: int | None = None
    #: already-decayed GPU-seconds used (tie-breaker: less usage goes first)
    usage_gpu_seconds: float = 0.0
    #: decayed GPU-seconds its owners contributed (the ``contribution`` basis)
    contribution_gpu_seconds: float = 0.0
    #: owners whose nodes credit this community (placed there first)
    owners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Workload:
    """A gang: ``workers`` workers of ``gpus_per_worker`` GPUs each, all or nothing.

    ``key`` identifies it (e.g. ``namespace/name``) and must be unique in a snapshot. For a
    serving workload, ``workers`` are its replicas.
    """

    key: str
    community: str
    workers: int
    gpus_per_worker: int
    priority: int = 0
    serving: bool = False
    gpu_class: str | None = None
    min_gpu_memory_mib: int = 0
    #: seconds (epoch or virtual); older goes first among equals
    created: float = 0.0
    #: since when it waits (requeued after a preemption: since then); None means ``created``
    waiting_since: float | None = None

    @property
    def gpus(self) -> int:
        """Raw GPUs of the whole gang."""
        return self.workers * self.gpus_per_worker


@dataclass(frozen=True, slots=True)
class Running:
    """An admitted workload: one node name per worker, in worker order."""

    workload: Workload
    placement: tuple[str, ...]
    started: float = 0.0
    #: times it was preempted or moved before this run
    restarts: int = 0
    #: when it last saved a checkpoint (None: never, its work since ``started`` is at risk)
    last_checkpoint: float | None = None
    #: seconds between its checkpoints, when it saves them periodically (0: unknown); with
    #: ``last_checkpoint`` (or ``started``) it dates the latest checkpoint at ``now``
    checkpoint_interval_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Policy:
    """The pool's fair-share rules (``ComputePool.spec.fairShare``)."""

    basis: Basis = "weight"
    preemption: bool = True
    #: a workload cannot be preempted for fair share before it ran this long
    min_runtime_s: float = 0.0
    #: when no victim's community can stay at its entitlement, take from communities above
    #: theirs anyway (reclaim borrowed GPUs), leaving each at least its guarantee
    reclaim: bool = True
    gpu_classes: tuple[GPUClass, ...] = ()
    #: share of the ``blend`` basis that follows contribution (the rest is equal shares)
    blend: float = 0.5
    #: move small running workloads (restart elsewhere) to clear a block for a waiting gang
    consolidation: bool = False
    #: consolidation moves only workloads preempted or moved before (``Running.restarts``)
    move_restarted_only: bool = False
    #: clearing a node for a gang (defragmenting preemption, consolidation moves) restarts
    #: the fewest workloads never restarted before, then the fewest workloads, rather than
    #: the fewest GPUs
    spare_new: bool = False
    #: the minimum runtime grows by this factor with each past restart of a workload
    #: (``min_runtime_s * backoff ** restarts``); 1 keeps it flat
    restart_backoff: float = 1.0
    #: a waiting workload may preempt or move others only once it waited this long
    preemption_delay_s: float = 0.0
    #: the same, shorter delay for a workload whose community stays within its nominal share
    #: once admitted (at most ``preemption_delay_s``)
    reclaim_delay_s: float = 0.0
    #: a workload restarted this many times is no longer preempted for fair share or moved
    #: (owner reclaim still stops it); 0: no limit
    restart_limit: int = 0
    #: at most this many of each community's pending workloads (in workload order) are
    #: tried per cycle; the others wait as ``BehindInQueue`` and still count as demand.
    #: 0: all are tried
    lookahead: int = 0
    #: hold free GPUs for the first workload that waits for room while its community is below
    #: its entitlement and owed GPU-time (decayed usage below its weighted share)
    reservation: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One pool at one instant. ``now`` is in the same clock as ``created``/``started``."""

    nodes: tuple[Node, ...]
    communities: tuple[Community, ...]
    running: tuple[Running, ...]
    pending: tuple[Workload, ...]
    now: float
    policy: Policy = Policy()


@dataclass(frozen=True, slots=True)
class Admission:
    """Start ``workload`` with one node per worker (after any preemption's grace period)."""

    workload: Workload
    placement: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Preemption:
    """Stop ``running``: ``reason`` is ``OwnerReclaim``, ``FairShare`` or ``Consolidation``.

    ``by`` is the key of the workload admitted on the GPUs it frees (``FairShare`` and
    ``Consolidation``; a consolidated workload restarts at once, see ``Decisions.moves``).
    """

    running: Running
    reason: str
    by: str = ""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A pending workload left waiting: ``reason`` is a CamelCase code, ``message`` for people."""

    workload: Workload
    reason: str
    message: str


def _empty() -> Mapping[str, float]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Decisions:
    """The outcome of one cycle.

    ``entitlements`` maps every community of the snapshot to its entitled normalised GPUs;
    ``allocated`` maps it to what it holds once the decisions are applied (running minus
    preempted plus admitted plus moved). Admissions are listed in the order they were decided.
    ``moves`` restart running workloads elsewhere (consolidation): each is also listed in
    ``preemptions`` with reason ``Consolidation``, and the caller starts it again at once on
    the placement given here, after stopping it.
    """

    admissions: tuple[Admission, ...]
    preemptions: tuple[Preemption, ...]
    waiting: tuple[Waiting, ...]
    entitlements: Mapping[str, float]
    allocated: Mapping[str, float] = field(default_factory=_empty)
    moves: tuple[Admission, ...] = ()
