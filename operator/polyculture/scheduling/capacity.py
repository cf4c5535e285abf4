"""Capacity: which GPUs exist and which are free, indexed for O(max GPUs per node) queries.

Design (see ``DESIGN.md``): nodes are grouped by *shape* (GPU class, GPU memory per GPU).
For each shape the index keeps ``count[f]``, the number of nodes with exactly ``f`` free
GPUs, and a bucket of those nodes, overall and per owner. Buckets are lists with each node's
position recorded, so moving a node between buckets is O(1) (swap with the last, pop); the
node chosen from a bucket is its last one, which is deterministic for a given history of
moves. Everything is plain ints and lists: this is the scheduler's hot path.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from polyculture.scheduling.snapshot import GPUClass, Node


@dataclass(frozen=True, slots=True)
class Shape:
    """A group of interchangeable nodes: same GPU class and memory per GPU."""

    id: int
    gpu_class: str
    memory_mib: int
    #: normalised units per GPU of this class
    weight: float
    #: GPUs of the largest node of this shape (available or not)
    max_node_gpus: int


class FreeIndex:
    """Free GPUs per node and, per shape, free-block counts and buckets (see module doc).

    Node ids are dense ints ``0..n-1``; ``shape_of[i]`` and ``owner_of[i]`` are ints too. A
    node that is not available is simply never added (it has no free GPUs).
    """

    __slots__ = (
        "buckets",
        "count",
        "free",
        "free_total",
        "journal",
        "obuckets",
        "opos",
        "owner_of",
        "owners_in_shape",
        "pos",
        "shape_of",
        "version",
    )

    def __init__(self, shapes: list[Shape], shape_of: list[int], owner_of: list[int]) -> None:
        n = len(shape_of)
        self.shape_of = shape_of
        self.owner_of = owner_of
        self.free = [0] * n
        self.pos = [-1] * n
        self.opos = [-1] * n
        self.count: list[list[int]] = [[0] * (s.max_node_gpus + 1) for s in shapes]
        self.buckets: list[list[list[int]]] = [
            [[] for _ in range(s.max_node_gpus + 1)] for s in shapes
        ]
        #: per shape: owner id -> buckets of that owner's nodes
        self.obuckets: list[dict[int, list[list[int]]]] = [{} for _ in shapes]
        #: per shape: owner ids in order of first appearance (deterministic)
        self.owners_in_shape: list[list[int]] = [[] for _ in shapes]
        self.free_total = [0] * len(shapes)
        #: bumped on every change, so that memoised failures know when they are stale
        self.version = 0
        #: when a list, every move is appended to it as (node, new free GPUs): see :meth:`replay`
        self.journal: list[tuple[int, int]] | None = None

    def add(self, node: int, free: int) -> None:
        """Register an available node with ``free`` GPUs (once per node)."""
        s = self.shape_of[node]
        o = self.owner_of[node]
        ob = self.obuckets[s].get(o)
        if ob is None:
            ob = [[] for _ in range(len(self.count[s]))]
            self.obuckets[s][o] = ob
            self.owners_in_shape[s].append(o)
        self.free[node] = free
        bucket = self.buckets[s][free]
        self.pos[node] = len(bucket)
        bucket.append(node)
        obucket = ob[free]
        self.opos[node] = len(obucket)
        obucket.append(node)
        self.count[s][free] += 1
        self.free_total[s] += free

    def _move(self, node: int, new: int) -> None:
        s = self.shape_of[node]
        old = self.free[node]
        pos = self.pos
        bucket = self.buckets[s][old]
        i = pos[node]
        last = bucket.pop()
        if last != node:
            bucket[i] = last
            pos[last] = i
        bucket = self.buckets[s][new]
        pos[node] = len(bucket)
        bucket.append(node)
        opos = self.opos
        ob = self.obuckets[s][self.owner_of[node]]
        obucket = ob[old]
        i = opos[node]
        last = obucket.pop()
        if last != node:
            obucket[i] = last
            opos[last] = i
        obucket = ob[new]
        opos[node] = len(obucket)
        obucket.append(node)
        count = self.count[s]
        count[old] -= 1
        count[new] += 1
        self.free_total[s] += new - old
        self.free[node] = new
        self.version += 1
        if self.journal is not None:
            self.journal.append((node, new))

    def replay(self, moves: list[tuple[int, int]]) -> None:
        """Make again the ``moves`` a journal recorded, in order: the same buckets and their
        order, positions, free GPUs, counts, totals, version and journal as :meth:`_move`
        one by one. A move up and straight back down on one node (a victim tried alone) is
        one :meth:`bounce`. Nothing reads the counts and totals in between, so they are
        brought to the nodes' last free GPUs once, at the end (a failed search's moves end
        where they start: they do not change)."""
        free, pos, opos = self.free, self.pos, self.opos
        shape_of, owner_of, buckets, obuckets = (
            self.shape_of,
            self.owner_of,
            self.buckets,
            self.obuckets,
        )
        first: dict[int, int] = {}  # each node's free GPUs before its first move
        i, n = 0, len(moves)
        while i < n:
            node, new = moves[i]
            old = free[node]
            if node not in first:
                first[node] = old
            s = shape_of[node]
            ob = obuckets[s][owner_of[node]]
            if i + 1 < n and moves[i + 1][0] == node and moves[i + 1][1] == old < new:
                # a bounce: the node to the end of its bucket, its last node in its place
                bucket, j = buckets[s][old], pos[node]
                last = bucket[-1]
                if last != node:
                    bucket[j], pos[last], bucket[-1], pos[node] = last, j, node, len(bucket) - 1
                bucket, j = ob[old], opos[node]
                last = bucket[-1]
                if last != node:
                    bucket[j], opos[last], bucket[-1], opos[node] = last, j, node, len(bucket) - 1
                i += 2
                continue
            # a move, as ``_move``: out of its bucket (the last node takes its place), to the
            # end of its new one
            bucket, j = buckets[s][old], pos[node]
            last = bucket.pop()
            if last != node:
                bucket[j], pos[last] = last, j
            bucket = buckets[s][new]
            pos[node] = len(bucket)
            bucket.append(node)
            bucket, j = ob[old], opos[node]
            last = bucket.pop()
            if last != node:
                bucket[j], opos[last] = last, j
            bucket = ob[new]
            opos[node] = len(bucket)
            bucket.append(node)
            free[node] = new
            i += 1
        count, total = self.count, self.free_total
        for node, old in first.items():
            new = free[node]
            if new != old:
                s = shape_of[node]
                count[s][old] -= 1
                count[s][new] += 1
                total[s] += new - old
        self.version += n
        if self.journal is not None:
            self.journal += moves

    def take(self, node: int, gpus: int) -> None:
        """Allocate ``gpus`` on ``node``; the caller has checked that they are free."""
        self._move(node, self.free[node] - gpus)

    def give(self, node: int, gpus: int) -> None:
        """Free ``gpus`` on ``node`` (a preempted or reclaimed worker)."""
        self._move(node, self.free[node] + gpus)

    def bounce(self, node: int, gpus: int) -> None:
        """``give(node, gpus)`` then ``take(node, gpus)`` in one step — a victim freed to be
        tried alone and put back: the same free GPUs, version, journal and bucket order as
        those two moves. The give takes the node out of its bucket (the bucket's last node
        takes its place) and the take puts it back at the end; the bucket above it gets it
        and loses it again as its last node, so it is as it was."""
        s = self.shape_of[node]
        free = self.free[node]
        bucket = self.buckets[s][free]
        pos = self.pos
        i = pos[node]
        last = bucket[-1]
        if last != node:
            bucket[i] = last
            pos[last] = i
            bucket[-1] = node
            pos[node] = len(bucket) - 1
        obucket = self.obuckets[s][self.owner_of[node]][free]
        opos = self.opos
        i = opos[node]
        last = obucket[-1]
        if last != node:
            obucket[i] = last
            opos[last] = i
            obucket[-1] = node
            opos[node] = len(obucket) - 1
        self.version += 2
        if self.journal is not None:
            self.journal += ((node, free + gpus), (node, free))

    def round_trip(self, gives: list[tuple[int, int]]) -> None:
        """``give(node, gpus)`` for each of ``gives`` in order, then ``take(node, gpus)`` for
        each in reverse — victims freed by a search that failed and put back — in one step:
        the same buckets and their order, positions, version and journal as those moves one
        by one. Free GPUs, counts and totals end as they were, so only the buckets move."""
        free, pos, opos = self.free, self.pos, self.opos
        shape_of, owner_of, buckets, obuckets = (
            self.shape_of,
            self.owner_of,
            self.buckets,
            self.obuckets,
        )
        moves: list[tuple[int, int]] = []
        steps = [(node, gpus) for node, gpus in gives]
        steps += [(node, -gpus) for node, gpus in reversed(gives)]
        for node, gpus in steps:
            s = shape_of[node]
            old = free[node]
            new = old + gpus
            for lists, where in (
                (buckets[s], pos),
                (obuckets[s][owner_of[node]], opos),
            ):
                bucket = lists[old]
                i = where[node]
                last = bucket.pop()
                if last != node:
                    bucket[i] = last
                    where[last] = i
                bucket = lists[new]
                where[node] = len(bucket)
                bucket.append(node)
            free[node] = new
            moves.append((node, new))
        self.version += len(moves)
        if self.journal is not None:
            self.journal += moves

    def slots(self, shape: int, gpus_per_worker: int) -> int:
        """How many workers of ``gpus_per_worker`` GPUs fit in the free blocks of ``shape``."""
        if gpus_per_worker == 1:
            return self.free_total[shape]
        count = self.count[shape]
        return sum(count[f] * (f // gpus_per_worker) for f in range(gpus_per_worker, len(count)))

    def largest_block(self, shape: int) -> int:
        """The most free GPUs on one node of ``shape``."""
        count = self.count[shape]
        for f in range(len(count) - 1, 0, -1):
            if count[f]:
                return f
        return 0

    def best_fit(self, shape: int, gpus: int, owners: tuple[int, ...] = ()) -> int:
        """The node of ``shape`` with the fewest free GPUs that still holds ``gpus``; -1 if none.

        With ``owners``, only those owners' nodes are considered (ties: first owner listed).
        """
        if owners:
            obs = [ob for o in owners if (ob := self.obuckets[shape].get(o)) is not None]
            for f in range(gpus, len(self.count[shape])):
                for ob in obs:
                    if ob[f]:
                        return ob[f][-1]
            return -1
        buckets = self.buckets[shape]
        count = self.count[shape]
        for f in range(gpus, len(count)):
            if count[f]:
                return buckets[f][-1]
        return -1

    def owner_best_fit(self, shape: int, owner: int, gpus: int) -> tuple[int, int]:
        """(smallest free block >= ``gpus`` of ``owner``'s nodes, that node), or (-1, -1)."""
        ob = self.obuckets[shape].get(owner)
        if ob is None:
            return -1, -1
        for f in range(gpus, len(ob)):
            if ob[f]:
                return f, ob[f][-1]
        return -1, -1


@dataclass(slots=True)
class Pool:
    """A snapshot's nodes with dense ids (first of each name), their shapes (cheapest first:
    class weight, memory, class name), and the free-block index, empty until :meth:`open`."""

    nodes: list[Node]
    names: list[str]
    node_id: dict[str, int]
    #: owner name -> id, in name order (ties broken by id follow names)
    owner_id: dict[str, int]
    shapes: list[Shape]
    shape_of: list[int]
    #: normalised units per GPU of each node
    weight_of: list[float]
    index: FreeIndex
    #: per shape: GPUs of a node -> number of available nodes of that size
    node_sizes: list[dict[int, int]]
    #: normalised units of the available nodes
    capacity: float
    #: name -> id of the available nodes
    available_id: dict[str, int]

    def open(self, used: list[int]) -> None:
        """Add every available node to the index with its GPUs minus ``used[i]`` free, in
        node order (as :meth:`FreeIndex.add` one by one)."""
        index = self.index
        free, pos, opos = index.free, index.pos, index.opos
        buckets, obuckets, owners_in_shape = index.buckets, index.obuckets, index.owners_in_shape
        count, total, shape_of, owner_of = (
            index.count,
            index.free_total,
            index.shape_of,
            index.owner_of,
        )
        for i, node in enumerate(self.nodes):
            gpus = node.gpus
            if not node.available or gpus <= 0:
                continue
            f = gpus - used[i]
            f = max(f, 0)
            s, o = shape_of[i], owner_of[i]
            ob = obuckets[s].get(o)
            if ob is None:
                ob = obuckets[s][o] = [[] for _ in range(len(count[s]))]
                owners_in_shape[s].append(o)
            free[i] = f
            bucket = buckets[s][f]
            pos[i] = len(bucket)
            bucket.append(i)
            bucket = ob[f]
            opos[i] = len(bucket)
            bucket.append(i)
            count[s][f] += 1
            total[s] += f


def index_pool(snapshot_nodes: Sequence[Node], classes: Sequence[GPUClass]) -> Pool:
    """Index ``snapshot_nodes`` (see :class:`Pool`); a class not in ``classes`` weighs 1.

    The layout (ids, shapes, capacity) depends on the nodes and classes only, so it is
    computed once for the same nodes and classes (the next cycles of one pool) and shared,
    read-only; the free-block index is new each time. The very tuples of the last call are
    recognised without hashing their nodes."""
    nodes, kinds = tuple(snapshot_nodes), tuple(classes)
    last = _last_layout[0]  # read once: a consistent entry, whichever thread wrote it
    if last is not None and last[0] is nodes and last[1] is kinds:
        layout = last[2]  # the very same tuples of frozen values: no need to hash each node
    else:
        layout = _layout(nodes, kinds)
        _last_layout[0] = (nodes, kinds, layout)
    return Pool(
        nodes=layout.nodes,
        names=layout.names,
        node_id=layout.node_id,
        owner_id=layout.owner_id,
        shapes=layout.shapes,
        shape_of=layout.shape_of,
        weight_of=layout.weight_of,
        index=FreeIndex(layout.shapes, layout.shape_of, layout.owner_of),
        node_sizes=layout.node_sizes,
        capacity=layout.capacity,
        available_id=layout.available_id,
    )


@dataclass(frozen=True, slots=True)
class _Layout:
    """What :class:`Pool` holds besides its free-block index (never changed once built)."""

    nodes: list[Node]
    names: list[str]
    node_id: dict[str, int]
    owner_id: dict[str, int]
    owner_of: list[int]
    shapes: list[Shape]
    shape_of: list[int]
    weight_of: list[float]
    node_sizes: list[dict[int, int]]
    capacity: float
    available_id: dict[str, int]


#: the layout last asked for, with the node and class tuples it was asked for (the next
#: cycles of one pool pass the same tuples)
_last_layout: list[tuple[tuple[Node, ...], tuple[GPUClass, ...], _Layout] | None] = [None]


@functools.lru_cache(maxsize=8)
def _layout(snapshot_nodes: tuple[Node, ...], classes: tuple[GPUClass, ...]) -> _Layout:
    by_class = {c.name: c for c in classes}
    nodes: list[Node] = []
    seen: set[str] = set()
    for node in snapshot_nodes:
        if node.name not in seen:
            seen.add(node.name)
            nodes.append(node)
    owner_id = {name: i for i, name in enumerate(sorted({n.owner for n in nodes}))}
    shape_keys: dict[tuple[str, int], tuple[float, int]] = {}  # key -> (weight, max gpus)
    node_keys: list[tuple[str, int]] = []
    for node in nodes:
        cls = by_class.get(node.gpu_class)
        weight = cls.weight if cls is not None else 1.0
        memory = node.memory_mib or (cls.memory_mib if cls is not None else 0)
        key = (node.gpu_class, memory)
        node_keys.append(key)
        _, biggest = shape_keys.get(key, (weight, 0))
        shape_keys[key] = (weight, max(biggest, node.gpus, 0))
    ordered = sorted(shape_keys, key=lambda k: (shape_keys[k][0], k[1], k[0]))
    shapes = [
        Shape(i, k[0], k[1], shape_keys[k][0], shape_keys[k][1]) for i, k in enumerate(ordered)
    ]
    shape_id = {k: i for i, k in enumerate(ordered)}
    shape_of = [shape_id[k] for k in node_keys]
    weight_of = [shapes[s].weight for s in shape_of]
    node_sizes: list[dict[int, int]] = [{} for _ in shapes]
    capacity = 0.0
    for i, node in enumerate(nodes):
        if node.available and node.gpus > 0:
            capacity += node.gpus * weight_of[i]
            sizes = node_sizes[shape_of[i]]
            sizes[node.gpus] = sizes.get(node.gpus, 0) + 1
    return _Layout(
        nodes=nodes,
        names=[n.name for n in nodes],
        node_id={n.name: i for i, n in enumerate(nodes)},
        owner_id=owner_id,
        owner_of=[owner_id[n.owner] for n in nodes],
        shapes=shapes,
        shape_of=shape_of,
        weight_of=weight_of,
        node_sizes=node_sizes,
        capacity=capacity,
        available_id={n.name: i for i, n in enumerate(nodes) if n.available},
    )
