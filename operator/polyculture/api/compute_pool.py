"""``ComputePool`` (cluster-scoped, short name ``pool``): the hardware and the rules of a pool.

Units: ``guaranteedGPUs`` and ``maxGPUs`` of communities are in *normalised GPU units*: a GPU
of class C counts ``gpuClasses[C].weight`` units (an H100 at 1.0 and an L4 at 0.25 are not
"one GPU" each). A member's ``maxGPUs``/``reservedGPUs`` count physical GPUs of its nodes.

Status layout (written only by the operator)::

    status:
      observedGeneration: 3
      totalGPUs: 40              # healthy GPUs lendable now, all classes
      totalUnits: 27.5           # the same in normalised units
      allocatedGPUs: 16
      ownerCount: 3              # members, for `kubectl get pool`
      communityCount: 4
      capacity: [{gpuClass: H100, gpus: 16, units: 16.0}, ...]
      largestNodeGPUs: {H100: 8, A100: 8, L4: 4}
      unhealthyGPUs: 0           # GPUs of Ready nodes the agent found unhealthy
      conflicts: [{node, claimants, countedIn}]   # a node claimed twice, counted once
      ledgerUpdatedAt: ...       # the GPU-seconds ledger accrues from here
      members: [{owner, nodes, gpusByClass, healthyGPUs, availableGPUs, lending, unavailableReason,
                 gpuSecondsProvided}, ...]
      communities: [{name, entitledUnits, allocatedGPUs, allocatedUnits, pendingGPUs,
                     gpuSecondsConsumed}, ...]
      ledger: {head: <sha256>, entries, updatedAt, namespace, chunks}   # polyculture ledger
      conditions: [{type: Ready, ...}]
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from polyculture.api.meta import (
    Condition,
    ObjectMeta,
    SpecModel,
    StatusModel,
    conditions_field,
)
from polyculture.api.units import (
    DNS_LABEL_PATTERN,
    LABEL_KEY_MAX,
    LABEL_KEY_MESSAGE,
    LABEL_KEY_PATTERN,
    DNSLabel,
    Duration,
    GPUClassName,
    LabelValue,
    MemoryQuantity,
    PositiveDuration,
    check_keys,
    checked_string,
    matches,
    not_matches,
)
from polyculture.api.windows import LendingWindow

KIND = "ComputePool"
PLURAL = "computepools"
MAX_MEMBERS = 64
MAX_COMMUNITIES = 64
MAX_CREDITS = 32

MAX_SELECTOR_LABELS = 16
MAX_CLASSES = 32
MAX_PRODUCTS = 16
#: a Ray version such as 2.60.0
RAY_VERSION_PATTERN = r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$"

RayVersion = Annotated[
    str,
    *checked_string(
        matches(RAY_VERSION_PATTERN, "must be a Ray version such as 2.60.0"),
        min_length=5,
        max_length=14,
    ),
]
Image = Annotated[
    str,
    *checked_string(
        not_matches(r"\s", "must be a container image reference without spaces"),
        min_length=1,
        max_length=512,
    ),
]
ProductName = Annotated[
    str,
    *checked_string(
        not_matches(r"^\s*$", "must not be blank"),
        min_length=1,
        max_length=128,
    ),
]

#: CEL: the normalised weights a GPU may have in this pool (classes, and 1.0 for unlisted)
_WEIGHTS = (
    "((has(self.fairShare) && has(self.fairShare.gpuClasses)) ? "
    "self.fairShare.gpuClasses.map(g, g.weight) : [1.0]) + [1.0]"
)
#: CEL: member ``b``'s selector contains every label of member ``a``'s: all of ``a``'s nodes
#: would be claimed by ``b`` too
_CONTAINED = "a.nodeSelector.all(k, k in b.nodeSelector && b.nodeSelector[k] == a.nodeSelector[k])"


class Member(SpecModel):
    """An owner contributing nodes: which nodes, how much it lends, when, and to whose credit."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxGPUs) || self.reservedGPUs <= self.maxGPUs",
                    "message": "reservedGPUs must be less than or equal to maxGPUs",
                    "fieldPath": ".reservedGPUs",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "self.reservedGPUs == 0 || "
                    "(has(self.credits) && size(self.credits) > 0)",
                    "message": "reservedGPUs needs credits: name the communities the reserve is "
                    "kept for",
                    "fieldPath": ".credits",
                    "reason": "FieldValueRequired",
                },
            ]
        }
    )

    owner: DNSLabel = Field(description="The owner's name (DNS-1123 label), unique in the pool.")
    node_selector: Annotated[
        dict[str, LabelValue], check_keys(LABEL_KEY_PATTERN, LABEL_KEY_MAX, LABEL_KEY_MESSAGE)
    ] = Field(
        alias="nodeSelector",
        min_length=1,
        max_length=MAX_SELECTOR_LABELS,
        description="Labels selecting this owner's nodes (all must match); at least one.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(k, size(k) <= {LABEL_KEY_MAX} && "
                    f"k.matches(r'{LABEL_KEY_PATTERN}'))",
                    "message": LABEL_KEY_MESSAGE,
                    "reason": "FieldValueInvalid",
                }
            ]
        },
    )
    max_gpus: int | None = Field(
        default=None,
        alias="maxGPUs",
        ge=1,
        le=100_000,
        description="Most GPUs of these nodes the pool may use at once (at least 1; remove the "
        "member or set reclaim to lend none); all when omitted.",
    )
    reserved_gpus: int = Field(
        default=0,
        alias="reservedGPUs",
        ge=0,
        le=100_000,
        description="GPUs kept for the credited communities only: never lent to others.",
    )
    windows: list[LendingWindow] = Field(
        default_factory=list,
        max_length=16,
        description="When the nodes are lent; always when empty. A window closing drains them.",
    )
    reclaim: bool = Field(
        default=False,
        description="true takes the nodes back now: workloads drain within the grace period.",
    )
    credits: list[DNSLabel] = Field(
        default_factory=list,
        max_length=MAX_CREDITS,
        description="Communities credited with this contribution (they use it first).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class Community(SpecModel):
    """A community admitted to the pool, with its weight, floor and cap (normalised units)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxGPUs) || self.guaranteedGPUs <= self.maxGPUs",
                    "message": "guaranteedGPUs must be less than or equal to maxGPUs",
                    "fieldPath": ".guaranteedGPUs",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    name: DNSLabel = Field(description="The community: its namespace name by default.")
    weight: float = Field(
        default=1.0, gt=0, le=1000, description="Share of the surplus relative to others."
    )
    guaranteed_gpus: int = Field(
        default=0,
        alias="guaranteedGPUs",
        ge=0,
        le=1_000_000,
        description="Floor of its entitlement in normalised GPU units (when it has demand).",
    )
    max_gpus: int | None = Field(
        default=None,
        alias="maxGPUs",
        ge=1,
        le=1_000_000,
        description="Cap in normalised GPU units (at least 1); no cap when omitted.",
    )


class ShareBasis(StrEnum):
    WEIGHT = "weight"
    CONTRIBUTION = "contribution"
    BLEND = "blend"


class Preemption(SpecModel):
    """Whether and how workloads above their entitlement make room for those below."""

    enabled: bool = Field(default=True, description="false: never preempt for fair share.")
    reclaim_borrowed: bool = Field(
        default=True,
        alias="reclaimBorrowed",
        description="true: a community below its entitlement may take back GPUs that others "
        "borrowed beyond theirs, even when that leaves a borrower below its own entitlement "
        "(never below its guarantee). false: only from communities that stay at or above "
        "their entitlement.",
    )
    min_runtime: Duration = Field(
        default="10m",
        alias="minRuntime",
        description="A workload runs at least this long before it can be preempted.",
    )
    grace_period: Duration = Field(
        default="2m",
        alias="gracePeriod",
        description="Time a preempted or drained workload gets to checkpoint and stop.",
    )
    restart_backoff: float = Field(
        default=2.0,
        ge=1,
        le=16,
        alias="restartBackoff",
        description="The minimum runtime grows by this factor with each restart of a workload "
        "(minRuntime × restartBackoff^restarts): 2 protects a workload restarted once for "
        "twice as long, and victims are then taken among workloads restarted before first. "
        "1 keeps it flat, and the workloads restarted fewest times go first (unless "
        "restartLimit is set).",
    )
    restart_limit: int = Field(
        default=0,
        ge=0,
        le=1000,
        alias="restartLimit",
        description="A workload preempted or moved this many times is no longer preempted for "
        "fair share or moved until it ends (owner reclaim still stops it), and victims are "
        "taken among workloads restarted before first. 0: no limit.",
    )
    delay: Duration = Field(
        default="0s",
        description="A waiting workload may preempt or move others only after waiting this "
        "long (GPUs that free by themselves come first), unless its community stays within its "
        "nominal share (its weighted slice of the pool, at least its guarantee): then after "
        "reclaimDelay. 0s: always at once.",
    )
    reclaim_delay: Duration = Field(
        default="0s",
        alias="reclaimDelay",
        description="The delay of a waiting workload whose community stays within its nominal "
        "share (at most delay). 0s: it takes its share back at once; longer: GPUs that free "
        "meanwhile come first, so fewer runs are restarted.",
    )
    consolidation: bool = Field(
        default=False,
        description="true: move small running workloads of communities above their nominal "
        "share to other nodes (a restart from their checkpoint) to clear whole nodes for a "
        "gang that fits the free GPUs only in total.",
    )
    move_restarted_only: bool = Field(
        default=False,
        alias="moveRestartedOnly",
        description="true: consolidation moves only workloads that were preempted or moved "
        "before, so no run is restarted for the first time to clear a node (fewer restarted "
        "runs, gangs wait longer for whole nodes).",
    )
    spare_new: bool = Field(
        default=False,
        alias="spareNew",
        description="true: a gang that needs a whole node preempts or moves the runs that "
        "restart the fewest runs never restarted before (then the fewest runs) rather than "
        "free the fewest GPUs, and consolidation moves runs restarted before when they "
        "suffice: fewer runs are ever restarted, those restarted are restarted more often.",
    )


class GPUClass(SpecModel):
    """A GPU class and its normalised weight: how many units one such GPU counts."""

    name: GPUClassName = Field(description="Class name, e.g. H100, A100, L4.")
    weight: float = Field(gt=0, le=100, description="Normalised units per GPU (H100 = 1.0).")
    memory: MemoryQuantity = Field(description="Memory per GPU with its unit, e.g. 80Gi.")
    products: list[ProductName] = Field(
        default_factory=list,
        max_length=MAX_PRODUCTS,
        description="NVML product names in this class (e.g. 'NVIDIA H100 80GB HBM3'); "
        "the node agent labels nodes with the class they match.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class FairShare(SpecModel):
    """How shares are computed: the basis, memory of past usage, preemption, GPU classes."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.gpuClasses) || self.gpuClasses.all(a, "
                    "self.gpuClasses.all(b, a.name == b.name || !has(a.products) || "
                    "!has(b.products) || !a.products.exists(p, p in b.products)))",
                    "message": "a GPU product belongs to one class only: two gpuClasses list "
                    "the same product",
                    "fieldPath": ".gpuClasses",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    basis: ShareBasis = Field(
        default=ShareBasis.WEIGHT,
        description="weight: configured weights; contribution: weights grow with the decayed "
        "GPU-hours a community's owners gave; blend: a mix of both.",
    )
    contribution_share: float = Field(
        default=0.5,
        alias="contributionShare",
        ge=0,
        le=1,
        description="With basis blend: the part of the weight that comes from contribution.",
    )
    usage_half_life: PositiveDuration = Field(
        default="7d",
        alias="usageHalfLife",
        description="Half-life of remembered usage and contribution (e.g. 7d).",
    )
    reservation: bool = Field(
        default=False,
        description="true: free GPUs are held for the first workload that waits for room "
        "while its community is below its entitlement and owed GPU-time (its decayed usage "
        "below its weighted share), so that a gang larger than its share can start; costs "
        "idle GPUs while they gather.",
    )
    preemption: Preemption = Field(default_factory=Preemption, json_schema_extra={"default": {}})
    gpu_classes: list[GPUClass] = Field(
        default_factory=list,
        alias="gpuClasses",
        max_length=MAX_CLASSES,
        description="GPU classes with normalised weights; unlisted GPUs count 1.0 each.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class RayBackend(StrEnum):
    KUBERNETES = "kubernetes"
    LOCAL = "local"


class RaySettings(SpecModel):
    """The Ray version and image every workload cluster runs, and where clusters are made."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.image) || !has(self.version) || self.image.contains('@') "
                    "|| self.image.lastIndexOf(':') <= self.image.lastIndexOf('/') || "
                    "self.image.substring(self.image.lastIndexOf(':') + 1) == self.version || "
                    "self.image.substring(self.image.lastIndexOf(':') + 1)"
                    ".startsWith(self.version + '-')",
                    "messageExpression": "'the image tag must be the Ray version ' + "
                    "self.version + ' or start with it (e.g. rayproject/ray:' + self.version + "
                    "'-py311-gpu): every node and client of a Ray cluster runs one version'",
                    "fieldPath": ".image",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    version: RayVersion = Field(
        default="2.60.0",
        description="Ray version of every cluster (all nodes and clients must agree).",
    )
    image: Image = Field(
        default="rayproject/ray:2.60.0-py311-gpu",
        description="Container image of head and workers (backend kubernetes); its tag, if "
        "any, is the version or starts with it (2.60.0-py311-gpu).",
    )
    backend: RayBackend = Field(
        default=RayBackend.KUBERNETES,
        description="kubernetes: head and worker Pods; local: Ray processes on the operator's "
        "machine (demo, tests).",
    )


class ProvenancePolicy(SpecModel):
    """What a model may do when its training read other data than it declares."""

    serve_on_mismatch: bool = Field(
        default=False,
        alias="serveOnMismatch",
        description="true: a model whose training job attested an artifact with another digest "
        "than declared may still serve; false: it stops at Trained.",
    )


class LedgerSettings(SpecModel):
    """The pool's hash-chained ledger of GPU-seconds given and used."""

    period: PositiveDuration = Field(
        default="5m", description="How often an entry is appended (at least 10s are used)."
    )


class ComputePoolSpec(SpecModel):
    """The desired pool: members, communities, fair-share rules and Ray settings."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.members.all(m, !has(m.credits) || m.credits.all(c, "
                    "self.communities.exists(k, k.name == c)))",
                    "message": "members[].credits may only name communities listed in "
                    "spec.communities",
                    "fieldPath": ".members",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "self.members.all(a, self.members.all(b, a.owner == b.owner || "
                    f"!({_CONTAINED})))",
                    "message": "two members' nodeSelectors claim the same nodes: every label of "
                    "one member's selector is also in another's; give each owner a label of its "
                    "own",
                    "fieldPath": ".members",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "!self.members.all(m, has(m.maxGPUs)) || "
                    "double(self.communities.map(c, has(c.guaranteedGPUs) ? c.guaranteedGPUs "
                    ": 0).sum()) <= double(self.members.map(m, m.maxGPUs).sum()) * "
                    f"({_WEIGHTS}).max()",
                    "message": "the communities' guaranteedGPUs add up to more than the members "
                    "could ever lend (the sum of their maxGPUs, in normalised units)",
                    "fieldPath": ".communities",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "self.members.all(m, !has(m.reservedGPUs) || m.reservedGPUs == 0 || "
                    "!has(m.credits) || !m.credits.all(c, self.communities.exists(k, "
                    "k.name == c && has(k.maxGPUs))) || double(m.reservedGPUs) * "
                    f"({_WEIGHTS}).min() <= double(self.communities.filter(k, k.name in "
                    "m.credits).map(k, k.maxGPUs).sum()))",
                    "message": "a member's reservedGPUs exceed what the communities it credits "
                    "may ever use (their maxGPUs, in normalised units): the reserve would sit "
                    "idle",
                    "fieldPath": ".members",
                    "reason": "FieldValueInvalid",
                },
            ]
        }
    )

    members: list[Member] = Field(
        min_length=1,
        max_length=MAX_MEMBERS,
        description="Owners contributing nodes, unique by owner.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["owner"],
        },
    )
    communities: list[Community] = Field(
        min_length=1,
        max_length=MAX_COMMUNITIES,
        description="Communities that may use the pool, unique by name.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    fair_share: FairShare = Field(
        default_factory=FairShare, alias="fairShare", json_schema_extra={"default": {}}
    )
    ray: RaySettings = Field(default_factory=RaySettings, json_schema_extra={"default": {}})
    provenance: ProvenancePolicy = Field(
        default_factory=ProvenancePolicy, json_schema_extra={"default": {}}
    )
    ledger: LedgerSettings = Field(
        default_factory=LedgerSettings, json_schema_extra={"default": {}}
    )


class LedgerStatus(StatusModel):
    """Where the ledger stands: its head hash commits to every entry before it."""

    head: str = Field(max_length=64, description="SHA-256 of the last entry.")
    entries: int = Field(default=0, ge=0)
    updated_at: datetime | None = Field(default=None, alias="updatedAt")
    namespace: str = Field(default="", max_length=63, description="Where its chunks are stored.")
    chunks: int = Field(default=0, ge=0, description="ConfigMaps holding the entries.")


class ClassCapacity(StatusModel):
    gpu_class: str = Field(alias="gpuClass", max_length=63)
    gpus: int = Field(default=0, ge=0)
    units: float = Field(default=0.0, ge=0)


class MemberStatus(StatusModel):
    owner: str = Field(max_length=63)
    nodes: int = Field(default=0, ge=0, description="Nodes matched by the selector.")
    gpus_by_class: dict[str, int] = Field(default_factory=dict, alias="gpusByClass", max_length=32)
    healthy_gpus: int = Field(default=0, ge=0, alias="healthyGPUs")
    available_gpus: int = Field(
        default=0, ge=0, alias="availableGPUs", description="Lendable now (window, cap, reclaim)."
    )
    lending: bool = Field(default=False, description="A window is open and not reclaimed.")
    unavailable_reason: str = Field(
        default="",
        alias="unavailableReason",
        max_length=64,
        description="Why nothing is lent now: Reclaimed or OutsideLendingWindow; empty if lending.",
    )
    gpu_seconds_provided: float = Field(default=0.0, ge=0, alias="gpuSecondsProvided")


class NodeConflict(StatusModel):
    """A node matched by two members or two pools: counted once, in ``countedIn``."""

    node: str = Field(max_length=253)
    claimants: list[str] = Field(default_factory=list, max_length=64)
    counted_in: str = Field(alias="countedIn", max_length=320)


class CommunityStatus(StatusModel):
    name: str = Field(max_length=63)
    entitled_units: float = Field(default=0.0, ge=0, alias="entitledUnits")
    allocated_gpus: int = Field(default=0, ge=0, alias="allocatedGPUs")
    allocated_units: float = Field(default=0.0, ge=0, alias="allocatedUnits")
    pending_gpus: int = Field(default=0, ge=0, alias="pendingGPUs")
    gpu_seconds_consumed: float = Field(
        default=0.0,
        ge=0,
        alias="gpuSecondsConsumed",
        description="GPU-seconds its models used: the sum of their gpuSecondsUsed counters, "
        "plus gpuSecondsRetired.",
    )
    gpu_seconds_retired: float = Field(
        default=0.0,
        ge=0,
        alias="gpuSecondsRetired",
        description="The part of gpuSecondsConsumed counted by models that no longer exist.",
    )
    usage_gpu_seconds: float = Field(
        default=0.0,
        ge=0,
        alias="usageGPUSeconds",
        description="Decayed GPU-seconds used (usageHalfLife): the fair-share tie-breaker.",
    )
    contribution_gpu_seconds: float = Field(
        default=0.0,
        ge=0,
        alias="contributionGPUSeconds",
        description="Decayed GPU-seconds its crediting owners lent (the contribution basis).",
    )


class UsageWatch(StatusModel):
    """A span in which one admission loop watched the pool without a break."""

    since: datetime = Field(description="When the loop started watching.")
    until: datetime = Field(description="Its last write of the pool status.")


class ComputePoolStatus(StatusModel):
    """What the pool has and who uses it, as the operator last saw it."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    total_gpus: int = Field(default=0, ge=0, alias="totalGPUs")
    total_units: float = Field(default=0.0, ge=0, alias="totalUnits")
    allocated_gpus: int = Field(default=0, ge=0, alias="allocatedGPUs")
    owner_count: int = Field(default=0, ge=0, alias="ownerCount")
    community_count: int = Field(default=0, ge=0, alias="communityCount")
    unhealthy_gpus: int = Field(
        default=0, ge=0, alias="unhealthyGPUs", description="GPUs of Ready nodes not healthy."
    )
    conflicts: list[NodeConflict] = Field(default_factory=list, max_length=1024)
    ledger_updated_at: datetime | None = Field(
        default=None,
        alias="ledgerUpdatedAt",
        description="When gpuSecondsProvided was last accrued; the next accrual starts here.",
    )
    capacity: list[ClassCapacity] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["gpuClass"],
        },
    )
    largest_node_gpus: dict[str, int] = Field(
        default_factory=dict,
        alias="largestNodeGPUs",
        max_length=32,
        description="Per GPU class, the most healthy GPUs on any one node of the pool.",
    )
    members: list[MemberStatus] = Field(
        default_factory=list,
        max_length=MAX_MEMBERS,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["owner"],
        },
    )
    communities: list[CommunityStatus] = Field(
        default_factory=list,
        max_length=MAX_COMMUNITIES,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    usage_updated_at: datetime | None = Field(
        default=None,
        alias="usageUpdatedAt",
        description="When the communities' usage was last accrued; the next accrual starts here.",
    )
    usage_watches: list[UsageWatch] = Field(
        default_factory=list,
        alias="usageWatches",
        max_length=32,
        description="Spans the admission loop watched the pool, oldest first, the running one "
        "last: a model's gpuSecondsUsed accrues from its usageUpdatedAt over these spans only "
        "(never over a time the operator was down); earlier spans stay while a model's stored "
        "counter still needs them.",
    )
    ledger: LedgerStatus | None = None
    conditions: list[Condition] = conditions_field("Ready and other conditions of the pool.")


class ComputePool(BaseModel):
    """A whole ``ComputePool`` object as read from the API server."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["polyculture.dev/v1alpha1"] = Field(
        default="polyculture.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["ComputePool"] = "ComputePool"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ComputePoolSpec
    status: ComputePoolStatus | None = None


#: Rules on the whole object (the CRD's root schema).
ROOT_VALIDATIONS = [
    {
        "rule": f"self.metadata.name.matches('{DNS_LABEL_PATTERN}') && "
        "size(self.metadata.name) <= 63",
        "message": "metadata.name must be a DNS-1123 label: at most 63 lowercase letters, "
        "digits and '-', starting and ending with a letter or digit",
        "reason": "FieldValueInvalid",
    }
]
