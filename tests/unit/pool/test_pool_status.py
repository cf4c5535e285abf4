"""The pool status step (pure): ledger accrual, when to write, lending-change events.

Covers: GPU-seconds accrue from ledgerUpdatedAt at the stored lent GPUs; a gap longer than the
accrual limit is not credited; a ledger-only change is written at most every LEDGER_FLUSH_S;
reclaim and a closing window produce one LendingChange each; conditions keep their transition
time while unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.inventory import NodeInfo
from polyculture.reconcile.pools import LEDGER_FLUSH_S, MAX_ACCRUAL_GAP_S, needs_write, pool_status

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NODES = [
    NodeInfo("a-0", {"polyculture.dev/owner": "a", "nvidia.com/gpu.product": "X"}, 8),
    NodeInfo("b-0", {"polyculture.dev/owner": "b", "nvidia.com/gpu.product": "X"}, 4),
]


def spec(**a: Any) -> ComputePoolSpec:
    return ComputePoolSpec.model_validate(
        {
            "members": [
                {"owner": "a", "nodeSelector": {"polyculture.dev/owner": "a"}, **a},
                {"owner": "b", "nodeSelector": {"polyculture.dev/owner": "b"}},
            ],
            "communities": [{"name": "c"}],
        }
    )


def step(previous: dict[str, Any], now: datetime, **a: Any) -> tuple[dict[str, Any], Any]:
    status, _, changes = pool_status(spec(**a), previous, NODES, now, {}, {}, 1, "p")
    return status, changes


def provided(status: dict[str, Any]) -> dict[str, float]:
    return {m["owner"]: m["gpuSecondsProvided"] for m in status["members"]}


def test_ledger_accrues_lent_gpus_times_elapsed() -> None:
    first, _ = step({}, T0)
    assert provided(first) == {"a": 0.0, "b": 0.0}
    later, _ = step(first, T0 + timedelta(seconds=30))
    assert provided(later) == {"a": 240.0, "b": 120.0}


def test_a_reclaimed_owner_accrues_nothing() -> None:
    first, _ = step({}, T0, reclaim=True)
    later, _ = step(first, T0 + timedelta(seconds=30), reclaim=True)
    assert provided(later) == {"a": 0.0, "b": 120.0}


def test_a_gap_longer_than_the_limit_is_not_credited() -> None:
    first, _ = step({}, T0)
    later, _ = step(first, T0 + timedelta(seconds=MAX_ACCRUAL_GAP_S + 1))
    assert provided(later) == {"a": 0.0, "b": 0.0}


def test_ledger_only_changes_are_written_at_the_flush_interval() -> None:
    first, _ = step({}, T0)
    soon, _ = step(first, T0 + timedelta(seconds=LEDGER_FLUSH_S - 1))
    assert provided(soon)["a"] > 0
    assert not needs_write(first, soon, T0 + timedelta(seconds=LEDGER_FLUSH_S - 1))
    assert needs_write(first, soon, T0 + timedelta(seconds=LEDGER_FLUSH_S))


def test_capacity_changes_are_written_at_once() -> None:
    first, _ = step({}, T0)
    reclaimed, changes = step(first, T0 + timedelta(seconds=1), reclaim=True)
    assert needs_write(first, reclaimed, T0 + timedelta(seconds=1))
    assert [(c.owner, c.reason, c.lending) for c in changes] == [("a", "Reclaimed", False)]
    _, changes = step(reclaimed, T0 + timedelta(seconds=2))
    assert [(c.owner, c.reason, c.lending) for c in changes] == [("a", "Lending", True)]


def test_a_closed_window_is_a_lending_change() -> None:
    window = [{"from": "13:00", "to": "14:00", "timeZone": "UTC"}]
    first, _ = step({}, T0)
    closed, changes = step(first, T0 + timedelta(seconds=1), windows=window)
    assert [(c.owner, c.reason) for c in changes] == [("a", "OutsideLendingWindow")]
    member = next(m for m in closed["members"] if m["owner"] == "a")
    assert member["availableGPUs"] == 0 and member["unavailableReason"] == "OutsideLendingWindow"
    opened, _ = step(closed, T0 + timedelta(hours=1, minutes=30), windows=window)
    assert next(m for m in opened["members"] if m["owner"] == "a")["availableGPUs"] == 8


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    first, _ = step({}, T0)
    later, _ = step(first, T0 + timedelta(minutes=5))
    assert [c["lastTransitionTime"] for c in later["conditions"]] == [
        c["lastTransitionTime"] for c in first["conditions"]
    ]
