"""Choosing a pool's cluster backend from ``spec.ray``: one small factory.

``local`` is the embedded backend (:class:`polyculture.ray.local.LocalBackend`), one for the
whole operator; its state directory holds the clusters' state files and, for models without a
``checkpointURI``, their checkpoints. ``kubernetes`` is imported lazily from
``polyculture.ray.kubernetes`` and built per pool with the pool's ``spec.ray`` (image, Ray
version): it watches that pool's clusters only. A pool whose ``spec.ray`` changes gets a new
one (clusters already running keep their image). When a backend cannot be loaded the pool
reports :class:`BackendUnavailableError` as a condition.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyculture.api.compute_pool import RaySettings
from polyculture.loop.actions import READY_TIMEOUT_S
from polyculture.ray.backend import ClusterBackend

log = logging.getLogger(__name__)


class BackendUnavailableError(Exception):
    """The pool's backend cannot be used here (not installed, not configured)."""


def settings_key(ray: RaySettings) -> tuple[str, str, str]:
    """What makes two pools' backends differ: kind, image, Ray version."""
    return (ray.backend.value, str(ray.image), str(ray.version))


@dataclass
class BackendSettings:
    """Where the local backend keeps its state, whether its clusters outlive us, and the
    backends in use (the local one shared, a kubernetes one per pool)."""

    local_state_dir: Path
    #: True: local clusters die with the operator process (no adoption after a restart)
    local_fate_share: bool = False
    #: seconds a new Ray cluster may take to become ready (``polyculture run
    #: --cluster-start-timeout``); then it is torn down and its model requeued
    ready_timeout_s: float = READY_TIMEOUT_S
    _local: ClusterBackend | None = field(default=None, repr=False)
    _pools: dict[str, tuple[tuple[str, str, str], ClusterBackend]] = field(
        default_factory=dict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def checkpoint_root(self) -> Path:
        return self.local_state_dir / "checkpoints"

    def local(self) -> ClusterBackend:
        """The operator-wide ``local`` backend."""
        with self._lock:
            if self._local is None:
                self._local = self._make_local()
            return self._local

    def for_pool(self, pool: str, ray: RaySettings) -> ClusterBackend:
        """The backend of ``pool`` for its ``spec.ray``; the same object while it is unchanged."""
        if ray.backend.value == "local":
            return self.local()
        key = settings_key(ray)
        with self._lock:
            held = self._pools.get(pool)
            if held is not None and held[0] == key:
                return held[1]
        made = self._make_kubernetes(pool, ray) if key[0] == "kubernetes" else _unknown(key[0])
        with self._lock:
            old = self._pools.get(pool)
            self._pools[pool] = (key, made)
        if old is not None:
            _close(old[1])
        return made

    def forget(self, pool: str) -> None:
        """The pool's loop ended: stop its backend's watches (its clusters stay)."""
        with self._lock:
            held = self._pools.pop(pool, None)
        if held is not None:
            _close(held[1])

    def _make_local(self) -> ClusterBackend:
        from polyculture.ray.local import LocalBackend

        self.local_state_dir.mkdir(parents=True, exist_ok=True)
        return LocalBackend(self.local_state_dir, fate_share=self.local_fate_share)

    @staticmethod
    def _make_kubernetes(pool: str | None, ray: RaySettings) -> ClusterBackend:
        try:
            module: Any = importlib.import_module("polyculture.ray.kubernetes")
            backend: ClusterBackend = module.KubernetesBackend(pool, ray)
        except (ImportError, AttributeError, TypeError) as err:
            raise BackendUnavailableError(
                f"the kubernetes Ray backend is not available in this operator: {err}"
            ) from err
        return backend


def _unknown(kind: str) -> ClusterBackend:
    raise BackendUnavailableError(f"unknown Ray backend {kind!r}")


def _close(backend: ClusterBackend) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        try:
            close()
        except Exception as err:  # a watch that will not stop must not stop the loop
            log.warning("closing a Ray backend: %s", err)
