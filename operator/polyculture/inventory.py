"""What each owner lends to a pool right now: pure, from Nodes and the pool's member rules.

Capacity (DESIGN.md, "Fair share", point 1) is the GPUs of members' nodes that are healthy,
schedulable and Ready, inside a lending window, not reclaimed, within the member's
``maxGPUs``, minus what the owner keeps for itself — counted per GPU class and in normalised
units (an H100 and a T4 are not "one GPU" each).

Rules this module decides, so that every caller counts the same way:

- **Healthy GPUs** of a node = ``nvidia.com/gpu`` allocatable, or, when the node agent has
  checked it (``polyculture.dev/gpu.checked=true``), ``min(allocatable,
  polyculture.dev/gpu.healthy-count)``. A NotReady or cordoned node lends nothing.
- **Conflicts**: a node matched by two members of one pool belongs to the first member in spec
  order; a node matched by two pools belongs to the pool created first (then by name). Either
  way the node is counted once, and the conflict is reported (on both pools).
- **Available** per member = 0 when reclaimed or outside every lending window; otherwise
  ``min(maxGPUs, max(0, healthy - reservedGPUs))``; GPUs are taken from nodes in name order so
  that the cap and the reserve fall on the same nodes every time.
- **GPU-seconds provided** grow by available GPUs × elapsed seconds (``accrue``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from polyculture.api.gpu_products import same_product

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"
CHECKED_LABEL = "polyculture.dev/gpu.checked"
HEALTHY_COUNT_LABEL = "polyculture.dev/gpu.healthy-count"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry of a label selector."""

    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Selector:
    """A Kubernetes label selector; an empty selector matches nothing (never "every node")."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.is_empty():
            return False
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(_requirement_holds(r, labels) for r in self.match_expressions)


def _requirement_holds(req: Requirement, labels: Mapping[str, str]) -> bool:
    if req.operator == "In":
        return labels.get(req.key) in req.values
    if req.operator == "NotIn":
        return labels.get(req.key) not in req.values
    if req.operator == "Exists":
        return req.key in labels
    if req.operator == "DoesNotExist":
        return req.key not in labels
    raise ValueError(f"unknown selector operator {req.operator!r}")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The facts of one Node that capacity depends on."""

    name: str
    labels: Mapping[str, str]
    gpus: int  # nvidia.com/gpu allocatable
    ready: bool = True
    schedulable: bool = True  # not cordoned

    @property
    def healthy_gpus(self) -> int:
        if not (self.ready and self.schedulable):
            return 0
        if self.labels.get(CHECKED_LABEL) == "true":
            try:
                return max(0, min(self.gpus, int(self.labels.get(HEALTHY_COUNT_LABEL, "0"))))
            except ValueError:
                return 0
        return self.gpus

    @property
    def product(self) -> str:
        return self.labels.get(PRODUCT_LABEL, "unknown")

    @property
    def memory_mib(self) -> int:
        try:
            return int(self.labels.get(MEMORY_LABEL, "0"))
        except ValueError:
            return 0


@dataclass(frozen=True, slots=True)
class GPUClassRule:
    """A GPU class of the pool: which products belong to it and what one GPU is worth."""

    name: str
    weight: float = 1.0
    products: tuple[str, ...] = ()  # GFD product names; empty: the class name is the product


def classify(product: str, classes: Sequence[GPUClassRule]) -> tuple[str, float]:
    """(class name, normalised weight) of a product; an unlisted product is its own class, 1.0.

    Products compare in the one normal form the node agent labels with (``same_product``):
    NVML's "NVIDIA H100 80GB HBM3" is the label value "NVIDIA-H100-80GB-HBM3", and "Tesla T4
    (PCIe)" is "Tesla-T4-PCIe".
    """
    for rule in classes:
        names = rule.products or (rule.name,)
        if any(same_product(product, name) for name in names):
            return rule.name, rule.weight
    return product, 1.0


@dataclass(frozen=True, slots=True)
class MemberRule:
    """One owner's membership, reduced to what capacity needs (lending already judged)."""

    owner: str
    selector: Selector
    max_gpus: int | None = None
    reserved_gpus: int = 0
    reclaimed: bool = False
    window_open: bool = True


@dataclass(frozen=True, slots=True)
class MemberInventory:
    owner: str
    nodes: tuple[str, ...]
    gpus: int  # allocatable on its nodes
    gpus_by_class: Mapping[str, int]
    healthy_gpus: int
    available_gpus: int
    available_by_class: Mapping[str, int]
    available_units: float
    unavailable_reason: str | None  # "Reclaimed" | "OutsideLendingWindow" | None


@dataclass(frozen=True, slots=True)
class Conflict:
    node: str
    claimants: tuple[str, ...]  # "member/<owner>" or "pool/<name>"
    winner: str


@dataclass(frozen=True, slots=True)
class PoolInventory:
    members: tuple[MemberInventory, ...]
    conflicts: tuple[Conflict, ...]
    capacity_by_class: Mapping[str, int]  # available GPUs per class
    units_by_class: Mapping[str, float]
    largest_node_by_class: Mapping[str, int]  # most healthy GPUs on one node, per class
    memory_by_class: Mapping[str, int]  # largest GPU memory (MiB) seen per class
    unhealthy_gpus: int
    empty_selectors: tuple[str, ...]  # owners whose selector matches no node

    @property
    def total_gpus(self) -> int:
        return sum(self.capacity_by_class.values())

    @property
    def total_units(self) -> float:
        return sum(self.units_by_class.values())


def claimed_elsewhere(
    node_names: Iterable[str], other_pools: Mapping[str, frozenset[str]]
) -> dict[str, tuple[str, ...]]:
    """Which of ``node_names`` other pools claim: node -> names of those pools (sorted)."""
    out: dict[str, tuple[str, ...]] = {}
    for node in node_names:
        owners = sorted(p for p, nodes in other_pools.items() if node in nodes)
        if owners:
            out[node] = tuple(owners)
    return out


def inventory(
    pool: str,
    members: Sequence[MemberRule],
    nodes: Iterable[NodeInfo],
    classes: Sequence[GPUClassRule] = (),
    senior_pools: Mapping[str, frozenset[str]] | None = None,
    junior_pools: Mapping[str, frozenset[str]] | None = None,
) -> PoolInventory:
    """The pool's capacity now.

    ``senior_pools``/``junior_pools``: node names matched by other pools created before / after
    this one. Nodes a senior pool matches are not counted here; nodes a junior pool matches are
    counted here; both are reported as conflicts.
    """
    senior = senior_pools or {}
    junior = junior_pools or {}
    by_member: dict[str, list[NodeInfo]] = {m.owner: [] for m in members}
    conflicts: list[Conflict] = []
    for node in sorted(nodes, key=lambda n: n.name):
        claimants = [m.owner for m in members if m.selector.matches(node.labels)]
        if not claimants:
            continue
        older = claimed_elsewhere([node.name], senior).get(node.name, ())
        younger = claimed_elsewhere([node.name], junior).get(node.name, ())
        if len(claimants) > 1:
            conflicts.append(
                Conflict(
                    node.name, tuple(f"member/{c}" for c in claimants), f"member/{claimants[0]}"
                )
            )
        if older or younger:
            pools = sorted({pool, *older, *younger})
            winner = older[0] if older else pool
            conflicts.append(
                Conflict(node.name, tuple(f"pool/{p}" for p in pools), f"pool/{winner}")
            )
        if not older:
            by_member[claimants[0]].append(node)

    out_members: list[MemberInventory] = []
    capacity: dict[str, int] = {}
    units: dict[str, float] = {}
    largest: dict[str, int] = {}
    memory: dict[str, int] = {}
    unhealthy = 0
    for rule in members:
        inv = _member(rule, by_member[rule.owner], classes)
        out_members.append(inv)
        for node in by_member[rule.owner]:
            cls, _ = classify(node.product, classes)
            largest[cls] = max(largest.get(cls, 0), node.healthy_gpus)
            memory[cls] = max(memory.get(cls, 0), node.memory_mib)
            if node.ready and node.schedulable:
                unhealthy += node.gpus - node.healthy_gpus
        for cls, n in inv.available_by_class.items():
            capacity[cls] = capacity.get(cls, 0) + n
            units[cls] = units.get(cls, 0.0) + n * classify_weight(cls, classes)
    return PoolInventory(
        members=tuple(out_members),
        conflicts=tuple(conflicts),
        capacity_by_class=dict(sorted(capacity.items())),
        units_by_class=dict(sorted(units.items())),
        largest_node_by_class=dict(sorted(largest.items())),
        memory_by_class=dict(sorted(memory.items())),
        unhealthy_gpus=unhealthy,
        empty_selectors=tuple(r.owner for r in members if not by_member[r.owner]),
    )


def classify_weight(cls: str, classes: Sequence[GPUClassRule]) -> float:
    return next((r.weight for r in classes if r.name == cls), 1.0)


def _member(
    rule: MemberRule, nodes: Sequence[NodeInfo], classes: Sequence[GPUClassRule]
) -> MemberInventory:
    gpus_by_class: dict[str, int] = {}
    for node in nodes:
        cls, _ = classify(node.product, classes)
        gpus_by_class[cls] = gpus_by_class.get(cls, 0) + node.gpus
    healthy = sum(n.healthy_gpus for n in nodes)
    reason = "Reclaimed" if rule.reclaimed else None
    if reason is None and not rule.window_open:
        reason = "OutsideLendingWindow"
    budget = 0 if reason else max(0, healthy - rule.reserved_gpus)
    if rule.max_gpus is not None:
        budget = min(budget, rule.max_gpus)
    # the reserve is kept on the first nodes (name order), the lent GPUs come after it
    to_skip, to_lend = (0 if reason else rule.reserved_gpus), budget
    available_by_class: dict[str, int] = {}
    for node in nodes:
        h = node.healthy_gpus
        skipped = min(h, to_skip)
        to_skip -= skipped
        lent = min(h - skipped, to_lend)
        to_lend -= lent
        if lent:
            cls, _ = classify(node.product, classes)
            available_by_class[cls] = available_by_class.get(cls, 0) + lent
    return MemberInventory(
        owner=rule.owner,
        nodes=tuple(n.name for n in nodes),
        gpus=sum(n.gpus for n in nodes),
        gpus_by_class=dict(sorted(gpus_by_class.items())),
        healthy_gpus=healthy,
        available_gpus=budget,
        available_by_class=dict(sorted(available_by_class.items())),
        available_units=sum(n * classify_weight(c, classes) for c, n in available_by_class.items()),
        unavailable_reason=reason,
    )


def accrue(provided_gpu_seconds: float, available_gpus: int, elapsed_s: float) -> float:
    """GPU-seconds provided after ``elapsed_s`` more seconds at ``available_gpus``.

    Negative elapsed time (a clock step backwards) adds nothing.
    """
    return provided_gpu_seconds + available_gpus * max(0.0, elapsed_s)
