"""``make demo`` tells its story and leaves nothing behind.

Runs ``polyculture demo`` for a few seconds in a scratch directory and checks what it shows:
the pool's capacity per owner, a model judged Invalid with its reason, valid models Pending,
the reclaim and its Event; then that no process it started is still alive.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def test_demo_runs_end_to_end_and_cleans_up(control_plane: object, tmp_path: Path) -> None:
    # control_plane: the binaries are built (and the session's plane is a neighbour to ignore)
    run_dir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "polyculture", "demo", "--duration", "4", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "startup-h100: 8 GPUs lent" in out
    assert "startup-h100: 0 GPUs lent Reclaimed" in out
    assert "owner startup-h100 reclaimed its nodes" in out
    assert "too-big-to-fit" in out and "largest node of class H100" in out
    final = out.rsplit("Ctrl-C stops everything", 1)[1]
    assert "yoruba-base" in final and "Pending" in final
    assert "sign-translator" in final
    assert "Invalid" not in final.split("sign-translator", 1)[1].splitlines()[0]
    leftovers = subprocess.run(
        ["pgrep", "-f", str(run_dir)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}"
