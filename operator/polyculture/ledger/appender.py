"""The next ledger entry, from the stored head and the counters the statuses show now.

The statuses hold cumulative counters that survive operator restarts: each member's
``gpuSecondsProvided`` in the pool status (written by the pool daemon) and each model's
``gpuSecondsUsed`` (written by the admission loop). An entry records the *increase* of every
counter since the counters its predecessor saw, which the head keeps (:class:`Head`, stored
next to the newest entries). So an operator restarted at any point appends the increase once:
the head and the entry that moved it are written in one object update.

- A counter missing from the statuses now (a model not yet indexed after a restart, or
  deleted) adds nothing and keeps its last value: it is never counted twice when it returns.
- A counter below its last value was restarted from zero (the model was re-created under the
  same name): its whole value is the increase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from polyculture.ledger.entries import GENESIS, Entry, format_time, parse_time, to_millis
from polyculture.ledger.totals import Totals


@dataclass(frozen=True, kw_only=True)
class ModelUsage:
    """One model's cumulative counter (GPU-ms) as its status shows it."""

    model: str  # namespace/name
    community: str
    gpu_ms: int


@dataclass(frozen=True, kw_only=True)
class Counters:
    """The counters (GPU-ms) the last entry was computed from: owner -> ms, model -> ms."""

    given: Mapping[str, int] = field(default_factory=dict)
    used: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Head:
    """The end of the chain, as the appender needs it (a cache; the entries are the truth)."""

    seq: int = -1
    hash: str = GENESIS
    end: str | None = None
    counters: Counters = field(default_factory=Counters)
    totals: Totals = field(default_factory=Totals)

    @property
    def empty(self) -> bool:
        return self.seq < 0

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "to": self.end,
            "counters": {
                "given": dict(sorted(self.counters.given.items())),
                "used": dict(sorted(self.counters.used.items())),
            },
            "totals": self.totals.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Head:
        counters = obj.get("counters") or {}
        return cls(
            seq=int(obj["seq"]),
            hash=str(obj["hash"]),
            end=None if obj.get("to") is None else str(obj["to"]),
            counters=Counters(
                given={str(k): int(v) for k, v in (counters.get("given") or {}).items()},
                used={str(k): int(v) for k, v in (counters.get("used") or {}).items()},
            ),
            totals=Totals.from_json(obj.get("totals") or {}),
        )

    @classmethod
    def from_entries(cls, entries: Iterable[Entry]) -> Head:
        """Rebuild the head from the log alone (when the stored head is lost).

        Without the stored counters, each counter is taken to equal its total (true unless a
        model was re-created under the same name).
        """
        head = cls()
        totals = Totals()
        for entry in entries:
            totals.add(entry)
            head = cls(seq=entry.seq, hash=entry.hash, end=entry.end)
        return cls(
            seq=head.seq,
            hash=head.hash,
            end=head.end,
            counters=Counters(given=dict(totals.given), used=totals.used_by_model()),
            totals=totals,
        )


def due(head: Head, now: datetime, period_s: float) -> bool:
    """Whether an entry is due: none yet, or ``period_s`` since the last one ended."""
    if head.end is None:
        return True
    return (now - parse_time(head.end)).total_seconds() >= period_s


def _increase(now: int, last: int | None) -> int:
    if last is None or now < last:
        return max(now, 0)  # new, or restarted from zero
    return now - last


def next_entry(
    head: Head,
    *,
    pool: str,
    given: Mapping[str, int],
    used: Iterable[ModelUsage],
    now: datetime,
    start: datetime | None = None,
) -> tuple[Entry, Head]:
    """The entry for ``(head.end, now]`` and the head after it.

    ``given``: owner -> cumulative GPU-ms provided (pool status); ``used``: each model's
    cumulative counter. ``start`` is the beginning of the first period (the pool's creation),
    used only when the chain is empty.
    """
    given_delta: dict[str, int] = {}
    counters_given = dict(head.counters.given)
    for owner, value in given.items():
        given_delta[owner] = _increase(value, counters_given.get(owner))
        counters_given[owner] = value
    used_delta: dict[str, dict[str, int]] = {}
    counters_used = dict(head.counters.used)
    for usage in used:
        delta = _increase(usage.gpu_ms, counters_used.get(usage.model))
        counters_used[usage.model] = usage.gpu_ms
        if delta:
            used_delta.setdefault(usage.community, {})[usage.model] = delta
    end = format_time(now)
    begin = head.end if head.end is not None else format_time(start or now)
    if parse_time(begin) > now:
        begin = end  # a clock that went back: an empty-length period, never a negative one
    entry = Entry(
        pool=pool,
        seq=head.seq + 1,
        start=begin,
        end=end,
        prev=head.hash,
        given={k: v for k, v in given_delta.items() if v},
        used=used_delta,
    )
    totals = head.totals.copy()
    totals.add(entry)
    new_head = Head(
        seq=entry.seq,
        hash=entry.hash,
        end=end,
        counters=Counters(given=counters_given, used=counters_used),
        totals=totals,
    )
    return entry, new_head


def readings(
    pool: str, pool_status: Mapping[str, Any], models: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, int], list[ModelUsage]]:
    """The counters as the statuses show them: owner -> GPU-ms provided (the pool's members)
    and each model's GPU-ms used (models of ``pool`` only; community as accounted)."""
    given = {
        str(m["owner"]): to_millis(float(m.get("gpuSecondsProvided") or 0.0))
        for m in pool_status.get("members") or []
        if m.get("owner")
    }
    used = []
    for body in models:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        if spec.get("pool") != pool or "gpuSecondsUsed" not in status:
            continue
        namespace = str(meta.get("namespace") or "")
        used.append(
            ModelUsage(
                model=f"{namespace}/{meta.get('name')}",
                community=str(status.get("community") or spec.get("community") or namespace),
                gpu_ms=to_millis(float(status.get("gpuSecondsUsed") or 0.0)),
            )
        )
    return given, used
