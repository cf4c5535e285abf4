"""Placement: where the workers of an admitted gang go.

Design (see ``DESIGN.md``): a gang is placed on one shape, whole or not at all. The caller
checks ``index.slots(shape, gpus_per_worker) >= workers`` first; then any choice of nodes
with enough free GPUs succeeds (taking ``g`` GPUs from a node with ``f >= g`` free removes
exactly one of its ``f // g`` slots), so placement never rolls back.

- training: the community's own owners' nodes first, best fit; then any node, best fit.
- serving: replicas spread across owners — each goes to the owner with the fewest replicas of
  this workload so far (ties: own owners, then best fit, then owner id, which follows owner
  name order).
"""

from __future__ import annotations

from polyculture.scheduling.capacity import FreeIndex


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
    own = set(own_owners)
    placed: list[int] = []
    for _ in range(workers):
        best: tuple[int, int, int, int] | None = None
        best_node = -1
        for owner in index.owners_in_shape[shape]:
            free, node = index.owner_best_fit(shape, owner, gpus)
            if node < 0:
                continue
            key = (replicas.get(owner, 0), 0 if owner in own else 1, free, owner)
            if best is None or key < best:
                best, best_node = key, node
        if best_node < 0:
            raise RuntimeError("placement without enough free slots")
        index.take(best_node, gpus)
        owner = index.owner_of[best_node]
        replicas[owner] = replicas.get(owner, 0) + 1
        placed.append(best_node)
    return placed
