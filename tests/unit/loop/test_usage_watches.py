"""The users' ledger without a write per holding model every minute (``reconcile.watching``).

A model's counter is written when its admission changes and at a slow, capped refresh; in
between it accrues in memory while the same loop watches, and the pool status records the
spans the loops watched (``usageWatches``). Covered, on the real loop (scheduling and writes,
no backend actions; its writes go to an in-memory store that returns each stored object, as
the API server does):

- a continuous watch: no model write for minutes, the communities' consumption still exact;
- a SIGKILL and a restart: the new loop re-derives the same figures from what is stored, does
  not credit the downtime, settles every counter at the capped rate, then drops the spans no
  counter needs; a second kill in the middle of settling changes nothing either;
- no second counted twice: each counter ends at exactly the time the loops watched, also
  under any sequence of counter writes, pool writes, crashes and downtimes (a property test
  of the pure parts).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from concurrent.futures import wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyculture.api.compute_pool import ComputePoolSpec, RaySettings
from polyculture.controlplane.nodes import gpu_node_manifest
from polyculture.loop.backends import BackendSettings, settings_key
from polyculture.loop.pool import PoolLoop, Writer, merge_patch, parse_model
from polyculture.loop.pool_status import (
    LEDGER_FLUSH_S,
    REFRESH_S,
    SETTLE_AFTER_S,
    USAGE_BURST,
    USAGE_WRITES_PER_S,
)
from polyculture.reconcile.admission import credited
from polyculture.reconcile.conditions import format_time, parse_time
from polyculture.reconcile.pools import node_info, pool_status
from polyculture.reconcile.watching import (
    LEGACY_SPAN_S,
    MAX_WATCHES,
    Watches,
    settle,
    watches_from_status,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MODELS = 40
COMMUNITY = "yoruba"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class _NoActions(PoolLoop):
    """The loop with a backend that is never called: scheduling and writes only."""

    def _choose_backend(self, ray: RaySettings) -> None:
        self.backend_key, self.backend_kind = settings_key(ray), ray.backend.value
        self.backend = self.backend or _NoClusters()  # type: ignore[assignment]

    def _act(self, *_: Any) -> None:
        return None


class _NoClusters:
    """Stands for a backend that holds no cluster (a release finds nothing to tear down)."""

    def find(self, _: Any) -> None:
        return None


class Stored:
    """What the API server would hold: the pool, its nodes, the models; counts the writes."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clock = T0
        self.versions = itertools.count(2)
        self.model_writes: list[tuple[datetime, str, dict[str, Any]]] = []
        spec_body = {
            "members": [{"owner": "coop", "nodeSelector": {"polyculture.dev/owner": "coop"}}],
            "communities": [{"name": COMMUNITY}],
            "ray": {"backend": "kubernetes"},
        }
        self.nodes = []
        for i in range(MODELS // 8 + 1):
            manifest = gpu_node_manifest(f"gpu-{i}", "coop")
            manifest["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
            self.nodes.append(node_info(manifest))
        spec = ComputePoolSpec.model_validate(spec_body)
        status, _, _ = pool_status(spec, {}, self.nodes, T0, {}, {}, 1, "coop")
        self.pool: dict[str, Any] = {
            "metadata": {"name": "coop", "uid": "pool-uid", "generation": 1},
            "spec": spec_body,
            "status": status,
        }
        self.models: dict[str, dict[str, Any]] = {}
        for i in range(MODELS):
            self.models[f"{COMMUNITY}/m-{i}"] = {
                "metadata": {
                    "name": f"m-{i}",
                    "namespace": COMMUNITY,
                    "uid": f"uid-{i}",
                    "generation": 1,
                    "resourceVersion": "1",
                    "creationTimestamp": "2026-11-29T11:00:00Z",
                    "finalizers": ["polyculture.dev/kopf-finalizer"],
                },
                "spec": {
                    "pool": "coop",
                    "training": {"entrypoint": "python t.py", "workers": 1, "gpusPerWorker": 1},
                },
            }

    def patch_model(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        key = f"{namespace}/{name}"
        body = self.models[key]
        self.model_writes.append((self.clock, key, dict(patch)))
        stored = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(next(self.versions))},
            "status": merge_patch(body.get("status") or {}, patch),
        }
        self.models[key] = stored
        return stored

    def apply_pool(self, _: str, status: Mapping[str, Any]) -> None:
        self.pool = {**self.pool, "status": {**self.pool["status"], **status}}

    def loop(self) -> PoolLoop:
        writer = Writer(
            patch_model=self.patch_model, apply_pool=self.apply_pool, post_event=lambda *_: None
        )
        return _NoActions(
            "coop",
            backends=BackendSettings(local_state_dir=self.tmp_path),
            writer=writer,
            now=lambda: self.clock,
        )

    def step(self, loop: PoolLoop, seconds: float) -> None:
        """Move the clock to ``seconds`` after T0 and run one step; wait for its writes."""
        self.clock = at(seconds)
        loop.step(self.pool, list(self.models.values()), self.nodes, {})
        wait([f for f, _ in loop.inflight.values()])

    def consumed(self) -> float:
        (row,) = self.pool["status"]["communities"]
        return float(row["gpuSecondsConsumed"])

    def counters(self) -> dict[str, tuple[float, datetime]]:
        out = {}
        for key, body in self.models.items():
            status = body["status"]
            stamp = parse_time(status["usageUpdatedAt"])
            assert stamp is not None
            out[key] = (float(status.get("gpuSecondsUsed") or 0.0), stamp)
        return out

    def usage_writes(self, since: datetime) -> list[tuple[datetime, str]]:
        return [
            (t, key)
            for t, key, patch in self.model_writes
            if t >= since
            and set(patch) == {"gpuSecondsUsed", "gpuSecondsByOwner", "usageUpdatedAt"}
        ]


@pytest.fixture
def stored(tmp_path: Path) -> Stored:
    return Stored(tmp_path)


def admit(stored: Stored) -> PoolLoop:
    loop = stored.loop()
    stored.step(loop, 0)
    stored.step(loop, 1)
    assert all(b["status"].get("phase") == "Admitted" for b in stored.models.values())
    assert {s for _, s in stored.counters().values()} == {T0}  # admitted at T0, used 0
    return loop


def test_a_continuous_watch_writes_no_counter_and_the_pool_still_counts_every_second(
    stored: Stored,
) -> None:
    loop = admit(stored)
    for s in range(30, 601, 30):
        stored.step(loop, s)
        assert stored.consumed() == pytest.approx(MODELS * s, abs=0.01)
    assert stored.usage_writes(at(1)) == []  # no model write for ten minutes
    watches = stored.pool["status"]["usageWatches"]
    assert watches == [{"since": format_time(T0), "until": format_time(at(600))}]
    loop.close()


def test_the_refresh_is_capped_and_exact(stored: Stored) -> None:
    loop = admit(stored)
    for s in range(30, int(REFRESH_S), 30):
        stored.step(loop, s)
    assert stored.usage_writes(at(1)) == []
    end = REFRESH_S + 20
    for s in range(int(REFRESH_S) + 1, int(end) + 1):
        stored.step(loop, s)
    writes = stored.usage_writes(at(REFRESH_S))
    assert len(writes) == MODELS  # each counter refreshed once ...
    assert len(writes) <= USAGE_BURST + USAGE_WRITES_PER_S * (end - REFRESH_S)  # ... capped
    for used, stamp in stored.counters().values():
        assert used == pytest.approx((stamp - T0).total_seconds(), abs=0.01)
    loop.close()


def test_a_restart_re_derives_the_figures_and_never_credits_the_downtime(stored: Stored) -> None:
    loop = admit(stored)
    for s in range(30, 301, 30):
        stored.step(loop, s)
    before = stored.consumed()
    assert before == pytest.approx(MODELS * 300, abs=0.01)
    loop.close()  # SIGKILLed after its write at 300 s: nothing more is written

    again = stored.loop()  # up again at 400 s: 100 s nobody watched
    stored.step(again, 400)
    assert stored.consumed() == pytest.approx(before, abs=0.01)  # the same figure
    status = stored.pool["status"]
    assert status["usageWatches"] == [
        {"since": format_time(T0), "until": format_time(at(300))},
        {"since": format_time(at(400)), "until": format_time(at(400))},
    ]
    # the counters are settled at the capped rate: none at once, a few 2 s later ...
    assert stored.usage_writes(at(400)) == []
    stored.step(again, 402)
    assert 0 < len(stored.usage_writes(at(400))) <= 2 * USAGE_WRITES_PER_S
    # ... killed again in the middle of settling: the next loop derives the same figures
    stored.step(again, 402 + LEDGER_FLUSH_S)
    middle = stored.consumed()
    assert middle == pytest.approx(MODELS * (302 + LEDGER_FLUSH_S), abs=0.01)
    assert 0 < len(stored.usage_writes(at(400))) < MODELS
    again.close()

    third = stored.loop()  # up at 500 s
    stored.step(third, 500)
    assert stored.consumed() == pytest.approx(middle, abs=0.01)
    for s in range(501, 521):
        stored.step(third, s)
    # every second watched, once: [0, 300] + [400, 432] + [500, now]; a counter written
    # at 432 s needs nothing of the earlier spans and is not written again
    watched = 300 + 2 + LEDGER_FLUSH_S
    spans = Watches(since=at(500), earlier=((T0, at(300)), (at(400), at(432))))
    for used, stamp in stored.counters().values():
        assert used == pytest.approx(spans.watched_s(T0, stamp), abs=0.01)
    stored.step(third, 500 + LEDGER_FLUSH_S)  # the pool's figures are written this often
    assert stored.consumed() == pytest.approx(MODELS * (watched + LEDGER_FLUSH_S), abs=0.01)
    # the earlier spans stay until every counter is settled and the loop has seen every model
    assert len(stored.pool["status"]["usageWatches"]) == 3
    stored.step(third, 500 + SETTLE_AFTER_S + LEDGER_FLUSH_S)
    assert stored.pool["status"]["usageWatches"] == [
        {"since": format_time(at(500)), "until": format_time(at(500 + SETTLE_AFTER_S + 30))}
    ]
    third.close()


def test_the_consumption_never_decreases_across_restarts(stored: Stored) -> None:
    loop = admit(stored)
    seen = [stored.consumed()]
    clock = 1
    for _ in range(4):
        for _ in range(5):
            clock += 13
            stored.step(loop, clock)
            seen.append(stored.consumed())
        loop.close()
        clock += 45  # down
        loop = stored.loop()
        stored.step(loop, clock)
        seen.append(stored.consumed())
    loop.close()
    assert seen == sorted(seen)


def test_a_model_released_after_a_restart_keeps_every_watched_second(stored: Stored) -> None:
    loop = admit(stored)
    for s in range(30, 301, 30):
        stored.step(loop, s)
    loop.close()
    again = stored.loop()
    stored.step(again, 400)
    stored.clock = at(410)
    gone = stored.models.pop(f"{COMMUNITY}/m-0")  # deleted: its finalizer releases it
    view = parse_model(gone)
    assert view is not None
    final = again.release(view)
    assert final["gpuSecondsUsed"] == pytest.approx(300 + 10, abs=0.01)  # not the 100 s down
    assert final["gpuSecondsByOwner"] == {"coop": pytest.approx(310, abs=0.01)}
    stored.step(again, 420)  # a model vanished: the pool is written at once
    (row,) = stored.pool["status"]["communities"]
    assert row["gpuSecondsRetired"] == pytest.approx(310, abs=0.01)
    assert row["gpuSecondsConsumed"] == pytest.approx(310 + (MODELS - 1) * 320, abs=0.01)
    again.close()


# -- the pure parts ---------------------------------------------------------------------------


def holding(used: float, stamp: datetime, gpus: int = 2) -> dict[str, Any]:
    return {
        "phase": "Training",
        "admission": {"gpus": gpus, "placement": [{"owner": "coop", "node": "n", "gpus": gpus}]},
        "gpuSecondsUsed": used,
        "gpuSecondsByOwner": {"coop": used},
        "usageUpdatedAt": format_time(stamp),
    }


def test_settle_credits_the_watched_spans_after_the_counter_and_nothing_else() -> None:
    watches = Watches(since=at(1000), earlier=((at(0), at(100)), (at(300), at(400))))
    assert watches.watched_s(at(50), at(1010)) == 50 + 100 + 10
    status = holding(10.0, at(50))
    out = settle(status, watches)
    assert out["gpuSecondsUsed"] == 10.0 + 2 * (50 + 100)
    assert out["gpuSecondsByOwner"] == {"coop": 10.0 + 2 * 150}
    assert out["usageUpdatedAt"] == format_time(at(1000))
    assert settle(out, watches) is out  # within the running span: nothing to carry
    queued = {"phase": "Queued", "gpuSecondsUsed": 5.0, "usageUpdatedAt": format_time(at(50))}
    assert settle(queued, watches) is queued


def test_the_spans_come_from_the_stored_status() -> None:
    stored = {
        "usageWatches": [
            {"since": format_time(at(0)), "until": format_time(at(100))},
            {"since": format_time(at(90)), "until": format_time(at(200))},  # overlap: clipped
        ],
        "usageUpdatedAt": format_time(at(230)),  # the last write ends the newest span
    }
    watches = watches_from_status(stored, at(500))
    assert watches.earlier == ((at(0), at(100)), (at(100), at(230)))
    assert watches.since == at(500)
    # a status written before spans were recorded: its last write ends one of the old limit
    legacy = watches_from_status({"usageUpdatedAt": format_time(at(230))}, at(500))
    assert legacy.earlier == ((at(230 - LEGACY_SPAN_S), at(230)),)
    assert watches_from_status({}, at(500)).earlier == ()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["write", "pool write", "crash"]), st.integers(1, 400)),
        max_size=40,
    )
)
def test_a_counter_is_credited_exactly_the_watched_time_whatever_the_restarts(
    events: list[tuple[str, int]],
) -> None:
    """One model holding a GPU; loops write its counter, write the pool status, crash and
    restart. A loop's credit ends at its last write (of the counter or the pool); what
    follows, and the downtime, is never credited, and no second is credited twice."""
    now = T0
    status: Mapping[str, Any] = holding(0.0, T0, gpus=1)
    watches = Watches(since=T0)
    pool: dict[str, Any] = {}
    watched, start, end, crashes = 0.0, T0, T0, 0
    for kind, seconds in events:
        now += timedelta(seconds=seconds)
        if kind == "write":
            view = settle(status, watches)
            last = parse_time(view["usageUpdatedAt"])
            assert last is not None
            status = {**view, **credited(view, (now - last).total_seconds(), now)}
            end = now
        elif kind == "pool write":
            pool = {
                "usageWatches": watches.status(now, keep_earlier=True),
                "usageUpdatedAt": format_time(now),
            }
            end = now
        else:
            watched += (end - start).total_seconds()
            now += timedelta(seconds=seconds)  # nobody watches
            watches = watches_from_status(pool, now)
            start = end = now
            crashes += 1
    view = settle(status, watches)
    last = parse_time(view["usageUpdatedAt"])
    assert last is not None
    derived = credited(view, (now - last).total_seconds(), now)["gpuSecondsUsed"]
    watched += (now - start).total_seconds()
    if crashes < MAX_WATCHES:
        assert derived == pytest.approx(watched, abs=0.01)
    else:  # the oldest spans were dropped: only a loss
        assert derived <= watched + 0.01
