"""``polyculture run``: the operator process (kopf), cluster-wide."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kopf

from polyculture.kube.client import configure


def load_handlers() -> None:
    """Import every handler module: importing registers the handlers with kopf."""
    from polyculture.handlers import models, nodes, pools, settings  # noqa: F401


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="polyculture run", description=__doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics (0: off)"
    )
    parser.add_argument("--metrics-address", default="127.0.0.1")
    parser.add_argument(
        "--liveness", default=None, help="e.g. http://0.0.0.0:8081/healthz (off by default)"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    configure(args.kubeconfig)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_address)
    load_handlers()
    asyncio.run(kopf.operator(clusterwide=True, liveness_endpoint=args.liveness, standalone=True))
    return 0
