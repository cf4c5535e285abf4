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
from polyculture.scheduling.capacity import FreeIndex
from polyculture.scheduling.entitlement import EPSILON
from polyculture.scheduling.intake import Entry
from polyculture.scheduling.snapshot import Community
from polyculture.scheduling.usage import owed

#: waiting for room: what GPUs freeing up would end
_ROOM = (reasons.pool_exhausted, reasons.fragmented, reasons.over_share)


class Reservation:
    """One cycle's reservation: at most one workload's GPUs held at a time."""

    __slots__ = ("_owed", "communities", "held", "index", "weights")

    def __init__(
        self, index: FreeIndex, communities: Sequence[Community], weights: Sequence[float]
    ) -> None:
        self.index = index
        self.communities = communities
        self.weights = weights
        #: (node id, GPUs held on it); None while nobody holds
        self.held: list[tuple[int, int]] | None = None
        self._owed: list[bool] | None = None

    def consider(
        self, entry: Entry, c: int, why: reasons.Why, allocated: float, entitled: float
    ) -> bool:
        """Hold GPUs for the waiting ``entry`` of community ``c`` if nobody holds yet, it
        waits for room, and ``c`` is below its entitlement and owed; whether it did."""
        if self.held is not None or why[0] not in _ROOM or allocated >= entitled - EPSILON:
            return False
        if self._owed is None:
            self._owed = owed([x.usage_gpu_seconds for x in self.communities], self.weights)
        if not self._owed[c]:
            return False
        w, fitting, _ = entry
        self.held = hold(self.index, fitting[0], w.workers, w.gpus_per_worker)
        return True

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
