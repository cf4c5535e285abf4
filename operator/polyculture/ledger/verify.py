"""Recompute a ledger export offline: the chain, the order, the totals and the head.

Every check names the first entry that fails it, by line and ``seq``: a changed byte (the
entry's hash no longer matches its content, or it is no longer an entry), a missing entry or
two entries out of order (``seq`` is not the next one, ``prev`` is not the previous hash, or
``from`` is not where the previous entry ended), and, given the published head, entries cut
off at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from polyculture.ledger.entries import GENESIS, Entry, LedgerFormatError, entry_hash, parse_time
from polyculture.ledger.totals import Totals


@dataclass(frozen=True, kw_only=True)
class Problem:
    line: int  # 1-based line of the export
    seq: int | None  # the entry's seq when it could be read
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"entry at {where}: {self.message}"


@dataclass(kw_only=True)
class Verification:
    """The outcome: ``problem`` is the first bad entry, or None when the whole log is sound."""

    entries: int = 0
    head: str = GENESIS
    pool: str | None = None
    start: str | None = None
    end: str | None = None
    totals: Totals = field(default_factory=Totals)
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_lines(lines: Iterable[str], *, head: str | None = None) -> Verification:
    """Verify an export (one canonical entry per line; blank lines are ignored).

    ``head``: the head hash published in the pool's status; the last entry must have it.
    Stops at the first problem; ``entries``/``totals`` then cover the entries before it.
    """
    result = Verification()
    previous: Entry | None = None
    number = 0
    for number, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        problem, entry = _check(text, number, previous, result.pool)
        if problem is not None:
            result.problem = problem
            return result
        assert entry is not None
        result.entries += 1
        result.totals.add(entry)
        result.head = entry.hash
        result.pool = entry.pool
        result.start = result.start or entry.start
        result.end = entry.end
        previous = entry
    if head is not None and head != result.head:
        last = previous.seq if previous else None
        result.problem = Problem(
            line=number,
            seq=last,
            message=f"the log ends at hash {result.head}, not at the published head {head}: "
            "entries are missing at the end or the log was rewritten",
        )
    return result


def _check(
    text: str, number: int, previous: Entry | None, pool: str | None
) -> tuple[Problem | None, Entry | None]:
    def bad(message: str, seq: int | None = None) -> tuple[Problem, None]:
        return Problem(line=number, seq=seq, message=message), None

    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return bad(f"not JSON ({err.msg} at column {err.colno})")
    seq = obj.get("seq") if isinstance(obj, dict) and isinstance(obj.get("seq"), int) else None
    try:
        entry = Entry.from_json(obj)
    except LedgerFormatError as err:
        return bad(f"not a ledger entry: {err}", seq)
    if obj["hash"] != entry_hash(obj):
        return bad("its content does not match its hash (the entry was changed)", seq)
    if entry.line() != text:
        return bad("not in canonical form (the entry was rewritten)", seq)
    expected = 0 if previous is None else previous.seq + 1
    if entry.seq != expected:
        kind = "missing" if entry.seq > expected else "out of order or repeated"
        return bad(f"seq {entry.seq} where {expected} was expected (an entry is {kind})", seq)
    if entry.prev != (GENESIS if previous is None else previous.hash):
        return bad("prev does not name the previous entry's hash (the chain is broken)", seq)
    if pool is not None and entry.pool != pool:
        return bad(f"pool {entry.pool!r} in a log of pool {pool!r}", seq)
    if previous is not None and entry.start != previous.end:
        return bad(
            f"from {entry.start} is not where the previous entry ended ({previous.end})", seq
        )
    if parse_time(entry.end) < parse_time(entry.start):
        return bad(f"to {entry.end} is before from {entry.start}", seq)
    return None, entry
