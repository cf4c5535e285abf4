"""``polyculture agent``: read this node's GPUs with NVML and publish them on its Node.

Modes:

- ``--print``: read once, print the discovery as JSON (with the labels it would set) on
  stdout, exit. No Kubernetes. ``make gpu-check`` runs ``polyculture agent --once --print``.
- ``--once``: read once, publish on the Node, exit.
- default: read and publish every ``--interval``, serve Prometheus metrics on
  ``--metrics-address:--metrics-port`` (``127.0.0.1`` by default; port 0 turns them off),
  stop cleanly on SIGTERM/SIGINT.

Exit status: 0 done; 1 the Node could not be written (``--once``); 2 bad arguments;
3 NVML unavailable. With NVML unavailable the agent says so on stderr, and, unless
``--print``, first withdraws its GPU claims from the Node (health ``unhealthy``, no
count) so that the pool stops counting GPUs nobody can see. It never invents a GPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyculture.agent.discovery import discovery_as_dict
from polyculture.agent.labels import (
    DETAIL,
    build_detail,
    build_labels,
    build_unavailable_detail,
    build_unavailable_labels,
)
from polyculture.agent.nvml_reader import NvmlReader, NvmlUnavailableError, load_pynvml

if TYPE_CHECKING:
    from polyculture.agent.metrics import AgentMetrics
    from polyculture.agent.publisher import NodePublisher

log = logging.getLogger("polyculture.agent")

EXIT_OK = 0
EXIT_PUBLISH_FAILED = 1
EXIT_USAGE = 2
EXIT_NVML_UNAVAILABLE = 3

DEFAULT_METRICS_PORT = 9742

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(text: str) -> float:
    """``30s``, ``2m``, ``500ms``, ``1h`` or plain seconds -> seconds (> 0)."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 2m, 500ms)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"the interval must be positive: {text!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polyculture agent",
        description="Read this node's GPUs with NVML and publish them as labels on its Node.",
    )
    parser.add_argument(
        "--node",
        default=os.environ.get("NODE_NAME"),
        help="the Node to label (default: $NODE_NAME, set by the DaemonSet)",
    )
    parser.add_argument(
        "--interval",
        type=parse_interval,
        default=30.0,
        metavar="DURATION",
        help="time between refreshes, e.g. 30s, 2m (default: 30s)",
    )
    parser.add_argument("--once", action="store_true", help="read and publish once, then exit")
    parser.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the discovery as JSON and exit; no Kubernetes",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help=f"Prometheus metrics port, 0 to disable (default: {DEFAULT_METRICS_PORT})",
    )
    parser.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        help="address the metrics listen on (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig file (default: in-cluster service account, else $KUBECONFIG)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def main(
    argv: list[str],
    *,
    nvml: Any = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run the agent. ``nvml`` replaces the real ``pynvml`` module (tests pass a fake);
    ``stop`` ends the refresh loop when set (SIGTERM sets it when this is the main thread)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.print_only and not args.node:
        parser.error("--node (or $NODE_NAME) is required unless --print")
    if not 0 <= args.metrics_port <= 65535:
        parser.error(f"--metrics-port out of range: {args.metrics_port}")
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )

    try:
        reader = NvmlReader(nvml=load_pynvml() if nvml is None else nvml)
        reader.open()
    except NvmlUnavailableError as error:
        return _nvml_unavailable(str(error), args)

    try:
        if args.print_only:
            return _print_discovery(reader)
        # Imported here so that `--print` needs nothing beyond nvidia-ml-py.
        from polyculture.agent.metrics import AgentMetrics

        publisher = _publisher(args)
        metrics = AgentMetrics()
        if not args.once and args.metrics_port:
            metrics.serve(port=args.metrics_port, address=args.metrics_address)
            log.info("metrics on http://%s:%d/metrics", args.metrics_address, args.metrics_port)
        if stop is None:
            stop = threading.Event()
            _stop_on_signals(stop)
        try:
            return run(
                reader=reader,
                publisher=publisher,
                metrics=metrics,
                interval=args.interval,
                once=args.once,
                stop=stop,
                clock=clock,
            )
        finally:
            publisher.close()
    except NvmlUnavailableError as error:
        return _nvml_unavailable(str(error), args)
    finally:
        reader.close()


def run(
    *,
    reader: NvmlReader,
    publisher: NodePublisher,
    metrics: AgentMetrics,
    interval: float,
    once: bool,
    stop: threading.Event,
    clock: Callable[[], float],
) -> int:
    """Read, record, publish; repeat every ``interval`` until ``stop`` (or once).

    A failed publication is logged and retried at the next refresh (exit 1 with ``once``);
    NVML going away raises ``NvmlUnavailableError`` to the caller.
    """
    while True:
        discovery = reader.read()
        metrics.update(discovery, now=clock())
        log.info(
            "node=%s gpus=%d healthy=%d health=%s",
            publisher.node_name,
            discovery.count,
            discovery.healthy_count,
            discovery.health,
        )
        try:
            patched = publisher.publish(
                labels=build_labels(discovery), annotations={DETAIL: build_detail(discovery)}
            )
            metrics.publishes.labels("patched" if patched else "unchanged").inc()
        except Exception:
            # The API server may be away for a while; the next refresh tries again.
            metrics.publishes.labels("error").inc()
            log.exception("node=%s could not publish the GPU labels", publisher.node_name)
            if once:
                return EXIT_PUBLISH_FAILED
        if once or stop.wait(interval):
            return EXIT_OK


def _print_discovery(reader: NvmlReader) -> int:
    discovery = reader.read()
    out = discovery_as_dict(discovery, readings=True)
    out["labels"] = build_labels(discovery)
    print(json.dumps(out, indent=2, sort_keys=True))
    return EXIT_OK


def _publisher(args: argparse.Namespace) -> NodePublisher:
    # Imported here so that `--print` runs without the Kubernetes client.
    from polyculture.agent.publisher import NodePublisher, api_client

    return NodePublisher(api_client(args.kubeconfig), args.node)


def _nvml_unavailable(reason: str, args: argparse.Namespace) -> int:
    print(
        f"polyculture agent: NVML is unavailable, no GPUs reported: {reason}",
        file=sys.stderr,
    )
    if not args.print_only and args.node:
        try:
            publisher = _publisher(args)
            try:
                publisher.publish(
                    labels=build_unavailable_labels(),
                    annotations={DETAIL: build_unavailable_detail(reason)},
                )
            finally:
                publisher.close()
        except Exception:
            log.exception("node=%s could not withdraw the GPU labels", args.node)
    return EXIT_NVML_UNAVAILABLE


def _stop_on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
