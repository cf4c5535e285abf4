"""``make demo`` tells its story and leaves nothing behind.

Runs ``polyculture demo --once`` in a scratch directory and checks what it shows, in order:
capacity per owner, a model judged Invalid with its reason, a training preempted by its
owner's reclaim and requeued without counting an attempt, resumed from a checkpoint step
above 0, a model trained on Ray with its checkpoint, an endpoint answering, then the resumed
model serving; and that no process it started (control plane, operator, Ray) is still alive.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.ray, pytest.mark.slow]


@pytest.mark.timeout(1500)
def test_demo_tells_the_story_once_and_cleans_up(control_plane: object, tmp_path: Path) -> None:
    # control_plane: the binaries are built (and the session's plane is a neighbour to ignore)
    run_dir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "polyculture", "demo", "--once", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-5000:] + proc.stderr[-5000:]
    assert "startup-h100: 8 GPUs lent" in out
    assert "too-big-to-fit" in out and "largest node of class H100" in out
    trained = re.search(r"yoruba-base: Trained, checkpoint at step (\d+)", out)
    assert trained and int(trained.group(1)) == 40
    assert "'reversed': 'uhcallnilla'" in out  # quechua-asr answered
    assert "sign-translator: Preempted (OwnerReclaim)" in out or (
        "sign-translator: Queued (OwnerReclaim)" in out
    )
    assert "attempts counted: 0" in out
    resumed = re.search(r"sign-translator: run 2 resumes from step (\d+)", out)
    assert resumed and int(resumed.group(1)) > 0
    assert "'reversed': 'olleh'" in out  # sign-translator serves
    order = [
        out.index("the start-up reclaims"),
        out.index("resumes from step"),
        out.index("yoruba-base: Trained"),
        out.index("uhcallnilla"),
        out.index("olleh"),
    ]
    assert order == sorted(order)
    leftovers = subprocess.run(
        ["pgrep", "-f", str(run_dir)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}"
    assert not list((run_dir / "ray").glob("*/cluster.json")), "Ray clusters left behind"
