"""ComputePool: a daemon per pool keeps its status current from the indexed Nodes.

Every ``TICK_S`` the daemon recomputes the status (pure, ``reconcile.pools``) and writes it only
when it changed, so node changes show within seconds and a quiet pool writes nothing but the
ledger every ``LEDGER_FLUSH_S``. Pools publish the nodes they claim in ``Claims`` (kopf's memo)
so that a node matched by two pools is reported on both and counted in the older one only.
Allocation, the communities' figures and the ``BackendReady`` condition are the admission
loop's (``handlers.admission``): the daemon writes only its own fields and condition types, by
server-side apply under its own field manager (``kube.status.apply_pool_status``).
"""

from __future__ import annotations

import threading
from typing import Any

import kopf

from polyculture.api.admissibility import Problem
from polyculture.api.meta import GROUP, VERSION
from polyculture.api.pool_validity import judge_spec
from polyculture.handlers.clock import CLOCK
from polyculture.handlers.nodes import current_nodes
from polyculture.inventory import NodeInfo, PoolInventory
from polyculture.kube.status import POOL_DAEMON_MANAGER, apply_pool_status
from polyculture.metrics import forget_pool, record_pool
from polyculture.reconcile.conditions import find_condition
from polyculture.reconcile.pools import (
    VALID,
    invalid_status,
    needs_write,
    overcommitted_condition,
    own_status,
    pool_status,
    valid_condition,
)

TICK_S = 1.0


class Claims:
    """Nodes each pool claims, by pool: (creationTimestamp, name) seniority and node names.

    One object per operator (in kopf's memo), shared by the pools' daemons, so that a node
    matched by two pools is reported on both and counted in the older one only.
    """

    def __init__(self) -> None:
        self._claims: dict[str, tuple[tuple[str, str], frozenset[str]]] = {}
        self._lock = threading.Lock()

    def set(self, name: str, seniority: tuple[str, str], nodes: frozenset[str]) -> None:
        with self._lock:
            self._claims[name] = (seniority, nodes)

    def drop(self, name: str) -> None:
        with self._lock:
            self._claims.pop(name, None)

    def others(
        self, name: str, seniority: tuple[str, str]
    ) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
        """Nodes of the pools senior and junior to ``name``."""
        senior: dict[str, frozenset[str]] = {}
        junior: dict[str, frozenset[str]] = {}
        with self._lock:
            for other, (key, nodes) in self._claims.items():
                if other != name:
                    (senior if key < seniority else junior)[other] = nodes
        return senior, junior


@kopf.on.startup()
def start_claims(memo: kopf.Memo, **_: Any) -> None:
    memo.claims = Claims()


@kopf.daemon(GROUP, VERSION, "computepools", cancellation_timeout=5.0)
def pool_daemon(
    *,
    name: str,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    claims: Claims = memo.claims
    nodes_index: kopf.Index[str, NodeInfo] = kwargs["nodes_index"]
    seniority = (str(body.metadata.get("creationTimestamp", "")), name)
    last_written: dict[str, Any] | None = None
    try:
        while not stopped:
            spec, problems = judge_spec(dict(body).get("spec"))
            if spec is None:  # stored bad (older schema, unvalidated client): report, go on
                last_written = _report_invalid(name, body, problems, last_written, logger)
                stopped.wait(TICK_S)
                continue
            now = CLOCK.now()
            previous = last_written if last_written is not None else own_status(body.status)
            senior, junior = claims.others(name, seniority)
            status, inv, changes = pool_status(
                spec,
                previous,
                current_nodes(nodes_index),
                now,
                senior,
                junior,
                generation=body.metadata.get("generation"),
                pool=name,
            )
            claimed = frozenset(n for m in inv.members for n in m.nodes)
            claims.set(name, seniority, claimed | _conflicted(inv))
            status["conditions"] += [
                valid_condition(previous, now, body.metadata.get("generation")),
                overcommitted_condition(spec, inv, previous, now, body.metadata.get("generation")),
            ]
            record_pool(name, status, {c.name: float(c.guaranteed_gpus) for c in spec.communities})
            if needs_write(previous, status, now):
                # its own fields and condition types only: the loop's BackendReady is its own
                apply_pool_status(name, POOL_DAEMON_MANAGER, status)
                last_written = status
                logger.debug(f"pool {name}: {inv.total_gpus} GPUs lendable")
            for change in changes:
                kopf.event(
                    body,
                    type="Normal" if change.lending else "Warning",
                    reason=change.reason,
                    message=change.message,
                )
                logger.info(f"pool {name}: {change.message}")
            stopped.wait(TICK_S)
    finally:
        claims.drop(name)
        forget_pool(name)


def _report_invalid(
    name: str,
    body: kopf.Body,
    problems: tuple[Problem, ...],
    last_written: dict[str, Any] | None,
    logger: kopf.Logger,
) -> dict[str, Any] | None:
    """Valid=False and one Event when the verdict is new; the status written, if any."""
    previous = last_written if last_written is not None else own_status(body.status)
    message = "; ".join(f"{p.field}: {p.message}" for p in problems)
    old = find_condition(previous, VALID)
    if (old.get("status"), old.get("message")) == ("False", message):
        return last_written
    status = invalid_status(
        previous, problems[0].reason, message, CLOCK.now(), body.metadata.get("generation")
    )
    apply_pool_status(name, POOL_DAEMON_MANAGER, status)
    kopf.event(body, type="Warning", reason=problems[0].reason, message=message[:1024])
    logger.warning(f"pool {name} is not valid: {message}")
    return status


def _conflicted(inv: PoolInventory) -> frozenset[str]:
    """Nodes this pool matches but another senior pool counts: still claimed, for the report."""
    return frozenset(
        c.node for c in inv.conflicts if any(x.startswith("pool/") for x in c.claimants)
    )
