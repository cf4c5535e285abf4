"""Indexed objects are kept without what the operator never reads: ``managedFields`` and
kubectl's last-applied copy (at 10,000 models and their Pods, that is most of the memory);
everything else, and the object given, stay as they were."""

from __future__ import annotations

import copy
from typing import Any

from polyculture.kube.index import slim

BODY: dict[str, Any] = {
    "apiVersion": "polyculture.dev/v1alpha1",
    "kind": "CommunityModel",
    "metadata": {
        "name": "m",
        "namespace": "yoruba",
        "uid": "u",
        "resourceVersion": "7",
        "finalizers": ["polyculture.dev/kopf-finalizer"],
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"spec": {}}',
            "team": "asr",
        },
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    },
    "spec": {"pool": "coop"},
    "status": {"phase": "Queued"},
}


def test_bookkeeping_is_dropped_and_the_rest_kept() -> None:
    original = copy.deepcopy(BODY)
    out = slim(BODY)
    assert original == BODY  # the given object is not changed
    assert "managedFields" not in out["metadata"]
    assert out["metadata"]["annotations"] == {"team": "asr"}
    rest = {k: v for k, v in BODY["metadata"].items() if k not in ("managedFields", "annotations")}
    assert {k: out["metadata"][k] for k in rest} == rest
    assert (out["spec"], out["status"], out["kind"]) == (
        BODY["spec"],
        BODY["status"],
        "CommunityModel",
    )


def test_an_object_without_bookkeeping_is_copied_as_it_is() -> None:
    plain = {"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {}}
    out = slim(plain)
    assert out == plain and out is not plain
