"""``polyculture ledger``: a pool's hash-chained ledger, exported, verified offline, summed.

::

    polyculture ledger export --pool P [-o FILE]     # JSON lines, one entry per line
    polyculture ledger verify FILE [--head HASH]     # offline; exit 1 naming the first bad entry
    polyculture ledger show --pool P [--csv]         # GPU-seconds given per owner, used per
    polyculture ledger show --file FILE [--csv]      #   community and model
    polyculture ledger --pool P [--csv]              # the same as show

``export`` and ``show --pool`` read the chunks from the cluster (``--kubeconfig``, else
``$KUBECONFIG``, else in-cluster) in the namespace the pool's ``status.ledger`` names.
``verify`` needs nothing but the file: the published head (``kubectl get pool P -o
jsonpath='{.status.ledger.head}'``) ties it to what the operator announced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from polyculture.ledger.totals import Totals
from polyculture.ledger.verify import Verification, verify_lines

SUBCOMMANDS = ("export", "verify", "show")


def _cluster(kubeconfig: str | None) -> Any:
    from polyculture.kube.client import api_client, configure

    configure(kubeconfig)
    return api_client()


def _pool_ledger(api: Any, pool: str, namespace: str | None) -> tuple[str, str | None]:
    """The namespace of ``pool``'s chunks and its published head."""
    from kubernetes import client

    from polyculture.kube.ledger_store import operator_namespace

    obj: Any = client.CustomObjectsApi(api).get_cluster_custom_object(
        "polyculture.dev", "v1alpha1", "computepools", pool
    )
    ledger = (obj.get("status") or {}).get("ledger") or {}

    return namespace or ledger.get("namespace") or operator_namespace(), ledger.get("head")


def _export(args: argparse.Namespace) -> list[str]:
    from polyculture.kube.ledger_store import export_lines

    api = _cluster(args.kubeconfig)
    namespace, _ = _pool_ledger(api, args.pool, args.namespace)
    return export_lines(api, namespace, args.pool)


def _print_totals(totals: Totals, as_csv: bool) -> None:
    print(totals.csv() if as_csv else totals.table(), end="" if as_csv else "\n")


def _summary(result: Verification) -> str:
    return (
        f"{result.entries} entries of pool {result.pool}, {result.start} .. {result.end}, "
        f"head {result.head}"
    )


def main(argv: list[str]) -> int:
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["show", *argv]
    parser = argparse.ArgumentParser(
        prog="polyculture ledger",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write the pool's log as JSON lines")
    export.add_argument("--pool", required=True)
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    verify = sub.add_parser("verify", help="recompute the chain and the totals of an export")
    verify.add_argument("file", help="an export (JSON lines); - for standard input")
    verify.add_argument("--head", help="the head hash the pool's status published")
    verify.add_argument("--csv", action="store_true", help="totals as CSV")
    show = sub.add_parser("show", help="GPU-seconds given per owner, used per community/model")
    source = show.add_mutually_exclusive_group(required=True)
    source.add_argument("--pool")
    source.add_argument("--file", help="an export instead of the cluster")
    show.add_argument("--csv", action="store_true")
    for p in (export, show):
        p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
        p.add_argument("--namespace", help="where the chunks are (default: the pool's status)")
    args = parser.parse_args(argv)

    if args.command == "export":
        text = "".join(line + "\n" for line in _export(args))
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.command == "verify":
        source_text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        result = verify_lines(source_text.splitlines(), head=args.head)
        if not result.ok:
            print(f"ledger verify: FAILED: {result.problem}", file=sys.stderr)
            print(f"(the {result.entries} entries before it verify)", file=sys.stderr)
            return 1
        print(f"ledger verify: OK: {_summary(result)}", file=sys.stderr)
        _print_totals(result.totals, args.csv)
        return 0
    lines = Path(args.file).read_text().splitlines() if args.file else _export(args)
    result = verify_lines(lines)
    if not result.ok:
        print(f"ledger show: the log does not verify: {result.problem}", file=sys.stderr)
        return 1
    _print_totals(result.totals, args.csv)
    return 0
