"""``fairShare.reservation`` and ``fairShare.preemption.moveRestartedOnly`` reach the core's
Policy (off by default) and a bad value is rejected naming the field."""

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
