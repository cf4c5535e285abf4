"""A ComputePool's status from its spec, the Nodes and the other pools (pure).

The handler calls ``pool_status`` every few seconds with the indexed Nodes; it writes the
result only when it differs from the stored status (``status_changed``), so that a quiet pool
costs no API requests. The GPU-seconds ledger accrues from ``ledgerUpdatedAt``: after an
operator restart it continues from the stored figures, and a gap longer than
``MAX_ACCRUAL_GAP_S`` (the operator was down, nobody watched) is not credited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.api.pool_validity import guarantee_shortfall
from polyculture.api.windows import window_open
from polyculture.inventory import (
    GPUClassRule,
    MemberRule,
    NodeInfo,
    PoolInventory,
    Selector,
    accrue,
    inventory,
)
from polyculture.reconcile.conditions import condition, format_time, parse_time

MAX_ACCRUAL_GAP_S = 120.0
#: a status that changed only in its ledger figures is written at most this often
LEDGER_FLUSH_S = 30.0


@dataclass(frozen=True, slots=True)
class LendingChange:
    """An owner whose lending state changed: the handler turns it into an Event."""

    owner: str
    lending: bool
    reason: str  # Reclaimed | OutsideLendingWindow | Lending
    message: str


def member_rules(spec: ComputePoolSpec, now: datetime) -> list[MemberRule]:
    return [
        MemberRule(
            owner=m.owner,
            selector=Selector(dict(m.node_selector)),
            max_gpus=m.max_gpus,
            reserved_gpus=m.reserved_gpus,
            reclaimed=m.reclaim,
            window_open=(not m.windows) or window_open(m.windows, now),
        )
        for m in spec.members
    ]


def class_rules(spec: ComputePoolSpec) -> list[GPUClassRule]:
    return [GPUClassRule(c.name, c.weight, tuple(c.products)) for c in spec.fair_share.gpu_classes]


def node_info(node: Mapping[str, Any]) -> NodeInfo:
    """NodeInfo from a Node body (as a dict)."""
    meta, spec, status = node.get("metadata", {}), node.get("spec", {}), node.get("status", {})
    alloc = (status.get("allocatable") or {}).get("nvidia.com/gpu", "0")
    try:
        gpus = int(str(alloc))
    except ValueError:
        gpus = 0
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return NodeInfo(
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        gpus=gpus,
        ready=ready,
        schedulable=not spec.get("unschedulable", False),
    )


def pool_status(
    spec: ComputePoolSpec,
    previous: Mapping[str, Any],
    nodes: Iterable[NodeInfo],
    now: datetime,
    senior_pools: Mapping[str, frozenset[str]],
    junior_pools: Mapping[str, frozenset[str]],
    generation: int | None = None,
    pool: str = "",
) -> tuple[dict[str, Any], PoolInventory, list[LendingChange]]:
    """The status to store, the inventory behind it, and owners whose lending changed."""
    rules = member_rules(spec, now)
    inv = inventory(pool, rules, nodes, class_rules(spec), senior_pools, junior_pools)
    prev_members = {m.get("owner"): m for m in previous.get("members") or []}
    last = parse_time(previous.get("ledgerUpdatedAt"))
    elapsed = (now - last).total_seconds() if last else 0.0
    if elapsed > MAX_ACCRUAL_GAP_S:
        elapsed = 0.0

    members: list[dict[str, Any]] = []
    changes: list[LendingChange] = []
    for m in inv.members:
        before = prev_members.get(m.owner, {})
        lending = m.unavailable_reason is None
        provided = accrue(float(before.get("gpuSecondsProvided", 0.0)), _lent(before), elapsed)
        members.append(
            {
                "owner": m.owner,
                "nodes": len(m.nodes),
                "gpusByClass": dict(m.gpus_by_class),
                "healthyGPUs": m.healthy_gpus,
                "availableGPUs": m.available_gpus,
                "lending": lending,
                "unavailableReason": m.unavailable_reason or "",
                "gpuSecondsProvided": round(provided, 3),
            }
        )
        if before and bool(before.get("lending")) != lending:
            changes.append(_change(m.owner, m.unavailable_reason))

    conditions = _conditions(inv, previous, now, generation)
    status = {
        "observedGeneration": generation,
        "totalGPUs": inv.total_gpus,
        "totalUnits": round(inv.total_units, 4),
        "ownerCount": len(spec.members),
        "communityCount": len(spec.communities),
        "unhealthyGPUs": inv.unhealthy_gpus,
        "capacity": [
            {"gpuClass": c, "gpus": n, "units": round(inv.units_by_class[c], 4)}
            for c, n in inv.capacity_by_class.items()
        ],
        "largestNodeGPUs": dict(inv.largest_node_by_class),
        "members": members,
        "conflicts": [
            {"node": c.node, "claimants": list(c.claimants), "countedIn": c.winner}
            for c in inv.conflicts
        ],
        "ledgerUpdatedAt": format_time(now),
        "conditions": conditions,
    }
    # allocation, communities and their usage belong to the admission loop: never sent here
    return status, inv, changes


def _lent(member_status: Mapping[str, Any]) -> int:
    """GPUs that counted as lent since the last accrual (what the stored status said)."""
    if not member_status.get("lending", False):
        return 0
    return int(member_status.get("availableGPUs", 0))


def _change(owner: str, reason: str | None) -> LendingChange:
    if reason == "Reclaimed":
        return LendingChange(owner, False, reason, f"owner {owner} reclaimed its nodes")
    if reason == "OutsideLendingWindow":
        return LendingChange(owner, False, reason, f"lending window of owner {owner} closed")
    return LendingChange(owner, True, "Lending", f"owner {owner} lends its nodes again")


def _conditions(
    inv: PoolInventory, previous: Mapping[str, Any], now: datetime, generation: int | None
) -> list[dict[str, Any]]:
    problems: list[tuple[str, str]] = []
    if inv.unhealthy_gpus:
        problems.append(("UnhealthyGPUs", f"{inv.unhealthy_gpus} GPUs are unhealthy"))
    if inv.empty_selectors:
        owners = ", ".join(inv.empty_selectors)
        problems.append(("SelectorMatchesNothing", f"no node matches the selector of {owners}"))
    if inv.conflicts:
        shown = "; ".join(
            f"{c.node} claimed by {', '.join(c.claimants)} (counted in {c.winner})"
            for c in inv.conflicts[:5]
        )
        more = f" and {len(inv.conflicts) - 5} more" if len(inv.conflicts) > 5 else ""
        problems.append(("NodeConflict", shown + more))
    degraded = (
        ("True", problems[0][0], "; ".join(m for _, m in problems))
        if problems
        else ("False", "Healthy", "all matched nodes are healthy and claimed once")
    )
    ready = (
        ("True", "CapacityAvailable", f"{inv.total_gpus} GPUs lendable now")
        if inv.total_gpus
        else ("False", "NoCapacity", "no GPU is lendable now")
    )
    return [
        condition(previous, type_, status, reason, message, now, generation)
        for type_, (status, reason, message) in (("Ready", ready), ("Degraded", degraded))
    ]


def needs_write(old: Mapping[str, Any], new: Mapping[str, Any], now: datetime) -> bool:
    """Write when anything but the ledger changed, or the ledger is ``LEDGER_FLUSH_S`` old.

    Between writes the lent GPUs are constant (a change is written at once), so accruing from
    the stored ``ledgerUpdatedAt`` at the stored ``availableGPUs`` is exact.
    """
    if _without_ledger(old) != _without_ledger(new):
        return True
    last = parse_time(old.get("ledgerUpdatedAt"))
    return last is None or (now - last).total_seconds() >= LEDGER_FLUSH_S


#: status fields the admission loop writes: the pool daemon neither sends nor compares them
LOOP_FIELDS = ("allocatedGPUs", "communities", "usageUpdatedAt", "usageWatches")


def _without_ledger(status: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k != "ledgerUpdatedAt" and k not in LOOP_FIELDS}
    out["members"] = [
        {k: v for k, v in m.items() if k != "gpuSecondsProvided"} for m in out.get("members") or []
    ]
    return out


VALID = "Valid"
OVERCOMMITTED = "Overcommitted"


def valid_condition(
    previous: Mapping[str, Any], now: datetime, generation: int | None
) -> dict[str, Any]:
    """``Valid=True``: the spec parses and its fields agree (``api.pool_validity``)."""
    return condition(previous, VALID, "True", "Accepted", "the spec is valid", now, generation)


#: condition types the pool daemon writes (the admission loop writes ``BackendReady``)
OWN_CONDITIONS = ("Ready", "Degraded", VALID, OVERCOMMITTED)
#: the status fields the pool daemon writes, conditions aside
OWN_FIELDS = (
    "observedGeneration",
    "totalGPUs",
    "totalUnits",
    "ownerCount",
    "communityCount",
    "unhealthyGPUs",
    "capacity",
    "largestNodeGPUs",
    "members",
    "conflicts",
    "ledgerUpdatedAt",
)


def own_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The pool daemon's part of a pool status: its fields and its condition types."""
    out = {k: status[k] for k in OWN_FIELDS if k in status}
    out["conditions"] = [
        dict(c) for c in status.get("conditions") or [] if c.get("type") in OWN_CONDITIONS
    ]
    return out


def invalid_status(
    previous: Mapping[str, Any], reason: str, message: str, now: datetime, generation: int | None
) -> dict[str, Any]:
    """The pool daemon's part of the status of a pool that cannot be used: ``Valid=False``
    with the reason and the fields at fault; everything else it wrote stays as it was."""
    own = own_status(previous)
    kept = [c for c in own["conditions"] if c.get("type") != VALID]
    invalid = condition(previous, VALID, "False", reason, message, now, generation)
    return {**own, "observedGeneration": generation, "conditions": [*kept, invalid]}


def potential_units(spec: ComputePoolSpec, inv: PoolInventory) -> float:
    """The most the members' nodes could lend at once, in normalised units: every GPU counted
    (healthy or not, windows and reclaims aside), within each member's ``maxGPUs``, the
    heaviest classes first."""
    weights = {c.name: c.weight for c in spec.fair_share.gpu_classes}
    caps = {m.owner: m.max_gpus for m in spec.members}
    total = 0.0
    for member in inv.members:
        left = caps.get(member.owner)
        by_weight = sorted(member.gpus_by_class.items(), key=lambda kv: -weights.get(kv[0], 1.0))
        for gpu_class, gpus in by_weight:
            counted = gpus if left is None else min(gpus, left)
            total += counted * weights.get(gpu_class, 1.0)
            if left is not None:
                left -= counted
    return total


def overcommitted_condition(
    spec: ComputePoolSpec,
    inv: PoolInventory,
    previous: Mapping[str, Any],
    now: datetime,
    generation: int | None,
) -> dict[str, Any]:
    """``Overcommitted=True`` when the guarantees exceed what the members' nodes could lend:
    the comparison the API server cannot make, since it depends on the live Nodes."""
    shortfall = guarantee_shortfall(spec, potential_units(spec, inv))
    if shortfall is None:
        return condition(
            previous,
            OVERCOMMITTED,
            "False",
            "GuaranteesCovered",
            "the members' nodes could honour every guarantee",
            now,
            generation,
        )
    return condition(
        previous, OVERCOMMITTED, "True", "GuaranteesExceedCapacity", shortfall, now, generation
    )
