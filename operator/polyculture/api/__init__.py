"""The API of Polyculture: pydantic models that are the CRD schemas and parse the specs.

Group ``polyculture.dev``, version ``v1alpha1``: ``ComputePool`` (cluster-scoped, short name
``pool``) and ``CommunityModel`` (namespaced, short name ``cmodel``). The operator parses specs
with these models (``ComputePoolSpec.model_validate(obj["spec"])``); ``polyculture crds``
generates ``crds/*.yaml`` from them. This layer is pure: no Kubernetes client, no clock.
"""

from polyculture.api.community_model import (
    Admission,
    Artifact,
    CommunityModel,
    CommunityModelSpec,
    CommunityModelStatus,
    Phase,
    Placement,
    Provenance,
    RuntimeEnv,
    Serving,
    Training,
    Waiting,
)
from polyculture.api.compute_pool import (
    ClassCapacity,
    Community,
    CommunityStatus,
    ComputePool,
    ComputePoolSpec,
    ComputePoolStatus,
    FairShare,
    GPUClass,
    Member,
    MemberStatus,
    Preemption,
    RayBackend,
    RaySettings,
    ShareBasis,
)
from polyculture.api.meta import API_VERSION, GROUP, VERSION, Condition, ConditionStatus, ObjectMeta
from polyculture.api.units import parse_duration, parse_quantity
from polyculture.api.windows import LendingWindow, Weekday, window_open

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Admission",
    "Artifact",
    "ClassCapacity",
    "Community",
    "CommunityModel",
    "CommunityModelSpec",
    "CommunityModelStatus",
    "CommunityStatus",
    "ComputePool",
    "ComputePoolSpec",
    "ComputePoolStatus",
    "Condition",
    "ConditionStatus",
    "FairShare",
    "GPUClass",
    "LendingWindow",
    "Member",
    "MemberStatus",
    "ObjectMeta",
    "Phase",
    "Placement",
    "Preemption",
    "Provenance",
    "RayBackend",
    "RaySettings",
    "RuntimeEnv",
    "Serving",
    "ShareBasis",
    "Training",
    "Waiting",
    "Weekday",
    "parse_duration",
    "parse_quantity",
    "window_open",
]
