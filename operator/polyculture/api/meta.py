"""Pieces common to both resources: the group/version, the base model, metadata, conditions.

Models use camelCase JSON names through aliases (``max_gpus`` <-> ``maxGPUs``) and accept
either spelling (``populate_by_name``). Spec models forbid unknown fields, so that a typo in an
example or a test fails loudly in Python as it does at the API server with strict field
validation. Status models ignore unknown fields, so that an older operator can read a status
written by a newer one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

GROUP: Final = "polyculture.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"


class SpecModel(BaseModel):
    """Base of everything users write: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class StatusModel(BaseModel):
    """Base of everything the operator writes: camelCase aliases, unknown fields ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """A Kubernetes-style condition (``metav1.Condition``): one aspect of the object's state."""

    type: str = Field(min_length=1, max_length=316, description="CamelCase condition type.")
    status: ConditionStatus
    reason: str = Field(default="", max_length=1024, description="CamelCase machine reason.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime | None = Field(default=None, alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, ge=0, alias="observedGeneration")


def conditions_field(description: str) -> Any:
    """A ``conditions`` list keyed by ``type`` (at most one condition per type)."""
    return Field(
        default_factory=list,
        max_length=32,
        description=description,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


class ObjectMeta(BaseModel):
    """The parts of ``metadata`` the operator reads; everything else is kept but not typed."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
