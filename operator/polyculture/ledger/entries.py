"""One ledger entry, its canonical JSON and its place in the hash chain.

An entry covers the period ``(from, to]`` of one pool and records what happened in it, in
integer GPU-milliseconds (exact sums, no floating-point drift)::

    {"v": 1, "pool": "coop", "seq": 7,
     "from": "2026-11-29T13:00:00.000Z", "to": "2026-11-29T13:05:00.000Z",
     "given": {"lab-a": 2400000},                      # per owner, GPU-ms lent in the period
     "used": {"lang-yoruba": {"lang-yoruba/base": 1200000}},  # per community, per model
     "prev": "<sha256 of entry 6>", "hash": "<sha256 of this entry without 'hash'>"}

Zero amounts are left out. The first entry has ``seq`` 0 and ``prev`` :data:`GENESIS`.

Canonical JSON: keys sorted, no spaces (``separators=(",", ":")``), ASCII only (non-ASCII as
``\\uXXXX``), integers only, UTF-8 bytes. ``hash`` is the lowercase hex SHA-256 of the
canonical JSON of the entry without its ``hash`` key; an export is one canonical entry per
line, in ``seq`` order. Any change to an entry changes its hash, and since each entry names
its predecessor's hash, the last hash (the *head*, published in the pool's status) commits to
the whole log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

FORMAT_VERSION: Final = 1
GENESIS: Final = "0" * 64
_KEYS: Final = frozenset({"v", "pool", "seq", "from", "to", "given", "used", "prev", "hash"})


class LedgerFormatError(ValueError):
    """An entry that does not have the ledger's shape; the message names the field."""


def canonical_json(value: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def entry_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``body`` without its ``hash`` key."""
    unhashed = {k: v for k, v in body.items() if k != "hash"}
    return hashlib.sha256(canonical_json(unhashed).encode("ascii")).hexdigest()


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a ``Z``: one spelling per instant."""
    if when.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def to_millis(seconds: float) -> int:
    """GPU-seconds (as the status stores them, 3 decimals) to integer GPU-milliseconds."""
    return round(seconds * 1000)


@dataclass(frozen=True, kw_only=True)
class Entry:
    """A ledger entry (see the module docstring); ``hash`` is computed, not given."""

    pool: str
    seq: int
    start: str  # "from" in JSON
    end: str  # "to" in JSON
    prev: str
    given: Mapping[str, int] = field(default_factory=dict)
    used: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON object without ``hash`` (zero amounts left out)."""
        return {
            "v": FORMAT_VERSION,
            "pool": self.pool,
            "seq": self.seq,
            "from": self.start,
            "to": self.end,
            "given": {k: v for k, v in self.given.items() if v},
            "used": {
                community: {m: v for m, v in models.items() if v}
                for community, models in self.used.items()
                if any(models.values())
            },
            "prev": self.prev,
        }

    @property
    def hash(self) -> str:
        return entry_hash(self.body())

    def to_json(self) -> dict[str, Any]:
        body = self.body()
        body["hash"] = entry_hash(body)
        return body

    def line(self) -> str:
        """The entry as one line of an export (canonical JSON, no newline)."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, obj: Any) -> Entry:
        """Parse a stored entry; :class:`LedgerFormatError` names the first bad field.

        The stored ``hash`` is not checked here (see :mod:`polyculture.ledger.verify`).
        """
        if not isinstance(obj, dict):
            raise LedgerFormatError("an entry must be a JSON object")
        unknown = set(obj) - _KEYS
        if unknown:
            raise LedgerFormatError(f"unknown field(s) {sorted(unknown)}")
        if obj.get("v") != FORMAT_VERSION:
            raise LedgerFormatError(f"v: expected {FORMAT_VERSION}, got {obj.get('v')!r}")
        for key in ("pool", "from", "to", "prev", "hash"):
            if not isinstance(obj.get(key), str):
                raise LedgerFormatError(f"{key}: expected a string")
        seq = obj.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise LedgerFormatError("seq: expected an integer >= 0")
        for key in ("from", "to"):
            try:
                parse_time(obj[key])
            except ValueError as err:
                raise LedgerFormatError(f"{key}: not an RFC 3339 time: {obj[key]!r}") from err
        return cls(
            pool=obj["pool"],
            seq=seq,
            start=obj["from"],
            end=obj["to"],
            prev=obj["prev"],
            given=_amounts(obj.get("given", {}), "given"),
            used={
                str(c): _amounts(models, f"used.{c}")
                for c, models in _mapping(obj.get("used", {}), "used").items()
            },
        )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LedgerFormatError(f"{where}: expected an object")
    return value


def _amounts(value: Any, where: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, amount in _mapping(value, where).items():
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise LedgerFormatError(f"{where}.{key}: expected an integer >= 0 (GPU-ms)")
        out[key] = amount
    return out
