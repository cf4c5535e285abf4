"""Running admitted workloads on Ray: one Ray cluster per workload, behind a small interface.

- :mod:`polyculture.ray.backend` — the interface (:class:`ClusterBackend`, a Protocol) and
  its frozen value types: :class:`WorkloadRef`, :class:`Placement` (workers x GPUs on named
  nodes of named owners and GPU classes), :class:`ClusterHandle`, :class:`TrainingJob`,
  :class:`JobReport`, :class:`ServeApp`, :class:`ServeReport`, :class:`ClusterStatus`.
- :mod:`polyculture.ray.clients` — Ray Jobs (Job Submission SDK) and Ray Serve (declarative
  config) for one cluster, authenticated with the cluster's token.
- :mod:`polyculture.ray.local` — the ``local`` backend: real Ray processes on 127.0.0.1.
- :mod:`polyculture.ray.kubernetes` — the ``kubernetes`` backend: a head Pod, worker Pods, a
  Service and a token Secret per workload (built by :mod:`polyculture.ray.manifests`, read
  back by :mod:`polyculture.ray.podstatus`), through :mod:`polyculture.kube`.
- :mod:`polyculture.ray.localnodes`, :mod:`polyculture.ray.keeper`,
  :mod:`polyculture.ray.nodestart`, :mod:`polyculture.ray.processes`,
  :mod:`polyculture.ray.serve_loopback` — how the local backend starts its nodes, keeps
  them on loopback, and reaps them.

Checkpoint and resume contract — every training run gets these environment variables:

``POLYCULTURE_CHECKPOINT_URI``
    URI of a directory (``file://...`` for the local backend) where the entrypoint saves its
    checkpoints and, at start, looks for one to resume from. The same URI is given to every
    attempt of a workload.
``POLYCULTURE_ATTEMPT``
    ``1`` on the first admission, one more after each preemption or retry. The Ray job
    submission id is derived from the workload and this number, so an attempt never runs twice.
``POLYCULTURE_NUM_WORKERS``, ``POLYCULTURE_GPUS_PER_WORKER``
    The admitted gang (workers x GPUs per worker), for the entrypoint to size its workers.
``POLYCULTURE_WORKLOAD``
    ``namespace/name`` of the model, for logs.
``POLYCULTURE_ARTIFACTS``
    Only when the model declares a base model or data sets: JSON
    ``[{"role", "name", "uri", "sha256", "license"}, ...]``. The entrypoint calls
    :func:`polyculture.provenance.attest` on what it actually reads for each; the operator
    turns the attestations in the job's log into per-artifact verdicts when the attempt ends.

An entrypoint that saves there periodically and resumes from there at start loses at most
one checkpoint interval when preempted (``examples/ray/train.py`` does so).

This package must stay cheap to import: it does not import Ray itself (the keeper process
imports :mod:`polyculture.ray.processes` and must stay small); import the submodules.
"""

from polyculture.ray.backend import (
    ATTEMPT_ENV,
    CHECKPOINT_URI_ENV,
    GPUS_PER_WORKER_ENV,
    NUM_WORKERS_ENV,
    WORKLOAD_ENV,
    ClusterBackend,
    ClusterHandle,
    ClusterPhase,
    ClusterStatus,
    JobReport,
    JobState,
    NodePlacement,
    Placement,
    Role,
    ServeApp,
    ServeReport,
    ServeState,
    TrainingJob,
    WorkloadRef,
    follow_job,
    submission_id,
    wait_for,
    wait_ready,
)

__all__ = [
    "ATTEMPT_ENV",
    "CHECKPOINT_URI_ENV",
    "GPUS_PER_WORKER_ENV",
    "NUM_WORKERS_ENV",
    "WORKLOAD_ENV",
    "ClusterBackend",
    "ClusterHandle",
    "ClusterPhase",
    "ClusterStatus",
    "JobReport",
    "JobState",
    "NodePlacement",
    "Placement",
    "Role",
    "ServeApp",
    "ServeReport",
    "ServeState",
    "TrainingJob",
    "WorkloadRef",
    "follow_job",
    "submission_id",
    "wait_for",
    "wait_ready",
]
