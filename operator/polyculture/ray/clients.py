"""Ray Jobs and Ray Serve clients for one cluster, authenticated with the cluster's token.

Token authentication (``RAY_AUTH_MODE=token``) is on for every cluster. Ray's own SDK reads
the mode and token from the environment once, at ``import ray``, and would then send one
token for the whole process; the operator talks to many clusters, each with its own token.
So the SDK clients here get the token as an explicit ``Authorization: Bearer`` header, which
the SDK sends as given whatever the process's auth mode — no environment, no subprocess.

- Jobs: Ray's Job Submission SDK (``JobSubmissionClient``), which also uploads a local
  ``working_dir`` of the runtime environment to the cluster.
- Serve: Ray's declarative config (``PUT /api/serve/applications/``) through the Serve SDK
  client. Serve's config replaces all applications at once, so a deploy re-sends the other
  applications as they were. A local ``working_dir`` is uploaded the way the Jobs SDK does
  it (the Serve REST API only accepts remote URIs). The ingress deployment gets the model's
  ``minReplicas``/``maxReplicas`` as Serve's ``autoscaling_config``, starting at the
  admitted replicas; Serve scales it within them on its ongoing requests.
- :class:`RayClients`: the Jobs and Serve half of a backend, the same for every backend.

Ray's SDK is imported when a client first talks to a cluster, so that importing a backend
stays cheap (the operator on the ``kubernetes`` backend may never call one).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyculture.ray.backend import (
    ARTIFACTS_ENV,
    ATTEMPT_ENV,
    CHECKPOINT_URI_ENV,
    GPUS_PER_WORKER_ENV,
    NUM_WORKERS_ENV,
    WORKLOAD_ENV,
    ClusterHandle,
    JobReport,
    JobState,
    Placement,
    ServeApp,
    ServeReport,
    ServeState,
    TrainingJob,
)

if TYPE_CHECKING:  # Ray's SDK is imported when a client first talks to a cluster
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient
    from ray.job_submission import JobSubmissionClient

log = logging.getLogger(__name__)


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read_token(path: str | Path) -> str:
    return Path(path).read_text().strip()


def dashboard_json(cluster: ClusterHandle, path: str, *, timeout_s: float = 5) -> Any:
    """GET ``path`` of the cluster's dashboard with its token; OSError if it cannot answer."""
    request = urllib.request.Request(
        f"{cluster.dashboard_url}{path}", headers=auth_headers(read_token(cluster.token_path))
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.load(response)
    except urllib.error.URLError as error:  # an HTTPError is one too: the dashboard refused
        raise OSError(str(error.reason)) from error


def job_runtime_env(job: TrainingJob, placement: Placement) -> dict[str, Any]:
    """The job's runtime environment with the checkpoint/resume contract's variables added."""
    runtime_env = dict(job.runtime_env)
    given = runtime_env.get("env_vars") or {}
    if not isinstance(given, Mapping):
        raise TypeError(f"runtime_env.env_vars must be a mapping, got {type(given).__name__}")
    env_vars = {str(k): str(v) for k, v in given.items()}
    env_vars.update(
        {
            CHECKPOINT_URI_ENV: job.checkpoint_uri,
            ATTEMPT_ENV: str(job.attempt),
            NUM_WORKERS_ENV: str(placement.workers),
            GPUS_PER_WORKER_ENV: str(placement.gpus_per_worker),
            WORKLOAD_ENV: f"{job.workload.namespace}/{job.workload.name}",
        }
    )
    if job.artifacts:
        env_vars[ARTIFACTS_ENV] = job.artifacts
    runtime_env["env_vars"] = env_vars
    return runtime_env


#: ongoing requests per replica that Serve's autoscaler aims at (Ray's own default)
SERVE_TARGET_ONGOING_REQUESTS = 2


def serve_autoscaling_config(app: ServeApp) -> dict[str, Any]:
    """Serve's ``autoscaling_config`` of the ingress deployment: the model's bounds, starting
    at the admitted ``replicas``; Serve scales within the bounds on its ongoing requests."""
    return {
        "min_replicas": app.min_replicas,
        "max_replicas": app.max_replicas,
        "initial_replicas": app.replicas,
        "target_ongoing_requests": SERVE_TARGET_ONGOING_REQUESTS,
    }


def serve_application_config(app: ServeApp, runtime_env: Mapping[str, object]) -> dict[str, Any]:
    """One application entry of Serve's declarative config."""
    return {
        "name": app.name,
        "route_prefix": app.route_prefix,
        "import_path": app.import_path,
        "runtime_env": dict(runtime_env),
        "deployments": [
            {
                "name": app.deployment,
                "autoscaling_config": serve_autoscaling_config(app),
                "ray_actor_options": {"num_cpus": 0, "num_gpus": app.gpus_per_replica},
            }
        ],
    }


def serve_config(
    applications: list[dict[str, Any]], *, http_host: str, http_port: int
) -> dict[str, Any]:
    """Serve's whole declarative config: HTTP proxy on the head only, on the given address."""
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": http_host, "port": http_port},
        "applications": applications,
    }


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:]) if lines > 0 else ""


class RayClusterClient:
    """Jobs and Serve on one Ray cluster, over its dashboard's HTTP API (with the token)."""

    def __init__(
        self, dashboard_url: str, token: str, *, serve_url: str, http_host: str, http_port: int
    ) -> None:
        self.dashboard_url = dashboard_url
        self.serve_url = serve_url.rstrip("/")
        self._headers = auth_headers(token)
        self._http = (http_host, http_port)
        self._jobs: JobSubmissionClient | None = None
        self._serve: ServeSubmissionClient | None = None

    @property
    def jobs(self) -> JobSubmissionClient:
        if self._jobs is None:  # the constructor calls the cluster: only when needed
            from ray.job_submission import JobSubmissionClient

            self._jobs = JobSubmissionClient(self.dashboard_url, headers=dict(self._headers))
        return self._jobs

    @property
    def serve_sdk(self) -> ServeSubmissionClient:
        if self._serve is None:
            from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

            self._serve = ServeSubmissionClient(self.dashboard_url, headers=dict(self._headers))
        return self._serve

    # -- jobs --------------------------------------------------------------------------------

    def submit_job(self, job: TrainingJob, placement: Placement) -> str:
        sid = job.submission_id
        if self.job_state(sid) is not JobState.MISSING:
            log.info("job %s already submitted; not submitting again", sid)
            return sid
        try:
            self.jobs.submit_job(
                entrypoint=job.entrypoint,
                submission_id=sid,
                runtime_env=job_runtime_env(job, placement),
                metadata={"workload": str(job.workload), "attempt": str(job.attempt)},
            )
        except RuntimeError as error:
            # another submitter won the race between our check and our submit: same job
            if "already exists" not in str(error):
                raise
            log.info("job %s was submitted concurrently; using it", sid)
        return sid

    def job_state(self, submission_id: str) -> JobState:
        try:
            info = self.jobs.get_job_info(submission_id)
        except RuntimeError as error:
            if "does not exist" in str(error) or "404" in str(error):
                return JobState.MISSING
            raise
        return JobState(str(info.status.value))

    def job_report(self, submission_id: str, *, tail_lines: int = 50) -> JobReport:
        try:
            info = self.jobs.get_job_info(submission_id)
        except RuntimeError as error:
            if "does not exist" in str(error) or "404" in str(error):
                return JobReport(submission_id=submission_id, state=JobState.MISSING)
            raise
        logs = self.jobs.get_job_logs(submission_id)
        return JobReport(
            submission_id=submission_id,
            state=JobState(str(info.status.value)),
            message=info.message or "",
            started_at=info.start_time / 1000 if info.start_time else None,
            ended_at=info.end_time / 1000 if info.end_time else None,
            exit_code=info.driver_exit_code,
            log_tail=_tail(logs, tail_lines),
        )

    def stop_job(self, submission_id: str) -> bool:
        state = self.job_state(submission_id)
        if state.terminal:
            return False
        stopped: bool = self.jobs.stop_job(submission_id)
        return stopped

    def submission_ids(self) -> list[str]:
        return [j.submission_id for j in self.jobs.list_jobs() if j.submission_id]

    def running_jobs(self) -> list[str]:
        live = {JobState.PENDING.value, JobState.RUNNING.value}
        return [j.submission_id or "" for j in self.jobs.list_jobs() if j.status.value in live]

    # -- serve -------------------------------------------------------------------------------

    def serve_details(self) -> dict[str, Any]:
        details: dict[str, Any] = self.serve_sdk.get_serve_details()
        return details

    def deploy_serve(self, app: ServeApp) -> None:
        runtime_env = dict(app.runtime_env)
        # turn a local working_dir and py_modules into gcs:// packages on the cluster (in place)
        self.serve_sdk._upload_working_dir_if_needed(runtime_env)
        self.serve_sdk._upload_py_modules_if_needed(runtime_env)
        applications = [
            details["deployed_app_config"]
            for name, details in (self.serve_details().get("applications") or {}).items()
            if name != app.name and details.get("deployed_app_config")
        ]
        applications.append(serve_application_config(app, runtime_env))
        host, port = self._http
        self.serve_sdk.deploy_applications(
            serve_config(applications, http_host=host, http_port=port)
        )

    def serve_report(self, app_name: str) -> ServeReport:
        applications = self.serve_details().get("applications") or {}
        details = applications.get(app_name)
        if details is None:
            return ServeReport(app=app_name, state=ServeState.MISSING, endpoint="")
        config = details.get("deployed_app_config") or {}
        ingress = (config.get("deployments") or [{}])[0].get("name", "")
        deployment = (details.get("deployments") or {}).get(ingress, {})
        replicas = deployment.get("replicas") or []
        route = details.get("route_prefix") or "/"
        # the bounds Serve itself runs the deployment with (not the ones we sent)
        bounds = (deployment.get("deployment_config") or {}).get("autoscaling_config") or {}
        target = int(deployment.get("target_num_replicas") or 0)
        return ServeReport(
            app=app_name,
            state=ServeState(details.get("status", "NOT_STARTED")),
            endpoint=self.serve_url + route,
            target_replicas=target,
            running_replicas=sum(1 for r in replicas if r.get("state") == "RUNNING"),
            min_replicas=int(bounds.get("min_replicas", target)),
            max_replicas=int(bounds.get("max_replicas", target)),
            message=details.get("message") or deployment.get("message") or "",
        )


class RayClients:
    """The Jobs and Serve part of a :class:`~polyculture.ray.backend.ClusterBackend`, the same
    for every backend: each call goes to the cluster's :class:`RayClusterClient`.

    A backend provides :meth:`client` (how to reach a cluster's dashboard and Serve proxy)
    and may adapt what it deploys with :meth:`serve_app`.
    """

    def client(self, cluster: ClusterHandle) -> RayClusterClient:
        raise NotImplementedError

    def serve_app(self, app: ServeApp) -> ServeApp:
        """``app`` as this backend deploys it (as given, unless a backend needs more)."""
        return app

    def submit_job(self, cluster: ClusterHandle, job: TrainingJob) -> str:
        if job.workload != cluster.workload:
            raise ValueError(
                f"job of {job.workload} submitted to the cluster of {cluster.workload}"
            )
        return self.client(cluster).submit_job(job, cluster.placement)

    def job(self, cluster: ClusterHandle, submission_id: str, *, tail_lines: int = 50) -> JobReport:
        return self.client(cluster).job_report(submission_id, tail_lines=tail_lines)

    def stop_job(self, cluster: ClusterHandle, submission_id: str) -> bool:
        return self.client(cluster).stop_job(submission_id)

    def deploy_serve(self, cluster: ClusterHandle, app: ServeApp) -> None:
        self.client(cluster).deploy_serve(self.serve_app(app))

    def serve(self, cluster: ClusterHandle, app_name: str) -> ServeReport:
        return self.client(cluster).serve_report(app_name)
