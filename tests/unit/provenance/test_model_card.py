"""The model card: inputs with their verdicts, runs, and the GPU-seconds of each owner.

Covers: a card is needed once per training (``trainedAt`` newer than the card); its JSON
lists the declared inputs with the verdicts of the status, the runs and failed attempts, the
GPU-seconds used and per owner (shares adding up to 1) sorted by contribution; the Markdown
names the same; a model without usage or provenance still gets a card.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from polyculture.reconcile.modelcard import build_model_card, card_name, needs_card

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def model(status: dict[str, Any], provenance: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "pool": "coop",
        "training": {"entrypoint": "python train.py", "workers": 2, "gpusPerWorker": 1},
    }
    if provenance:
        spec["provenance"] = {
            "datasets": [
                {"name": "corpus", "uri": "s3://yo/corpus", "sha256": SHA, "license": "CC-BY-4.0"}
            ]
        }
    return {
        "apiVersion": "polyculture.dev/v1alpha1",
        "kind": "CommunityModel",
        "metadata": {"name": "yoruba-base", "namespace": "yoruba-nlp", "uid": "u-1"},
        "spec": spec,
        "status": status,
    }


TRAINED = {
    "phase": "Trained",
    "community": "yoruba-nlp",
    "trainedAt": "2026-11-29T11:59:00Z",
    "run": 2,
    "attempts": 0,
    "gpuSecondsUsed": 300.0,
    "gpuSecondsByOwner": {"lab-a": 100.0, "co-op": 200.0},
    "provenanceVerdict": "Verified",
    "provenance": [
        {
            "role": "dataset",
            "uri": "s3://yo/corpus",
            "sha256": SHA,
            "license": "CC-BY-4.0",
            "verdict": "verified",
        }
    ],
}


def test_a_card_is_needed_once_per_training() -> None:
    assert not needs_card({"phase": "Training"})
    assert needs_card(TRAINED)
    written = {**TRAINED, "modelCard": {"configMap": "x", "generatedAt": "2026-11-29T12:00:00Z"}}
    assert not needs_card(written)
    retrained = {**written, "trainedAt": "2026-11-29T13:00:00Z"}
    assert needs_card(retrained)
    assert card_name("yoruba-base") == "yoruba-base-model-card"
    assert len(card_name("m" * 253)) == 253


def test_the_card_credits_each_owner_and_lists_verified_inputs() -> None:
    card, text = build_model_card(model(TRAINED), NOW)
    assert card["model"] == {
        "namespace": "yoruba-nlp",
        "name": "yoruba-base",
        "uid": "u-1",
        "community": "yoruba-nlp",
        "pool": "coop",
    }
    assert card["provenance"]["verdict"] == "Verified"
    assert card["provenance"]["inputs"] == [
        {
            "role": "dataset",
            "name": "corpus",
            "uri": "s3://yo/corpus",
            "sha256": SHA,
            "license": "CC-BY-4.0",
            "verdict": "verified",
        }
    ]
    assert card["training"]["runs"] == 2 and card["training"]["failedAttempts"] == 0
    assert card["gpuSeconds"] == {"used": 300.0, "byOwner": 300.0}
    assert [(b["owner"], b["gpuSeconds"]) for b in card["builtBy"]] == [
        ("co-op", 200.0),
        ("lab-a", 100.0),
    ]
    assert sum(b["share"] for b in card["builtBy"]) == 1.0
    assert card["generatedAt"] == "2026-11-29T12:00:00Z"
    assert "| co-op | 200.000 | 66.7% |" in text and "s3://yo/corpus" in text


def test_a_card_without_usage_or_provenance() -> None:
    card, text = build_model_card(model({"trainedAt": "2026-11-29T11:59:00Z"}, False), NOW)
    assert card["builtBy"] == [] and card["provenance"] == {"verdict": "Undeclared", "inputs": []}
    assert "(none declared)" in text and "(no usage recorded)" in text


def test_an_input_never_judged_is_unverified() -> None:
    card, _ = build_model_card(model({**TRAINED, "provenance": []}), NOW)
    assert card["provenance"]["inputs"][0]["verdict"] == "unverified"
