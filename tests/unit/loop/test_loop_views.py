"""The loop's views of its models are made again only for what changed.

At 10,000 models every step (twice a second) would rebuild every view; a view is reused
while its inputs are the very same objects (the indexed body, the loop's last write, the
status being written), and made again when any of them is new. The step benchmark's loop
(real scheduling and writes, no backend actions) admits a burst of models in one step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polyculture.loop.backends import BackendSettings
from polyculture.loop.pool import PoolLoop, Writer
from polyculture.loop.step_bench import run

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def body(name: str, rv: int, phase: str = "Queued") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "yoruba",
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": str(rv),
            "creationTimestamp": "2026-11-29T11:00:00Z",
        },
        "spec": {
            "pool": "coop",
            "training": {"entrypoint": "python t.py", "workers": 1, "gpusPerWorker": 1},
        },
        "status": {"phase": phase, "community": "yoruba"},
    }


def loop(tmp_path: Path) -> PoolLoop:
    writer = Writer(
        patch_model=lambda *_: {}, apply_pool=lambda *_: None, post_event=lambda *_: None
    )
    return PoolLoop(
        "coop", backends=BackendSettings(local_state_dir=tmp_path), writer=writer, now=lambda: NOW
    )


def test_unchanged_inputs_give_the_same_view(tmp_path: Path) -> None:
    pool_loop = loop(tmp_path)
    bodies = [body("a", 10), body("b", 11)]
    first = pool_loop._views(bodies)
    again = pool_loop._views(bodies)
    assert set(first) == {"yoruba/a", "yoruba/b"}
    assert all(again[key] is first[key] for key in first)
    pool_loop.close()


def test_a_newer_write_or_a_new_body_gives_a_new_view(tmp_path: Path) -> None:
    pool_loop = loop(tmp_path)
    bodies = [body("a", 10), body("b", 11)]
    first = pool_loop._views(bodies)
    pool_loop.written["yoruba/a"] = (12, {"phase": "Admitted", "community": "yoruba"})
    after_write = pool_loop._views(bodies)
    assert after_write["yoruba/a"] is not first["yoruba/a"]
    assert after_write["yoruba/a"].phase == "Admitted"
    assert after_write["yoruba/b"] is first["yoruba/b"]
    newer = [body("a", 13, phase="Training"), bodies[1]]
    from_index = pool_loop._views(newer)
    assert from_index["yoruba/a"].phase == "Training"  # the index is newer than the write
    assert from_index["yoruba/b"] is first["yoruba/b"]
    assert set(pool_loop._views([bodies[1]])) == {"yoruba/b"}  # a deleted model is dropped
    pool_loop.close()


def test_a_burst_is_admitted_in_one_step_and_later_steps_write_nothing() -> None:
    result = run(models=300, steps=2, profile=False)
    assert result["admitted"] == 300
    assert result["writes"] == 300  # one write per model, its admission; none after
    assert result["steady_step_s_mean"] is not None
