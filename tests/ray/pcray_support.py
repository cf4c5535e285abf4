"""Helpers for the Ray tier's test modules (imported by name: tests/ray is on sys.path).

- ``start_cluster``: a context manager for module fixtures: creates a cluster, waits until it
  is ready, yields it, and on exit tears it down and asserts that none of its processes
  (recorded by pid while it ran) survived — also when a test failed.
- ``figure``: print a measured figure in a greppable form (``pytest -s``).
- ``listeners``: the listening TCP sockets of this machine, from ``ss -ltnpH``.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from polyculture.ray import ClusterHandle, Placement, WorkloadRef, processes, wait_ready
from polyculture.ray.local import LocalBackend

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "ray"


def figure(name: str, value: str) -> None:
    """A measured figure, printed in a greppable form (run pytest with ``-s`` to see it)."""
    print(f"\nFIGURE {name}: {value}")


def assert_gone(pids: set[int], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        left = {pid for pid in pids if processes.alive(pid)}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes survived teardown: {sorted(left)}"


@contextlib.contextmanager
def start_cluster(
    backend: LocalBackend, workload: WorkloadRef, placement: Placement
) -> Iterator[ClusterHandle]:
    """A ready cluster for ``workload``; torn down (and checked gone, by pid) on exit."""
    started = time.monotonic()
    handle = backend.create(workload, placement)
    seen: set[int] = set()
    try:
        wait_ready(backend, handle, timeout_s=180)
        figure(f"{handle.name} create->ready", f"{time.monotonic() - started:.1f} s")
        seen = backend.pids(handle)
        yield handle
    finally:
        seen |= backend.pids(handle)
        backend.teardown(handle)
        assert_gone(seen)
        assert backend.find(workload) is None


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int
    process: str

    @property
    def loopback(self) -> bool:
        return self.address.startswith(("127.", "[::ffff:127.", "[::1]"))


def listeners() -> list[Listener]:
    out = subprocess.run(["ss", "-ltnpH"], check=True, capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[3]
        address, _, port = local.rpartition(":")
        for process, pid in re.findall(r'\("([^"]*)",pid=(\d+)', line):
            found.append(Listener(address, int(port), int(pid), process))
    return found
