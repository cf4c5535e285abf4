"""Status writes through the ``status`` subresource (JSON merge patch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client

from polyculture.api.meta import GROUP, VERSION
from polyculture.kube.client import api_client
from polyculture.metrics import API_WRITES

MERGE_PATCH = "application/merge-patch+json"


def patch_pool_status(name: str, status: Mapping[str, Any]) -> None:
    API_WRITES.labels("computepools", "status").inc()
    client.CustomObjectsApi(api_client()).patch_cluster_custom_object_status(
        GROUP, VERSION, "computepools", name, {"status": dict(status)}, _content_type=MERGE_PATCH
    )


def patch_model_status(namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``status`` into the model's status; the stored object as the server returned it."""
    API_WRITES.labels("communitymodels", "status").inc()
    api = client.CustomObjectsApi(api_client())
    stored = api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "communitymodels",
        name,
        {"status": dict(status)},
        _content_type=MERGE_PATCH,
    )
    return cast(dict[str, Any], stored)
