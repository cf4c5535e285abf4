"""``polyculture bench scheduler``: time full scheduling cycles on synthetic pools.

    polyculture bench scheduler --nodes 1000 --gpus-per-node 8 --communities 100 \\
        --pending 10000 [--cycles 5] [--seed 1] [--json]
    polyculture bench scheduler --standard [--json]
    polyculture bench scheduler --preset communities|kai [--cycles 5] [--lookahead 8] [--json]

A synthetic snapshot (seeded, so runs compare) has two GPU classes (3/4 ``H100``, 1/4 ``A10``
worth half), one owner per ten nodes crediting communities round-robin, 1% of nodes
reclaimed, the pool about 70% busy with running workloads of mixed age, and the pending
workloads spread over the communities: mostly single workers of 1-8 GPUs, some gangs, some
serving, some pinned to a class or a memory size. Weights, guarantees, caps and usage vary.
Each timed cycle is one :func:`polyculture.scheduling.schedule` call on that snapshot
(building the snapshot is not timed); one warm-up cycle runs first. ``--lookahead N`` sets
``Policy.lookahead`` (only the first N pending workloads of each community are tried).

``--standard`` runs the sizes of issue 4 (1,000 × 8 GPUs, 100 communities, 10,000 pending:
target p50 ≤ 100 ms; 4,000 × 8, 100, 50,000: target p50 ≤ 1 s) and a growth table that
varies one dimension at a time around the first. ``--preset`` runs one named size with its
target: ``communities`` (1,000 × 8 GPUs, 1,000 communities, 10,000 pending: p50 ≤ 150 ms) and
``kai`` (KAI scheduler's scale-test shape: 4,000 × 8 GPUs, 1,000 communities, 140,000 pending:
p50 ≤ 1 s); ``issue4`` and ``issue4-large`` are the two sizes above. This is a measuring tool,
so unlike the scheduler itself it reads a clock (``time.perf_counter``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from polyculture.scheduling import (
    Community,
    GPUClass,
    Node,
    Policy,
    Running,
    Snapshot,
    Workload,
    schedule,
)

CLASSES = (GPUClass("H100", 1.0, 81920), GPUClass("A10", 0.5, 24576))
NOW = 1_000_000.0


def synthetic_snapshot(
    *, nodes: int, gpus_per_node: int, communities: int, pending: int, seed: int = 1
) -> Snapshot:
    """A reproducible pool of the given size (see the module docstring for its make-up)."""
    rng = random.Random(seed)
    g = gpus_per_node
    n_owners = max(1, nodes // 10)
    node_list = [
        Node(
            f"node-{i:05d}",
            f"owner-{i % n_owners:04d}",
            "A10" if i % 4 == 3 else "H100",
            g,
            available=rng.random() >= 0.01,
        )
        for i in range(nodes)
    ]
    names = [f"community-{i:04d}" for i in range(communities)]
    community_list = tuple(
        Community(
            name,
            weight=rng.choice((1.0, 1.0, 2.0, 3.0)),
            guaranteed_gpus=rng.choice((0, 0, 0, g)),
            max_gpus=rng.choice((None, None, None, 4 * g * max(1, nodes // communities))),
            usage_gpu_seconds=rng.uniform(0, 1e6),
            contribution_gpu_seconds=rng.uniform(0, 1e6),
            owners=(f"owner-{i % n_owners:04d}",),
        )
        for i, name in enumerate(names)
    )

    def workload(key: str) -> Workload:
        roll = rng.random()
        if roll < 0.1:  # a gang of whole nodes
            workers, per_worker = rng.choice((2, 4)), g
        elif roll < 0.15:  # serving replicas
            workers, per_worker = rng.choice((2, 3)), rng.choice((1, 2))
        else:
            workers, per_worker = 1, rng.choice([x for x in (1, 2, 4, 8) if x <= g])
        pin = rng.random()
        return Workload(
            key,
            rng.choice(names),
            workers,
            per_worker,
            priority=rng.choice((0, 0, 0, 1, 2)),
            serving=0.1 <= roll < 0.15,
            gpu_class="H100" if pin < 0.2 else None,
            min_gpu_memory_mib=40000 if 0.2 <= pin < 0.3 else 0,
            created=NOW - rng.uniform(0, 86400),
        )

    # running: fill about 70% of the GPUs, first fit over a shuffled node order
    free = [g] * nodes
    order = list(range(nodes))
    rng.shuffle(order)
    running: list[Running] = []
    target = int(0.7 * nodes * g)
    busy, cursor, i = 0, 0, 0
    while busy < target and cursor < nodes:
        w = workload(f"running-{i:06d}")
        i += 1
        placement: list[str] = []
        j = cursor
        while len(placement) < w.workers and j < nodes:
            node = order[j]
            if free[node] >= w.gpus_per_worker:
                free[node] -= w.gpus_per_worker
                placement.append(node_list[node].name)
            else:
                j += 1
        if len(placement) < w.workers:
            break
        while cursor < nodes and free[order[cursor]] == 0:
            cursor += 1
        busy += w.gpus
        running.append(Running(w, tuple(placement), started=NOW - rng.uniform(0, 7200)))
    pending_list = tuple(workload(f"pending-{k:06d}") for k in range(pending))
    return Snapshot(
        nodes=tuple(node_list),
        communities=community_list,
        running=tuple(running),
        pending=pending_list,
        now=NOW,
        policy=Policy(preemption=True, min_runtime_s=600.0, gpu_classes=CLASSES),
    )


@dataclass(frozen=True, slots=True)
class Result:
    nodes: int
    gpus_per_node: int
    communities: int
    pending: int
    running: int
    cycles: int
    cycle_ms_p50: float
    cycle_ms_p95: float
    admitted: int
    preempted: int
    waiting: int

    def row(self) -> str:
        return (
            f"{self.nodes:>6} {self.gpus_per_node:>4} {self.communities:>6} {self.pending:>7} "
            f"{self.running:>7} {self.cycle_ms_p50:>9.1f} {self.cycle_ms_p95:>9.1f} "
            f"{self.admitted:>8} {self.preempted:>9} {self.waiting:>7}"
        )


HEADER = " nodes gpus  comms pending running  p50 (ms)  p95 (ms) admitted preempted waiting"


def bench(
    *,
    nodes: int,
    gpus_per_node: int,
    communities: int,
    pending: int,
    cycles: int,
    seed: int,
    lookahead: int = 0,
) -> Result:
    """Time ``cycles`` full cycles (after one warm-up) on one synthetic snapshot
    (``lookahead``: ``Policy.lookahead``, 0 for none)."""
    snap = synthetic_snapshot(
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        communities=communities,
        pending=pending,
        seed=seed,
    )
    if lookahead:
        snap = dataclasses.replace(
            snap, policy=dataclasses.replace(snap.policy, lookahead=lookahead)
        )
    decisions = schedule(snap)  # warm-up
    times: list[float] = []
    for _ in range(cycles):
        start = time.perf_counter()
        decisions = schedule(snap)
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))]
    return Result(
        nodes,
        gpus_per_node,
        communities,
        pending,
        len(snap.running),
        cycles,
        round(statistics.median(times), 2),
        round(p95, 2),
        len(decisions.admissions),
        len(decisions.preemptions),
        len(decisions.waiting),
    )


#: (nodes, gpus per node, communities, pending)
BASE = (1000, 8, 100, 10000)
LARGE = (4000, 8, 100, 50000)
GROWTH = (
    [(n, 8, 100, 10000) for n in (250, 500, 2000, 4000)]
    + [(1000, g, 100, 10000) for g in (4, 16)]
    + [(1000, 8, c, 10000) for c in (10, 1000)]
    + [(1000, 8, 100, p) for p in (1000, 50000)]
)
#: one community per node: many small queues (issue 14)
COMMUNITIES = (1000, 8, 1000, 10000)
#: KAI scheduler's scale test: 4,000 nodes, 140,000 pending pods (issue 14)
KAI = (4000, 8, 1000, 140000)
TARGETS_MS = {BASE: 100.0, LARGE: 1000.0, COMMUNITIES: 150.0, KAI: 1000.0}
PRESETS = {"issue4": BASE, "issue4-large": LARGE, "communities": COMMUNITIES, "kai": KAI}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polyculture bench", description="Benchmark the scheduling core."
    )
    parser.add_argument(
        "target",
        choices=["scheduler", *OTHER_TARGETS],
        help="what to benchmark (`bench operator --help` for the operator's options)",
    )
    parser.add_argument("--nodes", type=int, default=BASE[0])
    parser.add_argument("--gpus-per-node", type=int, default=BASE[1])
    parser.add_argument("--communities", type=int, default=BASE[2])
    parser.add_argument("--pending", type=int, default=BASE[3])
    parser.add_argument("--cycles", type=int, default=5, help="timed cycles (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lookahead",
        type=int,
        default=0,
        help="Policy.lookahead: pending workloads tried per community and cycle (0: all)",
    )
    parser.add_argument(
        "--standard",
        action="store_true",
        help="the sizes of issue 4 and a growth table, one dimension at a time",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="one named size with its target (overrides the size options): communities "
        "(1,000 x 8, 1,000 communities, 10,000 pending), kai (4,000 x 8, 1,000, 140,000), "
        "issue4, issue4-large",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


#: other targets, by module (each has ``main(argv)``); imported by name only when asked for,
#: so that this pure module imports no Kubernetes client
OTHER_TARGETS = {"operator": "polyculture.controlplane.operator_bench"}


def main(argv: list[str]) -> int:
    if argv and argv[0] in OTHER_TARGETS:
        other: Any = importlib.import_module(OTHER_TARGETS[argv[0]])
        code: int = other.main(argv[1:])
        return code
    args = _parser().parse_args(argv)
    for name in ("nodes", "gpus_per_node", "communities", "cycles"):
        if getattr(args, name) < 1:
            print(f"polyculture bench: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if args.pending < 0 or args.lookahead < 0:
        name = "--pending" if args.pending < 0 else "--lookahead"
        print(f"polyculture bench: {name} must be >= 0", file=sys.stderr)
        return 2
    if args.standard:
        sizes = [BASE, LARGE, *GROWTH]
    elif args.preset:
        sizes = [PRESETS[args.preset]]
    else:
        sizes = [(args.nodes, args.gpus_per_node, args.communities, args.pending)]
    results: list[dict[str, Any]] = []
    if not args.json:
        print(HEADER)
    failed = False
    for n, g, c, p in sizes:
        result = bench(
            nodes=n,
            gpus_per_node=g,
            communities=c,
            pending=p,
            cycles=args.cycles,
            seed=args.seed,
            lookahead=args.lookahead,
        )
        record: dict[str, Any] = {
            name: getattr(result, name) for name in Result.__dataclass_fields__
        }
        record["lookahead"] = args.lookahead
        target = TARGETS_MS.get((n, g, c, p)) if args.standard or args.preset else None
        if target is not None:
            record["target_ms_p50"] = target
            record["meets_target"] = result.cycle_ms_p50 <= target
            failed = failed or not record["meets_target"]
        results.append(record)
        if not args.json:
            note = ""
            if target is not None:
                verdict = "ok" if record["meets_target"] else "MISSED"
                note = f"  target p50 <= {target:.0f} ms: {verdict}"
            print(result.row() + note, flush=True)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"runs": results}))
    # a missed target is reported, not an error: timings depend on the machine
    del failed
    return 0
