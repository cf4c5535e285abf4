"""Write the agent's labels and annotation on its own Node, only when they change.

The agent's Kubernetes calls go through :mod:`polyculture.kube` (``get`` and ``patch`` of one
Node, nothing else: the chart's ClusterRole grants exactly that). Each publish reads the
Node first, so a label someone removed by hand comes back on the next refresh, and writes a
strategic merge patch of the managed keys only when they differ.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from polyculture.agent.labels import node_metadata_patch
from polyculture.kube.client import client_for as api_client
from polyculture.kube.nodes import node_metadata, patch_node

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

FIELD_MANAGER = "polyculture-agent"

__all__ = ["FIELD_MANAGER", "NodePublisher", "api_client"]


class NodePublisher:
    """Publishes the managed labels and annotations of one Node."""

    def __init__(self, api: ApiClient, node_name: str) -> None:
        self._api = api
        self.node_name = node_name

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def publish(self, *, labels: Mapping[str, str], annotations: Mapping[str, str]) -> bool:
        """Make the Node carry these managed values; ``True`` when a patch was written."""
        current_labels, current_annotations = node_metadata(self._api, self.node_name)
        patch = node_metadata_patch(
            current_labels=current_labels,
            current_annotations=current_annotations,
            labels=labels,
            annotations=annotations,
        )
        if patch is None:
            log.debug("node=%s gpu labels unchanged, nothing written", self.node_name)
            return False
        patch_node(self._api, self.node_name, patch, field_manager=FIELD_MANAGER)
        log.info(
            "node=%s patched labels=%s annotations=%s",
            self.node_name,
            sorted(patch["metadata"].get("labels", {})),
            sorted(patch["metadata"].get("annotations", {})),
        )
        return True
