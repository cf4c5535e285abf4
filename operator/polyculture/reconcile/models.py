"""A CommunityModel's validity against the pools the operator knows (pure).

The API server has already checked the object alone (schema, CEL). What needs the pool is
judged by ``polyculture.api.admissibility.judge``; this step turns the verdict into the status
to write and the Events to post. It owns only the phases before admission — ``Pending`` and
``Invalid`` — and never touches a model that holds GPUs or has moved on (the admission loop
owns those phases), nor any other object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from polyculture.api.admissibility import KnownPools, Problem, community_of, judge
from polyculture.api.community_model import CommunityModel, CommunityModelStatus, Phase
from polyculture.api.compute_pool import ComputePool
from polyculture.api.pool_validity import MAX_PROBLEMS, judge_pools, validation_problems
from polyculture.reconcile.conditions import condition as make_condition
from polyculture.reconcile.conditions import find_condition, format_time

#: phases this step may set or leave; any other phase belongs to the admission loop
OWNED_PHASES = (None, Phase.PENDING, Phase.INVALID)
VALID = "Valid"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The status patch to write (None: nothing changed) and the Events to post."""

    status: dict[str, Any] | None
    events: tuple[Problem, ...]


def parse_pools(bodies: Mapping[str, Mapping[str, Any]]) -> KnownPools:
    """The usable pools; one that is not (``judge_pool``) is kept in ``invalid`` with why, so
    that its models are Invalid with reason ``PoolInvalid`` and every other pool is judged.

    A pool being deleted is no longer known: its models are judged ``PoolNotFound`` from the
    moment the deletion is asked, not ``Pending`` on a pool that is about to vanish."""
    return judge_pools({name: body for name, body in bodies.items() if not _deleting(body)})


def _deleting(body: Mapping[str, Any]) -> bool:
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def pool_verdict_key(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a model's verdict reads of a pool body: its spec (by uid and generation) and, of
    its status, each node's size and each member's GPUs by class (``admissibility.judge``);
    and whether its deletion was asked."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    return (
        meta.get("uid"),
        meta.get("generation"),
        _deleting(body),
        repr(status.get("largestNodeGPUs")),
        repr([(m.get("owner"), m.get("gpusByClass")) for m in status.get("members") or []]),
    )


class PoolsCache:
    """:func:`parse_pools`, again only when what a verdict reads of the pools changed.

    Judging a pool's spec costs milliseconds (member selectors are compared pairwise); a burst
    of new models would pay it once per model. Safe to share between threads: the cache is
    one tuple, replaced whole.
    """

    def __init__(self) -> None:
        self._cached: tuple[Any, KnownPools] | None = None

    def parse(self, bodies: Mapping[str, Mapping[str, Any]]) -> KnownPools:
        key = tuple(sorted((name, pool_verdict_key(body)) for name, body in bodies.items()))
        cached = self._cached
        if cached is not None and cached[0] == key and all(k[1][1] is not None for k in key):
            return cached[1]
        pools = parse_pools(bodies)
        self._cached = (key, pools)
        return pools


def verdict(body: Mapping[str, Any], pools: Mapping[str, ComputePool], now: datetime) -> Verdict:
    """Judge one model (its whole body) against ``pools``."""
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    previous = dict(body.get("status") or {})
    phase_now = previous.get("phase")
    if phase_now not in OWNED_PHASES:
        return Verdict(None, ())
    try:
        model = CommunityModel.model_validate(dict(body))
    except ValidationError as err:
        problems = validation_problems(err)[:MAX_PROBLEMS]  # each names its field
        community = namespace
    else:
        problems = judge(model, namespace, pools)
        community = community_of(model, namespace)
    generation = meta.get("generation")
    if problems:
        message = "; ".join(f"{p.field}: {p.message}" for p in problems)
        condition = make_condition(
            previous, VALID, "False", problems[0].reason, message, now, generation
        )
        new: dict[str, Any] = {
            "phase": Phase.INVALID.value,
            "community": community,
            "waiting": None,
            "conditions": [condition],
        }
    else:
        pool = str(body.get("spec", {}).get("pool", ""))
        condition = make_condition(
            previous, VALID, "True", "Accepted", f"pool {pool} can run this model", now, generation
        )
        waiting = previous.get("waiting") if phase_now == Phase.PENDING.value else None
        new = {
            "phase": Phase.PENDING.value,
            "community": community,
            "waiting": waiting
            or {
                "reason": "AwaitingAdmission",
                "message": f"valid for pool {pool}; waiting to be queued",
                "since": format_time(now),
            },
            "conditions": [condition],
        }
    new["observedGeneration"] = generation
    new["summary"] = CommunityModelStatus.model_validate(new).summary
    if _same(previous, new):
        return Verdict(None, ())
    was_invalid_for = (
        find_condition(previous, VALID).get("reason") if phase_now == Phase.INVALID.value else None
    )
    events = tuple(
        p for p in problems if p.reason != was_invalid_for or _message_changed(previous, new)
    )
    return Verdict(new, events)


def _message_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return find_condition(old, VALID).get("message") != find_condition(new, VALID).get("message")


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change nothing (timestamps of unchanged parts aside)."""

    def key(s: Mapping[str, Any]) -> tuple[Any, ...]:
        conds = [
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in s.get("conditions") or []
        ]
        waiting = s.get("waiting") or {}
        return (
            s.get("phase"),
            s.get("community"),
            s.get("observedGeneration"),
            waiting.get("reason"),
            waiting.get("message"),
            conds,
        )

    return key(old) == key(new)
