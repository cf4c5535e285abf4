"""``python -m polyculture.ledger.bench``: sizes and speed of the ledger at a pool's scale.

Every owner lends and every model trains in every period (the largest entries). Prints the
bytes of an entry and of the stored head, how many entries a chunk holds, and how fast entries
are appended and verified on this machine.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from polyculture.ledger.appender import Head, ModelUsage, next_entry
from polyculture.ledger.chunks import MAX_CHUNK_BYTES, MAX_CHUNK_ENTRIES
from polyculture.ledger.verify import verify_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyculture.ledger.bench")
    parser.add_argument("--owners", type=int, default=64)
    parser.add_argument("--communities", type=int, default=20)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--entries", type=int, default=288, help="288 = a day at 5 minutes")
    args = parser.parse_args(argv)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    head = Head()
    lines = []
    started = time.perf_counter()
    for i in range(1, args.entries + 1):
        given = {f"owner-{o:03d}": i * 300_000 * (o % 8 + 1) for o in range(args.owners)}
        used = [
            ModelUsage(
                model=f"community-{m % args.communities:03d}/model-{m:05d}",
                community=f"community-{m % args.communities:03d}",
                gpu_ms=i * 150_000 * (m % 4 + 1),
            )
            for m in range(args.models)
        ]
        entry, head = next_entry(
            head, pool="bench", given=given, used=used, now=t0 + timedelta(minutes=5 * i)
        )
        lines.append(entry.line())
    appended = time.perf_counter() - started
    started = time.perf_counter()
    result = verify_lines(lines, head=head.hash)
    verified = time.perf_counter() - started
    assert result.ok, result.problem
    entry_bytes = max(len(line) + 1 for line in lines[1:] or lines)
    head_bytes = len(json.dumps(head.to_json(), sort_keys=True, separators=(",", ":")))
    per_chunk = min(MAX_CHUNK_ENTRIES, (MAX_CHUNK_BYTES - head_bytes) // entry_bytes)
    print(
        f"owners {args.owners}, communities {args.communities}, models {args.models}, "
        f"entries {args.entries}\n"
        f"entry {entry_bytes} B, head {head_bytes} B, {per_chunk} entries per chunk "
        f"(limit {MAX_CHUNK_BYTES} B)\n"
        f"append {args.entries / appended:,.0f} entries/s, "
        f"verify {args.entries / verified:,.0f} entries/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
