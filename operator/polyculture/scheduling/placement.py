"""Placement: where the workers of an admitted gang go.

Design (see ``DESIGN.md``): a gang is placed on one shape, whole or not at all. The caller
checks ``index.slots(shape, gpus_per_worker) >= workers`` first; then any choice of nodes
with enough free GPUs succeeds (taking ``g`` GPUs from a node with ``f >= g`` free removes
exactly one of its ``f // g`` slots), so placement never rolls back.

- training: the community's own owners' nodes first, best fit; then any node, best fit.
- serving: replicas spread across owners — each goes to an owner holding no replica of this
  workload yet (own owners first, then best fit); once every owner with room holds one, to
  the owner holding fewest (ties: own owners, best fit, owner name).
"""

from __future__ import annotations

from polyculture.scheduling import reasons
from polyculture.scheduling.capacity import FreeIndex, Pool
from polyculture.scheduling.snapshot import Workload


def place(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    *,
    own_owners: tuple[int, ...] = (),
    serving: bool = False,
) -> list[int]:
    """Take GPUs for every worker and return the node id of each, in worker order."""
    if serving:
        return _spread(index, shape, workers, gpus_per_worker, own_owners)
    placed: list[int] = []
    own = bool(own_owners)
    for _ in range(workers):
        node = -1
        if own:
            node = index.best_fit(shape, gpus_per_worker, own_owners)
            # free GPUs only shrink while placing, so once the own nodes are full they stay full
            own = node >= 0
        if node < 0:
            node = index.best_fit(shape, gpus_per_worker)
        if node < 0:  # the caller broke the precondition
            raise RuntimeError("placement without enough free slots")
        index.take(node, gpus_per_worker)
        placed.append(node)
    return placed


def _spread(
    index: FreeIndex, shape: int, workers: int, gpus: int, own_owners: tuple[int, ...]
) -> list[int]:
    replicas: dict[int, int] = {}
    owner_of = index.owner_of
    buckets, count = index.buckets[shape], index.count[shape]
    placed: list[int] = []
    for _ in range(workers):
        # 1. an own owner without a replica of this workload yet, best fit
        fresh = tuple(o for o in own_owners if o not in replicas)
        node = index.best_fit(shape, gpus, fresh) if fresh else -1
        # 2. any owner without a replica yet, best fit (skips at most the nodes of the few
        #    owners already used, so this stays cheap with thousands of nodes)
        if node < 0:
            for free in range(gpus, len(count)):
                if count[free]:
                    bucket = buckets[free]
                    for i in range(len(bucket) - 1, -1, -1):
                        if owner_of[bucket[i]] not in replicas:
                            node = bucket[i]
                            break
                    if node >= 0:
                        break
        # 3. every owner with room holds a replica: the one holding fewest
        if node < 0:
            node = _least_loaded(index, shape, gpus, replicas, own_owners)
        if node < 0:
            raise RuntimeError("placement without enough free slots")
        index.take(node, gpus)
        owner = owner_of[node]
        replicas[owner] = replicas.get(owner, 0) + 1
        placed.append(node)
    return placed


def _least_loaded(
    index: FreeIndex, shape: int, gpus: int, replicas: dict[int, int], own: tuple[int, ...]
) -> int:
    best: tuple[int, int, int, int] | None = None
    best_node = -1
    for owner in index.owners_in_shape[shape]:
        free, node = index.owner_best_fit(shape, owner, gpus)
        if node < 0:
            continue
        key = (replicas.get(owner, 0), 0 if owner in own else 1, free, owner)
        if best is None or key < best:
            best, best_node = key, node
    return best_node


def fitting_shapes(pool: Pool, w: Workload) -> tuple[list[int], reasons.Why | None]:
    """Shapes that could hold ``w`` in an empty pool (cheapest first), or why none can:
    the class and memory it asks for, and enough nodes with room for a worker each."""
    eligible = [
        s.id
        for s in pool.shapes
        if (w.gpu_class is None or s.gpu_class == w.gpu_class)
        and s.memory_mib >= w.min_gpu_memory_mib
        and pool.node_sizes[s.id]
    ]
    g = w.gpus_per_worker
    fitting = [
        s
        for s in eligible
        if g > 0 and sum(k * (size // g) for size, k in pool.node_sizes[s].items()) >= w.workers
    ]
    if not eligible:
        return fitting, (reasons.no_matching_gpus, (w.gpu_class, w.min_gpu_memory_mib))
    if not fitting:
        largest = max(eligible, key=lambda s: max(pool.node_sizes[s]))
        biggest = max(pool.node_sizes[largest])
        return fitting, (
            reasons.gang_too_large,
            (w.workers, g, pool.shapes[largest].gpu_class, biggest),
        )
    return fitting, None
