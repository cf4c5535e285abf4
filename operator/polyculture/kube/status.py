"""Status writes through the ``status`` subresource (JSON merge patch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

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
    stored = _patch_model_status(namespace, name, {"status": dict(status)})
    assert stored is not None
    return stored


def patch_model_status_if_unchanged(
    namespace: str, name: str, status: Mapping[str, Any], resource_version: str
) -> dict[str, Any] | None:
    """Like :func:`patch_model_status`, only if the model is still at ``resource_version``.

    A judgement made on an older copy of the model (an index lags behind the writes of the
    admission loop) must not overwrite what was written since: the API server refuses the
    patch (409 Conflict) and None is returned; the next event judges the current object.
    """
    body = {"metadata": {"resourceVersion": resource_version}, "status": dict(status)}
    return _patch_model_status(namespace, name, body, conflict_ok=True)


def read_model(namespace: str, name: str) -> dict[str, Any] | None:
    """The model as stored now; None if it is gone."""
    api = client.CustomObjectsApi(api_client())
    try:
        stored = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "communitymodels", name
        )
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return cast(dict[str, Any], stored)


def _patch_model_status(
    namespace: str, name: str, body: Mapping[str, Any], *, conflict_ok: bool = False
) -> dict[str, Any] | None:
    API_WRITES.labels("communitymodels", "status").inc()
    api = client.CustomObjectsApi(api_client())
    try:
        stored = api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            "communitymodels",
            name,
            dict(body),
            _content_type=MERGE_PATCH,
        )
    except ApiException as err:
        if conflict_ok and err.status == 409:
            return None
        raise
    return cast(dict[str, Any], stored)
