"""Kubernetes API clients: the operator's (configured once), and one for a given kubeconfig."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from kubernetes import client, config


def configure(kubeconfig: str | None = None) -> None:
    """Load credentials once: ``kubeconfig``, else $KUBECONFIG, else the in-cluster account."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        config.load_kube_config(config_file=path)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    api_client.cache_clear()


#: connections the operator's client keeps open: backend calls come from a pool of worker
#: threads per pool (the client's default, 5 per CPU, is 10 on two CPUs: each thread beyond
#: would open, and close, a TLS connection of its own per call)
CONNECTIONS = 32


@cache
def api_client() -> client.ApiClient:
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = CONNECTIONS
    return client.ApiClient(configuration)


def client_for(kubeconfig: Path | None) -> client.ApiClient:
    """A client of its own: in-cluster credentials when no kubeconfig is given and a service
    account is mounted, else the kubeconfig (``$KUBECONFIG`` or ``~/.kube/config`` if None)."""
    configuration = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=None if kubeconfig is None else str(kubeconfig),
        client_configuration=configuration,
    )
    return client.ApiClient(configuration)
