"""``polyculture status [--pool P] [--watch]``: a live terminal view of pools and models (rich).

Also ``kubectl polyculture status …`` (the ``kubectl-polyculture`` plugin runs this CLI).

What it shows, per pool: the owners and what they lend now (the ledger's given side), the
communities' entitled vs allocated vs pending GPUs (and GPU-seconds used), and every model of
the pool with its phase, queue position, reason and endpoint. It reads the objects once
(or every ``--interval`` seconds with ``--watch``) and never writes.

``render(pools, models)`` is the pure part: it takes plain dicts as the API server returns
them (``ComputePool`` and ``CommunityModel`` objects, status included) and returns a rich
renderable, so the demo and tests can show the same view without a terminal or a cluster.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

GROUP, VERSION = "polyculture.dev", "v1alpha1"

#: phase -> colour of its cell
PHASE_STYLE: Mapping[str, str] = {
    "Pending": "yellow",
    "Queued": "yellow",
    "Admitted": "cyan",
    "Training": "cyan",
    "Trained": "green",
    "Serving": "bold green",
    "Preempted": "magenta",
    "Failed": "bold red",
    "Invalid": "red",
}


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number:.0f}" if number == int(number) else f"{number:.{digits}f}"


def _hours(gpu_seconds: Any) -> str:
    """GPU-seconds as GPU-hours, the ledger's reading unit."""
    return f"{float(gpu_seconds or 0) / 3600:.2f}"


def _condition(status: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _pool_title(pool: Mapping[str, Any]) -> Text:
    status = pool.get("status") or {}
    name = pool["metadata"]["name"]
    state = (
        Text("Degraded", "bold red")
        if _condition(status, "Degraded")
        else Text("Ready", "green")
        if _condition(status, "Ready")
        else Text("NotReady", "yellow")
    )
    return Text.assemble(
        ("pool ", "bold"),
        (name, "bold cyan"),
        "  ",
        state,
        f"  {status.get('allocatedGPUs', 0)}/{status.get('totalGPUs', 0)} GPUs allocated",
        f"  {_num(status.get('totalUnits', 0), 2)} units",
    )


def owners_table(pool: Mapping[str, Any]) -> Table:
    table = Table(title="owners (what they lend now)", title_justify="left", expand=True)
    for column in ("owner", "nodes", "GPUs by class", "lending now", "why not", "given GPU-h"):
        table.add_column(column, justify="right" if column in ("nodes", "given GPU-h") else "left")
    for member in sorted(
        (pool.get("status") or {}).get("members") or [], key=lambda m: m.get("owner", "")
    ):
        classes = ", ".join(
            f"{k}: {v}" for k, v in sorted((member.get("gpusByClass") or {}).items())
        )
        lending = member.get("availableGPUs", 0)
        table.add_row(
            member.get("owner", "?"),
            str(member.get("nodes", 0)),
            classes or "-",
            Text(str(lending), "green" if lending else "dim"),
            member.get("unavailableReason") or "",
            _hours(member.get("gpuSecondsProvided")),
        )
    return table


def communities_table(pool: Mapping[str, Any]) -> Table:
    table = Table(title="communities (GPU units)", title_justify="left", expand=True)
    table.add_column("community")
    for column in ("weight", "guaranteed", "entitled", "allocated", "pending", "used GPU-h"):
        table.add_column(column, justify="right")
    spec = {c["name"]: c for c in (pool.get("spec") or {}).get("communities") or []}
    status = {c["name"]: c for c in (pool.get("status") or {}).get("communities") or []}
    for name in sorted(set(spec) | set(status)):
        s, row = spec.get(name, {}), status.get(name, {})
        entitled = row.get("entitledUnits")
        allocated = row.get("allocatedUnits", row.get("allocatedGPUs"))
        short = entitled is not None and allocated is not None and allocated < entitled
        table.add_row(
            name,
            _num(s.get("weight", 1.0), 2),
            _num(s.get("guaranteedGPUs", 0)),
            _num(entitled, 2),
            Text(_num(allocated, 2), "yellow" if short and row.get("pendingGPUs") else ""),
            _num(row.get("pendingGPUs")),
            _hours(row.get("gpuSecondsConsumed")),
        )
    return table


def _reason(status: Mapping[str, Any]) -> str:
    waiting = status.get("waiting") or {}
    if waiting:
        return str(waiting.get("reason", ""))
    failed = [c for c in status.get("conditions") or [] if c.get("status") == "False"]
    return str(failed[-1].get("reason", "")) if failed else ""


def _placement(status: Mapping[str, Any]) -> str:
    """Where an admitted model runs: ``owner/node ×GPUs`` per node."""
    if status.get("phase") not in ("Admitted", "Training", "Serving"):
        return ""
    placement = (status.get("admission") or {}).get("placement") or []
    return ", ".join(f"{p.get('owner')}/{p.get('node')} ×{p.get('gpus')}" for p in placement)


def models_table(models: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="models", title_justify="left", expand=True)
    for column in ("model", "community", "phase", "GPUs", "queue", "reason", "endpoint / message"):
        table.add_column(column, justify="right" if column in ("GPUs", "queue") else "left")
    table.columns[-1].overflow = "fold"
    for model in sorted(
        models, key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"])
    ):
        meta, status = model["metadata"], model.get("status") or {}
        phase = status.get("phase") or "-"
        admission = status.get("admission") or {}
        gpus = admission.get("gpus", status.get("requestedGPUs"))
        detail = status.get("endpoint") if phase == "Serving" else _placement(status)
        detail = detail or status.get("summary")
        table.add_row(
            f"{meta.get('namespace', '')}/{meta['name']}",
            status.get("community") or (model.get("spec") or {}).get("community") or "",
            Text(phase, PHASE_STYLE.get(phase, "")),
            _num(gpus),
            str(status.get("queuePosition") or ""),
            _reason(status),
            detail or "",
        )
    return table


def render(
    pools: Sequence[Mapping[str, Any]],
    models: Sequence[Mapping[str, Any]],
    now: datetime | None = None,
) -> RenderableType:
    """The whole view: one panel per pool (owners, communities, its models)."""
    panels: list[RenderableType] = []
    by_pool: dict[str, list[Mapping[str, Any]]] = {}
    for model in models:
        by_pool.setdefault(str((model.get("spec") or {}).get("pool", "")), []).append(model)
    for pool in sorted(pools, key=lambda p: p["metadata"]["name"]):
        name = pool["metadata"]["name"]
        panels.append(
            Panel(
                Group(
                    owners_table(pool), communities_table(pool), models_table(by_pool.pop(name, []))
                ),
                title=_pool_title(pool),
                title_align="left",
            )
        )
    orphans = [m for rest in by_pool.values() for m in rest]
    if orphans:
        panels.append(
            Panel(models_table(orphans), title="models of no known pool", title_align="left")
        )
    if not panels:
        panels.append(Text("no ComputePools and no CommunityModels", "dim"))
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    panels.append(Text(f"polyculture status · {stamp}", "dim"))
    return Group(*panels)


# --- reading the cluster ---------------------------------------------------------------------


def _configure(kubeconfig: str | None) -> None:
    from kubernetes import config

    path = kubeconfig or os.environ.get("KUBECONFIG")
    default = Path.home() / ".kube" / "config"
    if path or default.is_file():
        config.load_kube_config(config_file=path or str(default))  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]


def read(pool: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pools (one, or all) and their models, as plain dicts."""
    from kubernetes import client

    api = client.CustomObjectsApi()
    pools: list[dict[str, Any]]
    if pool:
        try:
            pools = [
                cast(
                    dict[str, Any],
                    api.get_cluster_custom_object(GROUP, VERSION, "computepools", pool),
                )
            ]
        except client.ApiException as err:
            if err.status != 404:
                raise
            pools = []
    else:
        listed = cast(
            dict[str, Any], api.list_cluster_custom_object(GROUP, VERSION, "computepools")
        )
        pools = listed["items"]
    found = cast(dict[str, Any], api.list_cluster_custom_object(GROUP, VERSION, "communitymodels"))
    models: list[dict[str, Any]] = found["items"]
    if pool:
        models = [m for m in models if (m.get("spec") or {}).get("pool") == pool]
    return pools, models


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="polyculture status", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--pool", help="only this ComputePool and its models")
    parser.add_argument("--watch", action="store_true", help="keep the view live until Ctrl-C")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between reads")
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    _configure(args.kubeconfig)
    console = Console()
    if not args.watch:
        pools, models = read(args.pool)
        if args.pool and not pools:
            console.print(f"[red]no ComputePool named {args.pool!r}[/red]")
            return 1
        console.print(render(pools, models))
        return 0
    from rich.live import Live

    try:
        with Live(
            render(*read(args.pool)), console=console, screen=False, auto_refresh=False
        ) as live:
            while True:
                time.sleep(args.interval)
                live.update(render(*read(args.pool)), refresh=True)
    except KeyboardInterrupt:
        return 0
