"""What one admission loop's step costs at N models, without an API server.

``python -m polyculture.loop.step_bench --models 10000 [--steps 10] [--profile] [--json]``
builds one pool of kwok-shaped GPU nodes (8 GPUs each, room for every model, at most 64
owners, as ``polyculture bench operator`` does) and ``--models`` single-GPU training models,
then times :meth:`PoolLoop.step` of the real loop:

- ``first_step_s``: the step that judges and admits every model at once (a burst);
- ``steady_step_s_mean`` / ``_max``: later steps, every model admitted and nothing new;
- ``writes``: model status writes in all (one per model: its admission);

status writes go to an in-memory store (each returns the stored object with a new
``resourceVersion``, as the API server does) and no backend action runs (a cluster start
would need a cluster). ``--profile`` prints where the steady steps spend their time
(cProfile). ``rss_mb`` is this process's resident memory at the end: the bodies and the
loop's state. A measuring tool (it reads clocks), not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polyculture.api.compute_pool import MAX_MEMBERS, ComputePoolSpec, RaySettings
from polyculture.controlplane.nodes import gpu_node_manifest
from polyculture.inventory import NodeInfo
from polyculture.loop.backends import BackendSettings, settings_key
from polyculture.loop.pool import PoolLoop, Writer, merge_patch
from polyculture.reconcile.pools import node_info, pool_status

POOL = "bench"
COMMUNITIES = 3


class _NoActions(PoolLoop):
    """The loop with a backend that is never called: scheduling and writes only."""

    def _choose_backend(self, ray: RaySettings) -> None:
        self.backend_key, self.backend_kind = settings_key(ray), ray.backend.value
        self.backend = self.backend or _Unused()  # type: ignore[assignment]

    def _act(self, *_: Any) -> None:
        return None


class _Unused:
    """Stands for a backend; the loop above never calls it."""


def _fixture(models: int) -> tuple[dict[str, Any], list[NodeInfo], dict[str, dict[str, Any]]]:
    nodes_n = models // 8 + 1
    owners = [f"owner-{i:02d}" for i in range(min(MAX_MEMBERS, max(1, nodes_n // 10)))]
    spec_body = {
        "members": [{"owner": o, "nodeSelector": {"polyculture.dev/owner": o}} for o in owners],
        "communities": [{"name": f"community-{i}"} for i in range(COMMUNITIES)],
        "ray": {"backend": "kubernetes"},
    }
    nodes = []
    for i in range(nodes_n):
        manifest = gpu_node_manifest(f"gpu-{i:04d}", owners[i % len(owners)])
        manifest["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        nodes.append(node_info(manifest))
    spec = ComputePoolSpec.model_validate(spec_body)
    status, _, _ = pool_status(spec, {}, nodes, datetime.now(UTC), {}, {}, 1, POOL)
    pool = {
        "metadata": {"name": POOL, "uid": "pool-uid", "generation": 1},
        "spec": spec_body,
        "status": status,
    }
    store: dict[str, dict[str, Any]] = {}
    for i in range(models):
        namespace, name = f"community-{i % COMMUNITIES}", f"m-{i:05d}"
        store[f"{namespace}/{name}"] = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{i}",
                "generation": 1,
                "resourceVersion": "1",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": ["polyculture.dev/kopf-finalizer"],
            },
            "spec": {
                "pool": POOL,
                "community": namespace,
                "training": {"entrypoint": "python train.py", "workers": 1, "gpusPerWorker": 1},
            },
        }
    return pool, nodes, store


def run(models: int, steps: int, profile: bool) -> dict[str, Any]:
    pool, nodes, store = _fixture(models)
    versions = itertools.count(2)
    writes = 0

    def patch_model(namespace: str, name: str, patch: Mapping[str, Any]) -> Mapping[str, Any]:
        nonlocal writes
        writes += 1
        key = f"{namespace}/{name}"
        body = store[key]
        stored = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(next(versions))},
            "status": merge_patch(body.get("status") or {}, patch),
        }
        store[key] = stored
        return stored

    writer = Writer(patch_model=patch_model, apply_pool=lambda *_: None, post_event=lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="pc-stepbench-") as tmp:
        loop = _NoActions(
            POOL,
            backends=BackendSettings(local_state_dir=Path(tmp)),
            writer=writer,
            now=lambda: datetime.now(UTC),
        )
        try:
            started = time.perf_counter()
            loop.step(pool, list(store.values()), nodes, {})
            first = time.perf_counter() - started
            deadline = time.monotonic() + 600
            while writes < models and time.monotonic() < deadline:
                time.sleep(0.1)  # the writes are sent by the loop's threads
            admitted = sum(
                1 for b in store.values() if (b.get("status") or {}).get("phase") == "Admitted"
            )
            loop.step(pool, list(store.values()), nodes, {})  # the stored writes seen once
            profiler = cProfile.Profile() if profile else None
            times = []
            for _ in range(steps):
                started = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                loop.step(pool, list(store.values()), nodes, {})
                if profiler is not None:
                    profiler.disable()
                times.append(time.perf_counter() - started)
        finally:
            loop.close()
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return {
        "models": models,
        "nodes": len(nodes),
        "admitted": admitted,
        "writes": writes,
        "first_step_s": round(first, 3),
        "steady_step_s_mean": round(statistics.mean(times), 3) if times else None,
        "steady_step_s_max": round(max(times), 3) if times else None,
        "steps": steps,
        "profiled": profile,
        "rss_mb": round(_rss_kib() / 1024, 1),
    }


def _rss_kib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m polyculture.loop.step_bench", description=__doc__
    )
    parser.add_argument("--models", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=10, help="steady steps timed")
    parser.add_argument("--profile", action="store_true", help="cProfile the steady steps")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.models < 1 or args.steps < 1:
        print("step_bench: --models and --steps must be >= 1", file=sys.stderr)
        return 2
    result = run(args.models, args.steps, args.profile)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if result["admitted"] == args.models else 1


if __name__ == "__main__":
    raise SystemExit(main())
