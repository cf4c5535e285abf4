"""Training on a real local Ray cluster, driven through the backend interface.

Covers: nodes declare the placement (GPUs, owner, GPU class, labels); a 2-worker run ends
with its final state, log tail and duration; a failing entrypoint reports failure with its
log tail; one submission id runs one job; a request without the cluster's token is refused;
stopping a run and starting attempt 2 resumes from the checkpoint; a new backend object
adopts the cluster; nothing of the cluster listens beyond loopback.

One cluster (head + 2 worker nodes of two owners, 1 fake GPU each) serves the whole module.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pcray_support import EXAMPLES, figure, listeners, start_cluster

from polyculture.ray import (
    ClusterHandle,
    JobReport,
    JobState,
    NodePlacement,
    Placement,
    TrainingJob,
    WorkloadRef,
    follow_job,
    processes,
    wait_for,
)
from polyculture.ray.clients import read_token
from polyculture.ray.local import LocalBackend

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(300)]

WORKLOAD = WorkloadRef(namespace="lab-a", name="tiny-lm", uid="0d1e2f")
PLACEMENT = Placement(
    gpus_per_worker=1,
    nodes=(
        NodePlacement(node="alice-gpu-0", owner="alice", gpu_class="H100"),
        NodePlacement(node="bob-gpu-3", owner="bob", gpu_class="H100"),
    ),
)


@pytest.fixture(scope="module")
def cluster(backend: LocalBackend) -> Iterator[ClusterHandle]:
    with start_cluster(backend, WORKLOAD, PLACEMENT) as handle:
        yield handle


def job(attempt: int, args: str, checkpoint: Path, workload: WorkloadRef = WORKLOAD) -> TrainingJob:
    return TrainingJob(
        workload=workload,
        attempt=attempt,
        entrypoint=f"python train.py {args}",
        checkpoint_uri=checkpoint.as_uri(),
        runtime_env={"working_dir": str(EXAMPLES)},
    )


def wait_job(
    backend: LocalBackend, cluster: ClusterHandle, sid: str, timeout_s: float = 120
) -> JobReport:
    return wait_for(
        lambda: backend.job(cluster, sid, tail_lines=200),
        lambda r: r.state.terminal,
        timeout_s=timeout_s,
        what=f"job {sid} ended",
    )


def get(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_nodes_declare_the_placement(backend: LocalBackend, cluster: ClusterHandle) -> None:
    status = backend.status(cluster)
    assert status.ready and status.nodes_alive == 3 == status.nodes_expected
    request = urllib.request.Request(
        f"{cluster.dashboard_url}/api/v0/nodes?detail=1",
        headers={"Authorization": f"Bearer {read_token(cluster.token_path)}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        nodes = json.load(response)["data"]["result"]["result"]
    workers = {n["labels"].get("polyculture.dev/node"): n for n in nodes if not n["is_head_node"]}
    assert set(workers) == {"alice-gpu-0", "bob-gpu-3"}
    alice = workers["alice-gpu-0"]
    assert alice["resources_total"]["GPU"] == 1
    assert alice["resources_total"]["polyculture.dev/owner:alice"] == 1
    assert alice["resources_total"]["polyculture.dev/gpu-class:H100"] == 1
    assert alice["labels"]["polyculture.dev/owner"] == "alice"
    assert "polyculture.dev/owner:bob" not in alice["resources_total"]
    head = next(n for n in nodes if n["is_head_node"])
    assert "GPU" not in head["resources_total"] and "CPU" not in head["resources_total"]


def test_two_worker_run_reports_final_state_log_tail_and_duration(
    backend: LocalBackend, cluster: ClusterHandle, tmp_path: Path
) -> None:
    submitted = time.monotonic()
    sid = backend.submit_job(cluster, job(1, "--steps 6", tmp_path / "ckpt"))
    wait_for(
        lambda: backend.job(cluster, sid, tail_lines=0),
        lambda r: r.state is not JobState.PENDING,
        timeout_s=60,
        interval_s=0.1,
    )
    figure("job submit->running", f"{time.monotonic() - submitted:.1f} s")
    # the module's first job: cluster.created_at is when create() was called
    figure("create->first job running", f"{time.time() - cluster.created_at:.1f} s")

    reports = list(follow_job(backend, cluster, sid, interval_s=0.5, tail_lines=200, timeout_s=120))
    report = reports[-1]

    assert report.state is JobState.SUCCEEDED, report.log_tail
    assert JobState.RUNNING in {r.state for r in reports[:-1]}
    assert report.exit_code == 0
    assert report.duration_s is not None and 0 < report.duration_s < 120
    assert "training complete at step 6" in report.log_tail
    assert "attempt 1: 2 worker(s) x 1 GPU" in report.log_tail
    nodes = set(re.findall(r"worker \d on node (\w+)", report.log_tail))
    assert len(nodes) == 2, f"the two workers should run on the two placed nodes: {nodes}"
    assert json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())["step"] == 6
    figure("training job duration (6 steps)", f"{report.duration_s:.1f} s")


def test_failing_entrypoint_reports_failure_with_log_tail(
    backend: LocalBackend, cluster: ClusterHandle, tmp_path: Path
) -> None:
    failing = WorkloadRef(namespace="lab-a", name="broken-lm", uid="9f")
    sid = backend.client(cluster).submit_job(job(1, "--fail", tmp_path, failing), PLACEMENT)

    report = wait_job(backend, cluster, sid)

    assert report.state is JobState.FAILED
    assert report.exit_code not in (None, 0)
    assert "failing on purpose at step 1" in report.log_tail
    assert report.message


def test_one_submission_id_runs_one_job(
    backend: LocalBackend, cluster: ClusterHandle, tmp_path: Path
) -> None:
    once = job(7, "--steps 2", tmp_path)
    first = backend.submit_job(cluster, once)
    second = backend.submit_job(cluster, once)  # e.g. after an operator restart

    assert first == second == once.submission_id
    assert backend.client(cluster).submission_ids().count(first) == 1
    # and Ray itself refuses a second job under that id
    with pytest.raises(RuntimeError, match="already exists"):
        backend.client(cluster).jobs.submit_job(entrypoint="true", submission_id=first)
    report = wait_job(backend, cluster, first)
    assert report.state is JobState.SUCCEEDED
    assert report.log_tail.count("starting from step 0") == 1
    assert backend.job(cluster, "pc-no-such-job").state is JobState.MISSING
    assert not backend.stop_job(cluster, "pc-no-such-job")


def test_request_without_the_token_is_refused(cluster: ClusterHandle) -> None:
    url = f"{cluster.dashboard_url}/api/jobs/"
    assert get(url, None) == 401
    assert get(url, "not-the-token") == 403
    assert get(url, read_token(cluster.token_path)) == 200
    # the Jobs SDK without the token is refused too
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    with pytest.raises(AuthenticationError, match="Missing authentication token"):
        JobSubmissionClient(cluster.dashboard_url).list_jobs()


def test_stopped_run_resumes_from_its_checkpoint_in_attempt_2(
    backend: LocalBackend, cluster: ClusterHandle, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    args = "--steps 24 --checkpoint-every 3 --step-seconds 0.25"
    # another workload's attempts (this cluster's own attempt 1 ran above), via the client
    resumable = WorkloadRef(namespace="lab-a", name="resumable-lm", uid="5e")
    client = backend.client(cluster)
    first = client.submit_job(job(1, args, ckpt, resumable), PLACEMENT)

    def progress() -> tuple[int, JobReport]:
        path = ckpt / "checkpoint.json"
        step = json.loads(path.read_text())["step"] if path.exists() else 0
        return step, backend.job(cluster, first, tail_lines=30)

    step, report = wait_for(
        progress,
        lambda p: p[0] >= 6 or p[1].state.terminal,
        timeout_s=90,
        interval_s=0.2,
        what="a checkpoint at step >= 6",
    )
    assert step >= 6, f"no checkpoint yet, job {report.state}: {report.log_tail}"
    assert backend.stop_job(cluster, first)  # preempted
    stopped = wait_job(backend, cluster, first)
    assert stopped.state is JobState.STOPPED
    saved = json.loads((ckpt / "checkpoint.json").read_text())["step"]
    assert 6 <= saved < 24, "stopped mid-way"
    assert not backend.stop_job(cluster, first), "stopping a stopped job is a no-op"

    second = client.submit_job(job(2, args, ckpt, resumable), PLACEMENT)
    assert second != first
    report = wait_job(backend, cluster, second)

    assert report.state is JobState.SUCCEEDED, report.log_tail
    assert f"resumed from step {saved}" in report.log_tail
    steps = [int(s) for s in re.findall(r"^step (\d+) loss", report.log_tail, re.M)]
    assert steps[0] == saved + 1, "attempt 2 continues after the checkpointed step"
    assert "training complete at step 24" in report.log_tail
    assert json.loads((ckpt / "checkpoint.json").read_text())["attempt"] == 2


def test_a_new_backend_object_adopts_the_cluster(
    backend: LocalBackend, cluster: ClusterHandle, ray_state_dir: Path
) -> None:
    pids_before = backend.pids(cluster)
    restarted = LocalBackend(ray_state_dir)  # e.g. the operator after a restart

    found = restarted.find(WORKLOAD)
    again = restarted.create(WORKLOAD, PLACEMENT)

    assert found == cluster == again
    assert [c.name for c in restarted.clusters()] == [cluster.name]
    assert restarted.status(found).ready
    assert backend.pids(cluster) >= pids_before - {p for p in pids_before if not processes.alive(p)}
    assert restarted.find(WorkloadRef(namespace="lab-a", name="tiny-lm", uid="other")) is None


def test_nothing_listens_beyond_loopback(backend: LocalBackend, cluster: ClusterHandle) -> None:
    mine = backend.pids(cluster)
    sockets = [s for s in listeners() if s.pid in mine]
    assert sockets, "the cluster listens somewhere"
    assert [s for s in sockets if not s.loopback] == []
    rss, pss = processes.memory(mine)
    figure(
        f"memory of a head + 2 worker cluster ({len(mine)} processes)",
        f"RSS sum {rss / 2**30:.2f} GiB, PSS sum {pss / 2**30:.2f} GiB",
    )
