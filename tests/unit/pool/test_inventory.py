"""Pool inventory: which GPUs each owner lends now (pure).

Covers: selector semantics, health from the agent's labels, cordoned/NotReady nodes, maxGPUs and
reserve, reclaim and windows, GPU classes and normalised units, conflicts inside a pool and
across pools, the GPU-seconds accrual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from polyculture.inventory import (
    GPUClassRule,
    MemberRule,
    NodeInfo,
    Requirement,
    Selector,
    accrue,
    inventory,
)

H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"
CLASSES = (GPUClassRule("h100", 1.0, (H100,)), GPUClassRule("l4", 0.25, (L4,)))


def node(name: str, owner: str, gpus: int = 8, product: str = H100, **kw: object) -> NodeInfo:
    labels = {"polyculture.dev/owner": owner, "nvidia.com/gpu.product": product}
    labels.update({k: str(v) for k, v in dict(kw.pop("labels", {}) or {}).items()})  # type: ignore[call-overload]
    return NodeInfo(name=name, labels=labels, gpus=gpus, **kw)  # type: ignore[arg-type]


def owner(name: str, **kw: object) -> MemberRule:
    return MemberRule(owner=name, selector=Selector({"polyculture.dev/owner": name}), **kw)  # type: ignore[arg-type]


@dataclass
class Case:
    id: str
    members: list[MemberRule]
    nodes: list[NodeInfo]
    want_available: dict[str, int]
    want_capacity: dict[str, int] = field(default_factory=dict)
    want_units: float | None = None


CASES = [
    Case(
        "each owner lends all of its healthy gpus",
        [owner("a"), owner("b")],
        [node("a1", "a"), node("b1", "b", 4)],
        {"a": 8, "b": 4},
        {"h100": 12},
    ),
    Case(
        "max gpus caps what an owner lends",
        [owner("a", max_gpus=5)],
        [node("a1", "a"), node("a2", "a")],
        {"a": 5},
    ),
    Case(
        "the reserve is kept before lending",
        [owner("a", reserved_gpus=3)],
        [node("a1", "a")],
        {"a": 5},
    ),
    Case(
        "reserve and cap together",
        [owner("a", reserved_gpus=4, max_gpus=10)],
        [node("a1", "a"), node("a2", "a")],
        {"a": 10},
    ),
    Case(
        "a reclaimed owner lends nothing",
        [owner("a", reclaimed=True), owner("b")],
        [node("a1", "a"), node("b1", "b")],
        {"a": 0, "b": 8},
    ),
    Case(
        "a closed window lends nothing",
        [owner("a", window_open=False)],
        [node("a1", "a")],
        {"a": 0},
    ),
    Case(
        "a cordoned node lends nothing",
        [owner("a")],
        [node("a1", "a", schedulable=False), node("a2", "a")],
        {"a": 8},
    ),
    Case(
        "a not ready node lends nothing",
        [owner("a")],
        [node("a1", "a", ready=False), node("a2", "a")],
        {"a": 8},
    ),
    Case(
        "the agent's healthy count wins over allocatable",
        [owner("a")],
        [
            node(
                "a1",
                "a",
                labels={
                    "polyculture.dev/gpu.checked": "true",
                    "polyculture.dev/gpu.healthy-count": "6",
                },
            )
        ],
        {"a": 6},
    ),
    Case(
        "an unchecked node counts its allocatable gpus",
        [owner("a")],
        [node("a1", "a", labels={"polyculture.dev/gpu.healthy-count": "1"})],
        {"a": 8},
    ),
    Case(
        "classes are normalised",
        [owner("a")],
        [node("a1", "a"), node("a2", "a", 8, L4)],
        {"a": 16},
        {"h100": 8, "l4": 8},
        10.0,
    ),
    Case(
        "an unknown product is a class of its own",
        [owner("a")],
        [node("a1", "a", 2, "Tesla-T4")],
        {"a": 2},
        {"Tesla-T4": 2},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_inventory(case: Case) -> None:
    inv = inventory("p", case.members, case.nodes, CLASSES)
    assert {m.owner: m.available_gpus for m in inv.members} == case.want_available
    assert sum(sum(m.available_by_class.values()) for m in inv.members) == inv.total_gpus
    if case.want_capacity:
        assert dict(inv.capacity_by_class) == case.want_capacity
    if case.want_units is not None:
        assert inv.total_units == pytest.approx(case.want_units)


def test_node_matched_by_two_members_is_counted_once_and_reported() -> None:
    both = Selector(match_expressions=(Requirement("polyculture.dev/owner", "In", ("a", "b")),))
    members = [owner("a"), MemberRule("b", both)]
    inv = inventory("p", members, [node("a1", "a"), node("b1", "b")], CLASSES)
    assert {m.owner: m.nodes for m in inv.members} == {"a": ("a1",), "b": ("b1",)}
    assert inv.total_gpus == 16
    [conflict] = inv.conflicts
    assert conflict.node == "a1" and conflict.winner == "member/a"


def test_node_in_two_pools_counts_in_the_senior_pool_only() -> None:
    nodes = [node("a1", "a"), node("a2", "a")]
    junior = inventory(
        "young", [owner("a")], nodes, CLASSES, senior_pools={"old": frozenset({"a1"})}
    )
    senior = inventory(
        "old", [owner("a")], nodes, CLASSES, junior_pools={"young": frozenset({"a1"})}
    )
    assert junior.total_gpus == 8 and senior.total_gpus == 16
    assert [c.node for c in junior.conflicts] == [c.node for c in senior.conflicts] == ["a1"]
    assert junior.conflicts[0].winner == senior.conflicts[0].winner == "pool/old"


def test_empty_selector_matches_nothing_and_is_reported() -> None:
    inv = inventory("p", [MemberRule("ghost", Selector())], [node("a1", "a")], CLASSES)
    assert inv.total_gpus == 0 and inv.empty_selectors == ("ghost",)


def test_largest_node_and_unhealthy_gpus() -> None:
    sick = {"polyculture.dev/gpu.checked": "true", "polyculture.dev/gpu.healthy-count": "0"}
    inv = inventory(
        "p", [owner("a")], [node("a1", "a", 4), node("a2", "a", 8, labels=sick)], CLASSES
    )
    assert inv.largest_node_by_class == {"h100": 4}
    assert inv.unhealthy_gpus == 8


@pytest.mark.parametrize(
    ("op", "values", "labels", "want"),
    [
        ("In", ("x",), {"k": "x"}, True),
        ("In", ("x",), {"k": "y"}, False),
        ("NotIn", ("x",), {"k": "y"}, True),
        ("NotIn", ("x",), {}, True),
        ("Exists", (), {"k": ""}, True),
        ("DoesNotExist", (), {"k": ""}, False),
    ],
)
def test_selector_expressions(
    op: str, values: tuple[str, ...], labels: dict[str, str], want: bool
) -> None:
    assert Selector(match_expressions=(Requirement("k", op, values),)).matches(labels) is want


def test_accrue_ignores_clock_steps_backwards() -> None:
    assert accrue(100.0, 8, 10.0) == 180.0
    assert accrue(100.0, 8, -5.0) == 100.0
