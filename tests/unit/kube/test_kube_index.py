"""The watch index's bookkeeping: events in, groups out; an older version never wins."""

from __future__ import annotations

from typing import Any

from polyculture.kube.index import WatchIndex


def obj(name: str, cluster: str, rv: int, namespace: str = "ns") -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": str(rv),
            "labels": {"polyculture.dev/cluster": cluster},
        },
    }


def index() -> WatchIndex:
    def never(**_: Any) -> Any:
        raise AssertionError("no API call in this test")

    return WatchIndex(
        never, label_selector="x=y", group_label="polyculture.dev/cluster", kind="Pod"
    )


def names(idx: WatchIndex, group: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in idx.group(group))


def test_events_keep_groups() -> None:
    idx = index()
    idx.apply("ADDED", obj("c1-head", "c1", 10))
    idx.apply("ADDED", obj("c1-w1", "c1", 11))
    idx.apply("ADDED", obj("c2-head", "c2", 12))
    idx.apply("ADDED", obj("c2-head", "c2", 13, namespace="other"))
    assert idx.groups() == ["c1", "c2"]
    assert names(idx, "c1") == ["c1-head", "c1-w1"]
    assert len(idx.group("c2")) == 2 and len(idx) == 4
    idx.apply("DELETED", obj("c1-w1", "c1", 14))
    idx.apply("DELETED", obj("c1-head", "c1", 15))
    assert idx.groups() == ["c2"] and idx.group("c1") == []
    assert idx.get("ns", "c1-head") is None and idx.get("other", "c2-head") is not None


def test_an_older_version_never_replaces_a_newer_one() -> None:
    idx = index()
    created = obj("c1-head", "c1", 20)
    idx.apply("ADDED", created)  # what the creator wrote, fed at once
    idx.apply("MODIFIED", obj("c1-head", "c1", 25) | {"spec": {"nodeName": "n1"}})
    idx.apply("ADDED", created)  # the watch's late copy of the create
    current = idx.get("ns", "c1-head")
    assert current is not None and current["spec"] == {"nodeName": "n1"}
    # a deletion of an older incarnation does not remove a newer object of the same name
    idx.apply("DELETED", obj("c1-head", "c1", 22))
    assert idx.get("ns", "c1-head") is not None
    idx.apply("DELETED", obj("c1-head", "c1", 30))
    assert idx.get("ns", "c1-head") is None


def test_a_relabelled_object_moves_group() -> None:
    idx = index()
    idx.apply("ADDED", obj("p", "c1", 1))
    idx.apply("MODIFIED", obj("p", "c2", 2))
    assert idx.groups() == ["c2"] and names(idx, "c2") == ["p"]
