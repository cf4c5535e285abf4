"""The operator benchmark counts requests by client from the API server's audit log."""

from __future__ import annotations

import json
from pathlib import Path

from polyculture.controlplane.operator_bench import client_name, requests_by_client

GC = (
    "kube-controller-manager-v1.37.2/v0.0.0 (linux/amd64) kubernetes/$Format/"
    "generic-garbage-collector"
)


def _event(agent: str, verb: str, resource: str, subresource: str | None = None) -> str:
    ref = {"resource": resource, **({"subresource": subresource} if subresource else {})}
    return json.dumps({"userAgent": agent, "verb": verb, "objectRef": ref}) + "\n"


def test_a_client_is_its_program_and_a_controller_its_controller() -> None:
    assert client_name("kopf/1.38.0") == "kopf"
    assert client_name("OpenAPI-Generator/33.1.0/python") == "OpenAPI-Generator"
    assert client_name("kwok-v0.8.0 (linux/amd64)") == "kwok-v0.8.0"
    assert client_name(GC) == "kube-controller-manager-v1.37.2/generic-garbage-collector"
    assert client_name("") == "?"


def test_requests_after_the_offset_are_counted_by_client_verb_and_resource(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.log"
    before = _event("kopf/1", "patch", "communitymodels") * 5
    log.write_text(
        before
        + _event("kopf/1", "patch", "communitymodels") * 3
        + _event(GC, "get", "communitymodels") * 2
        + _event("kwok-v0.8.0", "patch", "pods", "status") * 4
        + "not json\n"
        + _event("kopf/1", "create", "events")
    )
    counted = requests_by_client(log, len(before.encode()), at_least=2)
    assert counted == {
        "kwok-v0.8.0 patch pods/status": 4,
        "kopf patch communitymodels": 3,
        "kube-controller-manager-v1.37.2/generic-garbage-collector get communitymodels": 2,
    }
