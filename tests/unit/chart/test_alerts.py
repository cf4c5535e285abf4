"""The chart's alerting rules: valid for Prometheus and doing what they say (promtool).

``promtool check rules`` validates files/alerts.yaml; ``promtool test rules`` runs
alerts_test.yaml: operator down (and a handover that must not page), a community starved below
its guarantee, a degraded pool, persistent reconcile errors, a long queue wait.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from polyculture.controlplane.prometheus import ensure

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[2] / "charts" / "polyculture" / "files" / "alerts.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure().promtool), *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
