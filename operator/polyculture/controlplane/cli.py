"""``polyculture cluster up|down|status``: a local control plane that outlives the command.

``up`` starts it detached, writes the admin kubeconfig to ``<dir>/kubeconfig`` and prints its
path; ``down`` stops the processes recorded in ``<dir>/state.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from polyculture.controlplane.runner import ControlPlane, ControlPlaneError, pid_alive

DEFAULT_DIR = Path(".polyculture")


def _down(run_dir: Path) -> int:
    state_file = run_dir / "state.json"
    if not state_file.exists():
        print(f"no control plane recorded in {state_file}")
        return 0
    pids: dict[str, int] = json.loads(state_file.read_text())["pids"]
    for pid in reversed(list(pids.values())):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids.values()):
        time.sleep(0.2)
    for pid in pids.values():
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    state_file.unlink()
    print(f"control plane stopped ({len(pids)} processes)")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="polyculture cluster", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="run directory")
    args = parser.parse_args(argv)
    run_dir: Path = args.dir.resolve()
    if args.action == "down":
        return _down(run_dir)
    state_file = run_dir / "state.json"
    if args.action == "status":
        if not state_file.exists():
            print("down")
            return 1
        state = json.loads(state_file.read_text())
        alive = {n: pid_alive(p) for n, p in state["pids"].items()}
        print(json.dumps({"server": state["server"], "alive": alive}, indent=2))
        return 0 if all(alive.values()) else 1
    if state_file.exists():
        _down(run_dir)
    cp = ControlPlane(run_dir=run_dir / "cluster", detach=True)
    started = time.monotonic()
    try:
        cp.start()
    except ControlPlaneError as err:
        print(f"polyculture cluster up: {err}", file=sys.stderr)
        return 1
    # the state and kubeconfig live at the top of the run directory, where `down` looks
    (run_dir / "state.json").write_text((cp.run_dir / "state.json").read_text())
    (run_dir / "kubeconfig").write_text(cp.kubeconfig.read_text())
    (run_dir / "kubeconfig").chmod(0o600)
    print(f"control plane ready at {cp.server} in {time.monotonic() - started:.1f} s")
    print(f"logs: {cp.logs}")
    print(f"export KUBECONFIG={run_dir / 'kubeconfig'}")
    return 0
