"""Verifiable community models, end to end: the operator process, the real control plane,
kwok GPU nodes of two owners and real local Ray clusters (``spec.ray.backend: local``).

Covers:

- provenance checked at the source: a model whose training script reads the shipped corpus
  with the declared digest ends ``verified``; one that declares another digest ends
  ``mismatch`` with the ``ProvenanceVerified`` condition False and a ``ProvenanceMismatch``
  Event, and stays ``Trained`` instead of serving; one whose script never attests ends
  ``unverified``; ``kubectl get cmodel`` shows the PROVENANCE column;
- a model trained on both owners' nodes, drained once by an owner's reclaim and with the
  operator restarted while it trains, gets a model card whose GPU-seconds per owner add up
  to its ``gpuSecondsUsed``;
- the pool's ledger, exported with ``polyculture ledger export``, verifies offline against
  the head published in the pool's status, and its totals equal the status ledgers (given per
  owner, used per model and community) after the restart; flipping a byte, deleting an entry
  or swapping two entries each make ``polyculture ledger verify`` fail naming the entry.

Every status read is what the operator wrote. Ray clusters are the expensive part (~15 s,
~1 GiB each): at most two run at once here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from polyculture.controlplane import ControlPlane
from polyculture.controlplane.nodes import create_gpu_node
from polyculture.controlplane.operator import OperatorProcess
from polyculture.controlplane.waiting import wait_for
from polyculture.provenance import digest

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.ray, pytest.mark.slow]

GROUP, VERSION = "polyculture.dev", "v1alpha1"
POOL = "trust-e2e"
OWNERS = ("ada", "bo")
NS = "yoruba-trust"
REPO = Path(__file__).resolve().parents[2]
WORKDIR = REPO / "examples" / "ray"
CORPUS_URI = "s3://yoruba-nlp/corpus/v3"
CORPUS_SHA = digest(WORKDIR / "data" / "corpus")
OTHER_SHA = hashlib.sha256(b"a corpus nobody shipped").hexdigest()


def pool_body() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComputePool",
        "metadata": {"name": POOL},
        "spec": {
            "members": [
                {"owner": o, "nodeSelector": {"polyculture.dev/owner": o, "test": POOL}}
                for o in OWNERS
            ],
            "communities": [{"name": NS}],
            "fairShare": {"preemption": {"gracePeriod": "10s"}},
            "ray": {"backend": "local"},
            "ledger": {"period": "10s"},
        },
    }


def model_body(
    name: str,
    *,
    sha: str = CORPUS_SHA,
    attest: bool = True,
    serve: bool = False,
    workers: int = 1,
    steps: int = 2,
    step_seconds: float = 0.0,
) -> dict[str, Any]:
    command = f"python train.py --steps {steps} --checkpoint-every 2 --step-seconds {step_seconds}"
    if attest:
        command += f" --data data/corpus --artifact {CORPUS_URI}"
    spec: dict[str, Any] = {
        "pool": POOL,
        "provenance": {
            "datasets": [
                {"name": "corpus", "uri": CORPUS_URI, "sha256": sha, "license": "CC-BY-4.0"}
            ]
        },
        "training": {
            "entrypoint": command,
            "runtimeEnv": {"workingDir": str(WORKDIR)},
            "workers": workers,
            "gpusPerWorker": 1,
            "maxAttempts": 10,  # a Ray node start can time out on a loaded 2-core machine
        },
    }
    if serve:
        spec["serving"] = {
            "importPath": "serve_app:app",
            "runtimeEnv": {"workingDir": str(WORKDIR)},
        }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CommunityModel",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


class Cluster:
    """Reads and writes of the test, as the cluster admin."""

    def __init__(self, api_client: Any, op: OperatorProcess) -> None:
        self.objs = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.op = op

    def create(self, body: dict[str, Any]) -> None:
        self.objs.create_namespaced_custom_object(GROUP, VERSION, NS, "communitymodels", body)

    def status(self, name: str) -> dict[str, Any]:
        obj = self.objs.get_namespaced_custom_object(GROUP, VERSION, NS, "communitymodels", name)
        result: dict[str, Any] = obj.get("status") or {}
        return result

    def pool_status(self) -> dict[str, Any]:
        obj = self.objs.get_cluster_custom_object(GROUP, VERSION, "computepools", POOL)
        result: dict[str, Any] = obj.get("status") or {}
        return result

    def reclaim(self, owner: str, value: bool) -> None:
        pool = self.objs.get_cluster_custom_object(GROUP, VERSION, "computepools", POOL)
        members = pool["spec"]["members"]
        members[OWNERS.index(owner)]["reclaim"] = value
        self.objs.patch_cluster_custom_object(
            GROUP, VERSION, "computepools", POOL, {"spec": {"members": members}}
        )

    def events(self, name: str) -> list[str]:
        items = self.core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}")
        return [e.reason for e in items.items]

    def wait_phase(self, name: str, *phases: str, timeout: float = 480) -> dict[str, Any]:
        result: dict[str, Any] = wait_for(
            lambda: self.status(name) if self.status(name).get("phase") in phases else None,
            timeout,
            f"{NS}/{name} in {phases} (log: {self.op.log})",
            every=0.5,
        )
        return result

    def ledger(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "polyculture", "ledger", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def cluster(crds: object, operator: OperatorProcess, api_client: Any) -> Iterator[Cluster]:
    c = Cluster(api_client, operator)
    for owner in OWNERS:
        create_gpu_node(api_client, f"{POOL}-{owner}", owner, 1, labels={"test": POOL})
    c.core.create_namespace({"metadata": {"name": NS}})
    c.objs.create_cluster_custom_object(GROUP, VERSION, "computepools", pool_body())
    yield c
    with contextlib.suppress(client.ApiException):
        c.objs.delete_cluster_custom_object(GROUP, VERSION, "computepools", POOL)
    c.core.delete_namespace(NS)
    for node in c.core.list_node(label_selector=f"test={POOL}").items:
        c.core.delete_node(node.metadata.name)


def test_provenance_verified_mismatch_unverified(
    cluster: Cluster, control_plane: ControlPlane
) -> None:
    cluster.create(model_body("reads-declared"))
    cluster.create(model_body("reads-other", sha=OTHER_SHA, serve=True))
    cluster.create(model_body("never-attests", attest=False))

    verified = cluster.wait_phase("reads-declared", "Trained")
    assert verified["provenanceVerdict"] == "Verified"
    assert [(a["uri"], a["verdict"]) for a in verified["provenance"]] == [(CORPUS_URI, "verified")]
    cond = {c["type"]: c for c in verified["conditions"]}["ProvenanceVerified"]
    assert cond["status"] == "True"

    mismatch = cluster.wait_phase("reads-other", "Trained")
    assert mismatch["provenanceVerdict"] == "Mismatch"
    assert mismatch["provenance"][0]["verdict"] == "mismatch"
    assert mismatch["provenance"][0]["observedSHA256"] == [CORPUS_SHA]
    cond = {c["type"]: c for c in mismatch["conditions"]}["ProvenanceVerified"]
    assert (cond["status"], cond["reason"]) == ("False", "Mismatch")
    assert mismatch["waiting"]["reason"] == "ProvenanceMismatch"
    wait_for(lambda: "ProvenanceMismatch" in cluster.events("reads-other"), 10, "mismatch Event")

    unverified = cluster.wait_phase("never-attests", "Trained")
    assert unverified["provenanceVerdict"] == "Unverified"
    assert unverified["provenance"][0]["verdict"] == "unverified"

    # the mismatched model was going to serve: it does not, while the others' GPUs are free
    wait_for(lambda: cluster.pool_status().get("allocatedGPUs") == 0, 30, "GPUs released")
    assert cluster.status("reads-other")["phase"] == "Trained"
    assert not cluster.status("reads-other").get("endpoint")
    table = control_plane.kubectl("get", "cmodel", "-n", NS).stdout
    assert "PROVENANCE" in table.splitlines()[0]
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert "Verified" in rows["reads-declared"] and "Mismatch" in rows["reads-other"]
    assert "Unverified" in rows["never-attests"]


def test_model_card_credits_both_owners_after_a_reclaim_and_a_restart(cluster: Cluster) -> None:
    name = "built-by-two"
    cluster.create(model_body(name, workers=2, steps=24, step_seconds=1.0))
    training = cluster.wait_phase(name, "Training")
    assert {p["owner"] for p in training["admission"]["placement"]} == set(OWNERS)
    cluster.reclaim("ada", True)
    wait_for(
        lambda: cluster.status(name).get("waiting", {}).get("reason") == "OwnerReclaim",
        30,
        "drained by ada's reclaim",
    )
    cluster.wait_phase(name, "Queued")
    cluster.reclaim("ada", False)
    if cluster.wait_phase(name, "Training", "Trained")["phase"] == "Training":
        cluster.op.restart()  # the ledger and the usage must not count anything twice
    trained = cluster.wait_phase(name, "Trained")
    # the reclaim drained it without counting an attempt; on a loaded machine a Ray node may
    # time out at start, which is a counted failure and one more run
    assert trained["run"] >= 2 + trained.get("attempts", 0)

    card_ref = wait_for(lambda: cluster.status(name).get("modelCard"), 30, "model card")
    cm = cluster.core.read_namespaced_config_map(card_ref["configMap"], NS)
    card = json.loads(cm.data["model-card.json"])
    by_owner = {b["owner"]: b["gpuSeconds"] for b in card["builtBy"]}
    assert set(by_owner) == set(OWNERS) and all(v > 0 for v in by_owner.values())
    used = cluster.status(name)["gpuSecondsUsed"]
    assert sum(by_owner.values()) == pytest.approx(used, abs=0.01)
    assert card["training"]["runs"] == trained["run"]
    assert card["provenance"]["verdict"] == "Verified"
    assert "| ada |" in cm.data["MODEL_CARD.md"] and "| bo |" in cm.data["MODEL_CARD.md"]
    assert "ModelCard" in cluster.events(name)


def test_ledger_export_verifies_and_equals_the_status_ledgers(
    cluster: Cluster, tmp_path: Path
) -> None:
    for owner in OWNERS:  # nothing is lent any more: the counters stop
        cluster.reclaim(owner, True)
    wait_for(
        lambda: all(m["availableGPUs"] == 0 for m in cluster.pool_status()["members"]),
        30,
        "owners reclaimed",
    )
    export = tmp_path / "ledger.jsonl"
    kubeconfig = str(cluster.op.kubeconfig)
    names = ["reads-declared", "reads-other", "never-attests", "built-by-two"]

    def matches() -> dict[str, Any] | None:
        out = cluster.ledger(
            "export", "--pool", POOL, "--kubeconfig", kubeconfig, "-o", str(export)
        )
        assert out.returncode == 0, out.stderr
        shown = cluster.ledger("verify", str(export), "--csv")
        assert shown.returncode == 0, shown.stderr
        rows = {
            (r[0], r[1], r[2]): float(r[3])
            for r in (line.split(",") for line in shown.stdout.splitlines()[1:])
        }
        status = cluster.pool_status()
        want_given = {("given", m["owner"], ""): m["gpuSecondsProvided"] for m in status["members"]}
        want_used = {("used", NS, f"{NS}/{n}"): cluster.status(n)["gpuSecondsUsed"] for n in names}
        got = {k: v for k, v in rows.items() if k in want_given or k in want_used}
        if got != {**want_given, **want_used}:
            return None
        return {"rows": rows, "status": status}

    seen = wait_for(matches, 60, "ledger totals equal to the status ledgers", every=2)
    # per community the ledger sums its models' counters, and so does the pool's community
    # counter (one integration: no model of the community was deleted, nothing is retired)
    used_by_models = sum(v for (kind, who, m), v in seen["rows"].items() if kind == "used" and m)
    assert seen["rows"][("used", NS, "")] == pytest.approx(used_by_models, abs=0.001)
    community = {c["name"]: c for c in seen["status"]["communities"]}[NS]
    assert community["gpuSecondsRetired"] == 0
    # equal up to the rounding of each counter to a thousandth
    assert community["gpuSecondsConsumed"] == pytest.approx(used_by_models, abs=0.001 * len(names))
    head = seen["status"]["ledger"]["head"]
    lines = export.read_text().splitlines()
    assert len(lines) >= 4 and json.loads(lines[-1])["hash"] == head
    ok = cluster.ledger("verify", str(export), "--head", head)
    assert ok.returncode == 0 and "OK" in ok.stderr

    def verify(tampered: list[str]) -> str:
        path = tmp_path / "tampered.jsonl"
        path.write_text("".join(line + "\n" for line in tampered))
        result = cluster.ledger("verify", str(path), "--head", head)
        assert result.returncode == 1, result.stderr
        return result.stderr

    flipped = list(lines)
    at = flipped[2].index('"to":"') + 8
    flipped[2] = flipped[2][:at] + ("7" if flipped[2][at] != "7" else "8") + flipped[2][at + 1 :]
    assert "line 3 (seq 2)" in verify(flipped)
    assert "line 2 (seq 2)" in verify([lines[0], *lines[2:]])
    assert "line 2 (seq 2)" in verify([lines[0], lines[2], lines[1], *lines[3:]])
    assert "published head" in verify(lines[:-1])
