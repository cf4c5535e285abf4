"""``judge``: what only the operator can judge about a CommunityModel.

Covers, as a table: a model that fits has no problem; PoolNotFound; CommunityNotAdmitted
(namespace and explicit ``spec.community``); NeverFits for a worker or replica larger than any
node of an eligible class, a gang larger than the pool's GPUs of one class, an unknown GPU
class, ``minGPUMemory`` above every class, a gang above the community's cap (in normalised
units); a pool whose nodes are not yet known never invalidates on node facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from polyculture.api import CommunityModel, ComputePool
from polyculture.api.admissibility import Problem, judge


def pool(status: dict[str, Any] | None = None, **community: Any) -> ComputePool:
    return ComputePool.model_validate(
        {
            "metadata": {"name": "coop"},
            "spec": {
                "members": [{"owner": "lab", "nodeSelector": {"k": "v"}}],
                "communities": [{"name": "yoruba", **community}, {"name": "quechua"}],
                "fairShare": {
                    "gpuClasses": [
                        {"name": "H100", "weight": 1.0, "memory": "80Gi"},
                        {"name": "L4", "weight": 0.25, "memory": "24Gi"},
                    ]
                },
            },
            "status": status,
        }
    )


KNOWN = {
    "largestNodeGPUs": {"H100": 8, "L4": 4},
    "capacity": [{"gpuClass": "H100", "gpus": 16}, {"gpuClass": "L4", "gpus": 12}],
    "members": [{"owner": "lab", "gpusByClass": {"H100": 16, "L4": 12}}],
}
#: the same pool while its only owner has reclaimed its nodes: nothing is lendable now
RECLAIMED = {
    **KNOWN,
    "capacity": [],
    "members": [{"owner": "lab", "gpusByClass": {"H100": 16, "L4": 12}, "lending": False}],
}


def model(**spec: Any) -> CommunityModel:
    spec = {"pool": "coop", **spec}
    return CommunityModel.model_validate({"metadata": {"name": "m"}, "spec": spec})


def train(**training: Any) -> dict[str, Any]:
    return {"training": {"entrypoint": "python train.py", **training}}


@dataclass
class Case:
    id: str
    model: CommunityModel
    pools: dict[str, ComputePool] = field(default_factory=lambda: {"coop": pool(KNOWN)})
    namespace: str = "yoruba"
    want: list[tuple[str, str]] = field(default_factory=list)  # (reason, field)


CASES = [
    Case("fits: 2 workers x 4 GPUs on H100", model(**train(workers=2, gpusPerWorker=4))),
    Case("fits: serving on any class", model(serving={"importPath": "a:b", "gpusPerReplica": 4})),
    Case("pool does not exist", model(**train()), pools={},
         want=[("PoolNotFound", "spec.pool")]),
    Case("namespace is not an admitted community", model(**train()), namespace="strangers",
         want=[("CommunityNotAdmitted", "metadata.namespace")]),
    Case("named community is not admitted", model(community="strangers", **train()),
         want=[("CommunityNotAdmitted", "spec.community")]),
    Case("named community is admitted, namespace is not", model(community="quechua", **train()),
         namespace="elsewhere"),
    Case("worker larger than any node", model(**train(gpusPerWorker=16)),
         want=[("NeverFits", "spec.training.gpusPerWorker")]),
    Case("worker larger than any node of its class", model(**train(gpusPerWorker=6, gpuClass="L4")),
         want=[("NeverFits", "spec.training.gpusPerWorker")]),
    Case("gang larger than the class's GPUs", model(**train(workers=3, gpusPerWorker=8)),
         want=[("NeverFits", "spec.training.workers")]),
    Case("a reclaim is passing: the gang still fits the pool's nodes",
         model(**train(workers=2, gpusPerWorker=8)), pools={"coop": pool(RECLAIMED)}),
    Case("unknown GPU class", model(**train(gpuClass="B200")),
         want=[("NeverFits", "spec.training.gpuClass")]),
    Case("memory above every class", model(**train(minGPUMemory="141Gi")),
         want=[("NeverFits", "spec.training.minGPUMemory")]),
    Case("memory selects H100 only: 6 per worker fits", model(**train(minGPUMemory="40Gi",
                                                                        gpusPerWorker=6))),
    Case("memory selects H100 only: 9 per worker never fits",
         model(**train(minGPUMemory="40Gi", gpusPerWorker=9)),
         want=[("NeverFits", "spec.training.gpusPerWorker")]),
    Case("replica larger than any node", model(serving={"importPath": "a:b", "gpusPerReplica": 9}),
         want=[("NeverFits", "spec.serving.gpusPerReplica")]),
    Case("gang above the community cap",
         model(**train(workers=4, gpusPerWorker=2, gpuClass="H100")),
         pools={"coop": pool(KNOWN, maxGPUs=6)}, want=[("NeverFits", "spec.training")]),
    Case("cap counts normalised units: 8 L4 = 2 units", model(**train(workers=2, gpusPerWorker=4,
                                                                       gpuClass="L4")),
         pools={"coop": pool(KNOWN, maxGPUs=2)}),
    Case("nodes not known yet: no node-based verdict", model(**train(gpusPerWorker=64)),
         pools={"coop": pool(None)}),
    Case("both stages judged", model(**train(gpuClass="B200"),
                                     serving={"importPath": "a:b", "gpusPerReplica": 9}),
         want=[("NeverFits", "spec.training.gpuClass"),
               ("NeverFits", "spec.serving.gpusPerReplica")]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_judge(case: Case) -> None:
    problems = judge(case.model, case.namespace, case.pools)
    assert [(p.reason, p.field) for p in problems] == case.want
    assert all(isinstance(p, Problem) and p.message for p in problems)


def test_messages_say_what_would_fit() -> None:
    (problem,) = judge(model(**train(gpusPerWorker=16)), "yoruba", {"coop": pool(KNOWN)})
    assert "16 GPUs" in problem.message and "has 8" in problem.message
    (problem,) = judge(model(**train()), "strangers", {"coop": pool(KNOWN)})
    assert "admitted: yoruba, quechua" in problem.message
