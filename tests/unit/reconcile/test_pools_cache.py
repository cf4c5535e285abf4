"""The verdicts' pools, parsed again only when what a verdict reads of them changed.

A burst of new models is judged against the same pools many times; ``PoolsCache`` parses
them once per change of a pool's spec (uid, generation) or of the status fields a verdict
reads (node sizes, members' GPUs by class), and its verdicts are those of ``parse_pools``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from polyculture.reconcile.models import PoolsCache, parse_pools, verdict

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def pool(generation: int = 1, gpus: int = 8, ledger: float = 0.0) -> dict[str, Any]:
    return {
        "metadata": {"name": "coop", "uid": "u-coop", "generation": generation},
        "spec": {
            "members": [{"owner": "a", "nodeSelector": {"k": "v"}}],
            "communities": [{"name": "yoruba"}],
        },
        "status": {
            "largestNodeGPUs": {"H100": gpus},
            "members": [{"owner": "a", "gpusByClass": {"H100": gpus}}],
            "communities": [{"name": "yoruba", "gpuSecondsConsumed": ledger}],
        },
    }


def model(gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "polyculture.dev/v1alpha1",
        "kind": "CommunityModel",
        "metadata": {"name": "m", "namespace": "yoruba", "generation": 1},
        "spec": {
            "pool": "coop",
            "training": {"entrypoint": "python t.py", "workers": 1, "gpusPerWorker": gpus},
        },
    }


def test_the_same_pools_are_parsed_once() -> None:
    cache = PoolsCache()
    first = cache.parse({"coop": pool()})
    assert cache.parse({"coop": copy.deepcopy(pool())}) is first


def test_a_ledger_only_change_keeps_the_parse() -> None:
    cache = PoolsCache()
    first = cache.parse({"coop": pool()})
    assert cache.parse({"coop": pool(ledger=120.0)}) is first


def test_a_new_generation_or_new_node_sizes_are_parsed_again() -> None:
    cache = PoolsCache()
    first = cache.parse({"coop": pool()})
    assert cache.parse({"coop": pool(generation=2)}) is not first
    again = cache.parse({"coop": pool(generation=2)})
    assert cache.parse({"coop": pool(generation=2, gpus=4)}) is not again
    assert cache.parse({}) is not again


def test_verdicts_through_the_cache_are_those_of_parse_pools() -> None:
    cache = PoolsCache()
    for bodies in ({"coop": pool()}, {"coop": pool(gpus=4)}, {}):
        for gpus in (1, 8):
            cached = verdict(model(gpus), cache.parse(bodies), NOW)
            direct = verdict(model(gpus), parse_pools(bodies), NOW)
            assert cached == direct
    # a model needing 8 GPUs on one node cannot fit nodes of 4: the cache saw the change
    small = verdict(model(8), cache.parse({"coop": pool(gpus=4)}), NOW)
    assert small.status is not None and small.status["phase"] == "Invalid"


def test_a_pool_being_deleted_is_not_found() -> None:
    """Its deletion asked (kopf's finalizer keeps it a moment while its daemons stop): its
    models are judged PoolNotFound at once, and the cache sees the change."""
    cache = PoolsCache()
    assert verdict(model(1), cache.parse({"coop": pool()}), NOW).status is not None
    deleting = pool()
    deleting["metadata"]["deletionTimestamp"] = "2026-11-29T12:00:00Z"
    result = verdict(model(1), cache.parse({"coop": deleting}), NOW)
    assert result.status is not None and result.status["phase"] == "Invalid"
    assert [e.reason for e in result.events] == ["PoolNotFound"]
    assert verdict(model(1), parse_pools({"coop": deleting}), NOW) == result
