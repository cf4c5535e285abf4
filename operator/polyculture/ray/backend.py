"""The cluster backend interface: what the admission loop asks of a Ray cluster.

One Ray cluster per admitted workload (Ray has no tenant isolation). A backend creates the
cluster on the workload's placement, reports whether it is ready, runs the training job or
the Serve application on it, and tears it down. Everything is keyed by the workload's
identity, so a restarted operator finds and adopts what exists instead of duplicating it:

- ``create`` is idempotent: for a workload that already has a live cluster it returns that
  cluster's handle (compare ``handle.placement`` with what was admitted).
- ``submit_job`` uses :func:`submission_id` (workload identity + attempt) and returns the
  existing job when that id was submitted before: a resubmission never starts a second copy.
- ``teardown`` is idempotent and leaves no process of the cluster behind.

The value types are frozen dataclasses; the backends are ``local`` (real Ray processes on
this machine, :mod:`polyculture.ray.local`) and ``kubernetes`` (Pods,
:mod:`polyculture.ray.kubernetes`). Nothing here talks
to Ray: this module imports neither Ray nor Kubernetes, so any layer may use the types.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

#: file:// (or other) URI of the directory where a run saves and finds its checkpoint
CHECKPOINT_URI_ENV = "POLYCULTURE_CHECKPOINT_URI"
#: attempt number of the run, 1 for the first admission, +1 after each preemption
ATTEMPT_ENV = "POLYCULTURE_ATTEMPT"
#: the admitted gang: number of workers and GPUs per worker
NUM_WORKERS_ENV = "POLYCULTURE_NUM_WORKERS"
GPUS_PER_WORKER_ENV = "POLYCULTURE_GPUS_PER_WORKER"
#: ``namespace/name`` of the workload, for logs
WORKLOAD_ENV = "POLYCULTURE_WORKLOAD"
#: JSON list of the model's declared artifacts, ``[{"role", "name", "uri", "sha256",
#: "license"}]``, that the job attests with :func:`polyculture.provenance.attest`; set only
#: when the model declares some
ARTIFACTS_ENV = "POLYCULTURE_ARTIFACTS"

#: Ray resource and label names that a placed node declares (owner and GPU class)
OWNER_RESOURCE_PREFIX = "polyculture.dev/owner:"
GPU_CLASS_RESOURCE_PREFIX = "polyculture.dev/gpu-class:"
OWNER_LABEL = "polyculture.dev/owner"
GPU_CLASS_LABEL = "polyculture.dev/gpu-class"
NODE_LABEL = "polyculture.dev/node"


class Role(enum.StrEnum):
    """What a workload's cluster is for; a model may have one cluster of each."""

    TRAINING = "training"
    SERVING = "serving"


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].strip("-") or "x"


@dataclass(frozen=True, kw_only=True)
class WorkloadRef:
    """The identity of a workload: a CommunityModel's training run or its serving.

    ``uid`` is the object's ``metadata.uid`` when known: a model deleted and re-created under
    the same name is a different workload and must not adopt the old cluster or job.
    ``pool`` and ``community`` are descriptive (labels of what a backend creates), not part
    of the identity: they take no part in equality, the digest or the names.
    """

    namespace: str
    name: str
    role: Role = Role.TRAINING
    uid: str = ""
    pool: str = field(default="", compare=False)
    community: str = field(default="", compare=False)

    @property
    def digest(self) -> str:
        """A stable hash of the identity (10 hex digits)."""
        key = "\x00".join((self.namespace, self.name, self.role.value, self.uid))
        return hashlib.sha256(key.encode()).hexdigest()[:10]

    @property
    def cluster_name(self) -> str:
        """A readable, unique, DNS-label-safe name for this workload's cluster."""
        return (
            f"pc-{_slug(self.namespace, 16)}-{_slug(self.name, 20)}-"
            f"{self.role.value[0]}-{self.digest[:8]}"
        )

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name} ({self.role.value})"


def submission_id(workload: WorkloadRef, attempt: int) -> str:
    """The Ray job submission id of ``attempt`` of ``workload``.

    Derived only from the identity and the attempt, so that resubmitting after an operator
    restart names the same job, and Ray refuses (we return) instead of running a second copy.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return (
        f"pc-{_slug(workload.namespace, 16)}-{_slug(workload.name, 20)}-"
        f"{workload.digest}-attempt-{attempt}"
    )


@dataclass(frozen=True, kw_only=True)
class NodePlacement:
    """The part of a gang placed on one node: ``workers`` slots on ``node`` of ``owner``."""

    node: str
    owner: str
    gpu_class: str
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"node {self.node}: workers must be >= 1, got {self.workers}")
        if not self.node or not self.owner or not self.gpu_class:
            raise ValueError("node, owner and gpu_class must be non-empty")


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Workers x GPUs per worker on named nodes (of named owners and GPU classes).

    For serving, a worker is a replica slot. Each node's share of the gang gets
    ``workers * gpus_per_worker`` GPUs.
    """

    gpus_per_worker: int
    nodes: tuple[NodePlacement, ...]

    def __post_init__(self) -> None:
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if not self.nodes:
            raise ValueError("a placement needs at least one node")
        names = [n.node for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"a node appears twice in the placement: {names}")

    @property
    def workers(self) -> int:
        return sum(n.workers for n in self.nodes)

    @property
    def gpus(self) -> int:
        return self.workers * self.gpus_per_worker

    def gpus_on(self, node: NodePlacement) -> int:
        return node.workers * self.gpus_per_worker


def placed_node_args(node: NodePlacement, gpus: int) -> list[str]:
    """``ray start`` options that make a Ray node the placed ``node``: its ``gpus``, its
    owner and GPU class as custom resources (one unit per GPU) and as labels, and its name.

    Every backend declares its placed nodes with these, so that a job or a Serve replica can
    ask for an owner's or a class's GPUs the same way wherever it runs.
    """
    resources = {
        f"{OWNER_RESOURCE_PREFIX}{node.owner}": gpus,
        f"{GPU_CLASS_RESOURCE_PREFIX}{node.gpu_class}": gpus,
    }
    labels = ",".join(
        (
            f"{OWNER_LABEL}={node.owner}",
            f"{GPU_CLASS_LABEL}={node.gpu_class}",
            f"{NODE_LABEL}={node.node}",
        )
    )
    return [
        f"--num-gpus={gpus}",
        f"--resources={json.dumps(resources, sort_keys=True)}",
        f"--labels={labels}",
        f"--node-name={node.node}",
    ]


@dataclass(frozen=True, kw_only=True)
class ClusterHandle:
    """A Ray cluster that exists (or existed) for a workload: enough to talk to it.

    ``token_path`` is a file holding the cluster's auth token, readable by the operator only.
    """

    name: str
    backend: str
    workload: WorkloadRef
    placement: Placement
    dashboard_url: str
    serve_url: str
    token_path: str
    created_at: float  # seconds since the epoch


class ClusterPhase(enum.StrEnum):
    STARTING = "Starting"
    READY = "Ready"
    FAILED = "Failed"
    GONE = "Gone"


@dataclass(frozen=True, kw_only=True)
class ClusterStatus:
    phase: ClusterPhase
    nodes_alive: int = 0
    nodes_expected: int = 0
    message: str = ""

    @property
    def ready(self) -> bool:
        return self.phase is ClusterPhase.READY


@dataclass(frozen=True, kw_only=True)
class TrainingJob:
    """One attempt of a training run, submitted as a Ray job.

    The backend adds the contract's environment variables (checkpoint URI, attempt, gang)
    to ``runtime_env["env_vars"]``; a local ``working_dir`` is uploaded to the cluster.
    """

    workload: WorkloadRef
    attempt: int
    entrypoint: str
    checkpoint_uri: str
    runtime_env: Mapping[str, object] = field(default_factory=dict)
    #: the declared artifacts as JSON (``ARTIFACTS_ENV``); empty when none are declared
    artifacts: str = ""

    @property
    def submission_id(self) -> str:
        return submission_id(self.workload, self.attempt)


class JobState(enum.StrEnum):
    """Ray's job states, plus MISSING for a submission id the cluster does not know."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    MISSING = "MISSING"

    @property
    def terminal(self) -> bool:
        return self in {JobState.STOPPED, JobState.SUCCEEDED, JobState.FAILED, JobState.MISSING}


@dataclass(frozen=True, kw_only=True)
class JobReport:
    """Where a job stands: state, Ray's message, times (epoch seconds) and its log tail."""

    submission_id: str
    state: JobState
    message: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    log_tail: str = ""

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass(frozen=True, kw_only=True)
class ServeApp:
    """A Ray Serve application, deployed with Serve's declarative config.

    ``deployment`` names the ingress deployment in ``import_path``; ``gpus_per_replica`` and
    the autoscaling bounds ``min_replicas``..``max_replicas`` apply to it, and it starts with
    ``replicas`` (within the bounds); Serve's autoscaler then moves it within the bounds.
    """

    name: str
    import_path: str
    route_prefix: str = "/"
    deployment: str = "Model"
    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = 1
    gpus_per_replica: float = 0
    runtime_env: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 0 <= min_replicas <= max_replicas for {self.name}")
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                f"{self.name}: replicas {self.replicas} outside "
                f"[{self.min_replicas}, {self.max_replicas}]"
            )
        if not self.route_prefix.startswith("/"):
            raise ValueError(f"route_prefix must start with '/', got {self.route_prefix!r}")

    def scaled(self, replicas: int) -> ServeApp:
        """The same application starting with ``replicas`` (checked against min/max)."""
        return replace(self, replicas=replicas)

    def bounded(self, min_replicas: int, max_replicas: int) -> ServeApp:
        """The same application within new bounds (``replicas`` clamped into them)."""
        replicas = min(max(self.replicas, min_replicas), max_replicas)
        return replace(
            self, min_replicas=min_replicas, max_replicas=max_replicas, replicas=replicas
        )


class ServeState(enum.StrEnum):
    """Ray Serve's application states, plus MISSING when the application is not deployed."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    RUNNING = "RUNNING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"
    MISSING = "MISSING"


@dataclass(frozen=True, kw_only=True)
class ServeReport:
    app: str
    state: ServeState
    endpoint: str
    target_replicas: int = 0
    running_replicas: int = 0
    #: the autoscaling bounds Serve reports for the ingress deployment
    min_replicas: int = 0
    max_replicas: int = 0
    message: str = ""

    @property
    def healthy(self) -> bool:
        """Running, with as many replicas running as Serve aims at.

        Serve's target moves within the bounds with the load; while it scales up beyond
        ``min_replicas`` (a new replica starting, or waiting for a free GPU) the application
        still serves, so at least ``min_replicas`` (and one, unless scaled to zero) running
        replicas are enough.
        """
        wanted = min(self.target_replicas, max(self.min_replicas, 1))
        return self.state is ServeState.RUNNING and self.running_replicas >= wanted


class ClusterBackend(Protocol):
    """What the admission loop needs from a place that runs Ray clusters."""

    name: str

    def create(self, workload: WorkloadRef, placement: Placement) -> ClusterHandle:
        """Start creating the cluster (returns before it is ready); idempotent per workload."""
        ...

    def find(self, workload: WorkloadRef) -> ClusterHandle | None:
        """The live cluster of ``workload``, if one exists (created by any backend object)."""
        ...

    def clusters(self) -> list[ClusterHandle]:
        """Every live cluster this backend manages, for adoption at operator start."""
        ...

    def status(self, cluster: ClusterHandle) -> ClusterStatus: ...

    def submit_job(self, cluster: ClusterHandle, job: TrainingJob) -> str:
        """Submit ``job`` under its submission id (returns it); never runs a second copy."""
        ...

    def job(self, cluster: ClusterHandle, submission_id: str, *, tail_lines: int = 50) -> JobReport:
        """The job's state, times and the last ``tail_lines`` lines of its logs."""
        ...

    def stop_job(self, cluster: ClusterHandle, submission_id: str) -> bool:
        """Ask Ray to stop the job; False if it had already ended or does not exist."""
        ...

    def deploy_serve(self, cluster: ClusterHandle, app: ServeApp) -> None:
        """Deploy or update ``app`` (declarative, idempotent); other applications are kept."""
        ...

    def serve(self, cluster: ClusterHandle, app_name: str) -> ServeReport: ...

    def teardown(self, cluster: ClusterHandle) -> None:
        """Remove the cluster and every process of it; idempotent."""
        ...


T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    what: str = "condition",
) -> T:
    """Call ``probe`` until ``done(result)``; the last result, or TimeoutError with it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if done(result):
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:g}s: last {result!r}")
        time.sleep(interval_s)


def follow_job(
    backend: ClusterBackend,
    cluster: ClusterHandle,
    submission_id: str,
    *,
    interval_s: float = 1.0,
    tail_lines: int = 50,
    timeout_s: float | None = None,
) -> Iterator[JobReport]:
    """Yield the job's report every ``interval_s`` until it ends; the last one is terminal.

    TimeoutError after ``timeout_s`` (if given) without an end.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        report = backend.job(cluster, submission_id, tail_lines=tail_lines)
        yield report
        if report.state.terminal:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"job {submission_id} still {report.state} after {timeout_s:g}s")
        time.sleep(interval_s)


def wait_ready(
    backend: ClusterBackend, cluster: ClusterHandle, *, timeout_s: float = 120
) -> ClusterStatus:
    """Wait until the cluster is READY; RuntimeError if it FAILED or is GONE."""
    status = wait_for(
        lambda: backend.status(cluster),
        lambda s: s.phase is not ClusterPhase.STARTING,
        timeout_s=timeout_s,
        what=f"cluster {cluster.name} ready",
    )
    if not status.ready:
        raise RuntimeError(f"cluster {cluster.name} is {status.phase}: {status.message}")
    return status
