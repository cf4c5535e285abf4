"""The chart's dashboard and alerts name only metrics the operator exports, with their labels.

A static check (no Prometheus): every ``polyculture_*`` series in a dashboard query or an alert
rule is one of ``polyculture.metrics`` (counters with ``_total``, histograms with ``_bucket``,
``_count``, ``_sum``), every label a query matches or groups by is one that metric carries,
and the dashboard is well-formed (unique panel ids, a Prometheus data source variable, one
``pool`` variable every query filters on). The live check, every query returning data from a
real Prometheus, is tests/e2e/operations/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from polyculture import metrics

FILES = Path(__file__).resolve().parents[3] / "charts" / "polyculture" / "files"
SERIES = re.compile(r"\b(polyculture_[a-z0-9_]+)\b(\{[^}]*\})?")


def exported() -> dict[str, set[str]]:
    """series name -> its labels, for every metric of polyculture.metrics."""
    out: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, metrics._StatusCounter):
            out[f"{value.name}_total"] = set(value.labelnames)
            continue
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = set(value._labelnames)
        base = value._name
        kind = value._type
        names = {
            "counter": [f"{base}_total"],
            "histogram": [f"{base}_bucket", f"{base}_count", f"{base}_sum"],
        }.get(kind, [base])
        for name in names:
            out[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return out


def queries() -> list[str]:
    dashboard = json.loads((FILES / "dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def rules() -> list[str]:
    groups = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def test_every_series_and_label_is_exported() -> None:
    known = exported()
    for expr in queries() + rules():
        found = SERIES.findall(expr)
        assert found, expr
        for name, matchers in found:
            assert name in known, f"{name} (in {expr!r}) is not exported"
            for label in re.findall(r"([a-z_]+)\s*=~?", matchers or ""):
                assert label in known[name], f"{name} has no label {label!r} ({expr!r})"
        for by in re.findall(r"by \(([^)]*)\)", expr):
            wanted = {b.strip() for b in by.split(",")}
            carriers = [known[n] for n, _ in found]
            assert any(wanted <= labels for labels in carriers), f"by ({by}) in {expr!r}"


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads((FILES / "dashboard.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["pool"]["includeAll"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            per_pool = "polyculture_leader" not in target["expr"]  # the operator, not a pool
            assert ('pool=~"$pool"' in target["expr"]) == per_pool, panel["title"]
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("owner", "fair share", "queue", "wait", "ledger", "preemption", "cycle"):
        assert topic in titles, topic
