"""When the admission loop watched a pool, and the users' counters carried across restarts (pure).

A holding model's GPU-seconds counter (``gpuSecondsUsed``, ``gpuSecondsByOwner``) is stored
with the time it was accrued to (``usageUpdatedAt``). Between two writes of a model its
admission is constant (each change is written with the usage up to it), so the counter is
exact up to any later moment *the operator watched it continuously*. The pool status records
those spans in ``usageWatches``: one ``{since, until}`` per admission loop that ran, the
running one last, its ``until`` moved with each write of the pool status (every
``LEDGER_FLUSH_S``). So a model's counter needs writing only when its admission changes, when
it is released, and at a slow, rate-capped refresh:

- while the same loop runs, a counter written at U accrues from U to now (in memory);
- a restarted loop starts a new span at its first step. A counter written at U under an
  earlier loop is *settled*: it accrues the earlier spans' time after U, none of the time
  nobody watched, and then continues as if written when the new span began (:func:`settle`);
  the loop writes it soon after, at a capped rate, and drops the earlier spans from the pool
  status once no counter needs them;
- the time between the last write of the pool status and a crash, and the downtime, are not
  credited: a crash loses at most ``LEDGER_FLUSH_S`` of watched time per holding model.

No second is counted twice: the spans never overlap (a span starts when its loop starts,
after the previous one's last write), and a settled counter starts where the new span starts.

Why spans rather than a write per holding model every so often: the old rule (a counter older
than 120 s at a restart was taken as "the operator was down" and not credited) needed each
counter written every 90 s, over 100 writes a second at 10,000 models, and still credited a
short downtime in full. Stretching the limit would credit longer downtimes. The spans make a
restart exact at the cost of one small list in the pool status. Spans from two replicas'
clocks are compared as they are: a skew between them moves a span's edge by that much.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from polyculture.api.community_model import Phase
from polyculture.reconcile.admission import HOLDING, credited
from polyculture.reconcile.conditions import format_time, parse_time

#: earlier spans kept in the pool status at most (the oldest go first: only a loss, never a
#: second counted twice)
MAX_WATCHES = 16
#: a pool status written before spans were recorded: its last write ends a span this long
#: (the old rule: a counter older than this at a restart was not credited)
LEGACY_SPAN_S = 120.0

Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Watches:
    """The spans the pool was watched: ``earlier`` ones of loops that stopped (closed,
    oldest first) and the running loop's, open from ``since``."""

    since: datetime
    earlier: tuple[Span, ...] = ()

    def watched_s(self, start: datetime, end: datetime) -> float:
        """Seconds of ``[start, end]`` inside a watched span."""
        total = 0.0
        for lo, hi in (*self.earlier, (self.since, end)):
            a, b = max(lo, start), min(hi, end)
            if b > a:
                total += (b - a).total_seconds()
        return total

    def earlier_s(self, start: datetime) -> float:
        """Seconds after ``start`` that earlier loops watched."""
        return self.watched_s(start, self.since)

    def status(self, now: datetime, *, keep_earlier: bool) -> list[dict[str, str]]:
        """``usageWatches`` to write at ``now``: the earlier spans (while a counter still
        needs them) and the running one up to now."""
        spans = [*(self.earlier if keep_earlier else ()), (self.since, now)]
        return [{"since": format_time(a), "until": format_time(b)} for a, b in spans]


def watches_from_status(pool_status: Mapping[str, Any], now: datetime) -> Watches:
    """The spans a loop starting at ``now`` inherits from the stored pool status: each
    recorded span closed at its last write, the newest ending at ``usageUpdatedAt``."""
    spans: list[Span] = []
    for row in pool_status.get("usageWatches") or []:
        since, until = parse_time(row.get("since")), parse_time(row.get("until"))
        if since is not None and until is not None and since < until:
            spans.append((since, until))
    last = parse_time(pool_status.get("usageUpdatedAt"))
    if not spans and last is not None:
        spans.append((last - timedelta(seconds=LEGACY_SPAN_S), last))
    elif spans and last is not None and last > spans[-1][1]:
        spans[-1] = (spans[-1][0], last)
    spans.sort()
    kept: list[Span] = []
    for since, until in spans:  # never overlapping, never reaching into the new span
        lo = max(since, kept[-1][1]) if kept else since
        hi = min(until, now)
        if hi > lo:
            kept.append((lo, hi))
    return Watches(since=now, earlier=tuple(kept[-MAX_WATCHES:]))


def accrues(status: Mapping[str, Any]) -> bool:
    """Whether the model holds GPUs (admitted, running or draining): its counter grows."""
    phase = status.get("phase")
    return bool(status.get("admission")) and (phase in HOLDING or phase == Phase.PREEMPTED.value)


def settle(status: Mapping[str, Any], watches: Watches) -> Mapping[str, Any]:
    """A holding model's status with its counter carried to ``watches.since``: the earlier
    spans' seconds after its ``usageUpdatedAt`` credited at its admission, and
    ``usageUpdatedAt`` moved to ``since``. The same object when it needs nothing (not
    holding, or accrued within the running span)."""
    last = parse_time(status.get("usageUpdatedAt"))
    if last is None or last >= watches.since or not accrues(status):
        return status
    return {**status, **credited(status, watches.earlier_s(last), watches.since)}
