"""Two operator replicas with leader election: exactly one acts, and the other takes over.

A control plane of its own (no other operator may judge the models here), two real
``polyculture run --leader-election`` processes. The replica holding the Lease judges models;
the other writes nothing. SIGKILLed, the active one is replaced within 15 s (Lease expiry)
and the new one adopts the workloads admitted before (same admission, one Ray cluster each)
while admitting only new ones; stopped cleanly, a replica releases the Lease and the waiting
one takes over at once; a replica whose Lease is taken stops.
"""

from __future__ import annotations

import signal
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from polyculture.controlplane import ControlPlane
from polyculture.controlplane.manifests import compute_pool, member, training_model
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.runner import free_port
from polyculture.controlplane.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

GROUP, VERSION = "polyculture.dev", "v1alpha1"
LEASE_NS = "polyculture-system"
HANDOVER_S = 15.0
HOLDING = {"Admitted", "Training", "Trained", "Serving"}


class Replica:
    def __init__(self, cp: ControlPlane, run_dir: Path) -> None:
        self.port = free_port()
        run_dir.mkdir(parents=True, exist_ok=True)
        self.op = OperatorProcess(
            cp.kubeconfig,
            run_dir,
            (
                "--leader-election",
                "--leader-election-namespace",
                LEASE_NS,
                "--metrics-port",
                str(self.port),
            ),
        )

    @property
    def identity_suffix(self) -> str:
        assert self.op.proc is not None
        return f"-{self.op.proc.pid}"

    def metric(self, name: str) -> float:
        """Sum of a metric's samples on this replica's /metrics (0 when absent)."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        )

    def metrics_up(self) -> bool:
        try:
            self.metric("polyculture_leader")
        except OSError:
            return False
        return True


def holder(api: Any) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(
            "polyculture-operator", LEASE_NS
        )
    except client.ApiException:
        return None
    return lease.spec.holder_identity if lease.spec else None


def create_model(api: Any, ns: str, name: str, pool: str = "no-such-pool") -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "communitymodels", training_model(name, pool)
    )


def status(api: Any, ns: str, name: str) -> dict[str, Any]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "communitymodels", name
    )
    return dict(obj.get("status") or {})


def phase(api: Any, ns: str, name: str) -> str | None:
    return status(api, ns, name).get("phase")


def create_pool(api: Any, ns: str) -> str:
    """A pool of one kwok node with 8 GPUs for the community ``ns`` (kubernetes backend)."""
    pool = f"lead-{ns}"
    create_gpu_node(api, f"{pool}-node", "ada", 8, labels={"lead": ns})
    client.CustomObjectsApi(api).create_cluster_custom_object(
        GROUP, VERSION, "computepools", compute_pool(pool, [member("ada", {"lead": ns})], [ns])
    )
    return pool


def admitted_at(api: Any, ns: str, names: list[str]) -> dict[str, str] | None:
    """name -> admittedAt once every model holds its admission, else None."""
    out = {}
    for name in names:
        st = status(api, ns, name)
        if st.get("phase") not in HOLDING or not (st.get("admission") or {}).get("admittedAt"):
            return None
        out[name] = st["admission"]["admittedAt"]
    return out


def ray_heads(api: Any, ns: str) -> Counter[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(ns).items
    return Counter(
        p.metadata.labels["polyculture.dev/model"]
        for p in pods
        if (p.metadata.labels or {}).get("app.kubernetes.io/component") == "head"
    )


def test_one_replica_acts_and_the_other_takes_over(
    own_cluster: tuple[ControlPlane, Any], tmp_path: Path
) -> None:
    cp, api = own_cluster
    ns = f"leader-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    a = Replica(cp, tmp_path / "a")
    b = Replica(cp, tmp_path / "b")
    a.op.start()
    b.op.start()
    try:
        wait_for(lambda: a.metrics_up() and b.metrics_up(), 60, "both replicas serve metrics")
        first = wait_for(lambda: holder(api), 30, "a replica holds the lease")
        active, standby = (a, b) if first.endswith(a.identity_suffix) else (b, a)
        assert first.endswith(active.identity_suffix)

        create_model(api, ns, "judged-by-one")
        assert wait_for(lambda: phase(api, ns, "judged-by-one"), 30, "verdict") == "Invalid"
        time.sleep(2)  # room for a second writer to show itself
        assert active.metric("polyculture_leader") == 1
        assert active.metric("polyculture_api_writes_total") >= 1
        assert standby.metric("polyculture_leader") == 0
        assert standby.metric("polyculture_api_writes_total") == 0
        assert "judged-by-one" not in standby.op.log.read_text()

        # workloads admitted by the active replica
        pool = create_pool(api, ns)
        before = [f"m{i}" for i in range(4)]
        for name in before:
            create_model(api, ns, name, pool)
        first_admissions = wait_for(
            lambda: admitted_at(api, ns, before), 60, f"admitted\n{active.op.log_tail()}"
        )
        assert active.metric("polyculture_admissions_total") == len(before)
        assert standby.metric("polyculture_admissions_total") == 0

        # the active replica dies without a word: the Lease expires, the standby takes over
        assert active.op.proc is not None
        active.op.proc.kill()
        active.op.proc.wait()
        killed_at = time.monotonic()
        create_model(api, ns, "after-kill")
        wait_for(lambda: phase(api, ns, "after-kill"), HANDOVER_S + 5, "verdict after kill")
        handover_s = time.monotonic() - killed_at
        print(f"handover after SIGKILL: {handover_s:.1f} s")  # shown with -s
        assert handover_s < HANDOVER_S, f"handover took {handover_s:.1f} s"
        assert (holder(api) or "").endswith(standby.identity_suffix)
        assert standby.metric("polyculture_leader") == 1
        assert standby.metric("polyculture_api_writes_total") >= 1
        assert "after-kill" in standby.op.log.read_text()

        # the new active replica adopts what was admitted and admits only what is new
        after = ["m4", "m5"]
        for name in after:
            create_model(api, ns, name, pool)
        wait_for(lambda: admitted_at(api, ns, after), 60, f"admitted\n{standby.op.log_tail()}")
        assert admitted_at(api, ns, before) == first_admissions
        assert standby.metric("polyculture_admissions_total") == len(after)
        heads = ray_heads(api, ns)
        assert set(heads) <= set(before + after) and max(heads.values(), default=1) == 1, heads

        # the killed one comes back and waits; the active one stops cleanly and hands over
        active.op.start()
        wait_for(active.metrics_up, 60, "restarted replica serves metrics")
        assert active.metric("polyculture_leader") == 0
        assert standby.op.proc is not None
        stopped_at = time.monotonic()
        standby.op.proc.send_signal(signal.SIGINT)  # what a pod's termination sends (SIGTERM)
        wait_for(
            lambda: (holder(api) or "").endswith(active.identity_suffix),
            10,
            "released lease taken over",
        )
        assert time.monotonic() - stopped_at < 10
        standby.op.stop()
        wait_for(lambda: active.metric("polyculture_leader") == 1, 10, "new leader flag")

        # another holder takes the Lease (as after a partition): the active one stops acting
        coordination = client.CoordinationV1Api(api)
        lease = coordination.read_namespaced_lease("polyculture-operator", LEASE_NS)
        lease.spec.holder_identity = "intruder"
        lease.spec.renew_time = datetime.now(UTC)
        lease.spec.lease_duration_seconds = 3600
        coordination.replace_namespaced_lease("polyculture-operator", LEASE_NS, lease)
        assert active.op.proc is not None
        assert active.op.proc.wait(timeout=15) == 1
        assert "lost lease polyculture-system/polyculture-operator" in active.op.log.read_text()
    finally:
        a.op.stop()
        b.op.stop()
