"""Lifetime of local Ray clusters across processes: nothing survives, nothing is duplicated.

Covers: a fate-sharing cluster dies with the process that created it, even on SIGKILL;
a cluster created by another (now exited) process is found and adopted — its job included —
and its teardown leaves no process behind, checked by pid, the job's driver (which Ray
starts in a session of its own) included; a cluster whose head's GCS server died is
reported Failed (not Starting forever).

Each test starts its own small cluster (head + one node), mostly from a child Python
process; the last one shows that a test that fails still tears its cluster down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pcray_support import assert_gone, start_cluster

from polyculture.ray import (
    ClusterPhase,
    JobState,
    NodePlacement,
    Placement,
    TrainingJob,
    WorkloadRef,
    processes,
    wait_for,
    wait_ready,
)
from polyculture.ray.local import LocalBackend

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(300)]

PLACEMENT = Placement(
    gpus_per_worker=1, nodes=(NodePlacement(node="dave-gpu-0", owner="dave", gpu_class="A100"),)
)

# The creator: makes a cluster, waits for it, optionally starts a long job, reports, and then
# either exits (detached cluster) or waits to be killed (fate-shared cluster).
CREATOR = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from polyculture.ray import NodePlacement, Placement, TrainingJob, WorkloadRef, wait_ready
    from polyculture.ray.local import LocalBackend

    state_dir, name = sys.argv[1], sys.argv[2]
    fate_share, with_job = sys.argv[3] == "1", sys.argv[4] == "1"
    workload = WorkloadRef(namespace="lab-c", name=name)
    placement = Placement(gpus_per_worker=1, nodes=(
        NodePlacement(node="dave-gpu-0", owner="dave", gpu_class="A100"),))
    backend = LocalBackend(Path(state_dir), fate_share=fate_share)
    handle = backend.create(workload, placement)
    wait_ready(backend, handle, timeout_s=180)
    sid = ""
    if with_job:
        sid = backend.submit_job(handle, TrainingJob(
            workload=workload, attempt=1, checkpoint_uri="file:///nonexistent",
            entrypoint="python -c 'import time; print(123, flush=True); time.sleep(600)'"))
    pids = sorted(backend.pids(handle))
    print(json.dumps({"name": handle.name, "pids": pids, "job": sid}), flush=True)
    if fate_share:
        time.sleep(3600)
    """
)


def run_creator(
    state_dir: Path, name: str, *, fate_share: bool, with_job: bool
) -> tuple[subprocess.Popen[str], dict[str, object]]:
    creator = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CREATOR,
            str(state_dir),
            name,
            str(int(fate_share)),
            str(int(with_job)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert creator.stdout is not None
    line = creator.stdout.readline()
    assert line, f"the creator exited with {creator.wait()} before reporting"
    return creator, json.loads(line)


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def handle_keeper_sid(state_dir: Path, name: str) -> int:
    return int(json.loads((state_dir / name / "cluster.json").read_text())["keeper_pid"])


def test_a_fate_shared_cluster_dies_with_its_creator(tmp_path: Path) -> None:
    creator, report = run_creator(tmp_path, "doomed", fate_share=True, with_job=False)
    pids = set(report["pids"])  # type: ignore[call-overload]
    try:
        assert len(pids) > 10 and all(processes.alive(p) for p in pids)
        temp_dir = json.loads((tmp_path / str(report["name"]) / "cluster.json").read_text())[
            "ray_temp_dir"
        ]
    finally:
        creator.send_signal(signal.SIGKILL)  # no finalizer, no atexit: the kernel closes its pipe
        creator.wait()

    assert_gone(pids, timeout_s=30)
    assert not Path(temp_dir).exists()
    assert LocalBackend(tmp_path).find(WorkloadRef(namespace="lab-c", name="doomed")) is None


def test_a_detached_cluster_is_adopted_and_torn_down_leaving_no_process(tmp_path: Path) -> None:
    creator, report = run_creator(tmp_path, "survivor", fate_share=False, with_job=True)
    assert creator.wait(timeout=30) == 0  # the creator is gone; its cluster is not
    backend = LocalBackend(tmp_path)  # "the operator after a restart"
    workload = WorkloadRef(namespace="lab-c", name="survivor")
    handle = backend.find(workload)
    pids: set[int] = set(report["pids"])  # type: ignore[call-overload]
    try:
        assert handle is not None and handle.name == report["name"]
        assert backend.create(workload, PLACEMENT) == handle, "create adopts, never duplicates"
        wait_ready(backend, handle)
        sid = str(report["job"])
        running = wait_for(
            lambda: backend.job(handle, sid),
            lambda r: "123" in r.log_tail.splitlines() or r.state.terminal,
            timeout_s=60,
        )
        assert running.state is JobState.RUNNING
        pids |= backend.pids(handle)
        entrypoints = {
            p for p in processes.snapshot() if b"time.sleep(600)" in cmdline(p) and p != os.getpid()
        }
        assert entrypoints and entrypoints <= pids, "the job's entrypoint counts as the cluster's"
        sessions = {processes.read_proc(p).sid for p in entrypoints}  # type: ignore[union-attr]
        assert handle_keeper_sid(tmp_path, handle.name) not in sessions, "Ray gave it its own"
        # resubmitting the same attempt from the new backend object does not start a copy
        again = TrainingJob(
            workload=workload, attempt=1, entrypoint="true", checkpoint_uri="file:///x"
        )
        assert backend.submit_job(handle, again) == sid
        assert backend.client(handle).running_jobs() == [sid]
    finally:
        if handle is not None:
            pids |= backend.pids(handle)
            backend.teardown(handle)

    assert_gone(pids)
    assert backend.find(workload) is None
    assert not (tmp_path / str(report["name"])).exists()


def test_a_failing_test_still_tears_its_cluster_down(backend: LocalBackend) -> None:
    workload = WorkloadRef(namespace="lab-c", name="unlucky")
    seen: set[int] = set()
    with (
        pytest.raises(RuntimeError, match="the test body failed"),
        start_cluster(backend, workload, PLACEMENT) as handle,
    ):
        seen = backend.pids(handle)
        raise RuntimeError("the test body failed")
    assert len(seen) > 10
    assert not [pid for pid in seen if processes.alive(pid)]
    assert backend.find(workload) is None


def test_a_cluster_whose_head_died_is_failed_not_starting(backend: LocalBackend) -> None:
    workload = WorkloadRef(namespace="lab-c", name="headless")
    with start_cluster(backend, workload, PLACEMENT) as handle:
        assert backend.status(handle).phase is ClusterPhase.READY
        (gcs,) = [p for p in backend.pids(handle) if processes.command_name(p) == "gcs_server"]
        os.kill(gcs, signal.SIGKILL)
        status = wait_for(
            lambda: backend.status(handle),
            lambda s: s.phase is not ClusterPhase.READY,
            timeout_s=30,
            what="the cluster no longer ready",
        )
        assert status.phase is ClusterPhase.FAILED, status
        assert "GCS" in status.message
