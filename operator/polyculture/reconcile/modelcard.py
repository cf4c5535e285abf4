"""A model card (pure): what a trained model was built from, and whose GPUs built it.

Written when a model reaches ``Trained`` (``handlers/ledger.py``), from its spec and the status
the admission loop settled: the declared inputs with the provenance verdicts of the training
job's attestations, the runs and failed attempts, the GPU-seconds used and, per owner, the
GPU-seconds its nodes gave (``status.gpuSecondsByOwner``, accrued from the placements over
time), so that a community can credit the members who built its model. Two forms: JSON (for
tools) and Markdown (for people), in the ConfigMap ``<model>-model-card``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from polyculture.api.community_model import CommunityModel
from polyculture.reconcile.conditions import format_time, parse_time
from polyculture.reconcile.provenance import UNDECLARED, declared_artifacts

CARD_SUFFIX = "-model-card"


def card_name(model: str) -> str:
    """The ConfigMap name of a model's card (a model name is at most 253 characters)."""
    return model[: 253 - len(CARD_SUFFIX)] + CARD_SUFFIX


def needs_card(status: Mapping[str, Any]) -> bool:
    """Trained (now or before serving) and no card written since it was trained."""
    trained = parse_time(status.get("trainedAt"))
    if trained is None:
        return False
    card = status.get("modelCard") or {}
    written = parse_time(card.get("generatedAt"))
    return written is None or written < trained


def build_model_card(body: Mapping[str, Any], now: datetime) -> tuple[dict[str, Any], str]:
    """The card of the model ``body`` (a whole object): its JSON and its Markdown."""
    model = CommunityModel.model_validate(dict(body))
    status = dict(body.get("status") or {})
    meta = model.metadata
    by_owner = {str(k): float(v) for k, v in (status.get("gpuSecondsByOwner") or {}).items()}
    used = float(status.get("gpuSecondsUsed") or 0.0)
    owners_total = sum(by_owner.values())
    built_by = [
        {
            "owner": owner,
            "gpuSeconds": round(seconds, 3),
            "share": round(seconds / owners_total, 4) if owners_total else 0.0,
        }
        for owner, seconds in sorted(by_owner.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    verdicts = {str(a.get("uri")): a for a in status.get("provenance") or []}
    inputs = []
    for d in declared_artifacts(model.spec.provenance):
        judged = verdicts.get(d.uri) or {}
        inputs.append({**d.to_json(), "verdict": str(judged.get("verdict") or "unverified")})
    training = model.spec.training
    card: dict[str, Any] = {
        "model": {
            "namespace": meta.namespace,
            "name": meta.name,
            "uid": meta.uid,
            "community": str(status.get("community") or model.spec.community or meta.namespace),
            "pool": model.spec.pool,
        },
        "trainedAt": status.get("trainedAt"),
        "generatedAt": format_time(now),
        "provenance": {
            "verdict": str(status.get("provenanceVerdict") or UNDECLARED),
            "inputs": inputs,
        },
        "training": {
            "entrypoint": training.entrypoint if training else None,
            "runs": int(status.get("run") or 0),
            "failedAttempts": int(status.get("attempts") or 0),
            "gang": {"workers": training.workers, "gpusPerWorker": training.gpus_per_worker}
            if training
            else None,
        },
        "gpuSeconds": {"used": round(used, 3), "byOwner": round(owners_total, 3)},
        "builtBy": built_by,
    }
    return card, markdown(card)


def markdown(card: Mapping[str, Any]) -> str:
    m = card["model"]
    lines = [
        f"# Model card: {m['namespace']}/{m['name']}",
        "",
        f"Community **{m['community']}**, pool **{m['pool']}**, trained {card['trainedAt']}.",
        "",
        f"## Inputs (provenance: {card['provenance']['verdict']})",
        "",
        "| role | name | URI | sha256 | licence | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {i['role']} | {i.get('name') or ''} | {i['uri']} | `{i['sha256'][:16]}…` "
        f"| {i['license']} | {i['verdict']} |"
        for i in card["provenance"]["inputs"]
    ] or ["| (none declared) | | | | | |"]
    t = card["training"]
    lines += [
        "",
        "## Training",
        "",
        f"{t['runs']} run(s), {t['failedAttempts']} failed attempt(s); "
        f"{card['gpuSeconds']['used'] / 3600:.3f} GPU-hours "
        f"({card['gpuSeconds']['used']:.3f} GPU-seconds).",
        "",
        "## Built on the GPUs of",
        "",
        "| owner | GPU-seconds | share |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {b['owner']} | {b['gpuSeconds']:.3f} | {b['share'] * 100:.1f}% |"
        for b in card["builtBy"]
    ] or ["| (no usage recorded) | | |"]
    return "\n".join(lines) + "\n"
