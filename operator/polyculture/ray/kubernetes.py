"""The ``kubernetes`` cluster backend: each workload's Ray cluster as Pods of its namespace.

    backend = KubernetesBackend(pool.metadata.name, pool.spec.ray)  # the operator's client
    backend = KubernetesBackend("gpus", RaySettings(), api=api_client)  # or a given client

The constructor takes what a pool gives: the pool's name, its ``spec.ray``
(:class:`polyculture.api.compute_pool.RaySettings`: image and Ray version), and optionally a
``kubernetes.client.ApiClient`` (default: :func:`polyculture.kube.client.api_client`, the
operator's). It starts two watches (Pods and Services of this pool's clusters, all
namespaces) and answers ``find``/``clusters``/``status`` from their indexes, never from a
list per call; :meth:`KubernetesBackend.close` stops them. Without a pool
(``KubernetesBackend()``) one backend serves every pool: it watches the clusters of all
pools, labels each cluster with ``WorkloadRef.pool``, and runs the default image.

What a cluster is made of (head Pod, worker Pods, Service, token Secret, all owned by the
CommunityModel) is built by :mod:`polyculture.ray.manifests`; where it stands is read from
its Pods by :mod:`polyculture.ray.podstatus`; every API call goes through
:mod:`polyculture.kube`. A workload's :class:`WorkloadRef` must carry the model's ``uid``
(the owner reference); ``community`` becomes a label.

- ``create`` is idempotent: what exists (found in the index, or refused with 409) is kept,
  what is missing is created — so a create interrupted by a crash is completed, not doubled.
- ``status`` is ``Ready`` when every Pod is bound to its placed node, ``Running`` and
  ``Ready``, and the Ray dashboard answers through the Service (``probe_dashboard``); a Pod
  the scheduler cannot bind is reported in the status message, and fails the cluster after
  ``unschedulable_after_s``.
- Jobs and Serve go through the same clients as the ``local`` backend
  (:class:`polyculture.ray.clients.RayClusterClient`), with the token from the cluster's
  Secret, written to a 0600 file of a private directory (``ClusterHandle.token_path``).
- ``teardown`` deletes the Pods, the Service and the Secret; idempotent.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyculture.api.compute_pool import RaySettings
from polyculture.kube import objects
from polyculture.kube.client import api_client as operator_client
from polyculture.kube.index import WatchIndex, pod_index, service_index
from polyculture.ray import manifests
from polyculture.ray.backend import (
    ClusterHandle,
    ClusterPhase,
    ClusterStatus,
    Placement,
    WorkloadRef,
)
from polyculture.ray.clients import RayClients, RayClusterClient, dashboard_json, read_token
from polyculture.ray.podstatus import pods_status

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)


class KubernetesBackend(RayClients):
    """Ray clusters as Pods; see the module docstring."""

    name = "kubernetes"

    def __init__(
        self,
        pool: str | None = None,
        ray: RaySettings | None = None,
        api: ApiClient | None = None,
        *,
        size: manifests.PodSize | None = None,
        token_dir: Path | None = None,
        probe_dashboard: bool = True,
        unschedulable_after_s: float = 60.0,
        sync_timeout_s: float = 30.0,
    ) -> None:
        ray = ray or RaySettings()
        self.pool = pool
        self.image = ray.image
        self.ray_version = ray.version
        self.api = api or operator_client()
        self.size = size or manifests.PodSize()
        self.probe_dashboard = probe_dashboard
        self.unschedulable_after_s = unschedulable_after_s
        self.sync_timeout_s = sync_timeout_s
        self.token_dir = Path(token_dir or tempfile.mkdtemp(prefix="pc-ray-tokens-"))
        self.token_dir.mkdir(parents=True, exist_ok=True)
        self.token_dir.chmod(0o700)
        selector = manifests.selector(pool)
        group = manifests.CLUSTER_LABEL
        self.pods = pod_index(self.api, label_selector=selector, group_label=group)
        self.services = service_index(self.api, label_selector=selector, group_label=group)

    def close(self) -> None:
        """Stop the watches (the clusters stay)."""
        self.pods.stop()
        self.services.stop()

    # -- create / find / status / teardown ---------------------------------------------------

    def spec(self, workload: WorkloadRef, placement: Placement) -> manifests.RayCluster:
        return manifests.RayCluster(
            workload=workload,
            placement=placement,
            pool=workload.pool if self.pool is None else self.pool,
            image=self.image,
            ray_version=self.ray_version,
            size=self.size,
        )

    def create(self, workload: WorkloadRef, placement: Placement) -> ClusterHandle:
        self._synced()
        existing = self.find(workload)
        if existing is not None:
            placement = existing.placement  # adopt: what was admitted then stands
        spec = self.spec(workload, placement)
        token = self._ensure_token(spec)
        have_service = self.services.get(spec.namespace, manifests.service_name(spec.name))
        if have_service is None:
            self._create(self.services, manifests.head_service(spec))
        for pod in manifests.pods(spec):
            if self.pods.get(spec.namespace, pod["metadata"]["name"]) is None:
                self._create(self.pods, pod)
        if existing is not None:
            log.info("cluster %s for %s exists; adopted it", spec.name, workload)
            return existing
        log.info("created cluster %s for %s on %s", spec.name, workload, _nodes(placement))
        head = self.pods.get(spec.namespace, manifests.head_pod_name(spec.name))
        made = None if head is None else self._from_head(head)
        return made or self._handle(workload, placement, time.time(), token=token)

    def find(self, workload: WorkloadRef) -> ClusterHandle | None:
        self._synced()
        head = self.pods.get(workload.namespace, manifests.head_pod_name(workload.cluster_name))
        if head is None or head["metadata"].get("deletionTimestamp"):
            return None
        handle = self._from_head(head)
        if handle is None or (workload.uid and handle.workload.uid != workload.uid):
            return None
        return handle

    def clusters(self) -> list[ClusterHandle]:
        self._synced()
        found = []
        for cluster in self.pods.groups():
            for pod in self.pods.group(cluster):
                labels = pod["metadata"].get("labels") or {}
                if labels.get(manifests.COMPONENT) != manifests.HEAD:
                    continue
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                handle = self._from_head(pod)
                if handle is not None:
                    found.append(handle)
        return found

    def pods_of(self, cluster: ClusterHandle) -> list[dict[str, Any]]:
        """The cluster's Pods as the watch last saw them (API JSON)."""
        self._synced()
        return [
            p
            for p in self.pods.group(cluster.name)
            if p["metadata"].get("namespace") == cluster.workload.namespace
        ]

    def status(self, cluster: ClusterHandle) -> ClusterStatus:
        status = pods_status(
            self.pods_of(cluster),
            expected=len(cluster.placement.nodes),
            now=time.time(),
            unschedulable_after_s=self.unschedulable_after_s,
        )
        if status.phase is not ClusterPhase.READY or not self.probe_dashboard:
            return status
        try:
            self._dashboard_version(cluster)
        except (OSError, ValueError) as error:
            return ClusterStatus(
                phase=ClusterPhase.STARTING,
                nodes_alive=status.nodes_alive,
                nodes_expected=status.nodes_expected,
                message=f"Pods Running; Ray dashboard not reachable through the Service: {error}",
            )
        return status

    def teardown(self, cluster: ClusterHandle) -> None:
        namespace, name = cluster.workload.namespace, cluster.name
        pods = {p["metadata"]["name"] for p in self.pods_of(cluster)}
        pods |= {p["metadata"]["name"] for p in manifests.pods(self._spec_of(cluster))}
        for pod in sorted(pods):
            objects.delete(self.api, "Pod", namespace, pod)
        objects.delete(self.api, "Service", namespace, manifests.service_name(name))
        objects.delete(self.api, "Secret", namespace, manifests.secret_name(name))
        Path(cluster.token_path).unlink(missing_ok=True)
        log.info("cluster %s torn down", name)

    # -- jobs and serve ----------------------------------------------------------------------

    def client(self, cluster: ClusterHandle) -> RayClusterClient:
        return RayClusterClient(
            cluster.dashboard_url,
            read_token(cluster.token_path),
            serve_url=cluster.serve_url,
            http_host="0.0.0.0",  # the head Pod's Serve proxy, reached through the Service
            http_port=manifests.PORTS["serve"],
        )

    # -- internals ---------------------------------------------------------------------------

    def _synced(self) -> None:
        self.pods.wait_synced(self.sync_timeout_s)
        self.services.wait_synced(self.sync_timeout_s)

    def _create(self, index: WatchIndex, body: Mapping[str, Any]) -> None:
        made = objects.create(self.api, body)
        if made is not None:
            index.apply("ADDED", made)  # visible at once; the watch confirms it

    def _ensure_token(self, spec: manifests.RayCluster) -> str:
        """The cluster's token: the Secret's if it exists, else a new one in a new Secret."""
        token = secrets.token_hex(16)
        made = objects.create(self.api, manifests.token_secret(spec, token))
        if made is None:
            found = objects.secret_value(
                self.api, spec.namespace, manifests.secret_name(spec.name), manifests.TOKEN_KEY
            )
            if found is None:
                raise RuntimeError(f"Secret {spec.namespace}/{spec.name}-token has no token")
            token = found
        self._write_token(spec.namespace, spec.name, token)
        return token

    def _token_path(self, namespace: str, cluster: str) -> Path:
        return self.token_dir / f"{namespace}.{cluster}"

    def _write_token(self, namespace: str, cluster: str, token: str) -> Path:
        path = self._token_path(namespace, cluster)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token)
        return path

    def _handle(
        self, workload: WorkloadRef, placement: Placement, created_at: float, token: str | None
    ) -> ClusterHandle:
        name, namespace = workload.cluster_name, workload.namespace
        path = self._token_path(namespace, name)
        if token is not None:
            self._write_token(namespace, name, token)
        elif not path.exists():
            found = objects.secret_value(
                self.api, namespace, manifests.secret_name(name), manifests.TOKEN_KEY
            )
            if found is not None:
                self._write_token(namespace, name, found)
        return ClusterHandle(
            name=name,
            backend=self.name,
            workload=workload,
            placement=placement,
            dashboard_url=manifests.dashboard_url(name, namespace),
            serve_url=manifests.serve_url(name, namespace),
            token_path=str(path),
            created_at=created_at,
        )

    def _from_head(self, head: Mapping[str, Any]) -> ClusterHandle | None:
        annotations = head["metadata"].get("annotations") or {}
        try:
            workload = manifests.parse_workload(annotations[manifests.WORKLOAD_ANNOTATION])
            placement = manifests.parse_placement(annotations[manifests.PLACEMENT_ANNOTATION])
        except (KeyError, ValueError, TypeError) as error:
            log.warning("Pod %s: unreadable cluster annotations (%s)", head["metadata"], error)
            return None
        created = head["metadata"].get("creationTimestamp")
        return self._handle(workload, placement, _epoch(created), token=None)

    def _spec_of(self, cluster: ClusterHandle) -> manifests.RayCluster:
        return self.spec(cluster.workload, cluster.placement)

    def _dashboard_version(self, cluster: ClusterHandle) -> Mapping[str, Any]:
        body: Mapping[str, Any] = dashboard_json(cluster, "/api/version", timeout_s=2)
        return body


def _nodes(placement: Placement) -> str:
    return ",".join(n.node for n in placement.nodes)


def _epoch(stamp: object) -> float:
    from datetime import datetime

    if isinstance(stamp, str) and stamp:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return time.time()
