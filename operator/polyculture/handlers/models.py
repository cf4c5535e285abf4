"""CommunityModel: validated against the pools the operator knows.

A model is judged when it is created, changed or seen at start-up, and again whenever a pool
changes (a pool created later turns ``PoolNotFound`` into ``Pending``). Writes happen only
when the verdict changes, and a valid model's first verdict (``Pending``) is left to its
pool's admission loop, which exists, or is about to start, for every known pool: the loop
judges with the same pure verdict and sends the verdict's fields with its own first write
(the admission, the place in the queue, or ``Pending`` when it cannot schedule): one write
per model less, from the first model of a burst on. Only a loop that judges its pool
unusable leaves that write here (its models are ``Invalid`` then anyway).

Judging is an event handler (no kopf bookkeeping on the object): it runs when the model's
generation or phase is new to it, which covers creation, a changed spec and the listing at
start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import kopf

from polyculture.api.admissibility import KnownPools
from polyculture.api.community_model import Phase
from polyculture.api.meta import GROUP, VERSION
from polyculture.handlers.clock import CLOCK
from polyculture.kube.index import slim
from polyculture.kube.status import patch_model_status_if_unchanged, read_model
from polyculture.metrics import MODEL_VERDICTS
from polyculture.reconcile.models import PoolsCache, parse_pools, pool_verdict_key, verdict

MODELS = "communitymodels"


# The indexes are coroutines: pure and quick, they run on kopf's event loop. A plain
# function would be sent to kopf's thread pool for every event of every model (a thread
# hand-off, a copied context and a shielded future each time).


@kopf.index(GROUP, VERSION, "computepools")
async def pools_index(*, name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: dict(body)}


@kopf.index(GROUP, VERSION, MODELS)
async def models_by_pool(
    *, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> dict[str, dict[str, Any]]:
    return {str(spec.get("pool", "")): slim(body)}


def _pools(index: kopf.Index[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: body for name, store in index.items() for body in store}


#: whether the admission loop of a pool (by name) writes a new valid model's first status
LoopWritesFirst = Callable[[str], bool]


def _no_loop(_: str) -> bool:
    return False


def loop_writes_first(memo: Any) -> LoopWritesFirst:
    """From the operator's memo: whether a pool's admission loop writes a new valid model's
    first status: a pool a valid verdict names is known, so its loop runs or is about to
    start (kopf starts one for every pool), and writes unless it judges the pool unusable.
    No admission loops at all (the operator runs without them): never."""
    admission = getattr(memo, "admission", None)
    if admission is None:
        return _no_loop

    def writes(pool: str) -> bool:
        loop = admission.loops.get(pool)
        return loop is None or loop.writes_first_status()

    return writes


@kopf.on.startup()
def start_verdicts(memo: kopf.Memo, **_: Any) -> None:
    memo.pools_cache = PoolsCache()


def _known(memo: Any, pools_index: kopf.Index[str, dict[str, Any]]) -> KnownPools:
    """The pools as the verdicts see them, parsed again only when that changed."""
    cache: PoolsCache | None = getattr(memo, "pools_cache", None)
    bodies = _pools(pools_index)
    return parse_pools(bodies) if cache is None else cache.parse(bodies)


def _apply(
    body: dict[str, Any],
    pools: KnownPools,
    logger: Any,
    *,
    retry: bool = True,
    loop_writes: LoopWritesFirst = _no_loop,
) -> None:
    result = verdict(body, pools, CLOCK.now())
    if result.status is None:
        return
    if (
        result.status["phase"] == Phase.PENDING.value
        and not (body.get("status") or {}).get("phase")
        and loop_writes(str((body.get("spec") or {}).get("pool", "")))
    ):
        return  # the pool's loop writes the verdict's fields with the model's first status
    meta = body["metadata"]
    stored = patch_model_status_if_unchanged(
        meta["namespace"], meta["name"], result.status, str(meta.get("resourceVersion", ""))
    )
    if stored is None:
        # judged on an older copy (the admission loop wrote since): judge the stored one once
        fresh = read_model(meta["namespace"], meta["name"]) if retry else None
        if fresh is not None:
            _apply(fresh, pools, logger, retry=False, loop_writes=loop_writes)
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


#: phases the verdict owns (``reconcile.models.OWNED_PHASES``), as stored
JUDGED_PHASES = frozenset({None, "", Phase.PENDING.value, Phase.INVALID.value})


def _judging_key(body: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What a verdict depends on in the model itself: None when the verdict has nothing to
    say (a phase of the admission loop, or the model is being deleted)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") not in JUDGED_PHASES:
        return None
    return (meta.get("uid"), meta.get("generation"), status.get("phase"))


def _new_to_judge(*, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    if type == "DELETED":
        return False
    key = _judging_key(body)
    return key is not None and getattr(memo, "judged", None) != key


@kopf.on.event(GROUP, VERSION, MODELS, when=_new_to_judge)
def judge_model(*, body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """Judge a model seen for the first time (created, or listed at start-up), with a new
    generation, or in a verdict phase it was not judged in (``memo`` is the model's own)."""
    memo.judged = _judging_key(body)
    pools = _known(memo, kwargs["pools_index"])
    _apply(dict(body), pools, logger, loop_writes=loop_writes_first(memo))


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
    key = None if type == "DELETED" else pool_verdict_key(body)
    if getattr(memo, "verdict_key", ()) == key:  # the pool's own memo
        return
    memo.verdict_key = key
    models_index: kopf.Index[str, dict[str, Any]] = kwargs["models_by_pool"]
    if name not in models_index:
        return
    writes = loop_writes_first(memo)
    pools = _known(memo, kwargs["pools_index"])
    for model in list(models_index[name]):
        _apply(model, pools, logger, loop_writes=writes)
