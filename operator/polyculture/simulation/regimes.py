"""Regimes derived from a trace by stated rules: unequal weights, and a small co-op pool.

**Usage-proportional weights** (:func:`usage_weights`): each community's weight is its share
of the trace's GPU-seconds, in percent, rounded, at least 1 (a quota sized to each tenant's
need, as shared clusters commonly set them); its guarantee is half of its weighted slice of
the pool, in whole GPUs, rounded down. No cap. Nothing here looks at a replay's outcome.

**Co-op pool** (:func:`coop_trace`): a few small communities sharing a few nodes. From the
trace, the communities ranked ``skip + 1`` to ``skip + communities`` by GPU-seconds (the
middle of the distribution: the largest tenants of a datacenter trace are not co-op
members); only their jobs of at most ``max_gang`` GPUs (half the pool unless given); then a
deterministic sample of those jobs (a job is kept when an 8-byte BLAKE2b hash of its key
falls under the kept fraction) so that the offered load — GPU-seconds asked over the pool's
GPU-seconds between the first and last arrival — is ``load`` (1.0: as much work as the pool
can do, so contention comes and goes with the trace's bursts). Arrivals and durations are
the trace's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from polyculture.simulation.trace import CommunityConfig, Trace

_SCALE = 1 << 64


def gpu_seconds(trace: Trace) -> dict[str, float]:
    """GPU-seconds asked by each community of ``trace``."""
    asked = dict.fromkeys(trace.communities, 0.0)
    for job in trace.jobs:
        asked[job.community] += job.gpus * job.duration
    return asked


def usage_weights(trace: Trace, gpus: int) -> dict[str, CommunityConfig]:
    """Weights and guarantees proportional to each community's GPU-seconds (module doc)."""
    asked = gpu_seconds(trace)
    total = sum(asked.values()) or 1.0
    weights = {name: max(1, round(100 * used / total)) for name, used in asked.items()}
    weight_sum = sum(weights.values())
    return {
        name: CommunityConfig(
            weight=float(weight), guaranteed_gpus=gpus * weight // (2 * weight_sum)
        )
        for name, weight in weights.items()
    }


def coop_trace(
    trace: Trace,
    *,
    gpus: int,
    communities: int = 5,
    skip: int = 5,
    load: float = 1.0,
    max_gang: int | None = None,
    config: Mapping[str, CommunityConfig] | None = None,
) -> Trace:
    """A small co-op's trace cut from ``trace`` by the rules of the module doc."""
    if gpus <= 0 or communities <= 0 or load <= 0:
        raise ValueError("a co-op needs GPUs, communities and a positive load")
    largest = gpus // 2 if max_gang is None else max_gang
    asked = gpu_seconds(trace)
    ranked = sorted(asked, key=lambda name: (-asked[name], name))
    chosen = set(ranked[skip : skip + communities])
    jobs = [j for j in trace.jobs if j.community in chosen and j.gpus <= largest]
    if not jobs:
        raise ValueError(f"no jobs of at most {largest} GPUs in communities {sorted(chosen)}")
    span = max(jobs[-1].arrival - jobs[0].arrival, 1.0)
    offered = sum(j.gpus * j.duration for j in jobs) / (gpus * span)
    kept = min(1.0, load / offered)
    sample = tuple(j for j in jobs if _draw(j.key) < kept * _SCALE)
    names = tuple(sorted({j.community for j in sample}))
    return Trace(jobs=sample, communities=names, origin=trace.origin, config=config or {})


def _draw(key: str) -> int:
    """A uniform 64-bit number fixed by ``key``."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
