"""Fluent builders of snapshots, for tests, the benchmark and the simulator (Kueue style).

    make_snapshot().nodes(*make_nodes("a", 2, owner="lab-a", gpus=8))
        .communities(make_community("x").weight(2).obj())
        .pending(make_workload("x/train", "x").workers(2).gpus(4).obj())
        .obj()

Defaults keep scenarios short: a node has 8 GPUs of class ``gpu``, a workload is one worker
of one GPU, a community has weight 1 and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Self, TypeVar

from polyculture.scheduling.snapshot import (
    Community,
    Node,
    Policy,
    Running,
    Snapshot,
    Workload,
)

DEFAULT_CLASS = "gpu"

T = TypeVar("T")


def make_nodes(
    prefix: str,
    count: int,
    *,
    owner: str = "owner",
    gpus: int = 8,
    gpu_class: str = DEFAULT_CLASS,
    available: bool = True,
    memory_mib: int = 0,
) -> list[Node]:
    """``count`` identical nodes named ``{prefix}-0``, ``{prefix}-1``, ..."""
    return [
        Node(f"{prefix}-{i}", owner, gpu_class, gpus, available, memory_mib) for i in range(count)
    ]


class CommunityBuilder:
    def __init__(self, name: str) -> None:
        self._c = Community(name)

    def weight(self, weight: float) -> Self:
        self._c = replace(self._c, weight=weight)
        return self

    def guarantee(self, gpus: int) -> Self:
        self._c = replace(self._c, guaranteed_gpus=gpus)
        return self

    def cap(self, gpus: int | None) -> Self:
        self._c = replace(self._c, max_gpus=gpus)
        return self

    def usage(self, gpu_seconds: float) -> Self:
        self._c = replace(self._c, usage_gpu_seconds=gpu_seconds)
        return self

    def contribution(self, gpu_seconds: float) -> Self:
        self._c = replace(self._c, contribution_gpu_seconds=gpu_seconds)
        return self

    def owners(self, *owners: str) -> Self:
        self._c = replace(self._c, owners=owners)
        return self

    def obj(self) -> Community:
        return self._c


def make_community(name: str) -> CommunityBuilder:
    return CommunityBuilder(name)


class WorkloadBuilder:
    def __init__(self, key: str, community: str) -> None:
        self._w = Workload(key, community, workers=1, gpus_per_worker=1)

    def workers(self, workers: int) -> Self:
        self._w = replace(self._w, workers=workers)
        return self

    def gpus(self, gpus_per_worker: int) -> Self:
        self._w = replace(self._w, gpus_per_worker=gpus_per_worker)
        return self

    def priority(self, priority: int) -> Self:
        self._w = replace(self._w, priority=priority)
        return self

    def serving(self, serving: bool = True) -> Self:
        self._w = replace(self._w, serving=serving)
        return self

    def gpu_class(self, gpu_class: str | None) -> Self:
        self._w = replace(self._w, gpu_class=gpu_class)
        return self

    def memory(self, min_gpu_memory_mib: int) -> Self:
        self._w = replace(self._w, min_gpu_memory_mib=min_gpu_memory_mib)
        return self

    def created(self, created: float) -> Self:
        self._w = replace(self._w, created=created)
        return self

    def waiting_since(self, since: float | None) -> Self:
        self._w = replace(self._w, waiting_since=since)
        return self

    def obj(self) -> Workload:
        return self._w

    def running(
        self,
        *placement: str,
        started: float = 0.0,
        restarts: int = 0,
        last_checkpoint: float | None = None,
        checkpoint_interval_s: float = 0.0,
    ) -> Running:
        """The workload already admitted on ``placement`` (one node name per worker)."""
        return Running(
            self._w, tuple(placement), started, restarts, last_checkpoint, checkpoint_interval_s
        )


def make_workload(key: str, community: str) -> WorkloadBuilder:
    return WorkloadBuilder(key, community)


class SnapshotBuilder:
    def __init__(self) -> None:
        self._s = Snapshot(nodes=(), communities=(), running=(), pending=(), now=0.0)

    def nodes(self, *nodes: Node | Iterable[Node]) -> Self:
        self._s = replace(self._s, nodes=self._s.nodes + _flat(nodes, Node))
        return self

    def communities(self, *communities: Community | str) -> Self:
        more = tuple(Community(c) if isinstance(c, str) else c for c in communities)
        self._s = replace(self._s, communities=self._s.communities + more)
        return self

    def running(self, *running: Running) -> Self:
        self._s = replace(self._s, running=self._s.running + running)
        return self

    def pending(self, *pending: Workload | Iterable[Workload]) -> Self:
        self._s = replace(self._s, pending=self._s.pending + _flat(pending, Workload))
        return self

    def now(self, now: float) -> Self:
        self._s = replace(self._s, now=now)
        return self

    def policy(self, policy: Policy | None = None, **changes: object) -> Self:
        base = policy if policy is not None else self._s.policy
        self._s = replace(self._s, policy=replace(base, **changes))  # type: ignore[arg-type]
        return self

    def obj(self) -> Snapshot:
        return self._s


def make_snapshot() -> SnapshotBuilder:
    return SnapshotBuilder()


def _flat(items: tuple[T | Iterable[T], ...], kind: type[T]) -> tuple[T, ...]:
    out: list[T] = []
    for item in items:
        if isinstance(item, kind):
            out.append(item)
        else:
            out.extend(item)  # type: ignore[arg-type]
    return tuple(out)


def policy_variants(snap: Snapshot, *, every: bool = True) -> Iterator[tuple[str, Snapshot]]:
    """``snap`` under the policies whose code paths differ, by name: the defaults, no
    reclaim, consolidation with churn limits; with ``every``, also the reservation, the
    lookahead and a cap of 8 GPUs on every third community (``OverCap`` on the way)."""
    policy = snap.policy
    yield "default", snap
    yield "no-reclaim", replace(snap, policy=replace(policy, reclaim=False))
    churn = replace(policy, consolidation=True, restart_backoff=2.0, preemption_delay_s=3600.0)
    yield "consolidation", replace(snap, policy=churn)
    if not every:
        return
    reserving = replace(churn, reservation=True, reclaim_delay_s=120.0)
    yield "reservation", replace(snap, policy=reserving)
    yield "lookahead", replace(snap, policy=replace(policy, lookahead=4))
    capped = tuple(
        replace(c, max_gpus=8) if i % 3 == 0 else c for i, c in enumerate(snap.communities)
    )
    yield "capped", replace(snap, communities=capped)
