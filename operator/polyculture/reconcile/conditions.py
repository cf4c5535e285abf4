"""Kubernetes-style conditions and timestamps, as both resources' status writes them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(when: datetime) -> str:
    return when.strftime(TIME_FORMAT)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def find_condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    """The condition of ``type_`` in ``status``, or an empty mapping."""
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), {})


def condition(
    previous: Mapping[str, Any],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> dict[str, Any]:
    """A condition for the new status; it keeps the transition time of ``previous`` (a status)
    while its ``status`` is unchanged."""
    old = find_condition(previous, type_)
    since = old.get("lastTransitionTime") if old.get("status") == status else None
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or format_time(now),
        "observedGeneration": generation,
    }
