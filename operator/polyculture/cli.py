"""The `polyculture` command: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing ``main(argv: list[str]) -> int`` and owns
its own argument parser, so that adding a command never touches another one and importing
the CLI stays cheap (modules are imported only when their command runs).
"""

from __future__ import annotations

import importlib
import sys
from typing import Final

#: command -> (module holding ``main(argv)``, one-line help)
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "run": ("polyculture.handlers.main", "run the operator (kopf) against the current kubeconfig"),
    "crds": ("polyculture.api.crdgen", "generate crds/*.yaml from the pydantic models"),
    "simulate": ("polyculture.simulation.cli", "replay a GPU-cluster trace through the scheduler"),
    "bench": ("polyculture.simulation.bench", "benchmark the scheduler (`bench scheduler ...`)"),
    "agent": ("polyculture.agent.cli", "node agent: read GPUs with NVML, label the Node"),
    "cluster": ("polyculture.controlplane.cli", "start/stop the local control plane (up|down)"),
    "ledger": ("polyculture.ledger_cli", "a pool's hash-chained ledger: export, verify, totals"),
    "demo": ("polyculture.demo", "the embedded demo: control plane, pool, models, operator"),
    "status": ("polyculture.statusview", "live view of pools, communities, models, the ledger"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: polyculture COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `polyculture COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    if args[0] == "--version":
        from polyculture import __version__

        print(f"polyculture {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"polyculture: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
