"""The process table, read from ``/proc`` (Linux): who belongs to a local Ray cluster.

A local cluster's processes are found three ways, because each alone misses some:

- the **session** of its keeper (every Ray daemon and worker inherits it);
- the keeper's **descendants** (the keeper is a child subreaper, so orphans come back to it);
- an **environment marker** (``POLYCULTURE_RAY_CLUSTER=<name>``): Ray starts job entrypoints
  in a new session, and a keeper that was killed leaves orphans outside its tree. Processes
  that rewrite their title (``ray::...`` workers) clobber ``/proc/<pid>/environ``, which is
  why the marker is not the only way.

A pid is compared with its start time where it matters, so that a recycled pid is never
mistaken for a cluster process. Zombies count as dead: they hold no resources and cannot be
killed. Standard library only: the keeper process imports this module too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
MARKER_ENV = "POLYCULTURE_RAY_CLUSTER"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    state: str
    start_ticks: int


def read_proc(pid: int) -> Proc | None:
    """One process, or None if it does not exist (or vanished while reading)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name is in parentheses and may hold spaces: split after the last ')'
    fields = raw[raw.rindex(")") + 2 :].split()
    return Proc(
        pid=pid,
        ppid=int(fields[1]),
        sid=int(fields[3]),
        state=fields[0],
        start_ticks=int(fields[19]),
    )


def command_name(pid: int) -> str:
    """The process's command name (``/proc/<pid>/comm``), or "" if it is gone."""
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def snapshot() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = read_proc(int(entry.name))
            if proc is not None:
                procs[proc.pid] = proc
    return procs


def alive(pid: int, start_ticks: int | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, if given, started at ``start_ticks``."""
    proc = read_proc(pid)
    if proc is None or proc.state in {"Z", "X"}:
        return False
    return start_ticks is None or proc.start_ticks == start_ticks


def has_marker(pid: int, value: str) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER_ENV}={value}".encode() in environ.split(b"\0")


def descendants(root: int, procs: dict[int, Proc]) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cluster_members(*, sid: int | None, marker: str) -> set[int]:
    """Live processes of the cluster whose keeper leads session ``sid`` (or carry ``marker``).

    Pass ``sid=None`` when the keeper's pid may have been recycled: then only the marker
    counts. (While any process of a session lives, the kernel does not hand out its id.)
    """
    procs = snapshot()
    skip = {os.getpid()}
    members: set[int] = set()
    if sid is not None:
        members = {p.pid for p in procs.values() if p.sid == sid}
        members |= descendants(sid, procs)
    members |= {pid for pid in procs if pid not in members and has_marker(pid, marker)}
    return {pid for pid in members - skip if procs[pid].state not in {"Z", "X"}}


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_members(
    *,
    sid: int | None,
    marker: str,
    grace_s: float = 2.0,
    timeout_s: float = 20.0,
    reap: bool = False,
) -> set[int]:
    """SIGTERM the cluster's processes, SIGKILL what is left after ``grace_s``.

    Returns the members still alive at ``timeout_s`` (empty on success). ``reap`` collects
    exited children (for a keeper, which is their parent or subreaper).
    """
    deadline = time.monotonic() + timeout_s
    hard_after = time.monotonic() + grace_s
    signal_all(cluster_members(sid=sid, marker=marker), signal.SIGTERM)
    while True:
        if reap:
            reap_children()
        left = cluster_members(sid=sid, marker=marker)
        if not left or time.monotonic() >= deadline:
            return left
        if time.monotonic() >= hard_after:
            signal_all(left, signal.SIGKILL)
        time.sleep(0.1)


def reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def memory(pids: Iterable[int]) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over ``pids``; PSS splits shared pages fairly."""
    rss = pss = 0
    for pid in pids:
        try:
            text = (PROC / str(pid) / "smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "Rss":
                rss += int(value.split()[0]) * 1024
            elif key == "Pss":
                pss += int(value.split()[0]) * 1024
    return rss, pss
