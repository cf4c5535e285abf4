"""Choosing a pool's cluster backend from ``spec.ray.backend``: one small factory.

``local`` is the embedded backend (:class:`polyculture.ray.local.LocalBackend`); its state
directory holds the clusters' state files and, for models without a ``checkpointURI``, their
checkpoints. ``kubernetes`` is imported lazily from ``polyculture.ray.kubernetes``; when it
cannot be loaded the pool reports :class:`BackendUnavailableError` as a condition.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyculture.ray.backend import ClusterBackend


class BackendUnavailableError(Exception):
    """The pool's backend cannot be used here (not installed, not configured)."""


@dataclass
class BackendSettings:
    """Where the local backend keeps its state, and whether its clusters outlive us."""

    local_state_dir: Path
    #: True: local clusters die with the operator process (no adoption after a restart)
    local_fate_share: bool = False
    _cache: dict[str, ClusterBackend] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def checkpoint_root(self) -> Path:
        return self.local_state_dir / "checkpoints"

    def backend(self, kind: str) -> ClusterBackend:
        """The backend for ``kind`` (one object per kind, shared by the pools)."""
        with self._lock:
            if kind not in self._cache:
                self._cache[kind] = self._make(kind)
            return self._cache[kind]

    def _make(self, kind: str) -> ClusterBackend:
        if kind == "local":
            from polyculture.ray.local import LocalBackend

            self.local_state_dir.mkdir(parents=True, exist_ok=True)
            return LocalBackend(self.local_state_dir, fate_share=self.local_fate_share)
        if kind == "kubernetes":
            try:
                module: Any = importlib.import_module("polyculture.ray.kubernetes")
                backend: ClusterBackend = module.KubernetesBackend()
            except (ImportError, AttributeError, TypeError) as err:
                raise BackendUnavailableError(
                    f"the kubernetes Ray backend is not available in this operator: {err}"
                ) from err
            return backend
        raise BackendUnavailableError(f"unknown Ray backend {kind!r}")
