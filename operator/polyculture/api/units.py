"""Scalar types shared by the resources: names, durations, quantities, hashes, time zones.

Each type is an ``Annotated`` string whose constraints appear twice on purpose: as a JSON
schema ``pattern``/``maxLength`` (so that the API server rejects bad input at ``kubectl apply``)
and as pydantic validation (so that the operator and the tests parse exactly what the server
accepts). Patterns are written in the common subset of Python ``re`` and Go RE2.

Parse helpers (``parse_duration``, ``parse_quantity``) turn the validated strings into values.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, WithJsonSchema

#: DNS-1123 label: namespaces, owners, communities, pools (their names end up in labels).
DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: Durations such as ``30s``, ``5m``, ``1h30m``, ``7d``: units in decreasing order, each once.
DURATION_PATTERN: Final = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
#: Kubernetes resource quantity (the pattern controller-gen emits for ``resource.Quantity``).
QUANTITY_PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
SHA256_PATTERN: Final = r"^[a-f0-9]{64}$"
#: IANA time zone names (``Europe/Berlin``, ``UTC``); the zone itself is checked with zoneinfo.
TIME_ZONE_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
#: URIs of artifacts and checkpoints: a scheme, then anything but whitespace.
URI_PATTERN: Final = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+$"
#: A GPU class name as admins write it: ``H100``, ``A100-80GB``, ``l4``.
GPU_CLASS_PATTERN: Final = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"

_DURATION_RE: Final = re.compile(DURATION_PATTERN)
_QUANTITY_RE: Final = re.compile(QUANTITY_PATTERN)
_DURATION_UNITS: Final = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_BINARY_SUFFIXES: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES: Final = {
    **{"n": -9, "u": -6, "m": -3, "": 0},
    **{"k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18},
}


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``; raises ``ValueError`` if malformed.

    Units are ``d`` (24 h, not a calendar day), ``h``, ``m``, ``s``, in that order, each at most
    once; the empty string is rejected.
    """
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 30s, 5m, 1h30m, 7d")
    seconds = 0
    for part in match.groups():
        if part:
            seconds += int(part[:-1]) * _DURATION_UNITS[part[-1]]
    return timedelta(seconds=seconds)


def parse_quantity(text: str | int) -> Decimal:
    """A Kubernetes quantity (``"80Gi"``, ``"1.5G"``, ``"500m"``, ``24``) as an exact number."""
    if isinstance(text, int):
        return Decimal(text)
    if _QUANTITY_RE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a quantity: use e.g. 24Gi, 80G or 40000000000")
    number = text.rstrip("KMGTPEimnuk")
    suffix = text[len(number) :]
    if suffix in _BINARY_SUFFIXES:
        return Decimal(number) * (Decimal(1024) ** _BINARY_SUFFIXES[suffix])
    if suffix in _DECIMAL_SUFFIXES:
        return Decimal(number) * (Decimal(10) ** _DECIMAL_SUFFIXES[suffix])
    return Decimal(text)  # exponent form such as 1e9


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_quantity(value: str | int) -> str | int:
    parse_quantity(value)
    return value


def _check_time_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)") from error
    return name


def cel_format(pattern: str, message: str, *, min_length: int, max_length: int) -> WithJsonSchema:
    """The schema of a formatted string: bounds, plus the format as a CEL rule.

    A CEL ``matches`` rule instead of a schema ``pattern`` lets the API server answer with
    ``message`` ("must be a duration such as 30s, 5m, 1h30m or 7d") rather than the regular
    expression. Python checks the same pattern through ``Field(pattern=...)``.
    """
    return WithJsonSchema(
        {
            "type": "string",
            "minLength": min_length,
            "maxLength": max_length,
            "x-kubernetes-validations": [
                {"rule": f"self.matches(r'{pattern}')", "message": message}
            ],
        }
    )


DNSLabel = Annotated[
    str,
    Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN),
    cel_format(
        DNS_LABEL_PATTERN,
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending "
        "with a letter or digit",
        min_length=1,
        max_length=63,
    ),
]
Duration = Annotated[
    str,
    Field(min_length=2, max_length=32, pattern=DURATION_PATTERN),
    AfterValidator(_check_duration),
    cel_format(
        DURATION_PATTERN,
        "must be a duration such as 30s, 5m, 1h30m or 7d (units d, h, m, s in this order)",
        min_length=2,
        max_length=32,
    ),
]
Sha256 = Annotated[
    str,
    Field(min_length=64, max_length=64, pattern=SHA256_PATTERN),
    cel_format(
        SHA256_PATTERN,
        "must be a SHA-256 digest: 64 lowercase hexadecimal digits",
        min_length=64,
        max_length=64,
    ),
]
TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=TIME_ZONE_PATTERN),
    AfterValidator(_check_time_zone),
    cel_format(
        TIME_ZONE_PATTERN,
        "must be an IANA time zone name such as Europe/Berlin, America/Lima or UTC",
        min_length=1,
        max_length=64,
    ),
]
URI = Annotated[
    str,
    Field(min_length=3, max_length=2048, pattern=URI_PATTERN),
    cel_format(
        URI_PATTERN,
        "must be a URI with a scheme, such as s3://bucket/key, hf://org/model or file:///path",
        min_length=3,
        max_length=2048,
    ),
]
GPUClassName = Annotated[
    str,
    Field(min_length=1, max_length=63, pattern=GPU_CLASS_PATTERN),
    cel_format(
        GPU_CLASS_PATTERN,
        "must be a GPU class name such as H100 or A100-80GB: letters, digits, '-', '_', '.'",
        min_length=1,
        max_length=63,
    ),
]

_QUANTITY_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": QUANTITY_PATTERN,
    "x-kubernetes-int-or-string": True,
}
#: Memory and similar amounts: ``80Gi`` or a plain integer of bytes, as in Pod resources.
Quantity = Annotated[
    str | int,
    AfterValidator(_check_quantity),
    WithJsonSchema(_QUANTITY_SCHEMA),
]
