"""Pool reconciliation at scale, on the real control plane: ``make bench-pool``.

Starts a fresh local control plane and the operator process, declares one pool of ``--owners``
members, creates ``--nodes`` fake GPU nodes (kwok keeps them Ready) and measures:

- ``converge_s``: from the last node created to a pool status that counts every node;
- ``operator_rss_mib``: the operator's resident memory once converged;
- ``writes_per_node_change``: API writes the operator sent (its own
  ``polyculture_api_writes_total``) per node change, over ``--changes`` cordon/uncordon steps
  each awaited in the status;
- ``change_latency_s_p50/p95``: from one node change to the status showing it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.runner import ControlPlane, free_port
from polyculture.controlplane.waiting import wait_for

GROUP, VERSION = "polyculture.dev", "v1alpha1"
REPO = Path(__file__).resolve().parents[3]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _writes(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^polyculture_api_writes_total\{[^}]*\} (\S+)$", text, re.M)
    )


def _wait(predicate: Any, timeout: float) -> float:
    """Seconds until ``predicate`` holds (AssertionError after ``timeout``)."""
    start = time.monotonic()
    wait_for(predicate, timeout, "pool status", every=0.05)
    return time.monotonic() - start


def run(nodes: int, owners: int, gpus: int, changes: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="pc-bench-") as tmp,
        ControlPlane(run_dir=Path(tmp) / "cp") as cp,
    ):
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
        objs, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        port = free_port()
        op = OperatorProcess(cp.kubeconfig, Path(tmp), ("--metrics-port", str(port)))
        op.start()
        try:
            names = [f"owner-{i:02d}" for i in range(owners)]
            pool = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ComputePool",
                "metadata": {"name": "bench"},
                "spec": {
                    "members": [
                        {"owner": o, "nodeSelector": {"polyculture.dev/owner": o}} for o in names
                    ],
                    "communities": [{"name": "c0"}],
                },
            }
            objs.create_cluster_custom_object(GROUP, VERSION, "computepools", pool)

            def status() -> dict[str, Any]:
                obj: Any = objs.get_cluster_custom_object(GROUP, VERSION, "computepools", "bench")
                result: dict[str, Any] = obj.get("status") or {}
                return result

            _wait(lambda: "members" in status(), 60)
            for i in range(nodes):
                create_gpu_node(api, f"n{i:04d}", names[i % owners], gpus)
            t_last = time.monotonic()
            _wait(lambda: status().get("totalGPUs") == nodes * gpus, 300)
            converge = time.monotonic() - t_last
            rss = _rss_mib(op.proc.pid) if op.proc else 0.0

            before = _writes(port)
            latencies = []
            for step in range(changes):
                node = f"n{step % nodes:04d}"
                core.patch_node(node, {"spec": {"unschedulable": True}})
                want = nodes * gpus - gpus
                latencies.append(_wait(lambda w=want: status().get("totalGPUs") == w, 30))
                core.patch_node(node, {"spec": {"unschedulable": False}})
                latencies.append(_wait(lambda: status().get("totalGPUs") == nodes * gpus, 30))
            writes = _writes(port) - before
            return {
                "nodes": nodes,
                "owners": owners,
                "gpus_per_node": gpus,
                "converge_s": round(converge, 2),
                "operator_rss_mib": round(rss, 1),
                "node_changes": 2 * changes,
                "writes_per_node_change": round(writes / (2 * changes), 2),
                "change_latency_s_p50": round(statistics.median(latencies), 2),
                "change_latency_s_p95": round(
                    sorted(latencies)[int(0.95 * (len(latencies) - 1))], 2
                ),
            }
        finally:
            op.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyculture.controlplane.pool_bench")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--owners", type=int, default=50)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--changes", type=int, default=20, help="cordon+uncordon pairs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.nodes, args.owners, args.gpus_per_node, args.changes)
    print(json.dumps(result) if args.json else yaml.safe_dump(result, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
