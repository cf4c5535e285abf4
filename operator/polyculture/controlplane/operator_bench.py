"""``polyculture bench operator`` (``make bench-operator``): admission at scale, real control plane.

    polyculture bench operator --models 1000 [--gpus-per-node 8] [--communities 3] [--json]

Starts a fresh local control plane (kwok plays the kubelets, the real kube-scheduler binds)
and the operator process, declares one pool on the ``kubernetes`` Ray backend with enough kwok
GPU nodes for every model, creates ``--models`` single-GPU training models at once (spread
over ``--communities`` namespaces, sent by ``--senders`` threads) and measures, from the
moment each create is sent (waiting at most ``--timeout`` in all, and ``--pods-wait`` for the
last Pods once every model is admitted):

- ``admit_latency_p50_s`` / ``admit_latency_p99_s``: until the operator has written the
  admission (``status.admission.admittedAt``, phase ``Admitted`` or later) — seen through a
  watch of the models, not by polling;
- ``admissions_per_s``: models admitted per second, from the first create sent to the last
  admission seen;
- ``pods_bound_p50_s`` / ``pods_bound_p99_s``: until every Pod of the model's Ray cluster is
  bound by the kube-scheduler (``spec.nodeName``), seen through a watch of the Pods;
- ``operator_rss_mb``: the operator's peak resident memory (``VmHWM``);
- ``api_requests_per_admission``: requests the API server counted
  (``apiserver_request_total``, every verb but WATCH) on ``polyculture.dev`` objects and on
  Pods/Services/Secrets (writes and Secret reads; the scheduler's bindings and kwok's status
  updates are subresources and not counted), less the benchmark's own, per admitted model;
- ``cycle_s_mean`` / ``cycles``: the admission loop's scheduling cycles
  (``polyculture_scheduler_cycle_duration_seconds`` of the operator's metrics);
- ``requests_by_kind``: every request the API server counted in the window (all clients,
  the control plane's own included; WATCH excepted), by verb and resource, those made at
  least once per twenty models, and ``GET communitymodels`` and ``LIST pods`` always;
- ``cpu_s`` / ``cpu_s_while_sending``: CPU seconds of each control-plane component, the
  operator and the benchmark itself, over the whole window (``window_s``) and while the
  creates were being sent: on a small machine, what the rate is spent on.
- ``requests_by_client`` (with ``--by-client``): the same requests by the client that sent
  them (its user agent: ``kopf``, ``OpenAPI-Generator`` for the operator's own calls through
  the Kubernetes client, ``kube-controller-manager-<version>/<controller>``, ``kwok-<version>``,
  ...), read from
  the API server's audit log; the audit log costs the API server CPU, so such a run's rates
  are not the benchmark's figures.

The creates start once the pool counts every node, every node Ready, and its admission loop
runs (the pool's ``BackendReady`` condition), and kwok has listed the Pods of every node (the
API server counted one ``LIST pods`` per node since the nodes were made), so that neither the
operator's start nor the nodes' are measured: kwok takes the nodes over one by one (lists the
Pods bound to each, ``fieldSelector=spec.nodeName=<node>``, as each node's kubelet does when
it starts), and it marks a node Ready well before it lists its Pods: on two busy cores, at
10,000 models (1,251 nodes), 363 of those lists came after the creates had started when the
benchmark waited for Ready only (``--by-client``: every one of them kwok's, each node listed
once). They also start at least ``GC_DISCOVERY_S`` after the CRDs are established, so that
the controller-manager's garbage collector watches CommunityModels by then: in a run of 1,000
models that started sooner it sent 103 ``GET communitymodels``, one per model whose owned
objects it saw first (``--by-client``), none in a run that started minutes later. The control
plane runs with ``GOGC=400`` (``BENCH_GOGC``).

``--operator-log PATH`` keeps the operator's log (the control plane's directory is removed).

``--backend-only`` leaves the operator out: the benchmark places ``--models`` single-GPU
clusters itself and creates them through the ``kubernetes`` backend (``--senders`` threads),
then prints ``creates_per_s``, ``pods_bound_p50_s`` / ``pods_bound_p99_s`` (backend create to
head Pod bound), ``api_requests_per_cluster`` and ``teardown_all_s``.

``--creates-only`` leaves the operator out as well: the API server alone, on an otherwise
idle control plane, creating ``--models`` CommunityModels from ``--senders`` threads; it
prints ``creates_per_s``, the CPU seconds of each process and the API server's CPU per
create (the ceiling the rest of the benchmark shares).

Nothing runs in a container on a kwok node, so a cluster never becomes Ready; the measured
path ends at "Pods bound". The operator tears down a cluster that is not ready within its
start timeout (300 s by default) and requeues its model (``ClusterStartFailed``): on kwok
every cluster would, so a run longer than that would measure the teardown and re-admission
of clusters that a real cluster's containers would have started (about 400 of them in a run
of 10,000 models), not admission. The benchmark therefore starts the operator with
``--cluster-start-timeout`` beyond the whole run (``--timeout`` + ``--pods-wait`` + 60 s),
and says so in its output (``cluster_start_timeout_s``). What a cluster that never starts
costs is not measured here. This is a measuring tool (it reads clocks); it is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

from polyculture.api.compute_pool import MAX_MEMBERS
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.runner import ControlPlane, free_port
from polyculture.controlplane.waiting import wait_for

GROUP, VERSION = "polyculture.dev", "v1alpha1"
REPO = Path(__file__).resolve().parents[3]
ADMITTED_PHASES = frozenset({"Admitted", "Training", "Trained", "Serving"})
OWNED_RESOURCES = frozenset({"pods", "services", "secrets"})
#: the control plane's Go garbage-collector target (``ControlPlane.go_gc``): less of the two
#: CPUs goes to the API server's and etcd's garbage collection, more to the operator
BENCH_GOGC = 400
#: kube-scheduler's and kube-controller-manager's client QPS (``ControlPlane.component_qps``):
#: at their defaults (50, 20) the scheduler binds about 25 Pods/s, fewer than the operator
#: admits, and the endpoints controllers fall minutes behind the Services
BENCH_COMPONENT_QPS = 500

#: kinds of request ``requests_by_kind`` shows however few: reads the benchmark waits out
ALWAYS_COUNTED = frozenset({"GET communitymodels", "LIST pods"})
#: kube-controller-manager's garbage collector looks for new resources every 30 s; until it
#: watches CommunityModels, each model whose Pods it sees is fetched once (a ``GET`` to check
#: that the owner exists): the creates start this long after the CRDs are established
GC_DISCOVERY_S = 40.0


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _proc_kib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return float(line.split()[1])
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def operator_requests(metrics_text: str) -> int:
    """Requests the operator's kind of traffic makes, from ``apiserver_request_total``."""
    total = 0
    for line in metrics_text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        value = float(line.rsplit(" ", 1)[1])
        if labels.get("verb") == "WATCH":
            continue
        if labels.get("group") == GROUP or (
            labels.get("resource") in OWNED_RESOURCES
            and not labels.get("subresource")
            and (labels.get("verb") in {"POST", "DELETE"} or labels.get("resource") == "secrets")
        ):
            total += int(value)
    return total


def requests_by_kind(metrics_text: str) -> dict[str, int]:
    """Every request the API server counted (``apiserver_request_total``, WATCH excepted), by
    ``VERB resource[/subresource]``: all clients together, the control plane's own included."""
    out: dict[str, int] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if labels.get("verb") == "WATCH":
            continue
        kind = labels.get("resource", "") + (
            "/" + labels["subresource"] if labels.get("subresource") else ""
        )
        key = f"{labels.get('verb')} {kind}"
        out[key] = out.get(key, 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def client_name(user_agent: str) -> str:
    """A client as its user agent names it: the program, and for kube-controller-manager the
    controller (the agent's last path element, e.g. ``garbage-collector``)."""
    program = user_agent.split(" ", 1)[0].split("/", 1)[0] or "?"
    if program.startswith("kube-controller-manager"):
        return f"{program}/{user_agent.rsplit('/', 1)[-1]}"
    return program


def requests_by_client(audit_log: Path, offset: int, at_least: int) -> dict[str, int]:
    """Requests in the API server's audit log from byte ``offset`` on, by ``client VERB
    resource[/subresource]`` (``client_name``), those made at least ``at_least`` times."""
    out: dict[str, int] = {}
    with audit_log.open("rb") as log:
        log.seek(offset)
        for line in log:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                kind = ref.get("resource", "") + (
                    "/" + ref["subresource"] if ref.get("subresource") else ""
                )
                key = f"{client_name(event.get('userAgent', ''))} {event.get('verb')} {kind}"
                out[key] = out.get(key, 0) + 1
    kept = {k: v for k, v in out.items() if v >= at_least}
    return dict(sorted(kept.items(), key=lambda kv: -kv[1]))


def pod_lists(metrics_text: str) -> int:
    """``LIST pods`` requests the API server counted so far (all clients)."""
    return requests_by_kind(metrics_text).get("LIST pods", 0)


def operator_metric(port: int, name: str) -> float:
    """The sum of a metric's samples on the operator's /metrics (0 when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


class Seen:
    """First time (monotonic) something was seen per key, filled by a watch thread."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.lock = threading.Lock()

    def mark(self, key: str) -> None:
        with self.lock:
            self.times.setdefault(key, time.monotonic())

    def count(self) -> int:
        with self.lock:
            return len(self.times)


def follow(
    stop: threading.Event,
    list_all: Callable[..., Any],
    on_event: Callable[[dict[str, Any]], None],
    **kwargs: Any,
) -> threading.Thread:
    """A thread that streams a watch of ``list_all`` into ``on_event`` until ``stop``.

    Raw JSON, not the client's model classes, and from the last version seen: the
    benchmark's own watches must not lag behind (or load the machine) at thousands of events.
    """

    def run() -> None:
        version: str | None = None
        while not stop.is_set():
            w = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in w.stream(  # type: ignore[no-untyped-call]
                    list_all,
                    timeout_seconds=30,
                    deserialize=False,
                    resource_version=version,
                    **kwargs,
                ):
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion") or version
                    on_event(obj)
                    if stop.is_set():
                        break
            except Exception:  # a dropped or expired watch: start another, from a list
                version = None
                time.sleep(0.2)
            finally:
                w.stop()  # type: ignore[no-untyped-call]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def model_body(name: str, pool: str, community: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CommunityModel",
        "metadata": {"name": name},
        "spec": {
            "pool": pool,
            "community": community,
            "training": {"entrypoint": "python train.py", "workers": 1, "gpusPerWorker": 1},
        },
    }


@contextlib.contextmanager
def _control_plane(
    prefix: str, senders: int, audit: bool = False
) -> Iterator[tuple[ControlPlane, client.ApiClient, Path]]:
    """A fresh benchmark control plane with the CRDs established, a client with a connection
    for each sender, and a scratch directory (all removed at the end)."""
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        ControlPlane(
            run_dir=Path(tmp) / "cp",
            go_gc=BENCH_GOGC,
            component_qps=BENCH_COMPONENT_QPS,
            audit=audit,
        ) as cp,
    ):
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
        api.configuration.connection_pool_maxsize = senders + 4
        yield cp, api, Path(tmp)


def _namespaces_and_nodes(
    api: Any, *, nodes: int, gpus_per_node: int, communities: int, senders: int
) -> tuple[list[str], list[str]]:
    """One namespace per community and ``nodes`` kwok GPU nodes of one owner per ten nodes
    (at most as many owners as a pool has members)."""
    core = client.CoreV1Api(api)
    names = [f"community-{i}" for i in range(communities)]
    for name in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    owners = min(MAX_MEMBERS, max(1, nodes // 10))
    owner_names = [f"owner-{i:02d}" for i in range(owners)]
    with ThreadPoolExecutor(senders) as pool_of_senders:
        list(
            pool_of_senders.map(
                lambda i: create_gpu_node(
                    api, f"gpu-{i:04d}", owner_names[i % owners], gpus_per_node
                ),
                range(nodes),
            )
        )
    return names, owner_names


def run(
    models: int,
    gpus_per_node: int,
    communities: int,
    senders: int,
    timeout_s: float,
    pods_wait_s: float,
    operator_log: Path | None = None,
    by_client: bool = False,
) -> dict[str, Any]:
    nodes = math.ceil(models / gpus_per_node) + 1
    with _control_plane("pc-opbench-", senders, audit=by_client) as (cp, api, tmp):
        objs, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        crds_at = time.monotonic()
        lists_before_nodes = pod_lists(cp.get("/metrics")[1].decode())
        names, owner_names = _namespaces_and_nodes(
            api, nodes=nodes, gpus_per_node=gpus_per_node, communities=communities, senders=senders
        )
        pool = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ComputePool",
            "metadata": {"name": "bench"},
            "spec": {
                "members": [
                    {"owner": o, "nodeSelector": {"polyculture.dev/owner": o}} for o in owner_names
                ],
                "communities": [{"name": n} for n in names],
                "ray": {"backend": "kubernetes"},
            },
        }
        objs.create_cluster_custom_object(GROUP, VERSION, "computepools", pool)
        port = free_port()
        start_timeout_s = timeout_s + pods_wait_s + 60  # see the module docstring
        op = OperatorProcess(
            cp.kubeconfig,
            tmp,
            ("--metrics-port", str(port), "--cluster-start-timeout", f"{start_timeout_s:g}"),
        )
        op.start()
        stop = threading.Event()
        try:

            def pool_ready() -> bool:
                """The pool counts every node and every node's GPUs healthy (the node is
                Ready: kwok took it over), and its admission loop runs (BackendReady)."""
                got: Any = objs.get_cluster_custom_object(GROUP, VERSION, "computepools", "bench")
                status = got.get("status") or {}
                backend = [
                    c for c in status.get("conditions") or [] if c.get("type") == "BackendReady"
                ]
                healthy = sum(int(m.get("healthyGPUs") or 0) for m in status.get("members") or [])
                return bool(
                    status.get("totalGPUs") == nodes * gpus_per_node
                    and healthy == nodes * gpus_per_node
                    and backend
                    and backend[0].get("status") == "True"
                )

            wait_for(
                pool_ready,
                max(300, nodes),
                f"pool status counts {nodes} Ready nodes, backend ready\n{op.log_tail()}",
                1.0,
            )
            wait_for(
                lambda: pod_lists(cp.get("/metrics")[1].decode()) - lists_before_nodes >= nodes,
                max(300, nodes),
                f"kwok lists the Pods of each of the {nodes} nodes (takes it over)",
                1.0,
            )
            time.sleep(max(0.0, crds_at + GC_DISCOVERY_S - time.monotonic()))

            admitted, bound = Seen(), Seen()

            def on_model(obj: dict[str, Any]) -> None:
                status = obj.get("status") or {}
                if status.get("phase") in ADMITTED_PHASES or (status.get("admission") or {}).get(
                    "admittedAt"
                ):
                    admitted.mark(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")

            def on_pod(obj: dict[str, Any]) -> None:
                labels = obj["metadata"].get("labels") or {}
                if (obj.get("spec") or {}).get("nodeName") and labels.get(
                    "app.kubernetes.io/component"
                ) == "head":  # single-GPU models: the head is the only Pod
                    model = labels.get("polyculture.dev/model", "")
                    bound.mark(f"{obj['metadata']['namespace']}/{model}")

            follow(
                stop,
                objs.list_cluster_custom_object,
                on_model,
                group=GROUP,
                version=VERSION,
                plural="communitymodels",
            )
            follow(
                stop,
                core.list_pod_for_all_namespaces,
                on_pod,
                label_selector="app.kubernetes.io/managed-by=polyculture",
            )
            assert op.proc is not None
            pids = {**cp.pids(), "operator": op.proc.pid, "benchmark": os.getpid()}
            before_cpu = cpu_by_process(pids)
            before_text = cp.get("/metrics")[1].decode()
            before_requests, before_kinds = (
                operator_requests(before_text),
                requests_by_kind(before_text),
            )
            audit_from = cp.audit_log.stat().st_size if by_client else 0
            before_cycles = operator_metric(
                port, "polyculture_scheduler_cycle_duration_seconds_count"
            )
            before_cycle_s = operator_metric(
                port, "polyculture_scheduler_cycle_duration_seconds_sum"
            )

            sent: dict[str, float] = {}
            keys = [(names[i % communities], f"m-{i:05d}") for i in range(models)]

            def send(key: tuple[str, str]) -> None:
                namespace, name = key
                sent[f"{namespace}/{name}"] = time.monotonic()
                objs.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    "communitymodels",
                    model_body(name, "bench", namespace),
                )

            start = time.monotonic()
            with ThreadPoolExecutor(senders) as pool_of_senders:
                list(pool_of_senders.map(send, keys))
            sent_s = time.monotonic() - start
            sent_cpu = cpu_by_process(pids)
            peak_rss_kib = 0.0
            deadline = start + timeout_s
            all_admitted_at: float | None = None
            while time.monotonic() < deadline and bound.count() < models:
                if all_admitted_at is None and admitted.count() >= models:
                    all_admitted_at = time.monotonic()
                if all_admitted_at is not None and time.monotonic() > all_admitted_at + pods_wait_s:
                    break
                if op.proc is not None:
                    peak_rss_kib = max(peak_rss_kib, _proc_kib(op.proc.pid, "VmHWM"))
                time.sleep(0.5)
            if op.proc is not None:
                peak_rss_kib = max(peak_rss_kib, _proc_kib(op.proc.pid, "VmHWM"))
            after_text = cp.get("/metrics")[1].decode()
            requests = operator_requests(after_text) - before_requests
            kinds = {
                k: v - before_kinds.get(k, 0)
                for k, v in requests_by_kind(after_text).items()
                if v - before_kinds.get(k, 0) >= max(1, models // 20) or k in ALWAYS_COUNTED
            }
            requests -= models  # the benchmark's own creates
            clients = (
                requests_by_client(cp.audit_log, audit_from, max(1, models // 20))
                if by_client
                else None
            )
            cycles = operator_metric(port, "polyculture_scheduler_cycle_duration_seconds_count")
            cycle_s = operator_metric(port, "polyculture_scheduler_cycle_duration_seconds_sum")
            after_cpu = cpu_by_process(pids)
            window_s = time.monotonic() - start
        finally:
            stop.set()
            op.stop()
            if operator_log is not None:
                shutil.copyfile(op.log, operator_log)
    admit = [admitted.times[k] - sent[k] for k in sent if k in admitted.times]
    pods = [bound.times[k] - sent[k] for k in sent if k in bound.times]
    last_admission = max(admitted.times.values(), default=start)
    n_cycles = cycles - before_cycles
    return {
        "models": models,
        "nodes": nodes,
        "gpus_per_node": gpus_per_node,
        "communities": communities,
        "sent_s": round(sent_s, 2),
        "admitted": len(admit),
        "admissions_per_s": round(len(admit) / max(1e-9, last_admission - start), 1),
        "admit_latency_p50_s": round(statistics.median(admit), 2) if admit else None,
        "admit_latency_p99_s": round(percentile(admit, 99), 2) if admit else None,
        "pods_bound": len(pods),
        "pods_bound_p50_s": round(statistics.median(pods), 2) if pods else None,
        "pods_bound_p99_s": round(percentile(pods, 99), 2) if pods else None,
        "operator_rss_mb": round(peak_rss_kib / 1024, 1),
        "api_requests_per_admission": round(requests / max(1, len(admit)), 2),
        "cycles": int(n_cycles),
        "cycle_s_mean": round((cycle_s - before_cycle_s) / n_cycles, 4) if n_cycles else None,
        "window_s": round(window_s, 1),
        "cluster_start_timeout_s": start_timeout_s,
        "requests_by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "cpu_s": {k: round(after_cpu[k] - before_cpu[k], 1) for k in before_cpu},
        "cpu_s_while_sending": {k: round(sent_cpu[k] - before_cpu[k], 1) for k in before_cpu},
        **({"requests_by_client": clients} if clients is not None else {}),
    }


def run_creates(models: int, communities: int, senders: int) -> dict[str, Any]:
    """The API server alone: ``models`` CommunityModels created by ``senders`` threads on a
    control plane with no operator (and no pool: nothing reacts to them), timed, with the
    CPU seconds each process spent."""
    with _control_plane("pc-createbench-", senders) as (cp, api, _):
        objs, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        names = [f"community-{i}" for i in range(communities)]
        for name in names:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        pids = {**cp.pids(), "benchmark": os.getpid()}

        def send(i: int) -> None:
            namespace = names[i % communities]
            objs.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "communitymodels",
                model_body(f"m-{i:05d}", "none", namespace),
            )

        before = cpu_by_process(pids)
        start = time.monotonic()
        with ThreadPoolExecutor(senders) as pool_of_senders:
            list(pool_of_senders.map(send, range(models)))
        took = time.monotonic() - start
        after = cpu_by_process(pids)
    return {
        "mode": "creates",
        "models": models,
        "senders": senders,
        "create_s": round(took, 2),
        "creates_per_s": round(models / took, 1),
        "cpu_s": {k: round(after[k] - before[k], 1) for k in before},
        "apiserver_cpu_ms_per_create": round(
            1000 * (after["kube-apiserver"] - before["kube-apiserver"]) / models, 2
        ),
    }


def run_backend(
    models: int, gpus_per_node: int, communities: int, senders: int, timeout_s: float
) -> dict[str, Any]:
    """The ``kubernetes`` backend alone, without the operator: ``models`` single-GPU clusters
    created by ``senders`` threads (each placed by hand, ``gpus_per_node`` per node), timed
    from each create to its head Pod bound, then all torn down."""
    from polyculture.api.compute_pool import RaySettings
    from polyculture.ray.backend import NodePlacement, Placement, WorkloadRef
    from polyculture.ray.kubernetes import KubernetesBackend

    nodes = math.ceil(models / gpus_per_node)
    with _control_plane("pc-backendbench-", senders) as (cp, api, tmp):
        objs, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        names, owner_names = _namespaces_and_nodes(
            api, nodes=nodes, gpus_per_node=gpus_per_node, communities=communities, senders=senders
        )

        def model(i: int) -> WorkloadRef:
            namespace, name = names[i % communities], f"m-{i:05d}"
            made: Any = objs.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "communitymodels", model_body(name, "none", namespace)
            )
            return WorkloadRef(
                namespace=namespace, name=name, uid=made["metadata"]["uid"], community=namespace
            )

        with ThreadPoolExecutor(senders) as pool_of_senders:
            workloads = list(pool_of_senders.map(model, range(models)))
        placements = [
            Placement(
                gpus_per_worker=1,
                nodes=(
                    NodePlacement(
                        node=f"gpu-{i // gpus_per_node:04d}",
                        owner=owner_names[(i // gpus_per_node) % len(owner_names)],
                        gpu_class="H100",
                    ),
                ),
            )
            for i in range(models)
        ]
        stop = threading.Event()
        bound = Seen()

        def on_pod(obj: dict[str, Any]) -> None:
            labels = obj["metadata"].get("labels") or {}
            if (obj.get("spec") or {}).get("nodeName"):
                bound.mark(f"{obj['metadata']['namespace']}/{labels.get('polyculture.dev/model')}")

        follow(
            stop,
            core.list_pod_for_all_namespaces,
            on_pod,
            label_selector="app.kubernetes.io/managed-by=polyculture",
        )
        backend = KubernetesBackend("bench", RaySettings(), api, token_dir=tmp / "tokens")
        try:
            before = operator_requests(cp.get("/metrics")[1].decode())
            sent: dict[str, float] = {}

            def create(i: int) -> Any:
                w = workloads[i]
                sent[f"{w.namespace}/{w.name}"] = time.monotonic()
                return backend.create(w, placements[i])

            start = time.monotonic()
            with ThreadPoolExecutor(senders) as pool_of_senders:
                handles = list(pool_of_senders.map(create, range(models)))
            create_s = time.monotonic() - start
            wait_for(lambda: bound.count() >= models, timeout_s, "every head Pod bound", 0.2)
            requests = operator_requests(cp.get("/metrics")[1].decode()) - before
            start_down = time.monotonic()
            with ThreadPoolExecutor(senders) as pool_of_senders:
                list(pool_of_senders.map(backend.teardown, handles))

            def all_gone() -> bool:
                left = core.list_pod_for_all_namespaces(
                    label_selector="app.kubernetes.io/managed-by=polyculture", limit=1
                )
                return not left.items

            wait_for(all_gone, timeout_s, "every Pod deleted", 0.5)
            teardown_s = time.monotonic() - start_down
        finally:
            stop.set()
            backend.close()
    latencies = [bound.times[k] - sent[k] for k in sent if k in bound.times]
    return {
        "mode": "backend",
        "clusters": models,
        "nodes": nodes,
        "create_s": round(create_s, 2),
        "creates_per_s": round(models / create_s, 1),
        "pods_bound": len(latencies),
        "pods_bound_p50_s": round(statistics.median(latencies), 2),
        "pods_bound_p99_s": round(percentile(latencies, 99), 2),
        "api_requests_per_cluster": round(requests / models, 2),
        "teardown_all_s": round(teardown_s, 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="polyculture bench operator",
        description="Admit N single-GPU models on kwok GPU nodes; print the rates and latencies.",
    )
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--communities", type=int, default=3)
    parser.add_argument("--senders", type=int, default=8, help="threads sending the creates")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait, at most")
    parser.add_argument(
        "--pods-wait",
        type=float,
        default=120,
        help="once every model is admitted, seconds to wait for the last Pods to be bound",
    )
    parser.add_argument(
        "--backend-only",
        action="store_true",
        help="no operator: time the kubernetes backend alone (create -> head Pod bound)",
    )
    parser.add_argument(
        "--creates-only",
        action="store_true",
        help="no operator: time the API server alone creating the models (creates/s, CPU)",
    )
    parser.add_argument(
        "--operator-log", type=Path, default=None, help="copy the operator's log to this file"
    )
    parser.add_argument(
        "--by-client",
        action="store_true",
        help="also count the requests by client (user agent) from the API server's audit log"
        " (requests_by_client; the audit log costs the API server some CPU: rates are lower)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for name in ("models", "gpus_per_node", "communities", "senders"):
        if getattr(args, name) < 1:
            print(
                f"polyculture bench operator: --{name.replace('_', '-')} must be >= 1",
                file=sys.stderr,
            )
            return 2
    if args.creates_only:
        alone = run_creates(args.models, args.communities, args.senders)
        print(json.dumps(alone) if args.json else yaml.safe_dump(alone, sort_keys=False))
        return 0
    if args.backend_only:
        alone = run_backend(
            args.models, args.gpus_per_node, args.communities, args.senders, args.timeout
        )
        print(json.dumps(alone) if args.json else yaml.safe_dump(alone, sort_keys=False))
        return 0 if alone["pods_bound"] == args.models else 1
    result = run(
        args.models,
        args.gpus_per_node,
        args.communities,
        args.senders,
        args.timeout,
        args.pods_wait,
        args.operator_log,
        args.by_client,
    )
    print(json.dumps(result) if args.json else yaml.safe_dump(result, sort_keys=False))
    return 0 if result["admitted"] == args.models and result["pods_bound"] == args.models else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
