"""One active operator at a time: a ``coordination.k8s.io`` Lease held by the active replica.

Built on the Kubernetes client's own leader election. A replica waits (``acquire``) until the
Lease is free or has expired, then renews it every ``retry_period_s`` in a background thread;
when it cannot renew within ``renew_deadline_s`` it has lost the lead and ``lost`` is set (the
operator then stops, so that two replicas never act at once). A replica that stops cleanly
releases the Lease, so that a waiting one takes over at its next retry instead of waiting for
the Lease to expire. Killed, its Lease expires after ``lease_duration_s``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

logger = logging.getLogger(__name__)
# the client logs every retry of a waiting replica at INFO
logging.getLogger("leaderelection").setLevel(logging.WARNING)


def default_identity() -> str:
    """The pod's name where the chart sets it, else host and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class _Election(leaderelection.LeaderElection):
    """The client's election, which stops renewing once the replica is stopping."""

    def __init__(self, config: Any, stopping: threading.Event) -> None:
        super().__init__(config)  # type: ignore[no-untyped-call]
        self._stopping = stopping

    def try_acquire_or_renew(self) -> bool:
        if self._stopping.is_set():
            return False
        return bool(super().try_acquire_or_renew())  # type: ignore[no-untyped-call]


@dataclass
class LeaderLease:
    """The Lease ``namespace/name`` as seen by one candidate, ``identity``."""

    namespace: str
    name: str = "polyculture-operator"
    identity: str = field(default_factory=default_identity)
    lease_duration_s: int = 8
    renew_deadline_s: int = 6
    retry_period_s: int = 1
    lost: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _election: _Election | None = None

    def acquire(self) -> None:
        """Block until this candidate holds the Lease, then keep renewing it in the background."""
        lock = LeaseLock(self.name, self.namespace, self.identity)  # type: ignore[no-untyped-call]
        config = electionconfig.Config(  # type: ignore[no-untyped-call]
            lock,
            lease_duration=self.lease_duration_s,
            renew_deadline=self.renew_deadline_s,
            retry_period=self.retry_period_s,
            onstarted_leading=lambda: None,
            onstopped_leading=lambda: None,
        )
        self._election = _Election(config, self._stopping)
        logger.info(f"{self.identity}: waiting for lease {self.namespace}/{self.name}")
        self._election.acquire()  # type: ignore[no-untyped-call]
        logger.info(f"{self.identity}: holds lease {self.namespace}/{self.name}")
        threading.Thread(target=self._renew, name="leader-lease", daemon=True).start()

    def _renew(self) -> None:
        assert self._election is not None
        self._election.renew_loop()  # type: ignore[no-untyped-call]
        if not self._stopping.is_set():
            logger.error(f"{self.identity}: lost lease {self.namespace}/{self.name}")
            self.lost.set()

    def release(self) -> None:
        """Stop renewing and free the Lease if this candidate still holds it."""
        self._stopping.set()
        api = client.CoordinationV1Api()
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.acquire_time = None
            lease.spec.renew_time = None
            api.replace_namespaced_lease(self.name, self.namespace, lease)
            logger.info(f"{self.identity}: released lease {self.namespace}/{self.name}")
        except ApiException as err:  # expiry frees it anyway
            logger.warning(f"{self.identity}: could not release the lease: {err.reason}")

    def holder(self) -> str | None:
        """Who holds the Lease now (None when free or absent)."""
        try:
            lease = client.CoordinationV1Api().read_namespaced_lease(self.name, self.namespace)
        except ApiException:
            return None
        return lease.spec.holder_identity if lease.spec else None
