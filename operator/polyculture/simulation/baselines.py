"""What a cooperative would do without the fair-share core: share naively, or share nothing.

``fifo`` — first come, first served over the whole pool, never preempting. Every cycle walks
the pending jobs of all communities in arrival order and starts each one that fits now
(best-effort FIFO, as Kueue's ``BestEffortFIFO``: a job that does not fit does not block the
smaller ones behind it, which is the kinder reading of "first come, first served").

``partition`` — each community gets a private slice of the pool proportional to its weight
(whole GPUs, largest remainders first, in nodes of at most ``node_gpus`` GPUs) and runs the
same best-effort FIFO on its slice alone. Nothing is lent, nothing preempted. A job that does
not fit its community's slice (by gang shape: 12 GPUs as 2 × 6 do not fit a slice of nodes
of 8 and 4) can never start there; the replay sets it aside as unplaceable and the measures
count it as never served.

Placement for both is best fit: each worker goes to the node with the fewest free GPUs that
still holds it (ties by node order), which keeps whole nodes free for the large gangs.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from polyculture.simulation.replay import Cycle, JobState, PoolNode, PoolState


def best_fit(free: list[int], nodes: Sequence[int], workers: int, per_worker: int) -> list[int]:
    """Node indices (from ``nodes``) for ``workers`` workers of ``per_worker`` GPUs, or [].

    Does not modify ``free``. Several workers may share a node when it has room for them.
    """
    taken: dict[int, int] = {}
    placement: list[int] = []
    for _ in range(workers):
        best, best_free = -1, 1 << 30
        for node in nodes:
            left = free[node] - taken.get(node, 0)
            if per_worker <= left < best_free:
                best, best_free = node, left
                if left == per_worker:
                    break
        if best < 0:
            return []
        taken[best] = taken.get(best, 0) + per_worker
        placement.append(best)
    return placement


def _greedy(
    state: PoolState, queue: Iterable[JobState], nodes: Sequence[int], cycle: Cycle
) -> None:
    """Start every job of ``queue`` (in order) that fits on ``nodes``; record it in ``cycle``."""
    view = list(state.free)  # what is left free once this cycle's admissions start
    budget = sum(view[node] for node in nodes)
    largest = max((view[node] for node in nodes), default=0)
    for jobstate in queue:
        if budget <= 0:
            return
        if jobstate.job.gpus > budget or jobstate.gpus_per_worker > largest:
            continue
        placement = best_fit(view, nodes, jobstate.workers, jobstate.gpus_per_worker)
        if not placement:
            continue
        for node in placement:
            view[node] -= jobstate.gpus_per_worker
        budget -= jobstate.job.gpus
        largest = max(view[node] for node in nodes)
        cycle.admissions.append((jobstate, tuple(placement)))


def _startable(
    state: PoolState,
    by_shape: Mapping[str, Mapping[tuple[int, int], list[JobState]]],
    nodes: Sequence[int],
) -> list[list[JobState]]:
    """The queues of ``by_shape`` (each in queue order) of gang shapes that fit the free GPUs of
    ``nodes`` now, in total and per worker on one node: free GPUs only shrink as a cycle
    starts jobs, so a job of any other shape cannot start in this cycle and is not walked."""
    budget = sum(state.free[node] for node in nodes)
    largest = max((state.free[node] for node in nodes), default=0)
    return [
        queue
        for shapes in by_shape.values()
        for (workers, per_worker), queue in shapes.items()
        if queue and workers * per_worker <= budget and per_worker <= largest
    ]


class FifoPolicy:
    """Best-effort first come, first served over the whole pool; never preempts."""

    name = "fifo"
    preemptible_after_s: float | None = None
    patience_s: float | None = None
    reclaim_patience_s: float | None = None

    def __init__(self, nodes: Sequence[PoolNode]) -> None:
        self._nodes = list(range(len(nodes)))

    def protected_s(self, jobstate: JobState) -> float | None:
        return None

    def cycle(self, state: PoolState, now: float) -> Cycle:
        cycle = Cycle()
        queues = _startable(state, state.by_shape, self._nodes)
        merged = heapq.merge(*queues, key=lambda jobstate: jobstate.order)
        _greedy(state, merged, self._nodes, cycle)
        return cycle


class PartitionPolicy:
    """Best-effort FIFO of each community on its private slice (nodes tagged ``partition``)."""

    name = "partition"
    preemptible_after_s: float | None = None
    patience_s: float | None = None
    reclaim_patience_s: float | None = None

    def __init__(self, nodes: Sequence[PoolNode]) -> None:
        self._slices: dict[str, list[int]] = {}
        for i, node in enumerate(nodes):
            if node.partition is not None:
                self._slices.setdefault(node.partition, []).append(i)

    def protected_s(self, jobstate: JobState) -> float | None:
        return None

    def cycle(self, state: PoolState, now: float) -> Cycle:
        cycle = Cycle()
        for community, queue in state.pending.items():
            if queue:
                nodes = self._slices.get(community, [])
                queues = _startable(state, {community: state.by_shape[community]}, nodes)
                merged = heapq.merge(*queues, key=lambda jobstate: jobstate.order)
                _greedy(state, merged, nodes, cycle)
        return cycle


def partition_slices(
    capacity: int, weights: Mapping[str, float], *, minimum: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Whole GPUs per community, proportional to ``weights`` (largest remainders first).

    ``minimum`` raises a community's slice to its guarantee, taken from the largest slices,
    as a private partition must still honour what the pool guaranteed.
    """
    total = sum(weights.values())
    exact = {name: capacity * weight / total for name, weight in weights.items()}
    slices = {name: int(share) for name, share in exact.items()}
    left = capacity - sum(slices.values())
    for name in sorted(exact, key=lambda n: (slices[n] - exact[n], n))[:left]:
        slices[name] += 1
    for name, floor in (minimum or {}).items():
        while slices.get(name, 0) < floor:
            donor = max(slices, key=lambda n: (slices[n], n))
            if donor == name or slices[donor] <= 0:
                break
            slices[donor] -= 1
            slices[name] = slices.get(name, 0) + 1
    return slices


def partition_pool(
    slices: Mapping[str, int], *, node_gpus: int = 8, owners: int = 4
) -> tuple[PoolNode, ...]:
    """Private nodes for each community's slice: full nodes, then one smaller for the rest."""
    nodes: list[PoolNode] = []
    for community in sorted(slices):
        gpus = slices[community]
        sizes = [node_gpus] * (gpus // node_gpus) + ([gpus % node_gpus] if gpus % node_gpus else [])
        for size in sizes:
            i = len(nodes)
            nodes.append(PoolNode(f"node-{i:04d}", f"owner-{i % owners}", size, community))
    return tuple(nodes)
