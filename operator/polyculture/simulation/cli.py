"""``polyculture simulate``: replay a trace through the scheduler and its two baselines.

One invocation replays the trace three times on the same number of GPUs — ``fair`` (the
scheduling core), ``fifo`` and ``partition`` (see :mod:`polyculture.simulation.baselines`) —
because every policy's sharing incentive is measured against ``partition``. ``--policy``
picks which one the report leads with; ``--json`` prints one JSON object with its measures
(definitions in :mod:`polyculture.simulation.metrics`), a ``baselines`` object holding the
same measures for ``fifo`` and ``partition`` (and ``fair`` when another policy leads), and
``setup`` (the pool, the parameters, the replay time). ``--out DIR`` writes the PNG figures of
:mod:`polyculture.simulation.plots`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from polyculture.simulation import metrics
from polyculture.simulation.baselines import (
    FifoPolicy,
    PartitionPolicy,
    partition_pool,
    partition_slices,
)
from polyculture.simulation.regimes import coop_trace, usage_weights
from polyculture.simulation.replay import Policy, PoolNode, Replay, build_pool, replay
from polyculture.simulation.trace import Trace, TraceError, load_config, load_philly, with_config

if TYPE_CHECKING:
    from polyculture.simulation.fair import FairPolicy

POLICIES = ("fair", "fifo", "partition")


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="polyculture simulate",
        description="Replay a GPU-cluster trace (Philly format) in virtual time through the "
        "fair-share scheduler and the fifo and partition baselines.",
    )
    parse.add_argument("--trace", required=True, type=Path, help="Philly-format CSV")
    parse.add_argument("--gpus", required=True, type=int, help="GPUs in the pool")
    parse.add_argument("--policy", choices=POLICIES, default="fair", help="policy to report on")
    parse.add_argument("--out", type=Path, help="write PNG figures into this directory")
    parse.add_argument("--json", action="store_true", help="print one JSON object")
    parse.add_argument("--nodes-gpus", type=int, default=8, help="GPUs per node (default 8)")
    parse.add_argument("--owners", type=int, default=4, help="owners contributing nodes")
    parse.add_argument("--config", type=Path, help="YAML: communities' weight/guarantee/cap")
    parse.add_argument("--limit", type=int, help="replay only the first N arrivals")
    parse.add_argument(
        "--min-runtime",
        type=float,
        default=600.0,
        help="seconds a job runs before fair share may preempt or move it (default 600, "
        "the pool's default minRuntime of 10m)",
    )
    parse.add_argument(
        "--restart-cost",
        type=float,
        default=60.0,
        help="seconds a restarted job spends reloading before it makes progress (default 60, "
        "Tiresias' measured 62 s per preemption)",
    )
    parse.add_argument(
        "--checkpoint-interval",
        type=float,
        default=1800.0,
        help="seconds of work between a job's checkpoints; a preempted or moved job redoes "
        "the work since its last one (default 1800: every 30 minutes; 0: continuously)",
    )
    parse.add_argument(
        "--grace",
        type=float,
        default=120.0,
        help="seconds a preempted job takes to stop; what starts on its GPUs waits for it "
        "(default 120, the pool's default gracePeriod of 2m)",
    )
    parse.add_argument(
        "--half-life", type=float, default=7 * 86400.0, help="usage decay half-life (s)"
    )
    parse.add_argument("--no-preemption", action="store_true", help="fair policy never preempts")
    parse.add_argument(
        "--no-reclaim",
        action="store_true",
        help="fair policy preempts only from communities that stay at their entitlement "
        "(never reclaims borrowed GPUs below it)",
    )
    parse.add_argument(
        "--restart-backoff",
        type=float,
        default=2.0,
        help="fair policy: a job's minimum runtime grows by this factor with each restart "
        "(default 2: doubles, as a crash-loop back-off; 1: flat)",
    )
    parse.add_argument(
        "--preemption-delay",
        type=float,
        default=600.0,
        help="fair policy: seconds a queued job waits before it may preempt or move others "
        "(default 600: as long as the minimum runtime protects a job; 0: at once)",
    )
    parse.add_argument(
        "--reclaim-delay",
        type=float,
        default=0.0,
        help="fair policy: the preemption delay of a queued job whose community stays within "
        "its nominal share (default 0: it takes its share back at once; at most "
        "--preemption-delay)",
    )
    parse.add_argument(
        "--restart-limit",
        type=int,
        default=0,
        help="fair policy: a job restarted this many times is no longer preempted for fair "
        "share or moved (default 0: no limit)",
    )
    parse.add_argument(
        "--move-restarted-only",
        action="store_true",
        help="fair policy: consolidation moves only jobs preempted or moved before "
        "(default: any movable job of a community above its nominal share)",
    )
    parse.add_argument(
        "--spare-new",
        action="store_true",
        help="fair policy: clearing a node for a gang (preemption node by node, moves) "
        "restarts the fewest jobs never restarted before, then the fewest jobs (default: the "
        "fewest GPUs)",
    )
    parse.add_argument(
        "--reservation",
        action="store_true",
        help="fair policy: hold free GPUs for the first job that waits for room while its "
        "community is below its entitlement and owed GPU-time (decayed usage below its "
        "weighted share), so that GPUs freeing up gather for it (default: off)",
    )
    parse.add_argument(
        "--victim-order",
        choices=("cost", "start"),
        default="cost",
        help="fair policy: the core is told each job's restarts and checkpoints and takes "
        "victims with fewest restarts, then least work at risk (cost, default); or it is told "
        "neither and takes the most recently started (start)",
    )
    parse.add_argument(
        "--no-consolidation",
        action="store_true",
        help="fair policy never moves running jobs to clear a block for a waiting gang",
    )
    parse.add_argument(
        "--coop",
        type=int,
        metavar="N",
        help="replay a small co-op cut from the trace: N communities of the middle of its "
        "GPU-time ranking, gangs of at most half the pool, sampled to a load of 1 "
        "(rules in polyculture.simulation.regimes)",
    )
    parse.add_argument(
        "--weights",
        choices=("config", "usage"),
        default="config",
        help="communities' weights and guarantees: from --config (default: equal), or "
        "usage: proportional to each one's GPU time in the trace, guarantee half its slice",
    )
    return parse


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.gpus <= 0 or args.nodes_gpus <= 0:
        print("polyculture simulate: --gpus and --nodes-gpus must be positive", file=sys.stderr)
        return 2
    if args.restart_backoff < 1:
        print("polyculture simulate: --restart-backoff must be >= 1", file=sys.stderr)
        return 2
    costs = (
        "--restart-cost",
        "--checkpoint-interval",
        "--grace",
        "--min-runtime",
        "--preemption-delay",
        "--reclaim-delay",
        "--restart-limit",
    )
    for flag in costs:
        if getattr(args, flag[2:].replace("-", "_")) < 0:
            print(f"polyculture simulate: {flag} must be >= 0", file=sys.stderr)
            return 2
    try:
        trace = load_philly(args.trace, limit=args.limit)
        if args.config is not None:
            trace = with_config(trace, load_config(args.config))
        if args.coop is not None:
            trace = coop_trace(trace, gpus=args.gpus, communities=args.coop, config=trace.config)
        if args.weights == "usage":
            trace = with_config(trace, usage_weights(trace, args.gpus))
    except (OSError, TraceError, ValueError) as error:
        print(f"polyculture simulate: {error}", file=sys.stderr)
        return 2
    report, results = run(trace, args)
    if args.out is not None:
        slices = report["setup"]["partition_slices"]  # type: ignore[index]
        write_figures(trace, results, args.out, credit=_credit(args.trace), slices=slices)
        report["figures"] = sorted(str(path) for path in args.out.glob("*.png"))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render(report))
    return 0


def run(trace: Trace, args: argparse.Namespace) -> tuple[dict[str, object], dict[str, Replay]]:
    """Replay all three policies; the report of ``args.policy`` with the others as baselines."""
    pool = build_pool(args.gpus, node_gpus=args.nodes_gpus, owners=args.owners)
    weights = {name: trace.community_config(name).weight for name in trace.communities}
    guarantees = {name: trace.community_config(name).guaranteed_gpus for name in trace.communities}
    slices = partition_slices(args.gpus, weights, minimum=guarantees)
    private = partition_pool(slices, node_gpus=args.nodes_gpus, owners=args.owners)

    made: list[FairPolicy] = []

    def fair(nodes: tuple[PoolNode, ...]) -> Policy:
        from polyculture.simulation.fair import FairPolicy  # the core is imported only here

        made.append(
            FairPolicy(
                nodes,
                trace.config,
                preemption=not args.no_preemption,
                min_runtime_s=args.min_runtime,
                consolidation=not args.no_consolidation,
                reclaim=not args.no_reclaim,
                restart_backoff=args.restart_backoff,
                preemption_delay_s=args.preemption_delay,
                reclaim_delay_s=args.reclaim_delay,
                restart_limit=args.restart_limit,
                reservation=args.reservation,
                move_restarted_only=args.move_restarted_only,
                spare_new=args.spare_new,
                victim_costs=args.victim_order == "cost",
                checkpoint_interval_s=args.checkpoint_interval,
            )
        )
        return made[-1]

    plans: dict[str, tuple[tuple[PoolNode, ...], Callable[[tuple[PoolNode, ...]], Policy]]] = {
        "partition": (private, PartitionPolicy),
        "fifo": (pool, FifoPolicy),
        "fair": (pool, fair),
    }
    results: dict[str, Replay] = {}
    elapsed: dict[str, float] = {}
    for name, (nodes, make) in plans.items():
        began = time.perf_counter()
        results[name] = replay(
            trace,
            nodes,
            make(nodes),
            node_gpus=args.nodes_gpus,
            restart_cost_s=args.restart_cost,
            usage_half_life_s=args.half_life,
            checkpoint_interval_s=args.checkpoint_interval,
            grace_s=args.grace,
        )
        elapsed[name] = time.perf_counter() - began
    measured = {
        name: {
            **metrics.summary(result, results["partition"], trace.config, args.grace),
            "elapsed_s": round(elapsed[name], 2),
        }
        for name, result in results.items()
    }
    for policy in made[-1:]:
        # what the restarts are made of: the core's preemptions by reason, and each restarted
        # job by the reason of its first restart
        measured["fair"]["preemptions_by_reason"] = dict(
            sorted(policy.preemptions_by_reason.items())
        )
        measured["fair"]["first_restarts_by_reason"] = dict(
            sorted(policy.first_restarts_by_reason.items())
        )
        measured["fair"]["preemption_breakdown"] = policy.breakdown.report()
    report: dict[str, object] = dict(measured[args.policy])
    # fifo and partition always; fair too when the report leads with a baseline
    baselines = {name: entry for name, entry in measured.items() if name != args.policy}
    baselines.update((name, measured[name]) for name in ("fifo", "partition"))
    report["baselines"] = baselines
    report["setup"] = {
        "trace": str(args.trace),
        "jobs": len(trace.jobs),
        "communities": len(trace.communities),
        "gpus": args.gpus,
        "nodes": len(pool),
        "node_gpus": args.nodes_gpus,
        "owners": args.owners,
        "partition_slices": slices,
        "min_runtime_s": args.min_runtime,
        "restart_cost_s": args.restart_cost,
        "checkpoint_interval_s": args.checkpoint_interval,
        "grace_s": args.grace,
        "usage_half_life_s": args.half_life,
        "preemption": not args.no_preemption,
        "reclaim": not args.no_reclaim,
        "consolidation": not args.no_consolidation,
        "restart_backoff": args.restart_backoff,
        "preemption_delay_s": args.preemption_delay,
        "reclaim_delay_s": args.reclaim_delay,
        "restart_limit": args.restart_limit,
        "reservation": args.reservation,
        "move_restarted_only": args.move_restarted_only,
        "spare_new": args.spare_new,
        "victim_order": args.victim_order,
        "coop_communities": args.coop,
        "weights": args.weights,
        "config": {
            name: {"weight": c.weight, "guaranteed_gpus": c.guaranteed_gpus, "max_gpus": c.max_gpus}
            for name, c in sorted(trace.config.items())
        },
        "elapsed_s": round(sum(elapsed.values()), 2),
    }
    return report, results


def write_figures(
    trace: Trace,
    results: dict[str, Replay],
    out: Path,
    *,
    credit: str,
    slices: Mapping[str, int],
) -> None:
    """Allocation per community for each policy, and the wait CDF of all of them."""
    from polyculture.simulation import plots  # matplotlib only when figures are asked for

    out.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        plots.allocation_figure(
            result,
            trace.config,
            out / f"allocation-{name}.png",
            credit=credit,
            slices=slices if name == "partition" else None,
        )
    plots.wait_cdf_figure(list(results.values()), out / "wait-cdf.png", credit=credit)


def _credit(path: Path) -> str:
    if "philly" in path.name.lower():
        from polyculture.simulation.plots import PHILLY_CREDIT

        return PHILLY_CREDIT
    return f"Trace: {path.name}"


_SHOWN = (
    ("utilization_contended", "{:.3f}"),
    ("jain_contended", "{:.3f}"),
    ("jain_span", "{:.3f}"),
    ("sharing_incentive_fraction", "{:.3f}"),
    ("sharing_incentive_grace_fraction", "{:.3f}"),
    ("wait_p50_s", "{:.0f}"),
    ("wait_p95_s", "{:.0f}"),
    ("wait_mean_s", "{:.0f}"),
    ("jct_p50_s", "{:.0f}"),
    ("jct_p95_s", "{:.0f}"),
    ("slowdown_p95", "{:.1f}"),
    ("preemptions", "{}"),
    ("preempted_job_fraction", "{:.3f}"),
    ("max_restarts", "{}"),
    ("restarts_p99", "{:.0f}"),
    ("gpu_time_lost_fraction", "{:.3f}"),
    ("contended_fraction", "{:.3f}"),
    ("unplaceable_jobs", "{}"),
    ("never_served_jobs", "{}"),
    ("elapsed_s", "{}"),
)


def render(report: dict[str, object]) -> str:
    """The report as a table: one column per policy, the reported policy first."""
    baselines = report["baselines"]
    assert isinstance(baselines, dict)
    columns = {str(report["policy"]): report}
    columns.update((name, entry) for name, entry in baselines.items() if name not in columns)
    setup = report["setup"]
    assert isinstance(setup, dict)
    lines = [
        f"{setup['jobs']} jobs, {setup['communities']} communities, {setup['gpus']} GPUs "
        f"({setup['nodes']} nodes); replayed in {setup['elapsed_s']} s",
        f"{'measure':<28}" + "".join(f"{name:>14}" for name in columns),
    ]
    for key, form in _SHOWN:
        cells = "".join(f"{form.format(entry[key]):>14}" for entry in columns.values())
        lines.append(f"{key:<28}{cells}")
    for path in report.get("figures", []) or []:  # type: ignore[attr-defined]
        lines.append(f"figure: {path}")
    return "\n".join(lines)
