"""The chart says what the code says: CRDs, the agent's managed keys, the operator's args.

Covers: the chart's CRDs are byte-equal to crds/; the agent admission policy lists exactly the
labels and annotations the agent writes (labels.py); the operator Deployment only passes flags
that `polyculture run` accepts.
"""

from __future__ import annotations

import re
from pathlib import Path

from polyculture.agent.labels import MANAGED_ANNOTATIONS, MANAGED_LABELS

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "polyculture"


def _cel_list(template: str, variable: str) -> set[str]:
    match = re.search(rf"- name: {variable}\s+expression: >?-?\s*'?(\[[^\]]*\])", template, re.S)
    assert match, f"{variable} not found in the admission policy"
    return set(re.findall(r'"([^"]+)"', match.group(1)))


def test_chart_crds_are_the_generated_ones() -> None:
    for crd in (REPO / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_bytes() == crd.read_bytes(), crd.name


def test_agent_admission_policy_manages_exactly_the_agents_keys() -> None:
    policy = (CHART / "templates" / "agent-admission.yaml").read_text()
    assert _cel_list(policy, "managedLabels") == set(MANAGED_LABELS)
    assert _cel_list(policy, "managedAnnotations") == set(MANAGED_ANNOTATIONS)


def test_operator_deployment_flags_exist() -> None:
    from polyculture.handlers import main as run

    source = Path(run.__file__).read_text()
    deployment = (CHART / "templates" / "operator-deployment.yaml").read_text()
    for flag in set(re.findall(r"- (--[a-z-]+)=", deployment)):
        assert f'"{flag}"' in source, f"the chart passes {flag}, which `polyculture run` lacks"
