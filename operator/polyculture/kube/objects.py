"""Create and delete the namespaced objects of workloads (Pods, Services, Secrets).

Creates are idempotent by name: an object that exists already (409) is left as it is, which
is how a restarted operator adopts what it created before. Deletes ignore
objects that are gone (404). Every write is counted in ``polyculture_api_writes_total``.
The calls are exactly these (the chart's ClusterRole grants no more): ``create``/``delete``
of Pods, Services and Secrets, ``get`` of a Secret, and ``list``/``watch`` of Pods and
Services (:mod:`polyculture.kube.index`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from polyculture.metrics import API_WRITES

RESOURCES: Final = {"Pod": "pods", "Service": "services", "Secret": "secrets"}


def _core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def create(api: client.ApiClient, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """Create ``body`` (a Pod, Service or Secret): the created object, or None when an
    object of that name exists already (the watch that indexes it has it).

    Sent and read as plain JSON: the client's typed path turns the body into its model
    classes and back, and the answer again, which cost more of the operator's CPU than
    anything else in a burst of admissions.
    """
    kind = str(body["kind"])
    namespace = body["metadata"]["namespace"]
    API_WRITES.labels(RESOURCES[kind], "").inc()
    try:
        result = _post_json(api, f"/api/v1/namespaces/{namespace}/{RESOURCES[kind]}", body)
    except ApiException as error:
        if error.status == 409:
            return None
        raise
    result.setdefault("kind", kind)
    return result


def _post_json(api: client.ApiClient, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return send_json(api, "POST", path, body)


def send_json(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Mapping[str, Any],
    content_type: str = "application/json",
) -> dict[str, Any]:
    """Send ``body`` as JSON to ``path`` with the client's credentials and connections; the
    answer, parsed. Raises :class:`ApiException` for a status that is not 2xx.

    The body goes to the client's connection pool as it is: the client's own request path
    walks it (``sanitize_for_serialization``) and validates every call's arguments first,
    which costs more than the encoding at a burst of writes.
    """
    method, url, headers, _, _ = api.param_serialize(
        method=method,
        resource_path=path,
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.rest_client.pool_manager.request(
        method, url, body=json.dumps(body).encode(), headers=headers
    )
    text = (response.data or b"").decode()
    if not 200 <= response.status <= 299:
        raise ApiException(status=response.status, reason=response.reason, body=text)
    result: dict[str, Any] = json.loads(text)
    return result


def secret_value(api: client.ApiClient, namespace: str, name: str, key: str) -> str | None:
    """One key of a Secret, decoded; None if the Secret or the key does not exist."""
    try:
        secret = _core(api).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    data = secret.data or {}
    if key not in data:
        return None
    return base64.b64decode(data[key]).decode()


def delete(api: client.ApiClient, kind: str, namespace: str, name: str) -> bool:
    """Delete one object (its dependents in the background); False if it was gone."""
    core = _core(api)
    deleters: dict[str, Callable[..., Any]] = {
        "Pod": core.delete_namespaced_pod,
        "Service": core.delete_namespaced_service,
        "Secret": core.delete_namespaced_secret,
    }
    API_WRITES.labels(RESOURCES[kind], "").inc()
    try:
        deleters[kind](name, namespace, propagation_policy="Background")
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
