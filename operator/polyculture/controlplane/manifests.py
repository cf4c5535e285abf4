"""Bodies of the operator's own resources, as a user would apply them to the local control plane.

Tests and benchmarks build their ComputePools and CommunityModels here, so that a change of the
API is made once. The bodies are plain JSON, sent as they are: what the API server's schema and
the operator judge is exactly what a user's ``kubectl apply`` would send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from polyculture.api.meta import GROUP, VERSION

API_VERSION = f"{GROUP}/{VERSION}"


def member(owner: str, selector: Mapping[str, str], **fields: Any) -> dict[str, Any]:
    """A pool member: the owner's nodes are those with the ``selector``'s labels."""
    return {"owner": owner, "nodeSelector": dict(selector), **fields}


def compute_pool(
    name: str,
    members: Iterable[Mapping[str, Any]],
    communities: Iterable[str | Mapping[str, Any]],
    *,
    backend: str | None = "kubernetes",
    **spec: Any,
) -> dict[str, Any]:
    """A ComputePool of ``members`` (see :func:`member`) lending to ``communities`` (names, or
    whole entries with a weight or a guarantee); ``backend`` None leaves the default."""
    body_spec: dict[str, Any] = {
        "members": [dict(m) for m in members],
        "communities": [{"name": c} if isinstance(c, str) else dict(c) for c in communities],
        **spec,
    }
    if backend is not None:
        body_spec["ray"] = {**body_spec.get("ray", {}), "backend": backend}
    return {
        "apiVersion": API_VERSION,
        "kind": "ComputePool",
        "metadata": {"name": name},
        "spec": body_spec,
    }


def training_model(
    name: str,
    pool: str,
    *,
    workers: int = 1,
    gpus: int = 1,
    entrypoint: str = "python train.py",
    namespace: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A CommunityModel that trains on ``pool``: ``workers`` workers of ``gpus`` GPUs each."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "CommunityModel",
        "metadata": metadata,
        "spec": {
            "pool": pool,
            "training": {"entrypoint": entrypoint, "workers": workers, "gpusPerWorker": gpus},
            **spec,
        },
    }
