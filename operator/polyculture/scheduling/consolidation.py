"""Consolidation: move small running workloads to clear a block for a fragmented gang.

Design (see ``DESIGN.md``, "Consolidation"): only when ``Policy.consolidation`` is on, and only
for a waiting gang whose shape has enough free GPUs in total but no node with a block large
enough (``Fragmented``). Movable workloads are single-worker, non-serving, past the minimum
runtime, of a known community, entirely on the shape. The plan visits nodes with the largest
free block still below the gang's per-worker need first (fewest GPUs to move per block), and
on each takes the smallest single movable workload that completes the block, else the
largest ones until it does. It moves at most as many GPUs as the gang starts. The cycle then
frees the planned workloads, places the gang, and places each moved workload again (largest
first, best fit) on the GPUs left; if any does not fit, everything is put back as it was.

A move changes no community's allocation (same shape, same GPUs), so entitlements, shares
and the no-cycle argument of preemption are untouched; it costs the moved workload a restart.
"""

from __future__ import annotations

from polyculture.scheduling.capacity import FreeIndex
from polyculture.scheduling.preemption import Live, victim_order


def plan_moves(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    *,
    on_node: list[list[Live]],
    budget: int,
) -> list[Live] | None:
    """Movable workloads whose removal lets the gang fit on ``shape``, or None.

    Reads ``index`` only. ``on_node[i]`` lists the workloads running on node ``i``;
    ``budget`` is the most GPUs the plan may move. The caller checks that the gang does not
    fit yet and that the shape has enough free GPUs in total (then the moved workloads have
    as many free GPUs to land on as they free; whether their sizes fit is checked when they
    are placed again, by :func:`replace_moved`).
    """
    g = gpus_per_worker
    short = workers - index.slots(shape, g)
    count, buckets = index.count[shape], index.buckets[shape]
    chosen: list[Live] = []
    moved = 0
    for f in range(min(g, len(count)) - 1, -1, -1):
        lacking = g - f
        if moved + lacking > budget:
            break  # nodes with fewer free GPUs lack even more
        if not count[f]:
            continue
        for node in reversed(buckets[f]):
            lives = [live for live in on_node[node] if live.movable and not live.preempted]
            if sum(live.gpus for live in lives) < lacking:
                continue
            lives.sort(key=lambda live: (live.gpus, victim_order(live)))
            single = next((live for live in lives if live.gpus >= lacking), None)
            if single is not None:
                take = [single]
            else:
                take, freed = [], 0
                for live in reversed(lives):
                    take.append(live)
                    freed += live.gpus
                    if freed >= lacking:
                        break
            freed = sum(live.gpus for live in take)
            if moved + freed > budget:
                continue
            chosen += take
            moved += freed
            short -= (f + freed) // g
            if short <= 0:
                return chosen
    return None


def replace_moved(index: FreeIndex, shape: int, moved: list[Live]) -> list[int] | None:
    """Place each of ``moved`` (already freed) again, best fit; its new node id, in order.

    Larger workloads go first (they are harder to fit). On failure nothing stays taken
    and None is returned.
    """
    order = sorted(range(len(moved)), key=lambda k: (-moved[k].gpus, victim_order(moved[k])))
    placed = [-1] * len(moved)
    for k in order:
        live = moved[k]
        # back where it was when the gang left room there: then it does not move at all
        home = live.nodes[0]
        node = home if index.free[home] >= live.gpus else index.best_fit(shape, live.gpus)
        if node < 0:
            for j in order:
                if placed[j] >= 0:
                    index.give(placed[j], moved[j].gpus)
            return None
        index.take(node, live.gpus)
        placed[k] = node
    return placed
