"""Scenario table of the scheduling core: one snapshot in, the decisions that must come out.

Covers entitlement (weights, guarantees, caps, bases, GPU classes), ordering across and
inside communities, placement (gangs, owners first, best fit, serving spread, classes and
memory), every waiting reason, preemption for fair share (victim order, minimum runtime,
serving protection, never below entitlement, only what is needed, clearing whole nodes),
consolidation (moves, what may not move) and owner reclaim.
Each case names only what it checks: ``want_admitted`` (key -> exact placement, or None for
"anywhere"), ``want_preempted`` (key -> reason), ``want_waiting`` (key -> reason code) and
``want_moved`` (key -> new placement, consolidation) must match exactly; ``want_messages``
are substrings; ``want_entitlements`` are approximate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from polyculture.scheduling import GPUClass, Node, Snapshot, Workload, schedule
from polyculture.scheduling.testing import make_community as community
from polyculture.scheduling.testing import make_nodes as nodes
from polyculture.scheduling.testing import make_snapshot as snapshot
from polyculture.scheduling.testing import make_workload as workload

H100 = GPUClass("H100", weight=1.0, memory_mib=81920)
T4 = GPUClass("T4", weight=0.25, memory_mib=16384)


@dataclass
class Case:
    id: str
    snapshot: Snapshot
    want_admitted: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    want_preempted: dict[str, str] = field(default_factory=dict)
    want_waiting: dict[str, str] = field(default_factory=dict)
    want_messages: dict[str, str] = field(default_factory=dict)
    want_entitlements: dict[str, float] | None = None
    want_moved: dict[str, tuple[str, ...]] = field(default_factory=dict)


def two_nodes(**kw: object) -> list[Node]:
    return nodes("n", 2, **kw)  # type: ignore[arg-type]


def hungry(c: str, count: int = 4, gpus: int = 4) -> list[Workload]:
    return [workload(f"{c}/w{i}", c).gpus(gpus).created(i).obj() for i in range(count)]


CASES = [
    # ---- entitlement -------------------------------------------------------------------
    Case(
        "equal weights split the pool evenly",
        snapshot().nodes(two_nodes()).communities("x", "y").pending(hungry("x"), hungry("y")).obj(),
        want_admitted={"x/w0": None, "x/w1": None, "y/w0": None, "y/w1": None},
        want_waiting={
            "x/w2": "OverShare",
            "x/w3": "OverShare",
            "y/w2": "OverShare",
            "y/w3": "OverShare",
        },
        want_entitlements={"x": 8, "y": 8},
    ),
    Case(
        "weights split the pool in proportion",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").weight(3).obj(), "y")
        .pending(hungry("x", 4), hungry("y", 4))
        .obj(),
        want_admitted={"x/w0": None, "x/w1": None, "x/w2": None, "y/w0": None},
        want_waiting={
            "x/w3": "OverShare",
            "y/w1": "OverShare",
            "y/w2": "OverShare",
            "y/w3": "OverShare",
        },
        want_entitlements={"x": 12, "y": 4},
    ),
    Case(
        "a share left idle is lent to the community that has demand",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .pending(hungry("x", 1), hungry("y", 4))
        .obj(),
        want_admitted={"x/w0": None, "y/w0": None, "y/w1": None, "y/w2": None},
        want_waiting={"y/w3": "OverShare"},
        want_entitlements={"x": 4, "y": 12},
    ),
    Case(
        "a guarantee is a floor above the weighted share",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").guarantee(12).obj(), "y")
        .pending(hungry("x"), hungry("y"))
        .obj(),
        want_admitted={"x/w0": None, "x/w1": None, "x/w2": None, "y/w0": None},
        want_waiting={
            "x/w3": "OverShare",
            "y/w1": "OverShare",
            "y/w2": "OverShare",
            "y/w3": "OverShare",
        },
        want_entitlements={"x": 12, "y": 4},
    ),
    Case(
        "a guarantee counts only as far as it is demanded",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").guarantee(12).obj(), "y")
        .pending(hungry("x", 1, gpus=2), hungry("y", 4))
        .obj(),
        want_admitted={"x/w0": None, "y/w0": None, "y/w1": None, "y/w2": None},
        want_waiting={"y/w3": "OverShare"},
        want_entitlements={"x": 2, "y": 14},
    ),
    Case(
        "a cap limits the entitlement and lends the rest",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").cap(4).obj(), "y")
        .pending(hungry("x"), hungry("y"))
        .obj(),
        want_admitted={"x/w0": None, "y/w0": None, "y/w1": None, "y/w2": None},
        want_waiting={"x/w1": "OverCap", "x/w2": "OverCap", "x/w3": "OverCap", "y/w3": "OverShare"},
        want_messages={"x/w1": "community at its cap: holds 4 GPUs of at most 4 GPUs"},
        want_entitlements={"x": 4, "y": 12},
    ),
    Case(
        "oversubscribed guarantees are scaled down evenly",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").guarantee(12).obj(), community("y").guarantee(12).obj())
        .pending(hungry("x"), hungry("y"))
        .obj(),
        want_admitted={"x/w0": None, "x/w1": None, "y/w0": None, "y/w1": None},
        want_waiting={
            "x/w2": "OverShare",
            "x/w3": "OverShare",
            "y/w2": "OverShare",
            "y/w3": "OverShare",
        },
        want_entitlements={"x": 8, "y": 8},
    ),
    Case(
        "a community without demand is entitled to nothing",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y", "z")
        .pending(hungry("x"), hungry("y"))
        .obj(),
        want_admitted={"x/w0": None, "x/w1": None, "y/w0": None, "y/w1": None},
        want_waiting={
            "x/w2": "OverShare",
            "x/w3": "OverShare",
            "y/w2": "OverShare",
            "y/w3": "OverShare",
        },
        want_entitlements={"x": 8, "y": 8, "z": 0},
    ),
    Case(
        "the contribution basis follows contributed GPU-seconds",
        snapshot()
        .nodes(two_nodes())
        .communities(
            community("x").contribution(3000).obj(), community("y").contribution(1000).obj()
        )
        .pending(hungry("x"), hungry("y"))
        .policy(basis="contribution")
        .obj(),
        want_admitted={"x/w0": None, "x/w1": None, "x/w2": None, "y/w0": None},
        want_waiting={
            "x/w3": "OverShare",
            "y/w1": "OverShare",
            "y/w2": "OverShare",
            "y/w3": "OverShare",
        },
        want_entitlements={"x": 12, "y": 4},
    ),
    Case(
        "the contribution basis without contributions falls back to weights",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .pending(hungry("x"), hungry("y"))
        .policy(basis="contribution")
        .obj(),
        want_admitted={"x/w0": None, "x/w1": None, "y/w0": None, "y/w1": None},
        want_waiting={
            "x/w2": "OverShare",
            "x/w3": "OverShare",
            "y/w2": "OverShare",
            "y/w3": "OverShare",
        },
        want_entitlements={"x": 8, "y": 8},
    ),
    Case(
        "the blend basis mixes equal shares and contribution shares",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").contribution(1000).obj(), "y")
        .pending(hungry("x"), hungry("y"))
        .policy(basis="blend", blend=0.5)
        .obj(),
        want_admitted={"x/w0": None, "x/w1": None, "x/w2": None, "y/w0": None},
        want_waiting={
            "x/w3": "OverShare",
            "y/w1": "OverShare",
            "y/w2": "OverShare",
            "y/w3": "OverShare",
        },
        want_entitlements={"x": 12, "y": 4},
    ),
    Case(
        "a zero-contribution community still gets what the others leave idle",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").contribution(1000).obj(), "y")
        .pending(hungry("x", 1), hungry("y", 4))
        .policy(basis="contribution")
        .obj(),
        want_admitted={"x/w0": None, "y/w0": None, "y/w1": None, "y/w2": None},
        want_waiting={"y/w3": "OverShare"},
        want_entitlements={"x": 4, "y": 12},
    ),
    Case(
        "normalised classes count a T4 as a quarter of an H100",
        snapshot()
        .nodes(nodes("h", 1, gpu_class="H100"), nodes("t", 1, gpu_class="T4"))
        .communities("x", "y")
        .pending(
            workload("x/h", "x").gpus(8).gpu_class("H100").obj(),
            workload("y/t", "y").gpus(8).gpu_class("T4").obj(),
            workload("y/h", "y").gpus(1).gpu_class("H100").created(1).obj(),
        )
        .policy(gpu_classes=(H100, T4))
        .obj(),
        want_admitted={"x/h": ("h-0",) * 1, "y/t": ("t-0",)},
        want_waiting={"y/h": "PoolExhausted"},
        want_entitlements={"x": 7, "y": 3},
    ),
    # ---- ordering ----------------------------------------------------------------------
    Case(
        "the community furthest below its share goes first",
        snapshot()
        .nodes(nodes("n", 1))
        .communities("x", "y")
        .running(workload("y/old", "y").gpus(4).running("n-0", started=0))
        .pending(workload("y/new", "y").gpus(4).obj(), workload("x/new", "x").gpus(4).obj())
        .obj(),
        want_admitted={"x/new": ("n-0",)},
        want_waiting={"y/new": "OverShare"},
    ),
    Case(
        "lower decayed usage breaks a tie between equal shares",
        snapshot()
        .nodes(nodes("n", 1, gpus=4))
        .communities(community("x").usage(100).obj(), community("y").usage(10).obj())
        .pending(workload("x/a", "x").gpus(4).obj(), workload("y/a", "y").gpus(4).obj())
        .obj(),
        want_admitted={"y/a": ("n-0",)},
        want_waiting={"x/a": "OverShare"},
    ),
    Case(
        "higher priority goes first inside a community",
        snapshot()
        .nodes(nodes("n", 1, gpus=4))
        .communities("x")
        .pending(
            workload("x/low", "x").gpus(4).obj(),
            workload("x/high", "x").gpus(4).priority(5).created(9).obj(),
        )
        .obj(),
        want_admitted={"x/high": ("n-0",)},
        want_waiting={"x/low": "OverShare"},
    ),
    Case(
        "the older workload goes first among equal priorities",
        snapshot()
        .nodes(nodes("n", 1, gpus=4))
        .communities("x")
        .pending(
            workload("x/young", "x").gpus(4).created(20).obj(),
            workload("x/old", "x").gpus(4).created(10).obj(),
        )
        .obj(),
        want_admitted={"x/old": ("n-0",)},
        want_waiting={"x/young": "OverShare"},
    ),
    Case(
        "many workloads of many communities are admitted in one cycle",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y", "z")
        .pending(hungry("x", 5, gpus=1), hungry("y", 5, gpus=1), hungry("z", 5, gpus=1))
        .obj(),
        want_admitted={f"{c}/w{i}": None for c in "xyz" for i in range(5)},
    ),
    Case(
        "a head that does not fit does not block the workloads behind it",
        snapshot()
        .nodes(two_nodes())
        .communities("x")
        .running(workload("x/run", "x").gpus(4).running("n-0"))
        .pending(
            workload("x/big", "x").workers(2).gpus(8).obj(),
            workload("x/small", "x").gpus(4).created(1).obj(),
        )
        .obj(),
        want_admitted={"x/small": ("n-0",)},
        want_waiting={"x/big": "OverShare"},
        want_messages={"x/big": "would go over its share by 4 GPUs"},
    ),
    Case(
        "a community over its share borrows GPUs nobody else wants",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .running(workload("x/run", "x").gpus(8).running("n-0"))
        .pending(workload("y/a", "y").gpus(2).obj(), workload("x/more", "x").gpus(4).obj())
        .obj(),
        want_admitted={"y/a": None, "x/more": None},
    ),
    # ---- placement ---------------------------------------------------------------------
    Case(
        "a gang is placed whole across nodes",
        snapshot()
        .nodes(two_nodes())
        .communities("x")
        .pending(workload("x/gang", "x").workers(2).gpus(8).obj())
        .obj(),
        want_admitted={"x/gang": None},
    ),
    Case(
        "a gang that does not fit whole waits rather than starting in part",
        snapshot()
        .nodes(two_nodes())
        .communities("x")
        .pending(workload("x/gang", "x").workers(3).gpus(8).obj())
        .obj(),
        want_waiting={"x/gang": "GangTooLarge"},
        want_messages={"x/gang": "needs 3 workers of 8 × gpu on one node each"},
    ),
    Case(
        "workers pack onto one node when it holds them",
        snapshot()
        .nodes(two_nodes())
        .communities("x")
        .running(workload("x/run", "x").gpus(2).running("n-1"))
        .pending(workload("x/gang", "x").workers(2).gpus(3).obj())
        .obj(),
        want_admitted={"x/gang": ("n-1", "n-1")},
    ),
    Case(
        "the community's own owners' nodes come first",
        snapshot()
        .nodes(nodes("a", 1, owner="lab-a"), nodes("b", 1, owner="lab-b"))
        .communities(community("x").owners("lab-b").obj())
        .pending(workload("x/t", "x").gpus(4).obj())
        .obj(),
        want_admitted={"x/t": ("b-0",)},
    ),
    Case(
        "best fit keeps the large free block for the large workload",
        snapshot()
        .nodes(nodes("a", 1), nodes("b", 1))
        .communities("x")
        .running(workload("x/run", "x").gpus(6).running("a-0"))
        .pending(
            workload("x/small", "x").gpus(2).obj(),
            workload("x/large", "x").gpus(8).created(1).obj(),
        )
        .obj(),
        want_admitted={"x/small": ("a-0",), "x/large": ("b-0",)},
    ),
    Case(
        "serving replicas are spread across owners",
        snapshot()
        .nodes(
            nodes("a", 1, owner="lab-a"), nodes("b", 1, owner="lab-b"), nodes("c", 1, owner="lab-c")
        )
        .communities("x")
        .pending(workload("x/serve", "x").workers(3).gpus(2).serving().obj())
        .obj(),
        want_admitted={"x/serve": ("c-0", "b-0", "a-0")},  # one per owner
    ),
    Case(
        "a training gang is packed rather than spread",
        snapshot()
        .nodes(nodes("a", 1, owner="lab-a"), nodes("b", 1, owner="lab-b"))
        .communities("x")
        .pending(workload("x/train", "x").workers(2).gpus(2).obj())
        .obj(),
        want_admitted={"x/train": ("b-0", "b-0")},
    ),
    Case(
        "a GPU class request is honoured",
        snapshot()
        .nodes(nodes("h", 1, gpu_class="H100"), nodes("t", 1, gpu_class="T4"))
        .communities("x")
        .policy(gpu_classes=(H100, T4))
        .pending(workload("x/t", "x").gpus(2).gpu_class("H100").obj())
        .obj(),
        want_admitted={"x/t": ("h-0",)},
    ),
    Case(
        "a minimum GPU memory selects the class that has it",
        snapshot()
        .nodes(nodes("h", 1, gpu_class="H100"), nodes("t", 1, gpu_class="T4"))
        .communities("x")
        .policy(gpu_classes=(H100, T4))
        .pending(workload("x/t", "x").gpus(2).memory(40000).obj())
        .obj(),
        want_admitted={"x/t": ("h-0",)},
    ),
    Case(
        "a workload without a class takes the cheapest class that fits",
        snapshot()
        .nodes(nodes("h", 1, gpu_class="H100"), nodes("t", 1, gpu_class="T4"))
        .communities("x")
        .policy(gpu_classes=(H100, T4))
        .pending(workload("x/t", "x").gpus(2).obj())
        .obj(),
        want_admitted={"x/t": ("t-0",)},
    ),
    Case(
        "a snapshot already over-allocated gets nothing more on that node",
        snapshot()
        .nodes(nodes("n", 1, gpus=4))
        .communities("x", "y")
        .running(
            workload("y/a", "y").gpus(4).running("n-0"), workload("y/b", "y").gpus(4).running("n-0")
        )
        .pending(workload("y/c", "y").gpus(1).obj())
        .policy(preemption=False)
        .obj(),
        want_waiting={"y/c": "OverShare"},
    ),
    # ---- waiting reasons ---------------------------------------------------------------
    Case(
        "a worker larger than any node waits with the largest node size",
        snapshot()
        .nodes(two_nodes())
        .communities("x")
        .pending(workload("x/t", "x").gpus(16).obj())
        .obj(),
        want_waiting={"x/t": "GangTooLarge"},
        want_messages={"x/t": "largest gpu node has 8 GPUs"},
    ),
    Case(
        "a class the pool lacks waits with NoMatchingGPUs",
        snapshot()
        .nodes(two_nodes())
        .communities("x")
        .pending(workload("x/t", "x").gpu_class("H100").obj())
        .obj(),
        want_waiting={"x/t": "NoMatchingGPUs"},
        want_messages={"x/t": "needs GPU class H100; the pool has none available"},
    ),
    Case(
        "more memory than any GPU has waits with NoMatchingGPUs",
        snapshot()
        .nodes(nodes("t", 1, gpu_class="T4"))
        .communities("x")
        .policy(gpu_classes=(T4,))
        .pending(workload("x/t", "x").memory(80000).obj())
        .obj(),
        want_waiting={"x/t": "NoMatchingGPUs"},
        want_messages={"x/t": "with ≥ 80000 MiB each"},
    ),
    Case(
        "a fragmented pool names the largest free block",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .running(
            workload("y/a", "y").gpus(4).running("n-0"), workload("y/b", "y").gpus(4).running("n-1")
        )
        .pending(workload("x/t", "x").gpus(8).gpu_class("gpu").obj())
        .policy(preemption=False)
        .obj(),
        want_waiting={"x/t": "Fragmented"},
        want_messages={"x/t": "needs 8 × gpu, largest free block is 4"},
    ),
    Case(
        "a community over its share waits with by how much",
        snapshot()
        .nodes(nodes("n", 2))
        .communities("x", "y")
        .running(
            workload("x/a", "x").gpus(8).running("n-0"),
            workload("x/b", "x").gpus(6).running("n-1"),
            workload("y/a", "y").gpus(2).running("n-1"),
        )
        .pending(workload("x/c", "x").gpus(1).obj(), workload("y/b", "y").gpus(6).obj())
        .policy(preemption=False)
        .obj(),
        want_waiting={"x/c": "OverShare", "y/b": "PoolExhausted"},
        want_messages={
            "x/c": "community over its share by 6 GPUs",
            "y/b": "pool capacity exhausted: needs 6 × gpu, 0 gpu free, preemption is off",
        },
    ),
    Case(
        "a workload of a community the pool does not know waits",
        snapshot().nodes(two_nodes()).communities("x").pending(workload("q/t", "q").obj()).obj(),
        want_waiting={"q/t": "UnknownCommunity"},
    ),
    # ---- preemption --------------------------------------------------------------------
    Case(
        "a community below its share preempts one above its share",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "FairShare"},
    ),
    Case(
        "a guarantee is honoured by preemption when demanded",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").weight(0.1).guarantee(8).obj(), "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).obj(), workload("x/u", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "FairShare"},
        want_waiting={"x/u": "OverShare"},
        want_entitlements={"x": 8, "y": 8},
    ),
    Case(
        "the lowest priority victim goes first",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).priority(3).running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/a": "FairShare"},
    ),
    Case(
        "the minimum runtime protects a young workload",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(100)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(min_runtime_s=85)
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/a": "FairShare"},
    ),
    Case(
        "nothing is preempted before the minimum runtime",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(100)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(min_runtime_s=3600)
        .obj(),
        want_waiting={"x/t": "PoolExhausted"},
        want_messages={"x/t": "none preemptible within fair share"},
    ),
    Case(
        "the minimum runtime doubles with each restart under a backoff of 2",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(100)
        .running(
            # restarted twice: protected for 30 * 2**2 = 120 s, it ran 90
            workload("y/a", "y").gpus(8).running("n-0", started=10, restarts=2),
            # restarted once: protected for 60 s, it ran 80
            workload("y/b", "y").gpus(8).running("n-1", started=20, restarts=1),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(min_runtime_s=30, restart_backoff=2)
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "FairShare"},
    ),
    Case(
        "with a restart back-off a victim restarted before goes first (fewest jobs restarted)",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            # restarted once: protected for 2 × 10 s, long past
            workload("y/b", "y").gpus(8).running("n-1", started=20, restarts=1),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(min_runtime_s=10, restart_backoff=2)
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "FairShare"},
    ),
    Case(
        "without a back-off a victim restarted fewer times goes first",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20, restarts=1),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/a": "FairShare"},
    ),
    Case(
        "with a restart limit a victim restarted before goes first, even without a back-off",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20, restarts=1),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(restart_limit=3)
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "FairShare"},
    ),
    Case(
        "a workload restarted restart_limit times is no victim (the back-off would take it)",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20, restarts=2),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(min_runtime_s=10, restart_backoff=2, restart_limit=2)
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/a": "FairShare"},
    ),
    Case(
        "when every candidate reached the restart limit the preemptor waits",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10, restarts=1),
            workload("y/b", "y").gpus(8).running("n-1", started=20, restarts=3),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(restart_limit=1)
        .obj(),
        want_waiting={"x/t": "PoolExhausted"},
    ),
    Case(
        "owner reclaim stops a workload at the restart limit",
        snapshot()
        .nodes(nodes("a", 1, available=False), nodes("b", 1))
        .communities("x")
        .running(workload("x/a", "x").gpus(8).running("a-0", restarts=5))
        .policy(restart_limit=2)
        .obj(),
        want_preempted={"x/a": "OwnerReclaim"},
    ),
    Case(
        "consolidation never moves a workload at the restart limit",
        snapshot()
        .nodes(two_nodes())
        # z asks for nothing: y's 8 GPUs are above its nominal share of 16 / 3
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(4).running("n-0", restarts=1),
            workload("y/b", "y").gpus(4).running("n-1", restarts=1),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True, restart_limit=1)
        .obj(),
        want_waiting={"x/t": "Fragmented"},
    ),
    Case(
        "clearing a node for a gang: the victims restarted fewest times (fewest GPUs tied)",
        snapshot()
        .nodes(nodes("n", 4))
        .communities("x", "y", "z")
        .now(1000)
        .running(
            # y is entitled to 13 of its 18 GPUs: the greedy pass takes y/e and y/c (restarted
            # most first), y has no more to give, no node is clear and no single victim suffices
            workload("y/a", "y").gpus(2).running("n-0", started=500),
            workload("y/b", "y").gpus(2).running("n-0", started=500),
            workload("y/c", "y").gpus(2).running("n-1", started=500, restarts=1),
            workload("y/d", "y").gpus(2).running("n-1", started=500, restarts=1),
            workload("y/e", "y").gpus(2).running("n-2", started=500, restarts=3),
            workload("z/big", "z").gpus(6).running("n-2", started=500),
            workload("y/f", "y").gpus(8).running("n-3", started=100),
        )
        .pending(workload("x/t", "x").gpus(8).obj(), workload("x/u", "x").gpus(8).created(1).obj())
        .policy(min_runtime_s=10, restart_backoff=2)
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/a": "FairShare", "y/b": "FairShare"},
        want_waiting={"x/u": "OverShare"},
    ),
    Case(
        "clearing a node for a gang: the node whose victims were restarted before (spare_new)",
        snapshot()
        .nodes(nodes("n", 4))
        .communities("x", "y", "z")
        .now(1000)
        .running(
            # y is entitled to 13 of its 18 GPUs: the greedy pass takes y/e and y/c (restarted
            # most first), y has no more to give, no node is clear and no single victim suffices
            workload("y/a", "y").gpus(2).running("n-0", started=500),
            workload("y/b", "y").gpus(2).running("n-0", started=500),
            workload("y/c", "y").gpus(2).running("n-1", started=500, restarts=1),
            workload("y/d", "y").gpus(2).running("n-1", started=500, restarts=1),
            workload("y/e", "y").gpus(2).running("n-2", started=500, restarts=3),
            workload("z/big", "z").gpus(6).running("n-2", started=500),
            workload("y/f", "y").gpus(8).running("n-3", started=100),
        )
        .pending(workload("x/t", "x").gpus(8).obj(), workload("x/u", "x").gpus(8).created(1).obj())
        .policy(min_runtime_s=10, restart_backoff=2, spare_new=True)
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/c": "FairShare", "y/d": "FairShare"},
        want_waiting={"x/u": "OverShare"},
    ),
    Case(
        "consolidation takes the first node of its level that it can clear",
        snapshot()
        .nodes(nodes("n", 3))
        # z asks for nothing: y's 12 GPUs are above its nominal share of 8
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(2).running("n-2"),
            workload("y/b", "y").gpus(2).running("n-2"),
            workload("y/c", "y").gpus(4).running("n-0", restarts=1),
            workload("y/d", "y").gpus(4).running("n-1"),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True)
        .obj(),
        want_admitted={"x/t": ("n-2",)},
        want_preempted={"y/a": "Consolidation", "y/b": "Consolidation"},
        want_moved={"y/a": ("n-1",), "y/b": ("n-1",)},
    ),
    Case(
        "consolidation moves a workload restarted before over fresh ones (spare_new)",
        snapshot()
        .nodes(nodes("n", 3))
        # z asks for nothing: y's 12 GPUs are above its nominal share of 8
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(2).running("n-2"),
            workload("y/b", "y").gpus(2).running("n-2"),
            workload("y/c", "y").gpus(4).running("n-0", restarts=1),
            workload("y/d", "y").gpus(4).running("n-1"),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True, spare_new=True)
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/c": "Consolidation"},
        want_moved={"y/c": ("n-1",)},
    ),
    Case(
        "consolidation clears the node with most free GPUs first",
        snapshot()
        .nodes(nodes("n", 3))
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(2).running("n-0"),
            workload("y/c", "y").gpus(4).running("n-1", restarts=1),
            workload("y/d", "y").gpus(8).running("n-2"),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True)
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/a": "Consolidation"},
        want_moved={"y/a": ("n-1",)},
    ),
    Case(
        "consolidation moves only workloads restarted before when that suffices (spare_new)",
        snapshot()
        .nodes(nodes("n", 3))
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(2).running("n-0"),
            workload("y/c", "y").gpus(4).running("n-1", restarts=1),
            workload("y/d", "y").gpus(8).running("n-2"),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True, spare_new=True)
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/c": "Consolidation"},
        want_moved={"y/c": ("n-0",)},
    ),
    Case(
        "a gang takes the greedy pass's victims, a new one among them",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y", "z")
        .now(10000)
        .running(
            # y holds 12 GPUs, entitled to 8; the greedy pass takes y/b (restarted most), y/a
            # and y/e would leave y below 8, then y/c completes a block of 2 on n-0
            workload("y/a", "y").gpus(4).running("n-0", started=300, restarts=1),
            workload("y/b", "y").gpus(1).running("n-0", started=300, restarts=2),
            workload("y/c", "y").gpus(3).running("n-0", started=100),
            workload("z/d", "z").gpus(4).running("n-1", started=200, restarts=1),
            workload("y/e", "y").gpus(4).running("n-1", started=200, restarts=1),
        )
        .pending(workload("x/t", "x").gpus(2).obj(), workload("x/u", "x").gpus(2).created(1).obj())
        .policy(min_runtime_s=10, restart_backoff=2)
        .obj(),
        want_admitted={"x/t": ("n-0",), "x/u": ("n-0",)},
        want_preempted={"y/c": "FairShare", "y/b": "FairShare"},
    ),
    Case(
        "a gang takes one victim restarted before over the greedy pass's new one (spare_new)",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y", "z")
        .now(10000)
        .running(
            # y holds 12 GPUs, entitled to 8; the greedy pass takes y/b (restarted most), y/a
            # and y/e would leave y below 8, then y/c completes a block of 2 on n-0
            workload("y/a", "y").gpus(4).running("n-0", started=300, restarts=1),
            workload("y/b", "y").gpus(1).running("n-0", started=300, restarts=2),
            workload("y/c", "y").gpus(3).running("n-0", started=100),
            workload("z/d", "z").gpus(4).running("n-1", started=200, restarts=1),
            workload("y/e", "y").gpus(4).running("n-1", started=200, restarts=1),
        )
        .pending(workload("x/t", "x").gpus(2).obj(), workload("x/u", "x").gpus(2).created(1).obj())
        .policy(min_runtime_s=10, restart_backoff=2, spare_new=True)
        .obj(),
        want_admitted={"x/t": ("n-0",), "x/u": ("n-0",)},
        want_preempted={"y/a": "FairShare"},
    ),
    Case(
        "a victim that just saved a checkpoint goes before a younger one that did not",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            # checkpoints every 300 s from 10: the last at 910, 90 s of work at risk
            workload("y/a", "y").gpus(8).running("n-0", started=10, checkpoint_interval_s=300),
            # none since it started at 700: 300 s at risk
            workload("y/b", "y").gpus(8).running("n-1", started=700),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/a": "FairShare"},
    ),
    Case(
        "a workload preempts only once it waited the preemption delay",
        snapshot()
        .nodes(two_nodes())
        # z asks for nothing: x is entitled to 8 GPUs, its nominal share is 16 / 3
        .communities("x", "y", "z")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        .pending(
            workload("x/t", "x").gpus(8).created(500).obj(),
            # requeued at 900 after a preemption: it waits since then, not since 0
            workload("x/u", "x").gpus(8).created(0).waiting_since(900).obj(),
        )
        .policy(preemption_delay_s=300)
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "FairShare"},
        want_waiting={"x/u": "PoolExhausted"},
        want_messages={"x/u": "may preempt in 200 s (preemption delay)"},
    ),
    Case(
        "within its nominal share a workload takes GPUs back without the preemption delay",
        snapshot()
        .nodes(two_nodes())
        # two communities: x's nominal share is 8 GPUs, as on a private half of the pool
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).created(990).obj())
        .policy(preemption_delay_s=300)
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "FairShare"},
    ),
    Case(
        "within its nominal share a workload waits the reclaim delay, not the preemption delay",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        .pending(
            workload("x/t", "x").gpus(8).created(950).obj(),
            workload("x/u", "x").gpus(8).created(990).obj(),
        )
        .policy(preemption_delay_s=300, reclaim_delay_s=30)
        .obj(),
        # x/t waited 50 s and takes back x's half; x/u would take x beyond it: 300 s
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "FairShare"},
        want_waiting={"x/u": "OverShare"},
    ),
    Case(
        "within its nominal share a workload still waits for a reclaim delay not yet over",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        # x asks for 16 GPUs, more than its nominal share (8): on its slice it would wait too
        .pending(
            workload("x/t", "x").gpus(8).created(990).obj(),
            workload("x/u", "x").gpus(8).created(995).obj(),
        )
        .policy(preemption_delay_s=300, reclaim_delay_s=30)
        .obj(),
        want_waiting={"x/t": "PoolExhausted", "x/u": "PoolExhausted"},
        want_messages={"x/t": "may preempt in 20 s (preemption delay)"},
    ),
    Case(
        "within its nominal share a workload asking only for its slice waits the delay too",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0", started=10),
            workload("y/b", "y").gpus(8).running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).created(990).obj())
        .policy(preemption_delay_s=300, reclaim_delay_s=30)
        .obj(),
        want_waiting={"x/t": "PoolExhausted"},
        want_messages={"x/t": "may preempt in 20 s (preemption delay)"},
    ),
    Case(
        "a community borrowing beyond its entitlement can lose a whole gang to one within it",
        snapshot()
        .nodes(nodes("a", 2), nodes("b", 1, gpus=4))
        .communities("x", "y")
        .now(100)
        .running(workload("y/old", "y").workers(2).gpus(8).running("a-0", "a-1"))
        .pending(workload("x/t", "x").workers(2).gpus(4).obj())
        .obj(),
        want_admitted={"x/t": ("b-0", "a-1")},
        want_preempted={"y/old": "FairShare"},
        want_entitlements={"x": 8, "y": 12},
    ),
    Case(
        "without reclaim a borrower keeps a gang that would take it below its entitlement",
        snapshot()
        .nodes(nodes("a", 2), nodes("b", 1, gpus=4))
        .communities("x", "y")
        .now(100)
        .running(workload("y/old", "y").workers(2).gpus(8).running("a-0", "a-1"))
        .pending(workload("x/t", "x").workers(2).gpus(4).obj())
        .policy(reclaim=False)
        .obj(),
        want_waiting={"x/t": "PoolExhausted"},
        want_entitlements={"x": 8, "y": 12},
    ),
    Case(
        "reclaiming borrowed GPUs never takes a community below its guarantee",
        snapshot()
        .nodes(nodes("a", 2), nodes("b", 1, gpus=4))
        .communities("x", community("y").guarantee(12).obj())
        .now(100)
        .running(workload("y/old", "y").workers(2).gpus(8).running("a-0", "a-1"))
        .pending(workload("x/t", "x").workers(2).gpus(4).obj())
        .obj(),
        want_waiting={"x/t": "PoolExhausted"},
        want_messages={"x/t": "none preemptible within fair share"},
        want_entitlements={"x": 8, "y": 12},
    ),
    Case(
        "half a GPU above its share is enough to give a whole workload to a community below",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y", "z")
        .now(1000)
        .running(
            *(workload(f"y/{i}", "y").running("n-0", started=10 + i) for i in range(8)),
            workload("z/big", "z").gpus(8).running("n-1", started=5),
        )
        .pending(workload("x/t", "x").obj())
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/7": "FairShare"},
        want_entitlements={"x": 1, "y": 7.5, "z": 7.5},
    ),
    Case(
        "a victim whose community keeps its entitlement is taken before reclaiming borrowed GPUs",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y", "z")
        .now(1000)
        .running(
            *(workload(f"y/{i}", "y").running("n-0", started=10 + i) for i in range(6)),
            workload("z/a", "z").gpus(2).running("n-0", started=70),
            workload("z/b", "z").gpus(5).running("n-1", started=5),
            workload("y/6", "y").gpus(3).running("n-1", started=60),
        )
        .pending(workload("x/t", "x").gpus(2).priority(1).obj(), workload("x/u", "x").gpus(4).obj())
        .obj(),
        # z/a is the newest, but z (7 held, 5.33 entitled) would drop below its share;
        # y (9 held) stays above its share without y/6
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/6": "FairShare"},
        want_waiting={"x/u": "OverShare"},
    ),
    Case(
        "a preemptor that would go over its own share preempts nothing",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(100)
        .running(
            workload("y/a", "y").gpus(8).running("n-0"), workload("y/b", "y").gpus(8).running("n-1")
        )
        .pending(workload("x/t", "x").workers(2).gpus(6).obj())
        .obj(),
        want_waiting={"x/t": "OverShare"},
        want_messages={"x/t": "would go over its share by 4 GPUs"},
    ),
    Case(
        "preemption switched off leaves the community waiting",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y")
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0"), workload("y/b", "y").gpus(8).running("n-1")
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False)
        .obj(),
        want_waiting={"x/t": "PoolExhausted"},
    ),
    Case(
        "a serving workload inside its community's guarantee is not preempted",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").guarantee(16).obj(), community("y").guarantee(16).obj())
        .now(1000)
        .running(
            workload("y/train", "y").gpus(8).running("n-0", started=10),
            workload("y/serve", "y").gpus(8).serving().running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).obj(), workload("x/u", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/train": "FairShare"},
        want_waiting={"x/u": "OverShare"},
        want_entitlements={"x": 8, "y": 8},
    ),
    Case(
        "only the victims that are needed are preempted",
        snapshot()
        .nodes(nodes("n", 1))
        .communities("x", "y")
        .now(1000)
        .running(*(workload(f"y/{i}", "y").gpus(2).running("n-0", started=i) for i in range(4)))
        .pending(workload("x/t", "x").gpus(4).obj())
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/3": "FairShare", "y/2": "FairShare"},
    ),
    Case(
        "GPUs freed by preemption and left over are used in the same cycle",
        # z goes first (older) but would exceed its small share, so it cannot preempt; x
        # preempts 8 GPUs for a 4-GPU workload; the next pass fits z into the other 4.
        snapshot()
        .nodes(nodes("n", 2))
        .communities("x", "y", community("z").weight(0.1).obj())
        .now(1000)
        .running(
            workload("y/a", "y").gpus(8).running("n-0"), workload("y/b", "y").gpus(8).running("n-1")
        )
        .pending(
            workload("z/w", "z").gpus(2).created(-1).obj(),
            workload("x/t", "x").gpus(4).obj(),
            workload("x/u", "x").gpus(6).created(1).obj(),
        )
        .obj(),
        want_admitted={"x/t": ("n-0",), "z/w": ("n-0",)},
        want_preempted={"y/a": "FairShare"},
        want_waiting={"x/u": "OverShare"},
    ),
    Case(
        "GPUs a victim frees on another class are used in the same cycle",
        # y's gang spans classes; x preempts it for A GPUs, which frees B GPUs that z (tried
        # first, but with too small a share to preempt) fits into on the next pass
        snapshot()
        .nodes(
            nodes("a", 1, gpu_class="H100", gpus=2),
            nodes("big", 1, gpu_class="H100"),
            nodes("b", 1, gpu_class="T4", gpus=2),
        )
        .communities("x", "y", community("z").weight(0.01).obj())
        .policy(gpu_classes=(H100, T4))
        .now(1000)
        .running(
            workload("y/span", "y").workers(2).gpus(2).running("a-0", "b-0", started=20),
            workload("y/big", "y").gpus(8).running("big-0", started=10),
        )
        .pending(
            workload("z/w", "z").gpu_class("T4").created(-1).obj(),
            workload("x/t", "x").gpus(2).gpu_class("H100").obj(),
            workload("x/u", "x").gpus(8).gpu_class("H100").created(1).obj(),
        )
        .obj(),
        want_admitted={"x/t": ("a-0",), "z/w": ("b-0",)},
        want_preempted={"y/span": "FairShare"},
        want_waiting={"x/u": "OverShare"},
    ),
    # ---- defragmenting preemption and consolidation -------------------------------------
    Case(
        "a gang below its share clears the cheapest node when scattered victims run out",
        snapshot()
        .nodes(two_nodes())
        .communities(community("x").weight(2).obj(), "y", "z")
        .now(1000)
        .running(
            workload("y/new", "y").gpus(4).running("n-0", started=50),
            workload("z/old", "z").gpus(4).running("n-0", started=10),
            workload("z/new", "z").gpus(4).running("n-1", started=45),
            workload("y/old", "y").gpus(4).running("n-1", started=20),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/new": "FairShare", "z/old": "FairShare"},
        want_entitlements={"x": 8, "y": 4, "z": 4},
    ),
    Case(
        "a moved workload that fits nowhere makes room by moving a smaller one (two levels)",
        snapshot()
        .nodes(nodes("n", 3))
        .communities("x", "y")
        .running(
            workload("y/four", "y").gpus(4).running("n-0"),
            workload("y/two", "y").gpus(2).running("n-1"),
            workload("y/four-b", "y").gpus(4).running("n-1"),
            workload("y/six", "y").gpus(6).running("n-2"),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True)
        .obj(),
        # free blocks 4, 2, 2: y/four leaves n-0 for the gang, but no block of 4 is left;
        # y/two (smaller) moves from n-1 to n-2, and y/four takes its place on n-1
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/four": "Consolidation", "y/two": "Consolidation"},
        want_moved={"y/four": ("n-1",), "y/two": ("n-2",)},
    ),
    Case(
        "consolidation moves a small workload to clear a node for a fragmented gang",
        snapshot()
        .nodes(two_nodes())
        # z asks for nothing: y's 8 GPUs are above its nominal share of 16 / 3
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(4).running("n-0"), workload("y/b", "y").gpus(4).running("n-1")
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True)
        .obj(),
        want_admitted={"x/t": ("n-1",)},
        want_preempted={"y/b": "Consolidation"},
        want_moved={"y/b": ("n-0",)},
    ),
    Case(
        "moving only restarted workloads, consolidation leaves one never restarted in place",
        snapshot()
        .nodes(two_nodes())
        # z asks for nothing: y's 8 GPUs are above its nominal share of 16 / 3
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(4).running("n-0"), workload("y/b", "y").gpus(4).running("n-1")
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True, move_restarted_only=True)
        .obj(),
        want_waiting={"x/t": "Fragmented"},
    ),
    Case(
        "moving only restarted workloads, consolidation moves one restarted before",
        snapshot()
        .nodes(two_nodes())
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(4).running("n-0", restarts=1),
            workload("y/b", "y").gpus(4).running("n-1"),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True, move_restarted_only=True)
        .obj(),
        want_admitted={"x/t": ("n-0",)},
        want_preempted={"y/a": "Consolidation"},
        want_moved={"y/a": ("n-1",)},
    ),
    Case(
        "consolidation never moves a workload of a community within its nominal share",
        snapshot()
        .nodes(two_nodes())
        # two communities: y's 8 GPUs are its nominal share, as on a private half of the pool
        .communities("x", "y")
        .running(
            workload("y/a", "y").gpus(4).running("n-0"), workload("y/b", "y").gpus(4).running("n-1")
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True)
        .obj(),
        want_waiting={"x/t": "Fragmented"},
    ),
    Case(
        "consolidation never moves a serving workload",
        snapshot()
        .nodes(two_nodes())
        # z asks for nothing: y's 8 GPUs are above its nominal share of 16 / 3
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(4).serving().running("n-0"),
            workload("y/b", "y").gpus(4).serving().running("n-1"),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True)
        .obj(),
        want_waiting={"x/t": "Fragmented"},
    ),
    Case(
        "consolidation moves no more GPUs than the gang starts",
        snapshot()
        .nodes(two_nodes())
        # z asks for nothing: y's 8 GPUs are above its nominal share of 16 / 3
        .communities("x", "y", "z")
        .running(
            workload("y/a", "y").gpus(7).running("n-0"), workload("y/b", "y").gpus(7).running("n-1")
        )
        .pending(workload("x/t", "x").gpus(2).obj())
        .policy(preemption=False, consolidation=True)
        .obj(),
        want_waiting={"x/t": "Fragmented"},
    ),
    Case(
        "a young workload is not moved before its minimum runtime",
        snapshot()
        .nodes(two_nodes())
        # z asks for nothing: y's 8 GPUs are above its nominal share of 16 / 3
        .communities("x", "y", "z")
        .now(100)
        .running(
            workload("y/a", "y").gpus(4).running("n-0", started=90),
            workload("y/b", "y").gpus(4).running("n-1", started=90),
        )
        .pending(workload("x/t", "x").gpus(8).obj())
        .policy(preemption=False, consolidation=True, min_runtime_s=60)
        .obj(),
        want_waiting={"x/t": "Fragmented"},
    ),
    # ---- reclaim -----------------------------------------------------------------------
    Case(
        "workloads on a reclaimed node are preempted with OwnerReclaim",
        snapshot()
        .nodes(nodes("a", 1, available=False), nodes("b", 1))
        .communities("x")
        .running(workload("x/a", "x").gpus(8).running("a-0"))
        .pending(workload("x/next", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/next": ("b-0",)},
        want_preempted={"x/a": "OwnerReclaim"},
        want_entitlements={"x": 8},
    ),
    Case(
        "a node gone from the snapshot counts as reclaimed",
        snapshot()
        .nodes(nodes("b", 1))
        .communities("x")
        .running(workload("x/a", "x").gpus(8).running("gone-0"))
        .obj(),
        want_preempted={"x/a": "OwnerReclaim"},
    ),
    Case(
        "GPUs a reclaimed gang held on other nodes are free in the same cycle",
        snapshot()
        .nodes(nodes("a", 1, available=False), nodes("b", 1))
        .communities("x", "y")
        .running(workload("x/gang", "x").workers(2).gpus(8).running("a-0", "b-0"))
        .pending(workload("y/t", "y").gpus(8).obj())
        .obj(),
        want_admitted={"y/t": ("b-0",)},
        want_preempted={"x/gang": "OwnerReclaim"},
    ),
    Case(
        "reclaim and fair-share preemption happen in one cycle",
        snapshot()
        .nodes(nodes("a", 1, available=False), nodes("b", 2))
        .communities("x", "y")
        .now(1000)
        .running(
            workload("x/a", "x").gpus(8).running("a-0"),
            workload("y/a", "y").gpus(8).running("b-0"),
            workload("y/b", "y").gpus(8).running("b-1", started=5),
        )
        .pending(workload("x/back", "x").gpus(8).obj())
        .obj(),
        want_admitted={"x/back": ("b-1",)},
        want_preempted={"x/a": "OwnerReclaim", "y/b": "FairShare"},
        want_entitlements={"x": 8, "y": 8},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scenario(case: Case) -> None:
    decisions = schedule(case.snapshot)
    admitted = {a.workload.key: a.placement for a in decisions.admissions}
    assert set(admitted) == set(case.want_admitted)
    for key, placement in case.want_admitted.items():
        if placement is not None:
            assert admitted[key] == placement, key
    preempted = {p.running.workload.key: p.reason for p in decisions.preemptions}
    assert preempted == case.want_preempted
    waiting = {w.workload.key: w.reason for w in decisions.waiting}
    assert waiting == case.want_waiting
    assert {m.workload.key: m.placement for m in decisions.moves} == case.want_moved
    messages = {w.workload.key: w.message for w in decisions.waiting}
    for key, fragment in case.want_messages.items():
        assert fragment in messages[key]
    if case.want_entitlements is not None:
        assert dict(decisions.entitlements) == pytest.approx(case.want_entitlements)


def test_there_are_at_least_forty_scenarios() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
