"""``CommunityModel`` (namespaced, short name ``cmodel``): one model of one community.

A model trains, serves, or trains then serves. The community is the namespace unless
``spec.community`` names another one (it must be admitted by the pool either way).

Status layout (written only by the operator)::

    status:
      observedGeneration: 2
      phase: Queued               # Pending Queued Admitted Training Trained Serving
                                  # Preempted Failed Invalid
      community: lang-yoruba      # the community the model is accounted to
      requestedGPUs: 8            # GPUs of the current stage (workers x GPUs per worker)
      queuePosition: 3            # 1 = next; only while Queued
      waiting: {reason: InsufficientQuota, message: "...", since: ...}
      admission: {gpus: 8, gpuClass: H100, admittedAt: ...,
                  placement: [{owner: lab-a, node: gpu-3, gpus: 8}]}
      rayJobId: raysubmit_abc     # the current training job
      attempts: 1                 # failed attempts so far (preemption does not count)
      endpoint: http://.../yoruba # once Serving
      gpuSecondsUsed: 1234.5
      provenance: [{role: dataset, uri, sha256, license, verdict: verified}]
      provenanceVerdict: Verified  # Verified Mismatch Unverified Undeclared
      modelCard: {configMap: yoruba-base-model-card, generatedAt: ...}
      summary: "..."              # derived: the WAITING-FOR/ENDPOINT printer column
      conditions: [...]
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from polyculture.api.licences import check_licence
from polyculture.api.meta import (
    Condition,
    ConditionStatus,
    ObjectMeta,
    SpecModel,
    StatusModel,
    conditions_field,
)
from polyculture.api.units import (
    ENV_NAME_MESSAGE,
    ENV_NAME_PATTERN,
    URI,
    CheckpointURI,
    DNSLabel,
    GPUClassName,
    MemoryQuantity,
    NonBlank,
    PositiveDuration,
    Sha256,
    check_keys,
    checked_string,
    keys_rule,
    matches,
    not_matches,
)

KIND = "CommunityModel"
PLURAL = "communitymodels"

#: Phases in which the model holds GPUs: its pool and gang shape are then frozen.
HOLDING_PHASES = ("Admitted", "Training", "Serving")

LICENCE_PATTERN = r"^[A-Za-z0-9(][-A-Za-z0-9.+:() ]*$"
#: ``module.sub:attribute.sub``: Python identifiers, dotted
IMPORT_PATH_PATTERN = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
    r"(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)
ROUTE_PREFIX_PATTERN = r"^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$"
ENV_NAME_MAX = 256

#: SPDX licence identifier or expression; the SPDX list itself is checked by the operator
Licence = Annotated[
    str,
    *checked_string(
        matches(
            LICENCE_PATTERN,
            "must be an SPDX licence identifier or expression such as Apache-2.0, CC-BY-4.0 or "
            "Apache-2.0 OR MIT",
        ),
        min_length=1,
        max_length=128,
    ),
    AfterValidator(check_licence),
]
ImportPath = Annotated[
    str,
    *checked_string(
        not_matches(
            r"\.py:",
            "names a module, not a file: write serve_app:app rather than serve_app.py:app",
        ),
        matches(
            IMPORT_PATH_PATTERN,
            "must be module:attribute with Python names, such as serve_app:app or "
            "pkg.serve:build_app",
        ),
        min_length=3,
        max_length=512,
    ),
]
RoutePrefix = Annotated[
    str,
    *checked_string(
        matches(
            ROUTE_PREFIX_PATTERN,
            "must be an HTTP path such as /yoruba-chat: '/' then letters, digits and '-._~' "
            "separated by single '/'",
        ),
        min_length=1,
        max_length=256,
    ),
]
DeploymentName = Annotated[
    str,
    *checked_string(
        matches(
            r"^[A-Za-z_][A-Za-z0-9_-]*$",
            "must be a Serve deployment name: letters, digits, '_' and '-', starting with a "
            "letter or '_'",
        ),
        min_length=1,
        max_length=128,
    ),
]
PipRequirement = Annotated[
    str,
    *checked_string(not_matches(r"^\s*$", "must not be blank"), min_length=1, max_length=256),
]


class Phase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    ADMITTED = "Admitted"
    TRAINING = "Training"
    TRAINED = "Trained"
    SERVING = "Serving"
    PREEMPTED = "Preempted"
    FAILED = "Failed"
    INVALID = "Invalid"


class Artifact(SpecModel):
    """A base model or data set: where it is, its exact content, and its licence."""

    name: str | None = Field(default=None, max_length=253, description="A readable name.")
    uri: URI = Field(description="Where it is, e.g. hf://org/model or s3://bucket/data.")
    sha256: Sha256 = Field(description="SHA-256 of the content, 64 lowercase hex digits.")
    license: Licence = Field(
        description="SPDX licence identifier or expression, e.g. Apache-2.0, CC-BY-4.0; "
        "LicenseRef-<name> for a licence outside the SPDX list.",
    )


class Provenance(SpecModel):
    """Where the model comes from: its base model and its data sets."""

    base_model: Artifact | None = Field(default=None, alias="baseModel")
    datasets: list[Artifact] = Field(default_factory=list, max_length=64)


class RuntimeEnv(SpecModel):
    """The Ray runtime environment of the job or deployment (a typed subset of Ray's)."""

    working_dir: (
        Annotated[
            str,
            *checked_string(
                not_matches(r"^\s*$", "must not be blank"), min_length=1, max_length=1024
            ),
        ]
        | None
    ) = Field(
        default=None,
        alias="workingDir",
        description="Directory or URI uploaded as the working directory.",
    )
    pip: list[PipRequirement] = Field(
        default_factory=list, max_length=64, description="pip requirements to install."
    )
    env_vars: Annotated[
        dict[str, Annotated[str, Field(max_length=4096)]],
        check_keys(ENV_NAME_PATTERN, ENV_NAME_MAX, ENV_NAME_MESSAGE),
    ] = Field(
        default_factory=dict,
        alias="envVars",
        max_length=64,
        description="Environment variables.",
        json_schema_extra={
            "x-kubernetes-validations": [
                keys_rule(ENV_NAME_PATTERN, ENV_NAME_MAX, ENV_NAME_MESSAGE)
            ]
        },
    )


_ONE_GPU_KIND_RULE: dict[str, JsonValue] = {
    "rule": "!(has(self.gpuClass) && has(self.minGPUMemory))",
    "message": "set gpuClass or minGPUMemory, not both",
    "fieldPath": ".minGPUMemory",
    "reason": "FieldValueForbidden",
}


class Training(SpecModel):
    """A training job: a gang of ``workers`` x ``gpusPerWorker`` GPUs, placed all or nothing."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_ONE_GPU_KIND_RULE]})

    entrypoint: NonBlank = Field(description="Shell command of the Ray job: python train.py")
    runtime_env: RuntimeEnv | None = Field(default=None, alias="runtimeEnv")
    workers: int = Field(default=1, ge=1, le=1024, description="Ray workers in the gang.")
    gpus_per_worker: int = Field(
        default=1, ge=1, le=64, alias="gpusPerWorker", description="GPUs of each worker (one node)."
    )
    gpu_class: GPUClassName | None = Field(
        default=None, alias="gpuClass", description="Only GPUs of this class of the pool."
    )
    min_gpu_memory: MemoryQuantity | None = Field(
        default=None,
        alias="minGPUMemory",
        description="Only GPUs with at least this memory, with its unit (e.g. 40Gi).",
    )
    priority: int = Field(
        default=0, ge=-1000, le=1000, description="Higher first within the community."
    )
    max_runtime: PositiveDuration | None = Field(
        default=None, alias="maxRuntime", description="Fail the job after this long (e.g. 24h)."
    )
    checkpoint_uri: CheckpointURI | None = Field(
        default=None,
        alias="checkpointURI",
        description="Where the job saves checkpoints; a restarted job resumes from there. "
        "Schemes: file (local backend; with the kubernetes backend only under "
        "/var/lib/polyculture/), s3, gs, abfs, hdfs.",
    )
    checkpoint_interval: PositiveDuration | None = Field(
        default=None,
        alias="checkpointInterval",
        description="How often the job saves a checkpoint (e.g. 30m). Fair-share preemption "
        "then prefers runs that lose least work; unset, a whole run counts as at risk.",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        alias="maxAttempts",
        description="Attempts before phase Failed; preemption and owner reclaim do not count.",
    )

    @property
    def gpus(self) -> int:
        return self.workers * self.gpus_per_worker


class Serving(SpecModel):
    """A Ray Serve deployment: ``minReplicas``..``maxReplicas`` replicas of ``gpusPerReplica``."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be less than or equal to maxReplicas",
                    "fieldPath": ".minReplicas",
                    "reason": "FieldValueInvalid",
                },
                _ONE_GPU_KIND_RULE,
            ]
        }
    )

    import_path: ImportPath = Field(
        alias="importPath",
        description="module:attribute of the Serve application, e.g. serve_app:app.",
    )
    runtime_env: RuntimeEnv | None = Field(default=None, alias="runtimeEnv")
    min_replicas: int = Field(default=1, ge=0, le=100, alias="minReplicas")
    max_replicas: int = Field(default=1, ge=1, le=100, alias="maxReplicas")
    gpus_per_replica: int = Field(default=1, ge=1, le=64, alias="gpusPerReplica")
    gpu_class: GPUClassName | None = Field(default=None, alias="gpuClass")
    min_gpu_memory: MemoryQuantity | None = Field(default=None, alias="minGPUMemory")
    route_prefix: RoutePrefix | None = Field(
        default=None,
        alias="routePrefix",
        description="HTTP route, e.g. /yoruba-chat; /<namespace>/<name> when omitted.",
    )
    deployment: DeploymentName = Field(
        default="Model",
        description="Name of the ingress deployment of the application: its replicas and "
        "GPUs per replica are set by the operator.",
    )


class CommunityModelSpec(SpecModel):
    """The desired model: which pool, whose, where it comes from, how it trains and serves."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.training) || has(self.serving)",
                    "message": "a model must set training, serving or both",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "has(self.community) == has(oldSelf.community) && "
                    "(!has(self.community) || self.community == oldSelf.community)",
                    "message": "community is immutable: usage is accounted to it; create a new "
                    "model instead",
                    "fieldPath": ".community",
                    "reason": "FieldValueForbidden",
                },
            ]
        }
    )

    pool: DNSLabel = Field(description="Name of the ComputePool that runs this model.")
    community: DNSLabel | None = Field(
        default=None, description="Community accounted for the model; the namespace if omitted."
    )
    provenance: Provenance | None = None
    training: Training | None = None
    serving: Serving | None = None


class ArtifactVerdict(StrEnum):
    """What the training job's attestations say about a declared artifact."""

    VERIFIED = "verified"
    MISMATCH = "mismatch"
    UNVERIFIED = "unverified"


class ArtifactProvenance(StatusModel):
    """A declared artifact and the verdict on what the training job read for it."""

    role: Literal["baseModel", "dataset"]
    name: str | None = Field(default=None, max_length=253)
    uri: str = Field(max_length=2048)
    sha256: str = Field(max_length=64, description="The declared digest.")
    license: str = Field(max_length=128)
    verdict: ArtifactVerdict
    observed_sha256: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        alias="observedSHA256",
        max_length=16,
        description="Digests the job attested for it other than the declared one.",
    )


class ModelCardRef(StatusModel):
    """Where the model card is: a ConfigMap in the model's namespace."""

    config_map: str = Field(alias="configMap", max_length=253)
    generated_at: datetime | None = Field(default=None, alias="generatedAt")


class Waiting(StatusModel):
    reason: str = Field(max_length=128, description="CamelCase reason, e.g. InsufficientQuota.")
    message: str = Field(default="", max_length=4096)
    since: datetime | None = None


class Placement(StatusModel):
    owner: str = Field(max_length=63)
    node: str = Field(max_length=253)
    gpus: int = Field(ge=0)


class Admission(StatusModel):
    gpus: int = Field(ge=0, description="GPUs held.")
    gpu_class: str | None = Field(default=None, alias="gpuClass", max_length=63)
    admitted_at: datetime | None = Field(default=None, alias="admittedAt")
    placement: list[Placement] = Field(default_factory=list, max_length=1024)


class CommunityModelStatus(StatusModel):
    """Where the model stands; ``summary`` is derived on every parse (see ``_summarise``)."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    phase: Phase | None = None
    community: str | None = Field(default=None, max_length=63)
    requested_gpus: int | None = Field(default=None, ge=0, alias="requestedGPUs")
    queue_position: int | None = Field(default=None, ge=1, alias="queuePosition")
    waiting: Waiting | None = None
    admission: Admission | None = None
    ray_job_id: str | None = Field(default=None, alias="rayJobId", max_length=253)
    attempts: int = Field(default=0, ge=0)
    endpoint: str | None = Field(default=None, max_length=2048)
    gpu_seconds_used: float = Field(
        default=0.0,
        ge=0,
        alias="gpuSecondsUsed",
        description="GPU-seconds used up to usageUpdatedAt: written with each change of the "
        "admission and refreshed at a slow, capped rate (every 15 minutes or less often with "
        "many models); the pool's communities count it accrued to the moment.",
    )
    gpu_seconds_by_owner: dict[str, float] = Field(
        default_factory=dict,
        alias="gpuSecondsByOwner",
        max_length=64,
        description="GPU-seconds used on each owner's nodes (who did the work).",
    )
    usage_updated_at: datetime | None = Field(
        default=None,
        alias="usageUpdatedAt",
        description="When gpuSecondsUsed was last accrued; the next accrual starts here.",
    )
    run: int = Field(
        default=0,
        ge=0,
        description="Admissions so far (1 = the first); the Ray job of the current training "
        "admission is submitted as attempt <run>. attempts counts only the failed ones.",
    )
    trained_at: datetime | None = Field(
        default=None, alias="trainedAt", description="When training succeeded."
    )
    preempted_at: datetime | None = Field(
        default=None,
        alias="preemptedAt",
        description="When the current preemption began: the grace period runs from here.",
    )
    provenance: list[ArtifactProvenance] = Field(
        default_factory=list,
        max_length=65,
        description="Per declared artifact, what the last training attempt's attestations say.",
    )
    provenance_verdict: str | None = Field(
        default=None,
        alias="provenanceVerdict",
        max_length=16,
        description="Verified, Mismatch, Unverified or Undeclared (the PROVENANCE column).",
    )
    model_card: ModelCardRef | None = Field(default=None, alias="modelCard")
    summary: str = Field(
        default="",
        max_length=4096,
        description="What it waits for, the endpoint when serving, or why it is Invalid/Failed.",
    )
    conditions: list[Condition] = conditions_field("Conditions of the model.")

    @model_validator(mode="after")
    def _summarise(self) -> CommunityModelStatus:
        """Keep ``summary`` (one printer column) consistent with the fields it shows.

        Serving -> the endpoint; waiting -> its message (or reason); Invalid or Failed -> the
        message of the last False condition; otherwise empty.
        """
        summary = ""
        if self.phase is Phase.SERVING and self.endpoint:
            summary = self.endpoint
        elif self.waiting is not None:
            summary = self.waiting.message or self.waiting.reason
        elif self.phase in (Phase.INVALID, Phase.FAILED):
            failed = [c for c in self.conditions if c.status is ConditionStatus.FALSE]
            summary = failed[-1].message if failed else ""
        self.summary = summary[:4096]
        return self


class CommunityModel(BaseModel):
    """A whole ``CommunityModel`` object as read from the API server."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["polyculture.dev/v1alpha1"] = Field(
        default="polyculture.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["CommunityModel"] = "CommunityModel"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: CommunityModelSpec
    status: CommunityModelStatus | None = None


_HOLDING = "has(oldSelf.status) && has(oldSelf.status.phase) && oldSelf.status.phase in " + str(
    list(HOLDING_PHASES)
)
_FROZEN_WHILE_HOLDING = (
    "cannot change while the model holds GPUs (phase Admitted, Training or Serving)"
)

#: Rules on the whole object (the CRD's root schema): they see the status, so they can freeze
#: fields only once the operator has admitted the model.
ROOT_VALIDATIONS = [
    {
        "rule": f"!({_HOLDING}) || self.spec.pool == oldSelf.spec.pool",
        "message": f"spec.pool {_FROZEN_WHILE_HOLDING}; delete and re-create the model to move it",
        "fieldPath": ".spec.pool",
        "reason": "FieldValueForbidden",
    },
    {
        "rule": f"!({_HOLDING}) || (has(self.spec.training) == has(oldSelf.spec.training) && "
        "(!has(self.spec.training) || (self.spec.training.workers == "
        "oldSelf.spec.training.workers && self.spec.training.gpusPerWorker == "
        "oldSelf.spec.training.gpusPerWorker)))",
        "message": f"spec.training gang shape (workers, gpusPerWorker) {_FROZEN_WHILE_HOLDING}",
        "fieldPath": ".spec.training",
        "reason": "FieldValueForbidden",
    },
    {
        "rule": f"!({_HOLDING}) || (has(self.spec.serving) == has(oldSelf.spec.serving) && "
        "(!has(self.spec.serving) || self.spec.serving.gpusPerReplica == "
        "oldSelf.spec.serving.gpusPerReplica))",
        "message": f"spec.serving.gpusPerReplica {_FROZEN_WHILE_HOLDING}",
        "fieldPath": ".spec.serving",
        "reason": "FieldValueForbidden",
    },
]
