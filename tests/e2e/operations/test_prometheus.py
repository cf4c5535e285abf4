"""A real Prometheus scrapes the operator during a scenario; the dashboard's queries answer.

Prometheus (Debian's package) on loopback scrapes a real operator every second, with the
chart's alerting rules loaded, while a pool of two owners' kwok GPU nodes (the ``kubernetes``
Ray backend: kwok runs the Pods) serves two communities asking for more GPUs than it has.
Through Prometheus' query API the series must say what the operator wrote in the pool and
model statuses: capacity by owner and class, entitled / allocated / pending per community,
queue lengths, admissions, the ledger, the cycle histogram, the active replica. Then every
query of the chart's Grafana dashboard is run and must return data, and no alert is firing.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from polyculture.controlplane import ControlPlane
from polyculture.controlplane.nodes import OWNER_LABEL, create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.prometheus import Prometheus
from polyculture.controlplane.runner import free_port
from polyculture.controlplane.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

GROUP, VERSION = "polyculture.dev", "v1alpha1"
REPO = Path(__file__).resolve().parents[3]
CHART_FILES = REPO / "charts" / "polyculture" / "files"
HOLDING = {"Admitted", "Training", "Trained", "Serving"}


class Scenario:
    """Owners ada (2 nodes x 4 H100) and bo (1 node x 4 L4); communities alpha and beta."""

    def __init__(self, api: Any) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.pool = f"prom-{self.tag}"
        self.api = api
        self.objs = client.CustomObjectsApi(api)
        self.communities = {"alpha": f"alpha-{self.tag}", "beta": f"beta-{self.tag}"}

    def create(self) -> None:
        core = client.CoreV1Api(self.api)
        for ns in self.communities.values():
            core.create_namespace({"metadata": {"name": ns}})
        labels = {"prom": self.tag}
        for i in range(2):
            create_gpu_node(self.api, f"ada-{self.tag}-{i}", "ada", 4, labels=labels)
        create_gpu_node(
            self.api,
            f"bo-{self.tag}-0",
            "bo",
            4,
            product="NVIDIA-L4",
            memory_mib=23034,
            labels=labels,
        )
        alpha, beta = self.communities["alpha"], self.communities["beta"]
        self.objs.create_cluster_custom_object(
            GROUP,
            VERSION,
            "computepools",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ComputePool",
                "metadata": {"name": self.pool},
                "spec": {
                    "members": [
                        {"owner": "ada", "nodeSelector": {"prom": self.tag, OWNER_LABEL: "ada"}},
                        {"owner": "bo", "nodeSelector": {"prom": self.tag, OWNER_LABEL: "bo"}},
                    ],
                    "communities": [
                        {"name": alpha, "weight": 2.0, "guaranteedGPUs": 4},
                        {"name": beta, "weight": 1.0},
                    ],
                    "ray": {"backend": "kubernetes"},
                    "fairShare": {
                        "gpuClasses": [
                            {
                                "name": "H100",
                                "weight": 1.0,
                                "memory": "80Gi",
                                "products": ["NVIDIA H100 80GB HBM3"],
                            },
                            {
                                "name": "L4",
                                "weight": 0.25,
                                "memory": "24Gi",
                                "products": ["NVIDIA L4"],
                            },
                        ],
                    },
                },
            },
        )
        # 5 x 4 GPUs asked of 8 H100 (+4 L4): some are admitted, the rest queue
        for community, count in (("alpha", 3), ("beta", 2)):
            for i in range(count):
                self.model(self.communities[community], f"{community}-{i}")

    def model(self, namespace: str, name: str) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CommunityModel",
            "metadata": {"name": name},
            "spec": {
                "pool": self.pool,
                "training": {
                    "entrypoint": "python train.py",
                    "workers": 1,
                    "gpusPerWorker": 4,
                    "gpuClass": "H100",
                },
            },
        }
        self.objs.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "communitymodels", body
        )

    def pool_status(self) -> dict[str, Any]:
        got: Any = self.objs.get_cluster_custom_object(GROUP, VERSION, "computepools", self.pool)
        status: dict[str, Any] = got.get("status") or {}
        return status

    def models(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for ns in self.communities.values():
            got: Any = self.objs.list_namespaced_custom_object(
                GROUP, VERSION, ns, "communitymodels"
            )
            items += got["items"]
        return items


@pytest.fixture(scope="module")
def scraped(
    own_cluster: tuple[ControlPlane, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Scenario, Prometheus, OperatorProcess]]:
    cp, api = own_cluster
    port = free_port()
    run_dir = tmp_path_factory.mktemp("prom-operator")
    op = OperatorProcess(
        cp.kubeconfig,
        run_dir,
        (
            "--metrics-port",
            str(port),
            "--leader-election",
            "--leader-election-namespace",
            "polyculture-system",
        ),
    )
    prom = Prometheus(
        tmp_path_factory.mktemp("prometheus"),
        targets=[f"127.0.0.1:{port}"],
        rule_files=[CHART_FILES / "alerts.yaml"],
    )
    scenario = Scenario(api)
    op.start()
    prom.start()
    try:
        scenario.create()
        yield scenario, prom, op
    finally:
        prom.stop()
        op.stop()


def settled(scenario: Scenario) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The pool and model statuses once every model is holding or queued and the pool says so."""
    status = scenario.pool_status()
    models = scenario.models()
    phases = Counter((m.get("status") or {}).get("phase") for m in models)
    if len(models) != 5 or phases["Queued"] + sum(phases[p] for p in HOLDING) != 5:
        return None
    if not phases["Queued"] or not status.get("communities"):
        return None
    return status, models


def test_series_say_what_the_operator_wrote(
    scraped: tuple[Scenario, Prometheus, OperatorProcess],
) -> None:
    scenario, prom, op = scraped
    status, models = wait_for(
        lambda: settled(scenario), 120, f"models admitted or queued\n{op.log_tail()}"
    )
    pool = scenario.pool
    sel = f'{{pool="{pool}"}}'

    def same(expr: str, expected: float, **labels: str) -> bool:
        got = prom.value(expr, **labels)
        return got is not None and abs(got - expected) < 1e-6

    assert wait_for(lambda: prom.value('up{job="polyculture-operator"}') == 1, 30, "scraped")
    assert wait_for(lambda: prom.value("max(polyculture_leader)") == 1, 30, "leader")
    # capacity by class and by owner, as the pool status says
    for entry in status["capacity"]:
        cls = entry["gpuClass"]
        wait_for(
            lambda c=cls, n=entry["gpus"]: same(f"polyculture_pool_gpus{sel}", n, gpu_class=c),
            30,
            f"capacity of {cls}",
        )
    assert {e["gpuClass"]: e["gpus"] for e in status["capacity"]} == {"H100": 8, "L4": 4}
    for member in status["members"]:
        wait_for(
            lambda m=member: same(
                f"polyculture_member_available_gpus{sel}", m["availableGPUs"], owner=m["owner"]
            ),
            30,
            f"lent by {member['owner']}",
        )
    assert wait_for(
        lambda: same(f'polyculture_pool_condition{{pool="{pool}",condition="Ready"}}', 1),
        30,
        "pool Ready",
    )

    # per community: what the loop wrote in the pool status, and the queue as the models say
    def communities_match() -> bool:
        rows = scenario.pool_status().get("communities") or []
        return all(
            same(f"polyculture_community_entitled_gpus{sel}", r["entitledUnits"], community=n)
            and same(f"polyculture_community_allocated_gpus{sel}", r["allocatedUnits"], community=n)
            and same(f"polyculture_community_pending_gpus{sel}", r["pendingGPUs"], community=n)
            for r in rows
            for n in [r["name"]]
        )

    wait_for(communities_match, 30, "community series equal the pool status")
    queued = Counter(
        (m["status"].get("community") or m["metadata"]["namespace"])
        for m in models
        if m["status"].get("phase") == "Queued"
    )
    admitted = Counter(
        (m["status"].get("community") or m["metadata"]["namespace"])
        for m in models
        if (m.get("status") or {}).get("admission")
    )
    assert sum(queued.values()) >= 1 and sum(admitted.values()) >= 2
    for community in scenario.communities.values():
        wait_for(
            lambda c=community: same(
                f"polyculture_queue_length{sel}", queued.get(c, 0), community=c
            ),
            30,
            f"queue of {community}",
        )
        wait_for(
            lambda c=community: (
                same(
                    f"sum by (community) (polyculture_admissions_total{sel})",
                    admitted.get(c, 0),
                    community=c,
                )
                or admitted.get(c, 0) == 0
            ),
            30,
            f"admissions of {community}",
        )
    assert (prom.value(f"sum(polyculture_scheduler_cycle_duration_seconds_count{sel})") or 0) > 0
    # the ledger's given side grows while owners lend
    wait_for(
        lambda: (prom.value(f"sum(polyculture_member_gpu_seconds_provided_total{sel})") or 0) > 0,
        60,
        "GPU-seconds provided",
    )


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((CHART_FILES / "dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_every_dashboard_query_returns_data(
    scraped: tuple[Scenario, Prometheus, OperatorProcess],
) -> None:
    scenario, prom, _ = scraped
    wait_for(lambda: settled(scenario), 120, "scenario settled")
    queries = dashboard_queries()
    assert len(queries) >= 15

    empty: list[str] = []

    def all_answer() -> bool:
        empty.clear()
        for title, expr in queries:
            concrete = (
                expr.replace("$pool", scenario.pool)
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
            )
            if not prom.query(concrete):
                empty.append(f"{title}: {concrete}")
        return not empty

    try:
        wait_for(all_answer, 60, "every dashboard query has data", every=2)
    except AssertionError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(empty))


def test_no_alert_fires_on_a_healthy_pool(
    scraped: tuple[Scenario, Prometheus, OperatorProcess],
) -> None:
    _, prom, _ = scraped
    rules = wait_for(lambda: prom.query("count(ALERTS) or vector(0)"), 30, "rule evaluation")
    assert rules
    firing = [a for a in prom.alerts() if a["state"] == "firing"]
    assert not firing, firing
