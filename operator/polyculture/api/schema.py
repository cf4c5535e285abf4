"""Pydantic JSON Schema (draft 2020-12) -> Kubernetes structural OpenAPI v3 schema.

The API server accepts only *structural* schemas: every node has a ``type`` (or is an
int-or-string), no ``$ref``, no ``anyOf`` except inside ``x-kubernetes-int-or-string``, no
``additionalProperties: false``, no ``title``; ``exclusiveMinimum`` is a boolean beside
``minimum`` (OpenAPI 3.0), not a number. ``structural_schema`` rewrites what pydantic emits
into that form; it is pure and deterministic, so generated files are stable byte for byte.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

JSON = dict[str, Any]

_DROPPED = frozenset({"title", "$defs", "discriminator"})


def _resolve(node: JSON, defs: dict[str, JSON]) -> JSON:
    """Inline one ``$ref`` (pydantic puts sibling keys such as ``description`` beside it)."""
    if "$ref" not in node:
        return node
    name = node["$ref"].rsplit("/", 1)[-1]
    merged = dict(defs[name])
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    if "x-kubernetes-validations" in merged and "x-kubernetes-validations" in siblings:
        siblings["x-kubernetes-validations"] = (
            merged["x-kubernetes-validations"] + siblings["x-kubernetes-validations"]
        )
    merged.update(siblings)
    return merged


def _collapse_optional(node: JSON) -> JSON:
    """``anyOf: [X, {type: null}]`` -> ``X`` plus the siblings (description, default, ...).

    Absent means unset, so the field becomes a plain optional property; a ``null`` sent by a
    client is pruned by the API server before validation, which is what unset means anyway.
    """
    options = node.get("anyOf")
    if not options or node.get("x-kubernetes-int-or-string"):
        return node
    non_null = [o for o in options if o.get("type") != "null"]
    if len(non_null) != 1 or len(non_null) == len(options):
        if len(non_null) == len(options):
            return node
        raise ValueError(f"cannot make a structural schema of anyOf {options!r}")
    collapsed = dict(non_null[0])
    siblings = {k: v for k, v in node.items() if k != "anyOf"}
    collapsed.update(siblings)
    return collapsed


def _convert(node: JSON, defs: dict[str, JSON], *, defaults: bool) -> JSON:
    node = _resolve(node, defs)
    node = _collapse_optional(node)
    node = _resolve(node, defs)  # anyOf: [{$ref}, null] resolves only after collapsing
    out: JSON = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "default" and (value is None or not defaults):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key in {"exclusiveMinimum", "exclusiveMaximum"} and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {
                name: _convert(prop, defs, defaults=defaults) for name, prop in value.items()
            }
        elif key in {"items", "additionalProperties"} and isinstance(value, dict):
            out[key] = _convert(value, defs, defaults=defaults)
        elif key == "description":
            out[key] = value.replace("``", "")  # reST literals read badly in kubectl explain
        elif key == "anyOf":
            out[key] = [{k: v for k, v in o.items() if k == "type"} for o in value]
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise ValueError(f"schema node without a type: {node!r}")
    return out


def structural_schema(model: type[BaseModel], *, defaults: bool = True) -> JSON:
    """The structural OpenAPI v3 schema of ``model`` (camelCase aliases, validation mode).

    ``defaults=False`` drops every ``default``: used for status, which only the operator
    writes, so that the stored status shows exactly what the operator wrote.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return _convert(raw, defs, defaults=defaults)
