"""Holding free GPUs for a gang owed GPU-time (``DESIGN.md``, "Fairness over time").

With ``Policy.reservation``, the first workload of a cycle (in fair-share order) that waits
for room while its community is below its entitlement and owed GPU-time (``usage.owed``)
gets the free GPUs of the nodes closest to holding it: on its cheapest shape, the
``workers`` nodes with the most free GPUs, at most ``gpus_per_worker`` on each. Nothing else
is placed on them for the rest of the cycle, so GPUs that free up there gather for it
instead of going to whoever is next (EASY backfilling's one reservation, without runtime
estimates, so without backfill on the held nodes). The core keeps no state: the next cycle
chooses again, and the nodes with the most free GPUs are those held before.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyculture.scheduling import reasons
from polyculture.scheduling.capacity import FreeIndex, Shape
from polyculture.scheduling.entitlement import EPSILON
from polyculture.scheduling.intake import Entry
from polyculture.scheduling.shares import Shares
from polyculture.scheduling.snapshot import Community, Workload
from polyculture.scheduling.usage import owed

#: waiting for room: what GPUs freeing up would end
_ROOM = (reasons.pool_exhausted, reasons.fragmented, reasons.over_share)


class Reservation:
    """One cycle's reservation: at most one workload's GPUs held at a time."""

    __slots__ = ("_owed", "classes", "communities", "held", "holder", "index", "shape", "weights")

    def __init__(
        self,
        index: FreeIndex,
        communities: Sequence[Community],
        weights: Sequence[float],
        shapes: Sequence[Shape],
    ) -> None:
        self.index = index
        #: the GPU class of each shape id (for the waiting reasons)
        self.classes = [shape.gpu_class for shape in shapes]
        self.communities = communities
        self.weights = weights
        #: (node id, GPUs held on it); None while nobody holds
        self.held: list[tuple[int, int]] | None = None
        #: the shape the GPUs are held on and the key of the workload they are held for
        self.shape = -1
        self.holder = ""
        self._owed: list[bool] | None = None

    @classmethod
    def make(cls, index: FreeIndex, shares: Shares, shapes: Sequence[Shape]) -> Reservation | None:
        """The cycle's reservation when the policy asks for one (``Policy.reservation``)."""
        if not shares.policy.reservation:
            return None
        return cls(index, shares.communities, shares.weights, shapes)

    def consider(
        self, entry: Entry, c: int, why: reasons.Why, allocated: float, entitled: float
    ) -> reasons.Why | None:
        """Hold GPUs for the waiting ``entry`` of community ``c`` if nobody holds yet, it
        waits for room, and ``c`` is below its entitlement and owed; if it did, the entry's
        waiting reason (``Reserved``), else None."""
        if self.held is not None or why[0] not in _ROOM or allocated >= entitled - EPSILON:
            return None
        if self._owed is None:
            self._owed = owed([x.usage_gpu_seconds for x in self.communities], self.weights)
        if not self._owed[c]:
            return None
        w, fitting, _ = entry
        self.shape, self.holder = fitting[0], w.key
        self.held = hold(self.index, self.shape, w.workers, w.gpus_per_worker)
        total = sum(gpus for _, gpus in self.held)
        gpu_class = self.classes[self.shape]
        return (reasons.reserved, (w.workers, w.gpus_per_worker, gpu_class, total, len(self.held)))

    def kept_off(self, w: Workload, fitting: list[int]) -> reasons.Why | None:
        """``HeldForOwed`` for another workload ``w`` that the held GPUs keep off: on a shape
        it may use, with enough GPUs free there once the held ones are counted; else None."""
        if not self.held or self.shape not in fitting:
            return None
        total = sum(gpus for _, gpus in self.held)
        if self.index.free_total[self.shape] + total < w.gpus:
            return None
        gpu_class = self.classes[self.shape]
        return (
            reasons.held_for_owed,
            (w.workers, w.gpus_per_worker, gpu_class, total, self.holder),
        )

    def release(self) -> None:
        """Give the held GPUs back (before another pass chooses again)."""
        for node, gpus in self.held or ():
            self.index.give(node, gpus)
        self.held = None


def hold(index: FreeIndex, shape: int, workers: int, gpus_per_worker: int) -> list[tuple[int, int]]:
    """Take out of ``index`` the free GPUs held for a gang of ``workers`` × ``gpus_per_worker``
    on ``shape`` (the nodes with most free GPUs first, then bucket order); returns them."""
    chosen: list[tuple[int, int]] = []
    buckets = index.buckets[shape]
    for free in range(len(buckets) - 1, 0, -1):
        for node in buckets[free]:
            if len(chosen) == workers:
                break
            chosen.append((node, min(free, gpus_per_worker)))
    for node, gpus in chosen:
        index.take(node, gpus)
    return chosen
