"""Status writes through the ``status`` subresource.

Models: JSON merge patch (one writer per field: the admission loop; the verdicts guarded by
``resourceVersion``). Pools: several writers share ``status`` (the pool daemon, the admission
loop, the ledger), and ``conditions`` is a list keyed by ``type``; a merge patch replaces a
list whole, so one writer could drop another's condition. :func:`apply_pool_status` is a
server-side apply under the writer's own field manager instead: the API server merges the
list by ``type`` and each writer owns the fields and the condition types it sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from polyculture.api.meta import GROUP, VERSION
from polyculture.kube.client import api_client
from polyculture.kube.objects import send_json
from polyculture.metrics import API_WRITES

#: connections kept for status writes: the admission loop sends them from a pool of threads
#: (the default of 10 per client would open, and close, a new TLS connection for each beyond)
WRITE_CONNECTIONS = 32

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
#: field managers of the pool status: each owns the fields (and condition types) it applies
POOL_DAEMON_MANAGER = "polyculture-pool"
ADMISSION_MANAGER = "polyculture-admission"


@cache
def _writes_client(operator_client: client.ApiClient) -> client.ApiClient:
    """A client like the operator's, with room for the loop's parallel status writes (one per
    operator client: a reconfigured operator gets a new one)."""
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = WRITE_CONNECTIONS
    return client.ApiClient(configuration)


def writes_client() -> client.ApiClient:
    return _writes_client(api_client())


def patch_pool_status(name: str, status: Mapping[str, Any]) -> None:
    API_WRITES.labels("computepools", "status").inc()
    client.CustomObjectsApi(api_client()).patch_cluster_custom_object_status(
        GROUP, VERSION, "computepools", name, {"status": dict(status)}, _content_type=MERGE_PATCH
    )


def apply_pool_status(name: str, manager: str, status: Mapping[str, Any]) -> None:
    """Server-side apply of ``status`` as ``manager``'s whole part of the pool's status.

    A field or condition type ``manager`` applied before and omits now is removed; what other
    managers own is kept. ``None`` values are left out (an applied null is not a value).
    """
    API_WRITES.labels("computepools", "status").inc()
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComputePool",
        "metadata": {"name": name},
        "status": _without_none(status),
    }
    client.CustomObjectsApi(writes_client()).patch_cluster_custom_object_status(
        GROUP,
        VERSION,
        "computepools",
        name,
        body,
        field_manager=manager,
        force=True,
        _content_type=APPLY_PATCH,
    )


def _without_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


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
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/communitymodels/{name}/status"
    try:
        return send_json(writes_client(), "PATCH", path, body, MERGE_PATCH)
    except ApiException as err:
        if conflict_ok and err.status == 409:
            return None
        raise
