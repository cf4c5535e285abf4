"""Which stored chunk an entry goes into: one chunk per UTC day, and never too large.

A chunk is one Kubernetes object (a ConfigMap, see ``polyculture.kube.ledger_store``) holding
consecutive entries, one canonical JSON line each, and named after the pool and the ``seq``
of its first entry, so that the names sort in chain order. A new chunk starts when the day of
the entry's end changes, or when the chunk with the head stored beside it would pass
:data:`MAX_CHUNK_BYTES`, or at :data:`MAX_CHUNK_ENTRIES` (a ConfigMap holds at most 1 MiB; a
5-minute period makes 288 entries a day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

from polyculture.ledger.entries import Entry

PREFIX: Final = "polyculture-ledger-"
MAX_CHUNK_BYTES: Final = 900 * 1024
MAX_CHUNK_ENTRIES: Final = 1000
_NAME = re.compile(rf"^{PREFIX}(?P<pool>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<seq>[0-9]{{8,}})$")


def chunk_name(pool: str, first_seq: int) -> str:
    return f"{PREFIX}{pool}-{first_seq:08d}"


def parse_chunk_name(name: str) -> tuple[str, int] | None:
    """``(pool, first seq)`` of a chunk's name, or None for another object's name."""
    match = _NAME.match(name)
    return (match["pool"], int(match["seq"])) if match else None


def period_of(entry: Entry) -> str:
    """The chunking period of an entry: the UTC day its period ends."""
    return entry.end[:10]


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """Consecutive entries of one pool, in one stored object."""

    pool: str
    first_seq: int
    period: str
    lines: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return chunk_name(self.pool, self.first_seq)

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    @property
    def size(self) -> int:
        return len(self.text.encode())


class ChunkTooLargeError(ValueError):
    """One entry and the head beside it do not fit in one stored object."""


def place(last: Chunk | None, entry: Entry, *, head_bytes: int = 0) -> Chunk:
    """The chunk that ``entry`` is appended to: ``last`` grown by one line, or a new chunk.

    ``head_bytes``: the size of the head stored in the same object.
    """
    line = entry.line()
    if (
        last is not None
        and last.period == period_of(entry)
        and len(last.lines) < MAX_CHUNK_ENTRIES
        and last.size + len(line) + 1 + head_bytes <= MAX_CHUNK_BYTES
    ):
        return replace(last, lines=(*last.lines, line))
    if len(line) + 1 + head_bytes > MAX_CHUNK_BYTES:
        raise ChunkTooLargeError(
            f"ledger entry {entry.seq} ({len(line)} bytes) and its head ({head_bytes} bytes) "
            f"exceed {MAX_CHUNK_BYTES} bytes"
        )
    return Chunk(pool=entry.pool, first_seq=entry.seq, period=period_of(entry), lines=(line,))
