"""``fairShare.preemption.spareNew`` reaches the core's Policy (off by default) and a bad value
is rejected naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.reconcile.admission import policy_of


def spec(**preemption: object) -> ComputePoolSpec:
    return ComputePoolSpec.model_validate(
        {
            "members": [{"owner": "coop", "nodeSelector": {"o": "coop"}}],
            "communities": [{"name": "a"}, {"name": "b"}],
            "fairShare": {"preemption": preemption},
        }
    )


def test_spare_new_is_off_by_default_and_reaches_the_policy() -> None:
    assert policy_of(spec()).spare_new is False
    assert policy_of(spec(spareNew=True)).spare_new is True


def test_a_bad_spare_new_is_rejected_naming_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        spec(spareNew="sometimes")
    assert "spareNew" in str(raised.value)
