"""The pool ledgers' chunks and the model cards, stored as ConfigMaps.

Ledger chunks live in the operator's namespace (``POLYCULTURE_NAMESPACE``, else
``POD_NAMESPACE``, else the namespace of the operator's service account, else ``default``):
only the operator writes there, members are given read access to it by the cluster admin, and
communities, who can write in their own namespaces, cannot touch the log. A ConfigMap is
bounded (at most 1 MiB), so the log is split into chunks (``polyculture.ledger.chunks``),
labelled ``polyculture.dev/ledger-pool=<pool>``; each holds ``entries.jsonl`` and
``head.json`` (the appender's restart state, checked against the entries when read). A chunk
and its head are replaced in one write, guarded by the chunk's ``resourceVersion``: two
writers never both append.

A model card is a ConfigMap ``<model>-model-card`` in the model's namespace, owned by the
model (deleted with it), with ``model-card.json`` and ``MODEL_CARD.md``.

Calls: in the ledger's namespace ``list`` by label, ``create`` and ``update`` (the chart's
ledger Role); in models' namespaces ``create`` and ``update`` (the chart's ClusterRole).
``read_model_card`` (``get``) is for tools and tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from polyculture.ledger.appender import Head
from polyculture.ledger.chunks import Chunk, parse_chunk_name, place
from polyculture.ledger.entries import Entry
from polyculture.metrics import API_WRITES

NAMESPACE_ENV: Final = "POLYCULTURE_NAMESPACE"
#: set by the chart's Deployment from the Pod's own namespace
POD_NAMESPACE_ENV: Final = "POD_NAMESPACE"
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
POOL_LABEL: Final = "polyculture.dev/ledger-pool"
ENTRIES_KEY: Final = "entries.jsonl"
HEAD_KEY: Final = "head.json"
CARD_JSON_KEY: Final = "model-card.json"
CARD_TEXT_KEY: Final = "MODEL_CARD.md"
PART_OF: Final = {"app.kubernetes.io/part-of": "polyculture"}


class ConflictError(RuntimeError):
    """Another writer changed the chunk since it was read: read the ledger again."""


class NotAllowedError(RuntimeError):
    """The operator's account may not read or write ConfigMaps in the ledger's namespace."""


def _not_allowed(namespace: str) -> NotAllowedError:
    return NotAllowedError(
        f"the operator's account may not list, create or update ConfigMaps in namespace "
        f"{namespace!r}: the ledger is not written (grant the chart's ledger Role there, or set "
        f"{NAMESPACE_ENV} to the operator's namespace)"
    )


def operator_namespace() -> str:
    """Where the ledgers are kept (see the module docstring)."""
    for variable in (NAMESPACE_ENV, POD_NAMESPACE_ENV):
        given = os.environ.get(variable, "").strip()
        if given:
            return given
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


@dataclass(frozen=True, kw_only=True)
class StoredChunk:
    chunk: Chunk
    head: Head | None  # the head stored with it, if it reads and matches its last entry
    resource_version: str


def head_text(head: Head) -> str:
    return json.dumps(head.to_json(), sort_keys=True, separators=(",", ":"))


def _core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def read_chunks(api: client.ApiClient, namespace: str, pool: str) -> list[StoredChunk]:
    """Every chunk of ``pool``'s ledger, in chain order."""
    try:
        found = _core(api).list_namespaced_config_map(
            namespace, label_selector=f"{POOL_LABEL}={pool}"
        )
    except ApiException as error:
        if error.status == 403:
            raise _not_allowed(namespace) from None
        raise
    out = []
    for item in found.items:
        meta = item.metadata
        if meta is None or not meta.name:
            continue
        parsed = parse_chunk_name(meta.name)
        if parsed is None or parsed[0] != pool:
            continue
        data = item.data or {}
        lines = tuple(line for line in data.get(ENTRIES_KEY, "").splitlines() if line.strip())
        period = (meta.annotations or {}).get("polyculture.dev/ledger-period", "")
        chunk = Chunk(pool=pool, first_seq=parsed[1], period=period, lines=lines)
        out.append(
            StoredChunk(
                chunk=chunk,
                head=_head(data.get(HEAD_KEY), lines),
                resource_version=str(meta.resource_version),
            )
        )
    return sorted(out, key=lambda s: s.chunk.first_seq)


def _head(text: str | None, lines: tuple[str, ...]) -> Head | None:
    if not text or not lines:
        return None
    try:
        head = Head.from_json(json.loads(text))
        last = json.loads(lines[-1])
    except (ValueError, KeyError, TypeError):
        return None
    return head if (head.seq, head.hash) == (last.get("seq"), last.get("hash")) else None


def export_lines(api: client.ApiClient, namespace: str, pool: str) -> list[str]:
    """The whole log of ``pool``, one stored entry per line, in chain order."""
    return [line for stored in read_chunks(api, namespace, pool) for line in stored.chunk.lines]


def write_chunk(
    api: client.ApiClient,
    namespace: str,
    chunk: Chunk,
    head: Head,
    resource_version: str | None,
) -> str:
    """Create (``resource_version`` None) or replace a chunk with its new head; the new
    resourceVersion. :class:`ConflictError` when someone else wrote it first."""
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(
            name=chunk.name,
            namespace=namespace,
            labels={POOL_LABEL: chunk.pool, **PART_OF},
            annotations={"polyculture.dev/ledger-period": chunk.period},
            resource_version=resource_version,
        ),
        data={ENTRIES_KEY: chunk.text, HEAD_KEY: head_text(head)},
    )
    core = _core(api)
    API_WRITES.labels("configmaps", "ledger").inc()
    try:
        if resource_version is None:
            made = core.create_namespaced_config_map(namespace, body)
        else:
            made = core.replace_namespaced_config_map(chunk.name, namespace, body)
    except ApiException as error:
        if error.status == 409:
            raise ConflictError(f"ledger chunk {namespace}/{chunk.name} changed") from error
        if error.status == 403:
            raise _not_allowed(namespace) from None
        raise
    return str(made.metadata.resource_version if made.metadata else "")


def write_model_card(
    api: client.ApiClient,
    *,
    namespace: str,
    name: str,
    owner: Mapping[str, Any],
    card_json: Mapping[str, Any],
    card_text: str,
) -> None:
    """Create or replace the model card ConfigMap ``name``, owned by the model ``owner``."""
    meta = owner.get("metadata") or {}
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={"polyculture.dev/model-card": str(meta.get("name", "")), **PART_OF},
            owner_references=[
                client.V1OwnerReference(
                    api_version=str(owner.get("apiVersion", "polyculture.dev/v1alpha1")),
                    kind="CommunityModel",
                    name=str(meta.get("name")),
                    uid=str(meta.get("uid")),
                )
            ],
        ),
        data={
            CARD_JSON_KEY: json.dumps(card_json, indent=2, sort_keys=True) + "\n",
            CARD_TEXT_KEY: card_text,
        },
    )
    core = _core(api)
    API_WRITES.labels("configmaps", "model-card").inc()
    try:
        core.create_namespaced_config_map(namespace, body)
    except ApiException as error:
        if error.status != 409:
            raise
        core.replace_namespaced_config_map(name, namespace, body)


def read_model_card(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The JSON of a model card, or None if there is none."""
    try:
        found = _core(api).read_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    text = (found.data or {}).get(CARD_JSON_KEY)
    loaded: dict[str, Any] | None = json.loads(text) if text else None
    return loaded


class PoolLedger:
    """One pool's appender: the head and newest chunk in memory, read back after a conflict.

    Not thread-safe: one daemon thread per pool calls :meth:`append`.
    """

    def __init__(self, api: client.ApiClient, namespace: str, pool: str) -> None:
        self.api, self.namespace, self.pool = api, namespace, pool
        self.head: Head | None = None
        self.last: StoredChunk | None = None
        self.chunks = 0

    def load(self) -> Head:
        stored = read_chunks(self.api, self.namespace, self.pool)
        self.chunks = len(stored)
        self.last = stored[-1] if stored else None
        if self.last is not None and self.last.head is not None:
            self.head = self.last.head
        else:  # no chain yet, or its head is unreadable: the entries are the truth
            entries = [Entry.from_json(json.loads(line)) for s in stored for line in s.chunk.lines]
            self.head = Head.from_entries(entries)
        return self.head

    def append(self, make: Callable[[Head], tuple[Entry, Head]]) -> tuple[Entry, Head]:
        """Append the entry ``make(head)`` returns; the stored chunk and head in one write."""
        head = self.head if self.head is not None else self.load()
        entry, new_head = make(head)
        last = self.last.chunk if self.last is not None else None
        head_json = head_text(new_head)
        chunk = place(last, entry, head_bytes=len(head_json))
        fresh = last is None or chunk.first_seq != last.first_seq
        try:
            rv = write_chunk(
                self.api,
                self.namespace,
                chunk,
                new_head,
                None if fresh or self.last is None else self.last.resource_version,
            )
        except Exception:
            self.head = None  # read the store again before the next append
            raise
        self.last = StoredChunk(chunk=chunk, head=new_head, resource_version=rv)
        self.chunks += 1 if fresh else 0
        self.head = new_head
        return entry, new_head
