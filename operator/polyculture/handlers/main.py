"""``polyculture run``: the operator process (kopf), cluster-wide.

With ``--leader-election`` (what the chart runs) only the replica holding the Lease
``<namespace>/polyculture-operator`` acts; the others serve their metrics and wait to take
over. A replica that loses the Lease stops (exit status 1) rather than act beside another one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import threading
import time

import kopf

from polyculture.kube.client import configure


def load_handlers() -> None:
    """Import every handler module: importing registers the handlers with kopf."""
    from polyculture.handlers import admission, ledger, models, nodes, pools, settings  # noqa: F401


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="polyculture run", description=__doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics (0: off)"
    )
    parser.add_argument("--metrics-address", default="127.0.0.1")
    parser.add_argument(
        "--liveness", default=None, help="e.g. http://0.0.0.0:8081/healthz (off by default)"
    )
    parser.add_argument(
        "--leader-election",
        action="store_true",
        help="act only while holding the operator Lease (for more than one replica)",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else 'default')",
    )
    parser.add_argument("--leader-election-name", default="polyculture-operator")
    parser.add_argument(
        "--lease-duration", type=int, default=8, help="seconds a Lease lasts unrenewed"
    )
    parser.add_argument(
        "--ray-state-dir",
        default=None,
        help="state of the local Ray backend's clusters and default checkpoints "
        "(default: .polyculture/ray)",
    )
    parser.add_argument(
        "--ray-fate-share",
        action="store_true",
        help="local Ray clusters die with the operator (demo); by default they outlive it and "
        "a restarted operator adopts them",
    )
    parser.add_argument(
        "--cluster-start-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a new Ray cluster may take to become ready before it is torn down and "
        "its model requeued (default 300)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.cluster_start_timeout is not None and not (
        math.isfinite(args.cluster_start_timeout) and args.cluster_start_timeout > 0
    ):
        parser.error("--cluster-start-timeout must be a positive number of seconds")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    if args.ray_state_dir:
        os.environ["POLYCULTURE_RAY_STATE_DIR"] = args.ray_state_dir
    if args.ray_fate_share:
        os.environ["POLYCULTURE_RAY_FATE_SHARE"] = "1"
    if args.cluster_start_timeout is not None:
        os.environ["POLYCULTURE_CLUSTER_START_TIMEOUT"] = str(args.cluster_start_timeout)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    configure(args.kubeconfig)
    from polyculture.metrics import set_leader

    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_address)
    load_handlers()
    if not args.leader_election:
        set_leader(True)
        asyncio.run(
            kopf.operator(clusterwide=True, liveness_endpoint=args.liveness, standalone=True)
        )
        return 0

    from polyculture.kube.leader import LeaderLease

    if args.lease_duration < 3:
        raise SystemExit("polyculture run: --lease-duration must be at least 3 seconds")
    lease = LeaderLease(
        namespace=args.leader_election_namespace,
        name=args.leader_election_name,
        lease_duration_s=args.lease_duration,
        renew_deadline_s=args.lease_duration * 3 // 4,
        retry_period_s=max(1, args.lease_duration // 8),
    )
    set_leader(False)
    try:
        lease.acquire()
    except KeyboardInterrupt:
        return 0
    set_leader(True)
    try:
        asyncio.run(_operate_while_leading(lease.lost, args.liveness))
    finally:
        set_leader(False)
        if not lease.lost.is_set():
            lease.release()
    return 1 if lease.lost.is_set() else 0


async def _operate_while_leading(lost: threading.Event, liveness: str | None) -> None:
    """Run kopf until a signal stops it or the Lease is lost.

    The stop flag is an asyncio.Event set from a plain thread: kopf waits for thread-based
    flags in its executor, which would keep the process alive after a signal.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(
        target=_stop_when, args=(lost, loop, stop), name="lease-watch", daemon=True
    ).start()
    await kopf.operator(
        clusterwide=True, liveness_endpoint=liveness, standalone=True, stop_flag=stop
    )


def _stop_when(lost: threading.Event, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """On a lost Lease: ask kopf to stop, and exit at once if it has not within a second.

    Another replica may take the Lease ``lease_duration - renew_deadline`` seconds after this
    one stopped renewing; acting beyond that would make two active operators.
    """
    lost.wait()
    with contextlib.suppress(RuntimeError):  # the loop closed: kopf has stopped already
        loop.call_soon_threadsafe(stop.set)
    time.sleep(1.0)
    logging.getLogger(__name__).error("lost the leader Lease: exiting")
    os._exit(1)
