"""What only the operator can judge about a CommunityModel: its pool, its community, its size.

The API server checks each object alone; whether a model fits the pool it names needs the
pool. ``judge`` returns the problems that make a model *Invalid*: the handler sets phase
``Invalid`` with a condition and an Event per problem, and touches nothing else. An empty
list means the model may be queued. The function is pure: the caller passes the pools.

Reasons:

- ``PoolNotFound``: ``spec.pool`` names no ComputePool.
- ``PoolInvalid``: the pool exists but cannot be used (its ``Valid`` condition says why;
  ``polyculture.api.pool_validity``).
- ``CheckpointUnsupported``: the pool's Ray backend cannot write ``checkpointURI``
  (``polyculture.api.checkpoints``).
- ``CommunityNotAdmitted``: the model's community is not in the pool's ``communities``.
- ``NeverFits``: a worker or replica needs more GPUs than any one node of an eligible class
  has, the gang needs more GPUs of one class than the pool has, the gang exceeds the
  community's ``maxGPUs``, or no GPU class of the pool is eligible (unknown ``gpuClass`` or
  ``minGPUMemory`` above every class). Checks that need node facts are made only once the
  pool's status reports its nodes (``largestNodeGPUs``), so a pool still being discovered
  never invalidates models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from polyculture.api.checkpoints import checkpoint_problem
from polyculture.api.community_model import CommunityModel, Serving, Training
from polyculture.api.compute_pool import ComputePool, GPUClass
from polyculture.api.units import parse_quantity

POOL_NOT_FOUND = "PoolNotFound"
POOL_INVALID = "PoolInvalid"
CHECKPOINT_UNSUPPORTED = "CheckpointUnsupported"
COMMUNITY_NOT_ADMITTED = "CommunityNotAdmitted"
NEVER_FITS = "NeverFits"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the model can never run as written; ``field`` is a path like ``spec.pool``."""

    reason: str
    message: str
    field: str


class KnownPools(dict[str, ComputePool]):
    """The usable pools by name; ``invalid`` says, by name, why each other pool is unusable."""

    def __init__(
        self,
        usable: Mapping[str, ComputePool] | None = None,
        invalid: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(usable or {})
        self.invalid: dict[str, str] = dict(invalid or {})


def community_of(model: CommunityModel, namespace: str) -> str:
    """The community a model is accounted to: ``spec.community``, else its namespace."""
    return model.spec.community or namespace


def _eligible(
    stage: Training | Serving, classes: list[GPUClass], field: str
) -> tuple[list[str] | None, Problem | None]:
    """Names of the pool's classes the stage may use (None: any), or why there are none."""
    if not classes:
        return None, None  # the pool declares no classes: every GPU counts the same
    if stage.gpu_class is not None:
        if any(c.name == stage.gpu_class for c in classes):
            return [stage.gpu_class], None
        known = ", ".join(c.name for c in classes)
        return [], Problem(
            NEVER_FITS,
            f"gpuClass {stage.gpu_class} is not a GPU class of the pool (it has {known})",
            f"{field}.gpuClass",
        )
    if stage.min_gpu_memory is not None:
        need = parse_quantity(stage.min_gpu_memory)
        names = [c.name for c in classes if parse_quantity(c.memory) >= need]
        if not names:
            most = max(classes, key=lambda c: parse_quantity(c.memory))
            return [], Problem(
                NEVER_FITS,
                f"minGPUMemory {stage.min_gpu_memory} exceeds every GPU class of the pool "
                f"(the largest is {most.name} with {most.memory})",
                f"{field}.minGPUMemory",
            )
        return names, None
    return None, None


def _stage_problems(
    stage: Training | Serving, field: str, pool: ComputePool, community: str
) -> list[Problem]:
    if isinstance(stage, Training):
        per_node, total, what = stage.gpus_per_worker, stage.gpus, "worker"
        per_node_field = f"{field}.gpusPerWorker"
    else:
        # serving needs at least one replica (or minReplicas of them) running at once
        per_node, what = stage.gpus_per_replica, "replica"
        total = max(1, stage.min_replicas) * stage.gpus_per_replica
        per_node_field = f"{field}.gpusPerReplica"
    names, problem = _eligible(stage, pool.spec.fair_share.gpu_classes, field)
    if problem is not None:
        return [problem]
    problems: list[Problem] = []
    weights = {c.name: c.weight for c in pool.spec.fair_share.gpu_classes}
    cap = next((c.max_gpus for c in pool.spec.communities if c.name == community), None)
    if cap is not None:
        # the cheapest eligible class makes the smallest demand in normalised units
        units = [weights[n] for n in names] if names is not None else list(weights.values())
        demand = total * min(units, default=1.0)
        if demand > cap:
            problems.append(
                Problem(
                    NEVER_FITS,
                    f"needs {total} GPUs ({demand:g} units) at once but community "
                    f"{community} may use at most {cap} units of pool {pool.metadata.name}",
                    field,
                )
            )
    status = pool.status
    if status is None or not status.largest_node_gpus:
        return problems
    largest = {
        name: gpus
        for name, gpus in status.largest_node_gpus.items()
        if names is None or name in names
    }
    best = max(largest.values(), default=0)
    if per_node > best:
        where = f"class {', '.join(names)}" if names else "any class"
        problems.append(
            Problem(
                NEVER_FITS,
                f"each {what} needs {per_node} GPUs on one node but the largest node of "
                f"{where} in pool {pool.metadata.name} has {best}",
                per_node_field,
            )
        )
    elif isinstance(stage, Training):
        by_class = _potential_by_class(pool, community)
        fitting = [n for n in largest if largest[n] >= per_node]
        room = max((by_class.get(n, 0) for n in fitting), default=0)
        if by_class and total > room:
            problems.append(
                Problem(
                    NEVER_FITS,
                    f"the gang needs {total} GPUs of one class at once but pool "
                    f"{pool.metadata.name} has at most {room} usable ones",
                    f"{field}.workers",
                )
            )
    return problems


def judge(model: CommunityModel, namespace: str, pools: Mapping[str, ComputePool]) -> list[Problem]:
    """Every reason why ``model`` (in ``namespace``) can never be admitted; ``[]`` if none."""
    pool = pools.get(model.spec.pool)
    why = pools.invalid.get(model.spec.pool) if isinstance(pools, KnownPools) else None
    if pool is None and why is not None:
        return [
            Problem(
                POOL_INVALID,
                f"ComputePool {model.spec.pool} is not valid ({why}); the model waits until "
                "the pool is fixed",
                "spec.pool",
            )
        ]
    if pool is None:
        return [
            Problem(
                POOL_NOT_FOUND,
                f"ComputePool {model.spec.pool} does not exist",
                "spec.pool",
            )
        ]
    community = community_of(model, namespace)
    if all(c.name != community for c in pool.spec.communities):
        admitted = ", ".join(c.name for c in pool.spec.communities)
        field = "spec.community" if model.spec.community else "metadata.namespace"
        return [
            Problem(
                COMMUNITY_NOT_ADMITTED,
                f"community {community} is not admitted by pool {pool.metadata.name} "
                f"(admitted: {admitted})",
                field,
            )
        ]
    problems: list[Problem] = []
    training = model.spec.training
    if training is not None and training.checkpoint_uri is not None:
        why = checkpoint_problem(training.checkpoint_uri, pool.spec.ray.backend)
        if why is not None:
            problems.append(Problem(CHECKPOINT_UNSUPPORTED, why, "spec.training.checkpointURI"))
    if model.spec.training is not None:
        problems += _stage_problems(model.spec.training, "spec.training", pool, community)
    if model.spec.serving is not None:
        problems += _stage_problems(model.spec.serving, "spec.serving", pool, community)
    return problems


def _potential_by_class(pool: ComputePool, community: str) -> dict[str, int]:
    """GPUs per class the pool could give ``community`` at best: every member's nodes, within
    the member's cap.

    Reclaims and closed windows are passing states, so they never make a model Invalid; a
    member's ``maxGPUs`` and ``reservedGPUs`` are lasting, so they count — the reserve only for
    communities the member does not credit (its credited communities may use it).
    """
    status = pool.status
    if status is None:
        return {}
    caps = {
        m.owner: (
            None
            if m.max_gpus is None
            else m.max_gpus - (0 if community in m.credits else m.reserved_gpus)
        )
        for m in pool.spec.members
    }
    out: dict[str, int] = {}
    for member in status.members:
        cap = caps.get(member.owner)
        for gpu_class, gpus in sorted(member.gpus_by_class.items()):
            lend = gpus if cap is None else max(0, min(gpus, cap))
            if cap is not None:
                cap -= lend
            out[gpu_class] = out.get(gpu_class, 0) + lend
    return out
