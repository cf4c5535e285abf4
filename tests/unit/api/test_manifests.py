"""The bodies tests and benchmarks apply are valid resources of the API as it is now."""

from __future__ import annotations

from polyculture.api.community_model import CommunityModel
from polyculture.api.compute_pool import ComputePool
from polyculture.controlplane.manifests import compute_pool, member, training_model


def test_a_pool_body_is_a_valid_compute_pool() -> None:
    body = compute_pool(
        "coop",
        [member("ada", {"team": "a"}, reclaim=False)],
        ["yoruba", {"name": "quechua", "weight": 2, "guaranteedGPUs": 2}],
        fairShare={"preemption": {"gracePeriod": "30s"}},
    )
    pool = ComputePool.model_validate(body)
    assert pool.spec.ray.backend == "kubernetes"
    assert [c.name for c in pool.spec.communities] == ["yoruba", "quechua"]
    assert pool.spec.members[0].node_selector == {"team": "a"}
    assert "ray" not in compute_pool("p", [member("a", {})], ["c"], backend=None)["spec"]


def test_a_model_body_is_a_valid_community_model() -> None:
    body = training_model("m", "coop", workers=2, gpus=4, namespace="yoruba", community="yoruba")
    model = CommunityModel.model_validate(body)
    assert model.spec.training is not None
    assert (model.spec.training.workers, model.spec.training.gpus_per_worker) == (2, 4)
    assert body["metadata"] == {"name": "m", "namespace": "yoruba"}
    assert model.spec.community == "yoruba"
