"""Entitlement: weighted max-min water-filling of capacity, with floors and caps.

Design (see ``DESIGN.md``): among communities with demand, each gets
``clamp(level * weight, floor, cap)`` where one ``level`` makes the total equal the capacity.
``floor = min(guarantee, demand)``, ``cap = min(max_gpus, demand)``. Floors that together
exceed the capacity are scaled down proportionally; capacity left over once every weighted
community is capped goes to zero-weight communities (equal weights), so entitlement is
work-conserving. All quantities are normalised GPU units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from polyculture.scheduling.snapshot import Community, Policy

#: tolerance for comparisons of sums of floats (entitlements are fractional)
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Claim:
    """One community's claim on capacity: its weight, floor and cap (``floor <= cap``)."""

    weight: float
    floor: float
    cap: float


def water_fill(capacity: float, claims: Sequence[Claim]) -> list[float]:
    """Shares of ``capacity`` for ``claims``, in the same order.

    Contract: every share lies in ``[floor, cap]`` unless the floors alone exceed the
    capacity (then shares are the floors scaled to the capacity); the shares sum to
    ``min(capacity, sum of caps)``; among claims strictly between floor and cap, shares are
    proportional to weight. O(n log n).
    """
    if not claims:
        return []
    total_cap = sum(c.cap for c in claims)
    if total_cap <= capacity:
        return [c.cap for c in claims]
    total_floor = sum(c.floor for c in claims)
    if total_floor >= capacity:
        if total_floor <= 0:
            return [0.0 for _ in claims]
        scale = capacity / total_floor
        return [c.floor * scale for c in claims]

    # F(level) = sum(clamp(level * w, floor, cap)) is piecewise linear and non-decreasing;
    # walk its breakpoints (floor/w where a claim starts rising, cap/w where it stops).
    events: list[tuple[float, float, float]] = []  # (level, slope change, constant change)
    for c in claims:
        if c.weight > 0:
            events.append((c.floor / c.weight, c.weight, -c.floor))
            events.append((c.cap / c.weight, -c.weight, c.cap))
    events.sort()
    constant, slope = total_floor, 0.0
    level: float | None = None
    for at, d_slope, d_constant in events:
        if slope > 0 and constant + slope * at >= capacity:
            level = (capacity - constant) / slope
            break
        slope += d_slope
        constant += d_constant
    if level is not None:
        return [min(max(level * c.weight, c.floor), c.cap) for c in claims]

    # Every weighted claim is at its cap and capacity remains: lend it to the zero-weight
    # claims, equally, so that no capacity lacks a claimant.
    shares = [c.cap if c.weight > 0 else c.floor for c in claims]
    zero = [i for i, c in enumerate(claims) if c.weight <= 0]
    rest = capacity - sum(shares[i] for i in range(len(claims)) if claims[i].weight > 0)
    filled = water_fill(rest, [Claim(1.0, claims[i].floor, claims[i].cap) for i in zero])
    for i, share in zip(zero, filled, strict=True):
        shares[i] = share
    return shares


def weights(communities: Sequence[Community], policy: Policy) -> list[float]:
    """Each community's water-filling weight under ``policy.basis`` (see ``DESIGN.md``)."""
    if policy.basis == "weight":
        return [max(c.weight, 0.0) for c in communities]
    total = sum(max(c.contribution_gpu_seconds, 0.0) for c in communities)
    if total <= 0:
        return [max(c.weight, 0.0) for c in communities]
    shares = [max(c.contribution_gpu_seconds, 0.0) / total for c in communities]
    if policy.basis == "contribution":
        return [max(c.weight, 0.0) * s for c, s in zip(communities, shares, strict=True)]
    blend = min(max(policy.blend, 0.0), 1.0)
    even = 1.0 / len(communities)
    return [
        max(c.weight, 0.0) * (blend * s + (1.0 - blend) * even)
        for c, s in zip(communities, shares, strict=True)
    ]


def entitlements(
    communities: Sequence[Community],
    demand: Mapping[str, float],
    capacity: float,
    policy: Policy,
) -> dict[str, float]:
    """Entitled normalised GPUs per community name; 0 for a community without demand."""
    ws = weights(communities, policy)
    names: list[str] = []
    claims: list[Claim] = []
    for c, w in zip(communities, ws, strict=True):
        d = demand.get(c.name, 0.0)
        if d <= 0:
            continue
        cap = d if c.max_gpus is None else min(d, float(c.max_gpus))
        floor = min(float(c.guaranteed_gpus), cap)
        names.append(c.name)
        claims.append(Claim(w, max(floor, 0.0), max(cap, 0.0)))
    result = dict.fromkeys((c.name for c in communities), 0.0)
    result.update(zip(names, water_fill(max(capacity, 0.0), claims), strict=True))
    return result
