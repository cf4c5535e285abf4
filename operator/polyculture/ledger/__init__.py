"""The pool's ledger: GPU-seconds given per owner and used per community and model.

PURE (no kopf, no Kubernetes client, no Ray): the operator appends an entry per period to an
append-only, hash-chained log and stores it in bounded chunks (``polyculture.kube.ledger_store``);
anyone holding an export can recompute the chain and the totals offline
(``polyculture ledger verify``), without trusting the operator that wrote it.

- :mod:`polyculture.ledger.entries` — the entry format, canonical JSON and the chain hash.
- :mod:`polyculture.ledger.appender` — the next entry from the stored head and the status
  counters (restart-safe: deltas against the counters the head last saw).
- :mod:`polyculture.ledger.verify` — recompute a log: the first bad entry, totals, head.
- :mod:`polyculture.ledger.chunks` — which chunk (ConfigMap) an entry goes into.
- :mod:`polyculture.ledger.totals` — totals per owner, community and model; table and CSV.
"""

from polyculture.ledger.appender import Counters, Head, due, next_entry
from polyculture.ledger.entries import GENESIS, Entry, canonical_json, entry_hash
from polyculture.ledger.totals import Totals
from polyculture.ledger.verify import Verification, verify_lines

__all__ = [
    "GENESIS",
    "Counters",
    "Entry",
    "Head",
    "Totals",
    "Verification",
    "canonical_json",
    "due",
    "entry_hash",
    "next_entry",
    "verify_lines",
]
