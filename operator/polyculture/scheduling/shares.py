"""Demand and entitlements as they change during one cycle (``DESIGN.md``, "One unit of
account").

The cycle keeps each community's demand as the *next* cycle will count it: a gang admitted
on a dearer shape than its cheapest adds the difference, a victim counts again at its
cheapest shape. Entitlements are recomputed from that demand only when a change can move
them, and only before a decision that reads them (:meth:`Shares.refresh`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from polyculture.scheduling.entitlement import EPSILON, Claim, entitlements, water_fill, weights
from polyculture.scheduling.snapshot import Community, Policy


class Shares:
    """Per community (dense ids, in the order of ``communities``): demand, entitlement, the
    floor that reclaiming leaves a victim (its guarantee, at most its entitlement), cap and
    guarantee. ``entitled`` and ``floors`` are updated in place, so aliases stay valid."""

    def __init__(
        self,
        communities: Sequence[Community],
        demand: list[float],
        capacity: float,
        policy: Policy,
    ) -> None:
        self.communities = communities
        self.capacity = capacity
        self.policy = policy
        self.demand = demand
        self.caps = [math.inf if c.max_gpus is None else float(c.max_gpus) for c in communities]
        self.guaranteed = [float(c.guaranteed_gpus) for c in communities]
        self.weights = weights(communities, policy)
        self.entitled = self._compute()
        self.floors = [min(g, e) for g, e in zip(self.guaranteed, self.entitled, strict=True)]
        self.stale = False
        self.nominal = nominal_shares(self.weights, self.guaranteed, self.caps, capacity)

    def within_nominal(self, c: int, units: float) -> bool:
        """Whether community ``c`` holding ``units`` stays within its nominal share."""
        return units <= self.nominal[c] + EPSILON

    def above_nominal(self, alloc: Sequence[float]) -> list[bool]:
        """Per community: whether it holds (``alloc``) more than its nominal share."""
        return [a > n + EPSILON for a, n in zip(alloc, self.nominal, strict=True)]

    def _compute(self) -> list[float]:
        names = [c.name for c in self.communities]
        demand = dict(zip(names, self.demand, strict=True))
        ent = entitlements(self.communities, demand, self.capacity, self.policy)
        return [ent[name] for name in names]

    def add(self, c: int, delta: float) -> None:
        """Change community ``c``'s demand; mark the entitlements stale if they can change.

        They cannot while ``c`` is strictly between its floor and its cap before and after
        (demand above what it is entitled to): the water level is where it was. In a
        contended pool that is the common case, so entitlements are recomputed seldom.
        """
        old = self.demand[c]
        new = self.demand[c] = old + delta
        if self.stale:
            return
        share, top, guaranteed = self.entitled[c], self.caps[c], self.guaranteed[c]
        cap_old, cap_new = min(old, top), min(new, top)
        if (
            self.weights[c] > 0
            and share < cap_old - EPSILON
            and share < cap_new - EPSILON
            and min(guaranteed, cap_old) == min(guaranteed, cap_new)
        ):
            return
        self.stale = True

    def refresh(self) -> None:
        """Recompute the entitlements (in place) if demand changed since they were computed."""
        if not self.stale:
            return
        self.stale = False
        self.entitled[:] = self._compute()
        self.floors[:] = [min(g, e) for g, e in zip(self.guaranteed, self.entitled, strict=True)]


def nominal_shares(
    weights: Sequence[float], guaranteed: Sequence[float], caps: Sequence[float], capacity: float
) -> list[float]:
    """Each community's *nominal share*: its entitlement if every community demanded the
    whole pool — its weighted slice of the capacity, at least its guarantee, at most its cap
    (``DESIGN.md``, "Reclaim within the nominal share"). It does not depend on demand."""
    claims = [
        Claim(w, min(g, cap), min(cap, capacity))
        for w, g, cap in zip(weights, guaranteed, caps, strict=True)
    ]
    return water_fill(max(capacity, 0.0), claims)
