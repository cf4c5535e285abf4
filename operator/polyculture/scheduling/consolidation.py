"""Consolidation: move small running workloads to clear a block for a fragmented gang.

Design (see ``DESIGN.md``, "Consolidation"): only when ``Policy.consolidation`` is on, and only
for a waiting gang whose shape has enough free GPUs in total but no node with a block large
enough (``Fragmented``). Movable workloads are single-worker, non-serving, past the minimum
runtime, of a known community, entirely on the shape. The plan visits nodes with the largest
free block still below the gang's per-worker need first (fewest GPUs to move per block), and
on each takes the smallest single movable workload that completes the block, else the
largest ones until it does. It moves at most as many GPUs as the gang starts. The cycle then
frees the planned workloads, places the gang, and places each moved workload again (largest
first, back home if there is room, else best fit) on the GPUs left. One that fits nowhere
(the free GPUs are there, in blocks too small) makes room for itself, one level deep: on the
node closest to a block for it, smaller movable workloads leave (smallest first), it takes
their place, and they land best fit elsewhere — still within the same budget of moved GPUs.
If any does not fit, everything is put back as it was.

A move changes no community's allocation (same shape, same GPUs), so entitlements, shares
and the no-cycle argument of preemption are untouched; it costs the moved workload a restart.
"""

from __future__ import annotations

from collections.abc import Iterable

from polyculture.scheduling.capacity import FreeIndex
from polyculture.scheduling.placement import place
from polyculture.scheduling.preemption import Live, new_victims, protected, victim_order
from polyculture.scheduling.snapshot import Policy


def plan_moves(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    *,
    on_node: list[list[Live]],
    budget: int,
    spare_new: bool = False,
    restarted_only: bool = False,
) -> list[Live] | None:
    """Movable workloads whose removal lets the gang fit on ``shape``, or None.

    Reads ``index`` only. ``on_node[i]`` lists the workloads running on node ``i``;
    ``budget`` is the most GPUs the plan may move. The caller checks that the gang does not
    fit yet and that the shape has enough free GPUs in total (then the moved workloads have
    as many free GPUs to land on as they free; whether their sizes fit is checked when they
    are placed again, by :func:`replace_moved`). With ``spare_new``, the nodes of each level
    are visited fewest workloads never restarted before to move first, then fewest
    workloads, and on a node workloads restarted before are taken first
    (``Policy.spare_new``); with ``restarted_only``, only workloads restarted before move.
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
        plans: Iterable[list[Live]] = (
            take
            for node in reversed(buckets[f])
            if (take := _take(on_node[node], lacking, spare_new, restarted_only))
        )
        if spare_new:
            plans = sorted(plans, key=lambda take: (new_victims(take), len(take)))
        for take in plans:
            freed = sum(live.gpus for live in take)
            if moved + freed > budget:
                continue
            chosen += take
            moved += freed
            short -= (f + freed) // g
            if short <= 0:
                return chosen
    return None


def _take(lives: list[Live], lacking: int, spare_new: bool, restarted_only: bool) -> list[Live]:
    """The movable workloads of one node to move for ``lacking`` GPUs (none if they do not
    suffice): the smallest one that frees enough alone, else the largest ones until they do;
    with ``spare_new``, workloads restarted before first at each size; with
    ``restarted_only``, only those."""
    lives = [
        live
        for live in lives
        if live.movable and not live.preempted and (live.running.restarts or not restarted_only)
    ]
    if sum(live.gpus for live in lives) < lacking:
        return []
    lives.sort(key=lambda live: (live.gpus, victim_order(live, spare_new)))
    if spare_new:
        restarted = [live for live in lives if live.running.restarts and live.gpus >= lacking]
        if restarted:
            return [restarted[0]]
    single = next((live for live in lives if live.gpus >= lacking), None)
    if single is not None:
        return [single]
    take, freed = [], 0
    for live in reversed(lives):
        take.append(live)
        freed += live.gpus
        if freed >= lacking:
            break
    return take


def replace_moved(
    index: FreeIndex,
    shape: int,
    moved: list[Live],
    *,
    on_node: list[list[Live]],
    budget: int,
) -> list[tuple[Live, int]] | None:
    """Place each of ``moved`` (already freed) again, best fit; every move made, in order.

    Larger workloads go first (they are harder to fit), back home if the gang left room
    there. One that fits nowhere may make room for itself (:func:`_make_room`): smaller
    movable workloads leave a node, it takes their place, and they land best fit, moving at
    most ``budget`` GPUs in all. Returns ``(workload, new node)`` for every workload placed
    again, the ``moved`` ones and those that made room; on failure nothing stays taken
    and None is returned.
    """
    order = sorted(moved, key=lambda live: (-live.gpus, victim_order(live)))
    first = {id(live) for live in moved}
    busy = set(first)
    placed: list[tuple[Live, int]] = []
    for live in order:
        # back where it was when the gang left room there: then it does not move at all
        home = live.nodes[0]
        node = home if index.free[home] >= live.gpus else index.best_fit(shape, live.gpus)
        if node >= 0:
            index.take(node, live.gpus)
            placed.append((live, node))
            continue
        room = _make_room(index, shape, live, on_node=on_node, busy=busy, budget=budget)
        if room is None:
            for other, at in placed:
                index.give(at, other.gpus)
                if id(other) not in first:
                    index.take(other.nodes[0], other.gpus)  # it made room: back home
            return None
        budget -= sum(other.gpus for other, _ in room) - live.gpus
        placed += room
    return placed


def _make_room(
    index: FreeIndex,
    shape: int,
    live: Live,
    *,
    on_node: list[list[Live]],
    busy: set[int],
    budget: int,
) -> list[tuple[Live, int]] | None:
    """Clear a block for ``live`` by moving smaller workloads off one node (second level).

    Nodes short of the block by fewest GPUs first; on a node, its movable workloads smaller
    than ``live`` (not yet moved, ``busy`` holds those), smallest first, until the block is
    free — then ``live`` takes the node and each of them lands best fit elsewhere. The
    first node where that works is used; the GPUs moved (``live`` aside) stay within
    ``budget``. On success the workloads are marked ``busy``; on failure nothing changes.
    """
    g = live.gpus
    count, buckets = index.count[shape], index.buckets[shape]
    for f in range(min(g, len(count)) - 1, 0, -1):
        lacking = g - f
        if lacking > budget:
            break
        for node in list(reversed(buckets[f])):  # a copy: the loop moves nodes between buckets
            small = sorted(
                (
                    other
                    for other in on_node[node]
                    if other.movable
                    and not other.preempted
                    and id(other) not in busy
                    and other.gpus < g
                ),
                key=lambda other: (other.gpus, victim_order(other)),
            )
            take: list[Live] = []
            freed = 0
            for other in small:
                if freed >= lacking:
                    break
                take.append(other)
                freed += other.gpus
            if freed < lacking or freed > budget:
                continue
            for other in take:
                index.give(node, other.gpus)
            index.take(node, g)
            placed = [(live, node)]
            for other in sorted(take, key=lambda other: -other.gpus):
                at = index.best_fit(shape, other.gpus)
                if at < 0:
                    break
                index.take(at, other.gpus)
                placed.append((other, at))
            else:
                busy.update(id(other) for other in take)
                return placed
            for other, at in placed:
                index.give(at, other.gpus)
            for other in take:
                index.take(node, other.gpus)
    return None


def consolidate(
    index: FreeIndex,
    shape: int,
    workers: int,
    gpus_per_worker: int,
    *,
    on_node: list[list[Live]],
    own_owners: tuple[int, ...],
    serving: bool,
    spare_new: bool = False,
) -> tuple[list[int], list[tuple[Live, int]]] | None:
    """Move workloads to place the gang on ``shape`` (whose free GPUs suffice in total).

    Plans the moves (:func:`plan_moves`, at most the gang's GPUs), frees them, places the
    gang and places the moved workloads again (:func:`replace_moved`). Returns the gang's
    nodes and ``(workload, node)`` for each workload placed again (it moved unless the node
    is its own); on failure the index is exactly as it was (version included) and None is
    returned.
    """
    n, g = workers, gpus_per_worker
    moved = None
    if spare_new:  # moving only workloads restarted before restarts no new one
        moved = plan_moves(index, shape, n, g, on_node=on_node, budget=n * g, restarted_only=True)
    if moved is None:
        moved = plan_moves(index, shape, n, g, on_node=on_node, budget=n * g, spare_new=spare_new)
    if moved is None:
        return None
    version = index.version
    for live in moved:
        index.give(live.nodes[0], live.gpus)
    nodes = place(index, shape, n, g, own_owners=own_owners, serving=serving)
    spare = n * g - sum(live.gpus for live in moved)
    placed = replace_moved(index, shape, moved, on_node=on_node, budget=spare)
    if placed is None:
        for i in nodes:
            index.give(i, g)
        for live in moved:
            index.take(live.nodes[0], live.gpus)
        # the pool is exactly as it was: memoised failures still hold
        index.version = version
        return None
    return nodes, placed


def movable_by_node(
    lives: list[Live], shape_of: list[int], policy: Policy, now: float
) -> tuple[list[list[Live]], list[int]]:
    """Movable workloads per node — one worker, training, of a known community, past its
    minimum runtime — marked ``movable``; and their count per shape. Empty when
    consolidation is off."""
    on_node: list[list[Live]] = []
    per_shape = [0] * (max(shape_of, default=-1) + 1)
    if not policy.consolidation:
        return on_node, per_shape
    on_node = [[] for _ in shape_of]
    for live in lives:
        if (
            live.community >= 0
            and len(live.nodes) == 1
            and not live.serving
            and not protected(live.running, policy, now)
        ):
            live.movable = True
            on_node[live.nodes[0]].append(live)
            per_shape[shape_of[live.nodes[0]]] += 1
    return on_node, per_shape
