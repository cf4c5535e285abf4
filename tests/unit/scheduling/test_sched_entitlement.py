"""Water-filling entitlement and usage decay, on their own.

Covers: caps when capacity suffices, proportional shares by weight, floors, floors scaled
when oversubscribed, zero weights receiving only what others leave, the max-min property for
any claims (hypothesis), and Slurm-style decay (half-life, no decay, bad arguments).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyculture.scheduling import accrue, decay, water_fill
from polyculture.scheduling.entitlement import Claim


@pytest.mark.parametrize(
    ("capacity", "claims", "want"),
    [
        pytest.param(10, [], [], id="no claims get nothing"),
        pytest.param(
            10, [Claim(1, 0, 3), Claim(1, 0, 4)], [3, 4], id="caps when capacity suffices"
        ),
        pytest.param(12, [Claim(1, 0, 99), Claim(2, 0, 99)], [4, 8], id="shares follow weights"),
        pytest.param(12, [Claim(1, 9, 99), Claim(1, 0, 99)], [9, 3], id="a floor above the share"),
        pytest.param(12, [Claim(1, 0, 2), Claim(1, 0, 99)], [2, 10], id="a capped claim lends"),
        pytest.param(10, [Claim(1, 10, 20), Claim(1, 10, 20)], [5, 5], id="floors scaled down"),
        pytest.param(
            12, [Claim(1, 0, 4), Claim(0, 0, 99)], [4, 8], id="zero weight gets the leftover"
        ),
        pytest.param(
            12, [Claim(1, 0, 99), Claim(0, 2, 99)], [10, 2], id="zero weight keeps its floor"
        ),
        pytest.param(0, [Claim(1, 0, 5)], [0], id="no capacity, nothing to share"),
    ],
)
def test_water_fill(capacity: float, claims: list[Claim], want: list[float]) -> None:
    assert water_fill(capacity, claims) == pytest.approx(want)


claims_st = st.lists(
    st.builds(
        lambda w, f, extra: Claim(w, f, f + extra),
        st.sampled_from((0.0, 0.5, 1.0, 2.0, 3.0)),
        st.floats(0, 20),
        st.floats(0, 40),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 100), claims_st)
def test_water_fill_is_weighted_max_min(capacity: float, claims: list[Claim]) -> None:
    shares = water_fill(capacity, claims)
    eps = 1e-6
    total_floor = sum(c.floor for c in claims)
    if total_floor >= capacity and sum(c.cap for c in claims) > capacity:
        # oversubscribed floors: each gets the same fraction of its floor
        assert sum(shares) == pytest.approx(capacity if total_floor > 0 else 0, abs=1e-6)
        for c, s in zip(claims, shares, strict=True):
            assert s == pytest.approx(c.floor * capacity / total_floor if total_floor else 0)
        return
    assert sum(shares) == pytest.approx(min(capacity, sum(c.cap for c in claims)), abs=1e-6)
    for c, s in zip(claims, shares, strict=True):
        assert c.floor - eps <= s <= c.cap + eps
    # no share can grow by taking from a claim that is further ahead in share per weight
    for ci, si in zip(claims, shares, strict=True):
        for cj, sj in zip(claims, shares, strict=True):
            if ci.weight > 0 and cj.weight > 0 and si < ci.cap - eps and sj > cj.floor + eps:
                assert si / ci.weight >= sj / cj.weight - 1e-6


def test_decay_halves_every_half_life() -> None:
    assert decay(800.0, 3600, 3600) == pytest.approx(400.0)
    assert decay(800.0, 7200, 3600) == pytest.approx(200.0)
    assert decay(800.0, 0, 3600) == 800.0
    assert decay(800.0, 10**9, math.inf) == 800.0


def test_accrue_decays_then_adds() -> None:
    assert accrue(800.0, 50.0, 3600, 3600) == pytest.approx(450.0)


@pytest.mark.parametrize(("elapsed", "half_life"), [(-1, 10), (1, 0), (1, -5), (1, math.nan)])
def test_decay_rejects_bad_arguments(elapsed: float, half_life: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        decay(1.0, elapsed, half_life)
