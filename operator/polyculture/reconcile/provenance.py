"""Provenance verdicts: a job's attestations against the artifacts its model declares (pure).

When a training attempt ends, the admission loop reads the tail of the job's log (the helper
:mod:`polyculture.provenance` prints every attestation again as the job exits) and calls
:func:`provenance_outcome`, which returns the status patch (per-artifact verdicts, the
``provenanceVerdict`` printer column, the ``ProvenanceVerified`` condition), the Event to post,
and whether the model may go on to serve under the pool's ``provenance.serveOnMismatch``.

Per artifact: ``verified`` when an attestation names it (by name or URI) with the declared
digest and none with another one; ``mismatch`` when any attestation of it has another digest
(reading the wrong data once is enough); ``unverified`` when nothing attested it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from polyculture.api.community_model import Artifact, ArtifactVerdict, Provenance
from polyculture.provenance import MARKER
from polyculture.reconcile.conditions import condition as make_condition
from polyculture.reconcile.conditions import format_time

CONDITION = "ProvenanceVerified"
#: lines of the job's log to read when an attempt ends: the helper repeats its attestations
#: as the job exits, so they are among the last lines
ATTESTATION_TAIL_LINES = 200
#: the waiting reason of a trained model that may not serve
SERVING_BLOCKED = "ProvenanceMismatch"
#: ``status.provenanceVerdict`` values (the PROVENANCE printer column)
VERIFIED, MISMATCH, UNVERIFIED, UNDECLARED = "Verified", "Mismatch", "Unverified", "Undeclared"


@dataclass(frozen=True, kw_only=True)
class Declared:
    """A declared artifact: ``role`` is ``baseModel`` or ``dataset``."""

    role: str
    uri: str
    sha256: str
    license: str
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "uri": self.uri,
            "sha256": self.sha256,
            "license": self.license,
        }
        if self.name:
            out["name"] = self.name
        return out


def declared_artifacts(provenance: Provenance | None) -> list[Declared]:
    """The base model (if any), then the data sets, in the order the spec lists them."""
    if provenance is None:
        return []

    def one(role: str, a: Artifact) -> Declared:
        return Declared(role=role, uri=str(a.uri), sha256=a.sha256, license=a.license, name=a.name)

    base = [one("baseModel", provenance.base_model)] if provenance.base_model else []
    return base + [one("dataset", a) for a in provenance.datasets]


def job_artifacts(provenance: Provenance | None) -> str:
    """The JSON given to the job as ``POLYCULTURE_ARTIFACTS`` (see ``polyculture.ray``);
    empty when the model declares nothing."""
    declared = declared_artifacts(provenance)
    if not declared:
        return ""
    return json.dumps([d.to_json() for d in declared], sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class Attestation:
    artifact: str
    sha256: str
    path: str = ""


def attestations_from_log(log_text: str) -> list[Attestation]:
    """Every well-formed attestation line in ``log_text``, once each (repeats are dropped)."""
    seen: dict[tuple[str, str, str], Attestation] = {}
    for line in log_text.splitlines():
        _, marker, rest = line.partition(MARKER + " ")
        if not marker:
            continue
        try:
            obj = json.loads(rest.strip())
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        artifact, sha = obj.get("artifact"), obj.get("sha256")
        if isinstance(artifact, str) and isinstance(sha, str):
            item = Attestation(artifact=artifact, sha256=sha, path=str(obj.get("path", "")))
            seen.setdefault((item.artifact, item.sha256, item.path), item)
    return list(seen.values())


@dataclass(frozen=True, kw_only=True)
class ArtifactResult:
    declared: Declared
    verdict: ArtifactVerdict
    observed: tuple[str, ...] = ()  # digests attested for it (other than the declared one first)


def judge_artifacts(
    attestations: Iterable[Attestation], declared: Sequence[Declared]
) -> list[ArtifactResult]:
    attested = list(attestations)
    results = []
    for d in declared:
        digests = {a.sha256 for a in attested if a.artifact in (d.uri, d.name)}
        wrong = sorted(digests - {d.sha256})
        if wrong:
            verdict = ArtifactVerdict.MISMATCH
        elif digests:
            verdict = ArtifactVerdict.VERIFIED
        else:
            verdict = ArtifactVerdict.UNVERIFIED
        results.append(ArtifactResult(declared=d, verdict=verdict, observed=tuple(wrong)))
    return results


def verdicts_from_log(log_text: str, declared: Sequence[Declared]) -> dict[str, ArtifactVerdict]:
    """``{artifact URI: verified | mismatch | unverified}`` from a job's log."""
    results = judge_artifacts(attestations_from_log(log_text), declared)
    return {r.declared.uri: r.verdict for r in results}


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What to write and post after an attempt, and whether the model may serve."""

    status: dict[str, Any]  # merge into the model's status (``conditions`` is the full list)
    verdict: str  # Verified | Mismatch | Unverified | Undeclared
    may_serve: bool
    event: tuple[str, str, str] | None  # (type, reason, message)


def provenance_outcome(
    log_text: str,
    provenance: Provenance | None,
    *,
    previous_status: Mapping[str, Any],
    serve_on_mismatch: bool,
    now: datetime,
    generation: int | None = None,
) -> Outcome:
    """The provenance part of the model's status after a training attempt whose log is given."""
    results = judge_artifacts(attestations_from_log(log_text), declared_artifacts(provenance))
    verdicts = [r.verdict for r in results]
    if not results:
        overall = UNDECLARED
        status, reason = "False", "NothingDeclared"
        message = "the model declares no base model or data set to verify"
    elif ArtifactVerdict.MISMATCH in verdicts:
        overall, status, reason = MISMATCH, "False", "Mismatch"
        message = "; ".join(
            f"{r.declared.uri}: read sha256 {', '.join(r.observed)}, declared {r.declared.sha256}"
            for r in results
            if r.verdict is ArtifactVerdict.MISMATCH
        )
    elif ArtifactVerdict.UNVERIFIED in verdicts:
        overall, status, reason = UNVERIFIED, "False", "NotAttested"
        message = "the training job never attested " + ", ".join(
            r.declared.uri for r in results if r.verdict is ArtifactVerdict.UNVERIFIED
        )
    else:
        overall, status, reason = VERIFIED, "True", "Verified"
        message = f"all {len(results)} declared artifact(s) read with their declared digest"
    may_serve = overall != MISMATCH or serve_on_mismatch
    if overall == MISMATCH:
        message += (
            "; the pool lets it serve anyway (provenance.serveOnMismatch)"
            if serve_on_mismatch
            else "; it will not serve (the pool's provenance.serveOnMismatch is false)"
        )
    cond = make_condition(previous_status, CONDITION, status, reason, message, now, generation)
    others = [c for c in previous_status.get("conditions") or [] if c.get("type") != CONDITION]
    patch = {
        "provenance": [
            {
                **r.declared.to_json(),
                "verdict": r.verdict.value,
                **({"observedSHA256": list(r.observed)} if r.observed else {}),
            }
            for r in results
        ],
        "provenanceVerdict": overall,
        "conditions": [*others, cond],
    }
    event = None
    if overall == MISMATCH:
        event = ("Warning", "ProvenanceMismatch", message)
    elif overall == VERIFIED:
        event = ("Normal", "ProvenanceVerified", message)
    return Outcome(status=patch, verdict=overall, may_serve=may_serve, event=event)


def after_training(
    patch: Mapping[str, Any],
    log_text: str,
    provenance: Provenance | None,
    *,
    previous_status: Mapping[str, Any],
    serves_next: bool,
    serve_on_mismatch: bool,
    now: datetime,
    generation: int | None = None,
) -> tuple[dict[str, Any], tuple[str, str, str] | None]:
    """The ``Trained`` transition's ``patch`` with the provenance verdicts merged in.

    A model that would serve next but may not (a mismatch, and the pool's
    ``provenance.serveOnMismatch`` is false) keeps waiting with reason ``ProvenanceMismatch``
    instead of being queued for serving. Returns the patch and the Event to post, if any.
    """
    status = {**previous_status, **patch}
    outcome = provenance_outcome(
        log_text,
        provenance,
        previous_status=status,
        serve_on_mismatch=serve_on_mismatch,
        now=now,
        generation=generation,
    )
    merged = {**patch, **outcome.status}
    if serves_next and not outcome.may_serve:
        message = "does not serve: its training read data other than declared"
        merged["waiting"] = {
            "reason": SERVING_BLOCKED,
            "message": message,
            "since": format_time(now),
        }
        merged["conditions"] = [
            {**c, "message": f"{c.get('message', '')}; held back: {message}"}
            if c.get("type") == "Trained"
            else c
            for c in merged["conditions"]
        ]
    return merged, outcome.event


def serving_blocked(status: Mapping[str, Any]) -> bool:
    """A trained model held back from serving by a provenance mismatch."""
    return (status.get("waiting") or {}).get("reason") == SERVING_BLOCKED
