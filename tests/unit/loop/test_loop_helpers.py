"""The admission loop's small helpers: the JSON merge patch it predicts its writes with, and
its daemon worker threads (a call in flight never holds the process at exit)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from polyculture.loop.pool import merge_patch
from polyculture.loop.workers import Workers


@pytest.mark.parametrize(
    ("target", "patch", "want"),
    [
        pytest.param({"a": 1}, {"b": 2}, {"a": 1, "b": 2}, id="adds a field"),
        pytest.param({"a": 1, "b": 2}, {"b": None}, {"a": 1}, id="null removes a field"),
        pytest.param(
            {"admission": {"gpus": 2, "placement": [1]}},
            {"admission": {"gpus": 1}},
            {"admission": {"gpus": 1, "placement": [1]}},
            id="objects merge",
        ),
        pytest.param({"c": [1, 2]}, {"c": [3]}, {"c": [3]}, id="lists are replaced"),
        pytest.param({}, {"w": {"x": None}}, {"w": {}}, id="nulls inside a new object vanish"),
    ],
)
def test_merge_patch_follows_rfc_7386(target: Any, patch: Any, want: Any) -> None:
    assert merge_patch(target, patch) == want


def test_workers_run_calls_and_hand_back_results_and_errors() -> None:
    workers = Workers(2, "test")
    ok = workers.submit(lambda x: x * 2, 21)
    bad = workers.submit(lambda: 1 / 0)
    assert ok.result(timeout=5) == 42
    with pytest.raises(ZeroDivisionError):
        bad.result(timeout=5)
    workers.shutdown()


def test_shutdown_cancels_what_has_not_started() -> None:
    workers = Workers(1, "test")
    gate = threading.Event()
    running = workers.submit(gate.wait, 5)
    queued = workers.submit(lambda: "never")
    time.sleep(0.1)
    workers.shutdown()
    assert queued.cancelled()
    gate.set()
    assert running.result(timeout=5) is True
    with pytest.raises(RuntimeError):
        workers.submit(lambda: None)


def test_a_call_in_flight_does_not_hold_the_process_at_exit() -> None:
    code = (
        "import time\n"
        "from polyculture.loop.workers import Workers\n"
        "w = Workers(1, 't'); w.submit(time.sleep, 60); time.sleep(0.2); w.shutdown()\n"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert time.monotonic() - started < 10
