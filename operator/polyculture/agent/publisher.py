"""Write the agent's labels and annotation on its own Node, only when they change.

The one module of the agent that talks to the Kubernetes API: ``get`` and ``patch`` of one
Node, nothing else (the chart's ClusterRole grants exactly that). Each publish reads the
Node first, so a label someone removed by hand comes back on the next refresh, and writes a
strategic merge patch of the managed keys only when they differ.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config

from polyculture.agent.labels import node_metadata_patch

log = logging.getLogger(__name__)

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
FIELD_MANAGER = "polyculture-agent"


def api_client(kubeconfig: Path | None) -> client.ApiClient:
    """In-cluster credentials when no kubeconfig is given and a service account is mounted,
    else the kubeconfig (``$KUBECONFIG`` or ``~/.kube/config`` when ``None``)."""
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


class NodePublisher:
    """Publishes the managed labels and annotations of one Node."""

    def __init__(self, api: client.ApiClient, node_name: str) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self.node_name = node_name

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def publish(self, *, labels: Mapping[str, str], annotations: Mapping[str, str]) -> bool:
        """Make the Node carry these managed values; ``True`` when a patch was written."""
        metadata = self._core.read_node(self.node_name).metadata
        patch: dict[str, Any] | None = node_metadata_patch(
            current_labels=None if metadata is None else metadata.labels,
            current_annotations=None if metadata is None else metadata.annotations,
            labels=labels,
            annotations=annotations,
        )
        if patch is None:
            log.debug("node=%s gpu labels unchanged, nothing written", self.node_name)
            return False
        self._core.patch_node(
            self.node_name,
            patch,
            field_manager=FIELD_MANAGER,
            _content_type=STRATEGIC_MERGE_PATCH,
        )
        log.info(
            "node=%s patched labels=%s annotations=%s",
            self.node_name,
            sorted(patch["metadata"].get("labels", {})),
            sorted(patch["metadata"].get("annotations", {})),
        )
        return True
