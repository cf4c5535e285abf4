"""The keeper: one small process per local Ray cluster that owns all of the cluster's processes.

Started by :class:`polyculture.ray.local.LocalBackend` in a new session, it

1. makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so that the Ray
   daemons, which ``ray start`` leaves behind as orphans, become its children and not init's;
2. starts the head node, then every worker node at once (``python -m
   polyculture.ray.nodestart ...``), and records progress in ``keeper.json``
   (``{"phase": "starting" | "running" | "failed" | "stopping" | "stopped", ...}``);
3. waits, reaping children, until it is told to stop — SIGTERM/SIGINT/SIGHUP, or, when the
   cluster shares the fate of its creator, end-of-file on stdin: the creator holds the
   pipe's other end, and the kernel closes it however the creator dies (even SIGKILL), on
   any thread, which ``PR_SET_PDEATHSIG`` would not survive (it fires when the *thread* that
   forked exits);
4. stops every process of the cluster (SIGTERM, then SIGKILL; see
   :mod:`polyculture.ray.processes` for how they are found), deletes Ray's temp dir, exits.

Standard library only, so the keeper costs a few MB and never imports Ray.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from polyculture.ray import processes

PR_SET_CHILD_SUBREAPER = 36
NODE_START_TIMEOUT_S = 180.0
#: set (to anything) to keep Ray's temp dir (its logs) after the cluster stops, for debugging
KEEP_TEMP_ENV = "POLYCULTURE_KEEP_RAY_TEMP"


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


class Keeper:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.status_path = Path(spec["status_file"])
        self.stop = threading.Event()
        self.marker: str = spec["marker"]

    def write_status(self, phase: str, **extra: object) -> None:
        tmp = self.status_path.with_suffix(".tmp")
        body = {"phase": phase, "pid": os.getpid(), "time": time.time(), **extra}
        tmp.write_text(json.dumps(body))
        tmp.replace(self.status_path)

    def watch_stdin(self) -> None:
        while sys.stdin.buffer.read(1):
            pass
        self.stop.set()

    def start_node(self, node: dict[str, Any]) -> subprocess.Popen[bytes]:
        with open(node["log"], "ab") as log:
            return subprocess.Popen(
                node["argv"], env=node["env"], cwd=self.spec["cwd"], stdout=log, stderr=log
            )

    def wait_nodes(self, procs: dict[str, subprocess.Popen[bytes]]) -> str | None:
        """Wait for ``ray start`` of each node to finish; an error message, or None."""
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while procs:
            if self.stop.is_set():
                return "stopped while starting"
            for name, proc in list(procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                del procs[name]
                if code != 0:
                    tail = Path(self.spec["nodes"][name]["log"]).read_text(errors="replace")
                    return f"node {name}: ray start exited {code}: {tail[-2000:]}"
            if time.monotonic() > deadline:
                return f"nodes {sorted(procs)} did not start in {NODE_START_TIMEOUT_S:g}s"
            time.sleep(0.1)
        return None

    def run(self) -> int:
        become_subreaper()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stop.set())
        if self.spec["fate_share"]:
            threading.Thread(target=self.watch_stdin, daemon=True).start()
        self.write_status("starting")
        nodes: dict[str, dict[str, Any]] = self.spec["nodes"]
        head, *workers = nodes
        error = self.wait_nodes({head: self.start_node(nodes[head])})
        if error is None:
            error = self.wait_nodes({name: self.start_node(nodes[name]) for name in workers})
        if error is not None:
            return self.shutdown("failed", error)
        self.write_status("running")
        while not self.stop.wait(0.5):
            processes.reap_children()
        return self.shutdown("stopped", "")

    def shutdown(self, phase: str, message: str) -> int:
        self.write_status("stopping", message=message)
        left = processes.kill_members(sid=os.getpid(), marker=self.marker, reap=True)
        if not os.environ.get(KEEP_TEMP_ENV):
            shutil.rmtree(self.spec["ray_temp_dir"], ignore_errors=True)
        self.write_status(phase, message=message, survivors=sorted(left))
        return 1 if left else 0


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    return Keeper(spec).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
