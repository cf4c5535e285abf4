"""A watch-driven index of one kind of object: list once, then follow a watch.

:class:`WatchIndex` keeps the objects that match a label selector (all namespaces) as the
API's JSON dicts, grouped by the value of one label, so that the caller answers "what exists"
from memory instead of a list per call. A background thread lists, then watches from the
list's ``resourceVersion``; an expired watch (410 Gone) or a dropped connection lists again.
The caller may also feed what it wrote (:meth:`WatchIndex.apply`) so that its own creates are
visible at once; an older ``resourceVersion`` never replaces a newer one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


#: annotations nothing in the operator reads, and that can be as large as the object itself
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without what the operator never reads and an index would keep for every
    object: ``metadata.managedFields`` (every field path of every writer: often more than the
    rest of the object) and kubectl's copy of the last applied configuration."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    drop = [a for a in UNREAD_ANNOTATIONS if a in annotations]
    if "managedFields" not in meta and not drop:
        return dict(obj)
    slimmed = {k: v for k, v in meta.items() if k != "managedFields"}
    if drop:
        slimmed["annotations"] = {k: v for k, v in annotations.items() if k not in drop}
    return {**obj, "metadata": slimmed}


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class WatchIndex:
    """Objects of one kind matching ``label_selector``, grouped by ``group_label``'s value.

    ``list_all`` is a ``list_*_for_all_namespaces`` method of a kubernetes API object.
    """

    def __init__(
        self,
        list_all: Callable[..., Any],
        *,
        label_selector: str,
        group_label: str,
        kind: str,
        watch_timeout_s: int = 300,
    ) -> None:
        self._list_all = list_all
        self.label_selector = label_selector
        self.group_label = group_label
        self.kind = kind
        self.watch_timeout_s = watch_timeout_s
        self._lock = threading.Lock()
        self._objects: dict[Key, dict[str, Any]] = {}
        self._groups: dict[str, set[Key]] = {}
        self._synced = threading.Event()
        self._stopped = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None
        self.lists = 0  # how many times the index listed (1 + relists)

    # -- reading -----------------------------------------------------------------------------

    def wait_synced(self, timeout_s: float) -> None:
        if not self._synced.wait(timeout_s):
            raise TimeoutError(f"{self.kind} index ({self.label_selector}) not synced")

    def group(self, value: str) -> list[dict[str, Any]]:
        """The objects whose ``group_label`` is ``value``."""
        with self._lock:
            return [self._objects[k] for k in self._groups.get(value, ())]

    def groups(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    # -- writing -----------------------------------------------------------------------------

    def apply(self, event: str, obj: dict[str, Any]) -> None:
        """Take one event (``ADDED``, ``MODIFIED``, ``DELETED``) of an object (API JSON)."""
        obj = slim(obj)
        meta = obj["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        group = (meta.get("labels") or {}).get(self.group_label, "")
        with self._lock:
            old = self._objects.get(key)
            if event == "DELETED":
                if old is not None and _rv(old) > _rv(obj):
                    return  # a newer object of the same name was created since
                self._objects.pop(key, None)
                self._ungroup(key, old)
                return
            if old is not None and _rv(old) > _rv(obj):
                return
            self._ungroup(key, old)
            self._objects[key] = obj
            self._groups.setdefault(group, set()).add(key)

    def _ungroup(self, key: Key, old: dict[str, Any] | None) -> None:
        if old is None:
            return
        group = (old["metadata"].get("labels") or {}).get(self.group_label, "")
        keys = self._groups.get(group)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._groups[group]

    # -- the watch ---------------------------------------------------------------------------

    def start(self) -> WatchIndex:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _relist(self) -> str:
        # raw JSON: the client's model classes cost more than the whole index
        response = self._list_all(label_selector=self.label_selector, _preload_content=False)
        listed = json.loads(response.data)
        self.lists += 1
        items: list[dict[str, Any]] = [slim(o) for o in listed.get("items") or []]
        for item in items:  # list items carry no kind
            item.setdefault("kind", self.kind)
        fresh = {(o["metadata"].get("namespace") or "", o["metadata"]["name"]): o for o in items}
        with self._lock:
            self._objects = fresh
            self._groups = {}
            for key, obj in fresh.items():
                group = (obj["metadata"].get("labels") or {}).get(self.group_label, "")
                self._groups.setdefault(group, set()).add(key)
        self._synced.set()
        return str(listed["metadata"]["resourceVersion"])

    def _run(self) -> None:
        version: str | None = None
        while not self._stopped.is_set():
            try:
                if version is None:
                    version = self._relist()
                self._watch = watch.Watch()  # type: ignore[no-untyped-call]
                for event in self._watch.stream(  # type: ignore[no-untyped-call]
                    self._list_all,
                    label_selector=self.label_selector,
                    resource_version=version,
                    timeout_seconds=self.watch_timeout_s,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                ):
                    kind, raw = event["type"], event["object"]
                    version = raw["metadata"].get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        self.apply(kind, raw)
            except ApiException as error:
                if error.status == 410:
                    version = None
                    continue
                log.warning("%s watch failed (%s); listing again", self.kind, error.reason)
                version = None
                self._stopped.wait(1.0)
            except Exception as error:  # a dropped connection, an expired version (410)
                if self._stopped.is_set():
                    return
                log.warning("%s watch ended (%r); listing again", self.kind, error)
                version = None
                self._stopped.wait(1.0)


def pod_index(api: client.ApiClient, *, label_selector: str, group_label: str) -> WatchIndex:
    """A started index of the Pods matching ``label_selector`` in every namespace."""
    core = client.CoreV1Api(api)
    return WatchIndex(
        core.list_pod_for_all_namespaces,
        label_selector=label_selector,
        group_label=group_label,
        kind="Pod",
    ).start()


def service_index(api: client.ApiClient, *, label_selector: str, group_label: str) -> WatchIndex:
    """A started index of the Services matching ``label_selector`` in every namespace."""
    core = client.CoreV1Api(api)
    return WatchIndex(
        core.list_service_for_all_namespaces,
        label_selector=label_selector,
        group_label=group_label,
        kind="Service",
    ).start()
