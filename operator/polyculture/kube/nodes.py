"""One Node's metadata: read it, patch it (the node agent's only API calls)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def node_metadata(api: client.ApiClient, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """The Node's labels and annotations."""
    metadata = client.CoreV1Api(api).read_node(name).metadata
    if metadata is None:
        return {}, {}
    return dict(metadata.labels or {}), dict(metadata.annotations or {})


def patch_node(
    api: client.ApiClient, name: str, patch: Mapping[str, Any], *, field_manager: str
) -> None:
    """A strategic merge patch of the Node, under ``field_manager``."""
    client.CoreV1Api(api).patch_node(
        name, dict(patch), field_manager=field_manager, _content_type=STRATEGIC_MERGE_PATCH
    )
