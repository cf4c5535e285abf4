"""The core's snapshot of a pool, made again only for the models that changed (pure).

The admission loop takes a snapshot on every step (twice a second); at 10,000 models most of
them have not changed since the last one. :class:`SnapshotBuilder` keeps each model's part of
the snapshot (``reconcile.admission.model_part``: a ``Running``, a pending ``Workload`` or
nothing) with the very view it was made from, and makes it again only when the view is a new
object (the loop makes a new view exactly when the model's body, its last write or the status
being written is new) or when the part depends on ``now``. The key order is sorted again
only when the set of models changed. The result equals ``reconcile.admission.snapshot`` of
the same input, and reused parts are the same objects, so that comparing two snapshots
(whether the core must run again) is mostly a comparison of identities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.reconcile.admission import (
    ModelView,
    PoolView,
    assemble,
    model_part,
    part_reads_now,
)
from polyculture.scheduling import Running, Snapshot, Workload

Part = Running | Workload | None


class SnapshotBuilder:
    """``reconcile.admission.snapshot``, reusing the parts of unchanged views. One per pool;
    not thread-safe."""

    def __init__(self) -> None:
        #: by key: the view, its part, and whether the part depends on ``now``
        self._parts: dict[str, tuple[ModelView, Part, bool]] = {}
        self._order: list[str] = []
        self.made = 0  # parts made in the last build (the rest were reused)

    def build(
        self,
        pool: PoolView,
        spec: ComputePoolSpec,
        pool_status: Mapping[str, Any],
        models: Sequence[ModelView],
        now: datetime,
    ) -> Snapshot:
        parts = self._parts
        fresh: dict[str, tuple[ModelView, Part, bool]] = {}
        made = 0
        for view in models:
            key = view.key
            held = parts.get(key)
            if held is not None and held[0] is view and not held[2]:
                fresh[key] = held
            else:
                fresh[key] = (view, model_part(view, now), part_reads_now(view))
                made += 1
        if len(fresh) != len(self._order) or any(k not in fresh for k in self._order):
            self._order = sorted(fresh)
        self._parts, self.made = fresh, made
        running: list[Running] = []
        pending: list[Workload] = []
        for key in self._order:
            part = fresh[key][1]
            if isinstance(part, Running):
                running.append(part)
            elif part is not None:
                pending.append(part)
        return assemble(pool, spec, pool_status, running, pending, now)
