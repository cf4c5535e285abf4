"""The pool ledger and the model cards: kopf glue.

A daemon per pool appends an entry to the pool's hash-chained ledger every
``spec.ledger.period`` (``polyculture.ledger``), from what the statuses say now: each member's
``gpuSecondsProvided`` (pool status) and each model's ``gpuSecondsUsed``; it publishes the head
in ``status.ledger``. A model's counter is the one stored: written with each change of its
admission and refreshed at a capped rate (``loop.pool_status``), so a holding model's recent
usage enters the chain with its counter's next write, never twice. A model that has been
trained gets its model card (a ConfigMap, and ``status.modelCard``) once per training.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import kopf
from pydantic import ValidationError

from polyculture.api.compute_pool import ComputePoolSpec
from polyculture.api.meta import GROUP, VERSION
from polyculture.api.units import parse_duration
from polyculture.handlers.clock import CLOCK
from polyculture.handlers.models import MODELS
from polyculture.kube.client import api_client
from polyculture.kube.ledger_store import (
    ConflictError,
    NotAllowedError,
    PoolLedger,
    operator_namespace,
    write_model_card,
)
from polyculture.kube.status import patch_model_status, patch_pool_status
from polyculture.ledger.appender import due, next_entry, readings
from polyculture.ledger.entries import parse_time
from polyculture.reconcile.conditions import format_time
from polyculture.reconcile.modelcard import build_model_card, card_name, needs_card

TICK_S = 1.0
MIN_PERIOD_S = 10.0
NOT_ALLOWED_RETRY_S = 60.0


@kopf.daemon(GROUP, VERSION, "computepools", cancellation_timeout=10.0)
def ledger_daemon(
    *, name: str, body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger, **kw: Any
) -> None:
    index: kopf.Index[str, dict[str, Any]] = kw["models_by_pool"]
    ledger = PoolLedger(api_client(), operator_namespace(), name)
    stamp = body.metadata.get("creationTimestamp")
    created = parse_time(str(stamp)) if stamp else None
    while not stopped:
        try:
            spec = ComputePoolSpec.model_validate(dict(body.spec))
            period = max(MIN_PERIOD_S, parse_duration(spec.ledger.period).total_seconds())
            now = CLOCK.now()
            head = ledger.head if ledger.head is not None else ledger.load()
            if due(head, now, period):
                models = list(index[name]) if name in index else []
                given, used = readings(name, dict(body.status), models)
                make = partial(
                    next_entry, pool=name, given=given, used=used, now=now, start=created
                )
                entry, head = ledger.append(make)
                patch_pool_status(
                    name,
                    {
                        "ledger": {
                            "head": head.hash,
                            "entries": head.seq + 1,
                            "updatedAt": format_time(now),
                            "namespace": ledger.namespace,
                            "chunks": ledger.chunks,
                        }
                    },
                )
                logger.info(f"pool {name}: ledger entry {entry.seq} appended, head {head.hash}")
        except ConflictError as err:
            logger.warning(f"pool {name}: {err}; reading the ledger again")
        except NotAllowedError as err:
            logger.error(f"pool {name}: {err}")
            stopped.wait(NOT_ALLOWED_RETRY_S)
        except ValidationError as err:  # the schema should have caught it; never crash
            logger.error(f"pool {name}: spec does not parse: {err}")
            stopped.wait(10)
        except Exception as err:  # reported; the next tick tries again from the stored head
            logger.exception(f"pool {name}: ledger append failed: {err}")
            stopped.wait(5)
        stopped.wait(TICK_S)


def _wants_card(*, type: str | None, body: kopf.Body, **_: Any) -> bool:
    """Trained since its last card, and not being deleted (most events are not: kopf then
    calls and logs nothing)."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        return False
    return needs_card(dict(body.status))


@kopf.on.event(GROUP, VERSION, MODELS, when=_wants_card)
def model_card(*, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Write the card of a model trained since its last card (restart-safe: status says)."""
    raw = cast(dict[str, Any], dict(body))
    try:
        card, text = build_model_card(raw, CLOCK.now())
    except ValidationError as err:
        logger.error(f"model card: the model does not parse: {err}")
        return
    namespace, name = str(body.metadata["namespace"]), str(body.metadata["name"])
    cm = card_name(name)
    write_model_card(
        api_client(), namespace=namespace, name=cm, owner=raw, card_json=card, card_text=text
    )
    patch_model_status(
        namespace, name, {"modelCard": {"configMap": cm, "generatedAt": card["generatedAt"]}}
    )
    kopf.event(body, type="Normal", reason="ModelCard", message=f"model card in ConfigMap {cm}")
    logger.info(f"model {namespace}/{name}: model card written to {cm}")
