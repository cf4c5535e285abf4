"""CommunityModel: validated against the pools the operator knows.

A model is judged when it is created, changed or seen at start-up, and again whenever a pool
changes (a pool created later turns ``PoolNotFound`` into ``Pending``). Writes happen only
when the verdict changes.
"""

from __future__ import annotations

from typing import Any, cast

import kopf

from polyculture.api.meta import GROUP, VERSION
from polyculture.handlers.clock import CLOCK
from polyculture.kube.status import patch_model_status_if_unchanged, read_model
from polyculture.metrics import MODEL_VERDICTS
from polyculture.reconcile.models import parse_pools, verdict

MODELS = "communitymodels"


@kopf.index(GROUP, VERSION, "computepools")
def pools_index(*, name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: dict(body)}


@kopf.index(GROUP, VERSION, MODELS)
def models_by_pool(*, spec: kopf.Spec, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {str(spec.get("pool", "")): dict(body)}


def _pools(index: kopf.Index[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: body for name, store in index.items() for body in store}


def _apply(
    body: dict[str, Any],
    pools_index: kopf.Index[str, dict[str, Any]],
    logger: Any,
    *,
    retry: bool = True,
) -> None:
    result = verdict(body, parse_pools(_pools(pools_index)), CLOCK.now())
    if result.status is None:
        return
    meta = body["metadata"]
    stored = patch_model_status_if_unchanged(
        meta["namespace"], meta["name"], result.status, str(meta.get("resourceVersion", ""))
    )
    if stored is None:
        # judged on an older copy (the admission loop wrote since): judge the stored one once
        fresh = read_model(meta["namespace"], meta["name"]) if retry else None
        if fresh is not None:
            _apply(fresh, pools_index, logger, retry=False)
        return
    reason = result.events[0].reason if result.events else "Accepted"
    MODEL_VERDICTS.labels(result.status["phase"], reason).inc()
    logger.info(
        f"model {meta['namespace']}/{meta['name']}: phase {result.status['phase']}"
        + (f" ({result.events[0].reason})" if result.events else "")
    )
    for problem in result.events:
        kopf.event(
            cast(kopf.Body, body),
            type="Warning",
            reason=problem.reason,
            message=f"{problem.field}: {problem.message}",
        )


@kopf.on.resume(GROUP, VERSION, MODELS)
@kopf.on.create(GROUP, VERSION, MODELS)
@kopf.on.update(GROUP, VERSION, MODELS, field="spec")
def judge_model(*, body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
    _apply(dict(body), kwargs["pools_index"], logger)


@kopf.on.event(GROUP, VERSION, "computepools")
def rejudge_models_of_pool(
    *,
    name: str,
    type: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A pool appeared, changed or vanished: judge again the models that name it.

    Status-only writes of the ledger (every few seconds) do not change any verdict, so only
    the spec and the status fields ``judge`` reads are compared.
    """
    status = dict(body.status)
    key = (
        None
        if type == "DELETED"
        else (
            body.metadata.get("generation"),
            repr(status.get("largestNodeGPUs")),
            repr([(m.get("owner"), m.get("gpusByClass")) for m in status.get("members") or []]),
        )
    )
    if getattr(memo, "verdict_key", ()) == key:  # the pool's own memo
        return
    memo.verdict_key = key
    models_index: kopf.Index[str, dict[str, Any]] = kwargs["models_by_pool"]
    if name not in models_index:
        return
    for model in list(models_index[name]):
        _apply(model, kwargs["pools_index"], logger)
