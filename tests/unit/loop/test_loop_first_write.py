"""A new valid model's first status is written once, by its pool's admission loop.

The verdict step leaves a valid model's ``Pending`` to the loop of its pool whenever that
loop runs or is about to start; the loop writes the verdict's fields with the model's
admission or place in the queue, and writes ``Pending`` itself when it cannot schedule (no
backend), so that every valid model gets its first status, and only one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from concurrent.futures import wait
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from polyculture.api.compute_pool import RaySettings
from polyculture.handlers.admission import Admission
from polyculture.handlers.models import loop_writes_first
from polyculture.loop.backends import BackendSettings, settings_key
from polyculture.loop.pool import PoolLoop, Writer, merge_patch
from polyculture.loop.step_bench import POOL, _fixture


def _sent(loop: PoolLoop) -> None:
    wait([future for future, _ in loop.inflight.values()], timeout=30)


class _NoBackend(PoolLoop):
    """The loop of a pool whose backend cannot be reached."""

    def _choose_backend(self, ray: RaySettings) -> None:
        self.backend_key, self.backend_kind = settings_key(ray), ray.backend.value
        self.backend, self.backend_error = None, "no cluster to reach"


def test_a_loop_without_backend_writes_each_new_models_pending_once(tmp_path: Path) -> None:
    pool, nodes, store = _fixture(3)
    versions = itertools.count(2)
    writes: list[tuple[str, Mapping[str, Any]]] = []

    def patch_model(namespace: str, name: str, patch: Mapping[str, Any]) -> Mapping[str, Any]:
        key = f"{namespace}/{name}"
        writes.append((key, patch))
        body = store[key]
        store[key] = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(next(versions))},
            "status": merge_patch(body.get("status") or {}, patch),
        }
        return store[key]

    writer = Writer(patch_model=patch_model, apply_pool=lambda *_: None, post_event=lambda *_: None)
    loop = _NoBackend(
        POOL,
        backends=BackendSettings(local_state_dir=tmp_path),
        writer=writer,
        now=lambda: datetime.now(UTC),
    )
    try:
        assert loop.writes_first_status()
        loop.step(pool, list(store.values()), nodes, {})
        _sent(loop)
        assert sorted(key for key, _ in writes) == sorted(store)
        for key, patch in writes:
            assert patch["phase"] == "Pending", key
            assert patch["waiting"]["reason"] == "AwaitingAdmission"
            assert patch["community"] == key.split("/")[0]
            assert [c["type"] for c in patch["conditions"]] == ["Valid"]
        loop.step(pool, list(store.values()), nodes, {})  # the stored Pending: nothing more
        _sent(loop)
        assert len(writes) == 3
    finally:
        loop.close()


def test_the_verdict_step_leaves_the_first_write_to_a_loop_running_or_about_to() -> None:
    admission = Admission(BackendSettings(local_state_dir=Path("/nonexistent")))
    writes = loop_writes_first(SimpleNamespace(admission=admission))
    assert writes("bench")  # no loop yet: kopf is about to start the pool's daemon
    unusable = SimpleNamespace(writes_first_status=lambda: False)
    admission.loops["bench"] = unusable  # type: ignore[assignment]
    assert not writes("bench")  # a loop that judges its pool unusable writes nothing
    assert not loop_writes_first(SimpleNamespace())("bench")  # no admission loops at all
