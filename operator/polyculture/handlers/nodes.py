"""Nodes, watched and indexed (never listed per event): name -> NodeInfo (on kopf's event
loop: pure and quick, see ``handlers.models``)."""

from __future__ import annotations

from typing import Any

import kopf

from polyculture.inventory import NodeInfo
from polyculture.reconcile.pools import node_info


@kopf.index("", "v1", "nodes")
async def nodes_index(*, name: str, body: kopf.Body, **_: Any) -> dict[str, NodeInfo]:
    return {name: node_info(body)}


def current_nodes(index: kopf.Index[str, NodeInfo]) -> list[NodeInfo]:
    """The latest NodeInfo of every node in the index."""
    out: list[NodeInfo] = []
    for _, store in index.items():
        for info in store:
            out.append(info)
            break
    return out
