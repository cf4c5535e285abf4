"""A stored pool judged whole: usable, or unusable with problems that name their fields.

Also: models naming an unusable pool are Invalid with reason PoolInvalid, a checkpoint URI the
pool's backend cannot write is CheckpointUnsupported, and other pools are judged as before.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from polyculture.api import CommunityModel
from polyculture.api.admissibility import KnownPools, judge
from polyculture.api.pool_validity import judge_pool, judge_pools
from polyculture.reconcile.models import parse_pools, verdict

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POOL: dict[str, Any] = {
    "metadata": {"name": "p"},
    "spec": {
        "members": [
            {"owner": "a", "nodeSelector": {"owner": "a"}, "maxGPUs": 8},
            {"owner": "b", "nodeSelector": {"owner": "b", "zone": "x"}, "maxGPUs": 8},
        ],
        "communities": [{"name": "c", "guaranteedGPUs": 2, "maxGPUs": 4}],
        "fairShare": {
            "gpuClasses": [
                {"name": "H100", "weight": 1, "memory": "80Gi",
                 "products": ["NVIDIA H100 80GB HBM3"]},
                {"name": "T4", "weight": 0.25, "memory": "16Gi", "products": ["Tesla T4"]},
            ]
        },
    },
}  # fmt: skip
Edit = Callable[[dict[str, Any]], None]
WINDOW = {"days": ["Mon", "Tue"], "from": "09:00", "to": "17:00", "timeZone": "Europe/Berlin"}


def edited(edit: Edit) -> dict[str, Any]:
    body = copy.deepcopy(POOL)
    edit(body["spec"])
    return body


def set_(path: str, value: Any) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = spec
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return edit


CASES = [
    ("SpecInvalid", "spec.fairShare.usageHalfLife", set_("fairShare.usageHalfLife", "9999999999d")),
    ("SpecInvalid", "spec.fairShare.usageHalfLife", set_("fairShare.usageHalfLife", "0s")),
    ("SpecInvalid", "spec.members[0].windows[0].timeZone",
     set_("members.0.windows", [{**WINDOW, "timeZone": "Mars/Olympus"}])),
    ("SpecInvalid", "spec.members[0].maxGPUs", set_("members.0.maxGPUs", 0)),
    ("SpecInvalid", "spec.fairShare.gpuClasses[0].memory",
     set_("fairShare.gpuClasses.0.memory", 80)),
    ("SpecInvalid", "spec.members[0].nodeSelector", set_("members.0.nodeSelector", {"a b": "x"})),
    ("SpecInvalid", "spec.members", set_("members", "everyone")),
    ("SelectorsOverlap", "spec.members[0].nodeSelector",
     set_("members.1.nodeSelector", {"owner": "a"})),
    ("ProductInTwoClasses", "spec.fairShare.gpuClasses[0].products",
     set_("fairShare.gpuClasses.1.products", ["NVIDIA-H100-80GB-HBM3"])),
    ("RayImageMismatch", "spec.ray.image", set_("ray", {"version": "2.50.0"})),
    ("GuaranteesExceedCapacity", "spec.communities",
     set_("communities.0", {"name": "c", "guaranteedGPUs": 17})),
    ("ReserveExceedsCredits", "spec.members[0].reservedGPUs",
     lambda s: s["members"][0].update(reservedGPUs=20, maxGPUs=None, credits=["c"])),
    ("ReserveAboveMax", "spec.members[0].reservedGPUs",
     lambda s: s["members"][0].update(reservedGPUs=9, credits=["c"])),
    ("UnknownCredit", "spec.members[0].credits", set_("members.0.credits", ["nobody"])),
    ("GuaranteeAboveMax", "spec.communities[0].guaranteedGPUs",
     set_("communities.0.guaranteedGPUs", 5)),
    ("DuplicateName", "spec.members", set_("members.1.owner", "a")),
    ("OverlappingWindows", "spec.members[0].windows[1]",
     set_("members.0.windows",
          [WINDOW, {**WINDOW, "days": ["Tue"], "from": "16:00", "to": "18:00"}])),
    ("OverlappingWindows", "spec.members[0].windows[1]",
     set_("members.0.windows", [{**WINDOW, "days": ["Sun"], "from": "22:00", "to": "06:00"},
                                {**WINDOW, "days": ["Mon"], "from": "05:00", "to": "07:00"}])),
]  # fmt: skip


def test_the_base_pool_is_valid() -> None:
    judgement = judge_pool(POOL)
    assert judgement.valid and judgement.pool is not None, judgement.summary()


@pytest.mark.parametrize(
    ("reason", "field", "edit"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_an_unusable_pool_says_why_and_where(reason: str, field: str, edit: Edit) -> None:
    judgement = judge_pool(edited(edit))
    assert not judgement.valid and judgement.pool is None
    assert any(p.reason == reason and p.field == field for p in judgement.problems), (
        judgement.problems
    )
    assert field in judgement.summary()


def test_windows_that_touch_or_differ_in_zone_do_not_overlap() -> None:
    windows = [WINDOW, {**WINDOW, "from": "17:00", "to": "24:00"},
               {**WINDOW, "from": "10:00", "to": "11:00", "timeZone": "America/Lima"}]  # fmt: skip
    assert judge_pool(edited(set_("members.0.windows", windows))).valid


def test_an_unusable_pool_invalidates_only_its_models() -> None:
    broken = edited(set_("fairShare.usageHalfLife", "9999999999d"))
    pools = parse_pools({"broken": broken, "good": POOL})
    assert isinstance(pools, KnownPools)
    assert set(pools) == {"good"} and "usageHalfLife" in pools.invalid["broken"]

    def model(pool: str) -> dict[str, Any]:
        spec = {"pool": pool, "training": {"entrypoint": "python t.py"}}
        return {"metadata": {"name": "m", "namespace": "c", "generation": 1}, "spec": spec}

    bad = verdict(model("broken"), pools, NOW)
    assert bad.status is not None and bad.status["phase"] == "Invalid"
    assert [e.reason for e in bad.events] == ["PoolInvalid"]
    assert "spec.fairShare.usageHalfLife" in bad.status["conditions"][0]["message"]
    good = verdict(model("good"), pools, NOW)
    assert good.status is not None and good.status["phase"] == "Pending"


@pytest.mark.parametrize(
    ("backend", "uri", "ok"),
    [
        ("local", "file:///tmp/ckpt", True),
        ("local", "s3://bucket/ckpt", True),
        ("kubernetes", "s3://bucket/ckpt", True),
        ("kubernetes", "file:///var/lib/polyculture/checkpoints/m", True),
        ("kubernetes", "file:///tmp/ckpt", False),
        ("local", "hf://org/model", False),
    ],
)
def test_checkpoint_schemes_per_backend(backend: str, uri: str, ok: bool) -> None:
    pool = edited(set_("ray", {"backend": backend}))
    pools = judge_pools({"p": pool})
    model = CommunityModel.model_validate(
        {"spec": {"pool": "p", "training": {"entrypoint": "python t.py"}}}
    )
    assert model.spec.training is not None
    model.spec.training.checkpoint_uri = uri
    problems = judge(model, "c", pools)
    assert (problems == []) is ok, problems
    if not ok:
        assert problems[0].reason == "CheckpointUnsupported"
        assert problems[0].field == "spec.training.checkpointURI"


def test_guarantees_beyond_the_live_nodes_are_reported_in_a_condition() -> None:
    from polyculture.inventory import GPUClassRule, MemberRule, NodeInfo, Selector, inventory
    from polyculture.reconcile.pools import overcommitted_condition, potential_units

    body = edited(set_("members.0.maxGPUs", None))
    spec = judge_pool(body).pool.spec  # type: ignore[union-attr]
    nodes = [
        NodeInfo("h", {"owner": "a", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, 1),
        NodeInfo("t", {"owner": "a", "nvidia.com/gpu.product": "Tesla-T4"}, 4),
    ]
    rules = [MemberRule(m.owner, Selector(dict(m.node_selector)), m.max_gpus) for m in spec.members]
    classes = [
        GPUClassRule(c.name, c.weight, tuple(c.products)) for c in spec.fair_share.gpu_classes
    ]
    inv = inventory("p", rules, nodes, classes)
    assert potential_units(spec, inv) == 2.0  # one H100 (1.0) and four T4 (0.25 each)
    covered = overcommitted_condition(spec, inv, {}, NOW, 1)
    assert (covered["status"], covered["reason"]) == ("False", "GuaranteesCovered")
    spec.communities[0].guaranteed_gpus = 3
    spec.communities[0].max_gpus = 4
    short = overcommitted_condition(spec, inv, {}, NOW, 1)
    assert (short["status"], short["reason"]) == ("True", "GuaranteesExceedCapacity")
    assert "guaranteed 3 units" in short["message"] and "at most 2 units" in short["message"]
