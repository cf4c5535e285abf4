"""A cycle run without waiting reasons decides exactly what a cycle with them decides.

``schedule(snapshot, waiting_reasons=False)`` (the simulator's call: it reads only what is
decided) works out no waiting reason and returns no waiting list; the admissions,
placements, preemptions, moves, entitlements and allocations must be those of the plain
call, on pools that preempt, move, cap, reserve and look ahead (``DESIGN.md``, "Speed").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from polyculture.scheduling import Decisions, Snapshot, cycle, reasons, schedule
from polyculture.scheduling.testing import policy_variants
from polyculture.simulation.bench import synthetic_snapshot

#: (nodes, communities, pending, seed)
SIZES = [(120, 12, 1500, 1), (200, 200, 2000, 2), (160, 40, 1600, 3)]


def _snapshots() -> Iterator[Any]:
    for nodes, communities, pending, seed in SIZES:
        snap = synthetic_snapshot(
            nodes=nodes, gpus_per_node=8, communities=communities, pending=pending, seed=seed
        )
        for name, variant in policy_variants(snap):
            yield pytest.param(variant, id=f"{nodes}n-{communities}c-{name}")


def _decided(decisions: Decisions) -> Decisions:
    return dataclasses.replace(decisions, waiting=())


@pytest.mark.parametrize("snap", list(_snapshots()))
def test_a_cycle_without_reasons_decides_as_with_them(snap: Snapshot) -> None:
    full = schedule(snap)
    unread = schedule(snap, waiting_reasons=False)
    assert unread.waiting == ()
    assert _decided(full) == unread
    # not vacuous: the cycle admits, and many wait for reasons it did not work out
    assert full.admissions and len(full.waiting) > 100


def test_the_reasons_are_skipped_and_the_reservation_still_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without reasons no reason is formatted and none of the later checks is made; with a
    reservation, the kind of each reason is still worked out (it decides who holds GPUs)."""
    formatted: list[str] = []
    for name in ("fragmented", "over_share", "pool_exhausted"):
        original = getattr(reasons, name)

        def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
            formatted.append(_name)
            return _original(*args)

        monkeypatch.setattr(reasons, name, counted)
    snap = synthetic_snapshot(nodes=120, gpus_per_node=8, communities=12, pending=1500, seed=1)
    schedule(snap, waiting_reasons=False)
    assert not formatted
    schedule(snap)
    assert formatted
    kinds: list[object] = []
    consider = cycle.Reservation.consider

    def seen(self: Any, entry: Any, c: int, why: Any, *args: Any) -> Any:
        kinds.append(why[0])
        return consider(self, entry, c, why, *args)

    monkeypatch.setattr(cycle.Reservation, "consider", seen)
    reserve = dataclasses.replace(snap, policy=dataclasses.replace(snap.policy, reservation=True))
    schedule(reserve, waiting_reasons=False)
    assert kinds and reasons.unread not in kinds
