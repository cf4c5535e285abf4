"""``fairShare.reservation``, ``fairShare.preemption.moveRestartedOnly`` and
``fairShare.preemption.reclaimDelay`` reach the core's Policy (off or 0 by default) and a bad
value is rejected naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.reconcile.admission import policy_of


def spec(**fair_share: Any) -> ComputePoolSpec:
    return ComputePoolSpec.model_validate(
        {
            "members": [{"owner": "coop", "nodeSelector": {"o": "coop"}}],
            "communities": [{"name": "a"}, {"name": "b"}],
            "fairShare": fair_share,
        }
    )


def test_reservation_is_off_by_default_and_reaches_the_policy() -> None:
    assert policy_of(spec()).reservation is False
    assert policy_of(spec(reservation=True)).reservation is True


def test_a_bad_reservation_is_rejected_naming_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        spec(reservation="sometimes")
    assert "reservation" in str(raised.value)


def test_move_restarted_only_is_off_by_default_and_reaches_the_policy() -> None:
    assert policy_of(spec()).move_restarted_only is False
    moving = spec(preemption={"consolidation": True, "moveRestartedOnly": True})
    assert policy_of(moving).move_restarted_only is True
    with pytest.raises(ValidationError) as raised:
        spec(preemption={"moveRestartedOnly": "sometimes"})
    assert "moveRestartedOnly" in str(raised.value)


def test_reclaim_delay_is_zero_by_default_and_reaches_the_policy() -> None:
    assert policy_of(spec()).reclaim_delay_s == 0.0
    patient = spec(preemption={"delay": "10m", "reclaimDelay": "2m"})
    assert (policy_of(patient).preemption_delay_s, policy_of(patient).reclaim_delay_s) == (
        600.0,
        120.0,
    )
    with pytest.raises(ValidationError) as raised:
        spec(preemption={"reclaimDelay": "two minutes"})
    assert "reclaimDelay" in str(raised.value)
