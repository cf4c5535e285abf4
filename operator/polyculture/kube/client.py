"""The operator's Kubernetes API client: in-cluster config, or a kubeconfig file."""

from __future__ import annotations

import os
from functools import cache

from kubernetes import client, config


def configure(kubeconfig: str | None = None) -> None:
    """Load credentials once: ``kubeconfig``, else $KUBECONFIG, else the in-cluster account."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        config.load_kube_config(config_file=path)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    api_client.cache_clear()


@cache
def api_client() -> client.ApiClient:
    return client.ApiClient()
