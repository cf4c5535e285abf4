"""The loop's backend calls for starting clusters: looking at clusters that are starting never
holds up the creates of new ones (``START_CHECKS_AT_ONCE``)."""

from __future__ import annotations

import math
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.controlplane.nodes import gpu_node_manifest
from polyculture.loop.actions import STARTING, Outcome
from polyculture.loop.backends import BackendSettings
from polyculture.loop.pool import START_CHECKS_AT_ONCE, PoolLoop, Start, Writer
from polyculture.reconcile.pools import node_info

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POOL = {
    "members": [{"owner": "coop", "nodeSelector": {"polyculture.dev/owner": "coop"}}],
    "communities": [{"name": "yoruba"}],
    "ray": {"backend": "kubernetes"},
}


def admitted(i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"m-{i}",
            "namespace": "yoruba",
            "uid": f"uid-{i}",
            "generation": 1,
            "resourceVersion": "5",
        },
        "spec": {
            "pool": "coop",
            "training": {"entrypoint": "python t.py", "workers": 1, "gpusPerWorker": 1},
        },
        "status": {
            "phase": "Admitted",
            "community": "yoruba",
            "run": 1,
            "admission": {
                "gpus": 1,
                "admittedAt": "2026-11-29T11:59:00Z",
                "placement": [{"node": f"gpu-{i // 8}", "owner": "coop", "gpus": 1}],
            },
        },
    }


class _Recording(PoolLoop):
    """The real loop's choice of actions; each action is recorded and left pending."""

    submitted: list[tuple[str, str]]

    def _submit(self, key: str, action: Any, *args: Any) -> None:
        self.submitted.append((key, action.__name__))
        self.tasks[key] = Future()


def test_checks_of_starting_clusters_are_bounded_and_new_clusters_still_start(
    tmp_path: Path,
) -> None:
    writer = Writer(
        patch_model=lambda *_: {}, apply_pool=lambda *_: None, post_event=lambda *_: None
    )
    loop = _Recording(
        "coop", backends=BackendSettings(local_state_dir=tmp_path), writer=writer, now=lambda: NOW
    )
    loop.submitted = []
    loop.backend_kind = "kubernetes"
    spec = ComputePoolSpec.model_validate(POOL)
    nodes = [node_info(gpu_node_manifest(f"gpu-{n}", "coop")) for n in range(8)]
    pv = loop._pool_view(spec, nodes, NOW, {})
    views = loop._views([admitted(i) for i in range(60)])
    starting = [f"yoruba/m-{i}" for i in range(40)]  # started earlier, each due a look
    for key in starting:
        loop.starts[key] = Start(1, STARTING, math.inf, 0.0)

    loop._act(views, pv, spec, NOW)
    checks = [k for k, action in loop.submitted if action == "check_start"]
    creates = [k for k, action in loop.submitted if action == "start"]
    assert len(checks) == START_CHECKS_AT_ONCE
    assert sorted(creates) == sorted(set(views) - set(starting))  # every new cluster starts

    # the looks answered (still starting, looked at again later): the next due ones go out
    for key in checks:
        loop.tasks.pop(key).set_result(Outcome(STARTING, 1, "starting", deadline=math.inf))
        loop._starting(key, Outcome(STARTING, 1, "starting", deadline=math.inf))
    loop.submitted = []
    loop._act(views, pv, spec, NOW)
    again = [k for k, action in loop.submitted if action == "check_start"]
    assert len(again) == START_CHECKS_AT_ONCE
    assert not set(again) & set(checks)  # the ones just looked at wait their poll interval
    assert [a for _, a in loop.submitted if a != "check_start"] == []
    loop.close()
