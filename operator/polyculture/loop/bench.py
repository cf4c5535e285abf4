"""How many small models the ``local`` backend runs at once on this machine.

``python -m polyculture.loop.bench [--max N] [--json]`` starts one-GPU clusters of the local
backend one after another and keeps them, each running ``examples/ray/train.py`` for a
minute, until ``--max`` run together, a cluster is not ready within ``--ready-timeout``
seconds, or the machine's available memory falls under ``--min-free-gib``. It prints, per
cluster, create -> ready and job-submitted -> first step, and the available memory, then tears
everything down. No control plane is needed: this measures the backend alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from polyculture.ray.backend import (
    ClusterHandle,
    NodePlacement,
    Placement,
    TrainingJob,
    WorkloadRef,
)
from polyculture.ray.local import LocalBackend

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ray"


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyculture.loop.bench", description=__doc__)
    parser.add_argument("--max", type=int, default=8)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--min-free-gib", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    stopped_because = f"reached --max {args.max}"
    with tempfile.TemporaryDirectory(prefix="pc-bench-") as tmp:
        backend = LocalBackend(Path(tmp) / "state")
        clusters: list[ClusterHandle] = []
        start_free = available_gib()
        try:
            for i in range(args.max):
                ref = WorkloadRef(namespace="bench", name=f"small-{i}", uid=f"u{i}")
                placement = Placement(
                    gpus_per_worker=1,
                    nodes=(NodePlacement(node=f"node-{i}", owner="bench", gpu_class="L4"),),
                )
                began = time.monotonic()
                handle = backend.create(ref, placement)
                clusters.append(handle)
                while not backend.status(handle).ready:
                    if time.monotonic() - began > args.ready_timeout:
                        break
                    time.sleep(0.5)
                else:
                    ready = time.monotonic() - began
                    job = TrainingJob(
                        workload=ref,
                        attempt=1,
                        entrypoint="python train.py --steps 120 --step-seconds 0.5",
                        checkpoint_uri=(Path(tmp) / f"ckpt-{i}").as_uri(),
                        runtime_env={"working_dir": str(EXAMPLES)},
                    )
                    sid = backend.submit_job(handle, job)
                    submitted = time.monotonic()
                    while "step 1 " not in backend.job(handle, sid, tail_lines=200).log_tail:
                        if time.monotonic() - submitted > args.ready_timeout:
                            break
                        time.sleep(0.5)
                    rows.append(
                        {
                            "clusters": i + 1,
                            "create_to_ready_s": round(ready, 1),
                            "submit_to_first_step_s": round(time.monotonic() - submitted, 1),
                            "available_gib": round(available_gib(), 2),
                        }
                    )
                    if not args.json:
                        print(json.dumps(rows[-1]), flush=True)
                    if available_gib() < args.min_free_gib:
                        stopped_because = f"available memory under {args.min_free_gib} GiB"
                        break
                    continue
                stopped_because = f"cluster {i + 1} not ready in {args.ready_timeout:g} s"
                break
        finally:
            for handle in clusters:
                backend.teardown(handle)
    result = {
        "running_at_once": len(rows),
        "stopped_because": stopped_because,
        "available_gib_before": round(start_free, 2),
        "gib_per_cluster": round((start_free - rows[-1]["available_gib"]) / len(rows), 2)
        if rows
        else None,
        "rows": rows,
    }
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
