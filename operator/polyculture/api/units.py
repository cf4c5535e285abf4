"""Scalar types shared by the resources: names, durations, quantities, hashes, time zones.

Each type is an ``Annotated`` string whose constraints appear twice on purpose: as CEL rules
with a human message and bounds in the JSON schema (so that the API server rejects bad input
at ``kubectl apply``, naming the field) and as pydantic validation (so that the operator and
the tests parse exactly what the server accepts, and so that an object stored before a schema
change, or by a client that skipped validation, fails to parse with a ``ValidationError``
rather than anything else). Patterns are written in the common subset of Python ``re`` and Go
RE2.

Parse helpers (``parse_duration``, ``parse_quantity``) turn the validated strings into values;
they raise ``ValueError`` and nothing else.
"""

from __future__ import annotations

import decimal
import importlib.resources
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, WithJsonSchema

#: DNS-1123 label: namespaces, owners, communities, pools (their names end up in labels).
DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: Durations such as ``30s``, ``5m``, ``1h30m``, ``7d``: units in decreasing order, each once;
#: the digits are bounded so that no duration overflows (at most 99999d, about 273 years).
DURATION_PATTERN: Final = r"^([0-9]{1,5}d)?([0-9]{1,6}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?$"
_ZERO_DURATION_PATTERN: Final = r"^(0+[dhms])+$"
#: Kubernetes resource quantity (the pattern controller-gen emits for ``resource.Quantity``).
QUANTITY_PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
#: A memory size: a positive number and a unit (``80Gi``, ``40G``, ``512Mi``); a bare number
#: would mean bytes, which nobody means for GPU memory.
MEMORY_PATTERN: Final = r"^([0-9]{1,12}(\.[0-9]{1,6})?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)$"
_ZERO_MEMORY_PATTERN: Final = r"^[0.]+[A-Za-z]+$"
SHA256_PATTERN: Final = r"^[a-f0-9]{64}$"
#: The SHA-256 of zero bytes: a digest of an empty file is a mistake, never an artifact.
EMPTY_SHA256: Final = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#: URIs of artifacts and checkpoints: a scheme, then anything but whitespace.
URI_PATTERN: Final = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+$"
#: A user part (``user:password@``) before the host: credentials have no place in a spec.
_URI_USERINFO_PATTERN: Final = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/@]*@"
_DOTDOT_PATTERN: Final = r"(^|/)\.\.(/|$)"
#: Schemes a checkpoint may use at all; each Ray backend accepts a subset (``checkpoints``).
CHECKPOINT_SCHEME_PATTERN: Final = r"^(file|s3|gs|abfs|hdfs)://"
#: ``file://`` checkpoints need an absolute path and no host: ``file:///var/lib/...``.
_FILE_ABSOLUTE_PATTERN: Final = r"^file:///[^/]"
#: System directories no checkpoint may be written into (nor the root itself).
_FILE_SYSTEM_PATTERN: Final = (
    r"^file:///*((etc|proc|sys|dev|boot|bin|sbin|lib|lib32|lib64|usr|run|var/run)(/|$)|$)"
)
#: A GPU class name as admins write it: ``H100``, ``A100-80GB``, ``l4``.
GPU_CLASS_PATTERN: Final = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
#: Label keys: an optional DNS-1123 subdomain prefix and ``/``, then a name of at most 63.
LABEL_KEY_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_KEY_MAX: Final = 317  # 253 prefix + "/" + 63 name
#: Label values: empty, or at most 63 of letters, digits, ``-_.`` with alphanumeric ends.
LABEL_VALUE_PATTERN: Final = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
#: Environment variable names as POSIX shells accept them.
ENV_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
_BLANK_PATTERN: Final = r"^\s*$"

_DURATION_RE: Final = re.compile(DURATION_PATTERN)
_QUANTITY_RE: Final = re.compile(QUANTITY_PATTERN)
_DURATION_UNITS: Final = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_BINARY_SUFFIXES: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES: Final = {
    **{"n": -9, "u": -6, "m": -3, "": 0},
    **{"k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18},
}
#: quantities longer than this are not quantities anyone writes (and bound the CEL cost)
QUANTITY_MAX_LENGTH: Final = 64


def _iana_time_zones() -> tuple[str, ...]:
    """Every IANA zone name of the pinned ``tzdata`` package (no system files needed)."""
    text = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return tuple(sorted(set(text.split())))


#: The IANA time zones the operator knows (``tzdata``): the API server checks the same list.
IANA_TIME_ZONES: Final = _iana_time_zones()
_IANA_SET: Final = frozenset(IANA_TIME_ZONES)


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``; raises ``ValueError`` if malformed.

    Units are ``d`` (24 h, not a calendar day), ``h``, ``m``, ``s``, in that order, each at most
    once, with a bounded number of digits (so the result never overflows); the empty string is
    rejected.
    """
    match = _DURATION_RE.fullmatch(text) if isinstance(text, str) else None
    if not text or match is None:
        raise ValueError(
            f"{text!r} is not a duration: use e.g. 30s, 5m, 1h30m, 7d (at most 99999d)"
        )
    seconds = 0
    for part in match.groups():
        if part:
            seconds += int(part[:-1]) * _DURATION_UNITS[part[-1]]
    return timedelta(seconds=seconds)


def parse_quantity(text: str | int) -> Decimal:
    """A Kubernetes quantity (``"80Gi"``, ``"1.5G"``, ``"500m"``, ``24``) as an exact number.

    Raises ``ValueError`` (and nothing else) when ``text`` is not a quantity.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"{text!r} is not a quantity: use e.g. 24Gi, 80G or 40000000000")
    if isinstance(text, int):
        return Decimal(text)
    if len(text) > QUANTITY_MAX_LENGTH or _QUANTITY_RE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a quantity: use e.g. 24Gi, 80G or 40000000000")
    number = text.rstrip("KMGTPEimnuk")
    suffix = text[len(number) :]
    try:
        if suffix in _BINARY_SUFFIXES:
            return Decimal(number) * (Decimal(1024) ** _BINARY_SUFFIXES[suffix])
        if suffix in _DECIMAL_SUFFIXES:
            return Decimal(number) * (Decimal(10) ** _DECIMAL_SUFFIXES[suffix])
        value = Decimal(text)  # exponent form such as 1e9
        if not value.is_finite() or abs(value.adjusted()) > 36:
            raise ValueError(f"{text!r} is out of range for a quantity")
        return value
    except decimal.DecimalException as error:
        raise ValueError(f"{text!r} is out of range for a quantity") from error


@dataclass(frozen=True, slots=True)
class Rule:
    """One check of a string, said twice: a CEL ``rule`` for the API server and a Python
    predicate for the operator; ``message`` is what a person reads either way."""

    cel: str
    message: str
    holds: Callable[[str], bool]


def matches(pattern: str, message: str) -> Rule:
    """The value must match ``pattern`` (the message says what that means in words)."""
    compiled = re.compile(pattern)
    return Rule(f"self.matches(r'{pattern}')", message, lambda s: bool(compiled.search(s)))


def not_matches(pattern: str, message: str) -> Rule:
    """The value must not match ``pattern``."""
    compiled = re.compile(pattern)
    return Rule(f"!self.matches(r'{pattern}')", message, lambda s: not compiled.search(s))


def checked_string(*rules: Rule, min_length: int, max_length: int) -> tuple[Any, ...]:
    """``Annotated`` metadata of a string checked by ``rules``: bounds and CEL rules in the
    schema, the same bounds and predicates in pydantic (first failing rule's message)."""

    def check(value: str) -> str:
        for rule in rules:
            if not rule.holds(value):
                raise ValueError(rule.message)
        return value

    schema: dict[str, Any] = {"type": "string", "minLength": min_length, "maxLength": max_length}
    if rules:
        schema["x-kubernetes-validations"] = [{"rule": r.cel, "message": r.message} for r in rules]
    return (
        Field(min_length=min_length, max_length=max_length),
        AfterValidator(check),
        WithJsonSchema(schema),
    )


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
    *checked_string(
        matches(
            DNS_LABEL_PATTERN,
            "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending "
            "with a letter or digit",
        ),
        min_length=1,
        max_length=63,
    ),
]
_DURATION_RULE = matches(
    DURATION_PATTERN,
    "must be a duration such as 30s, 5m, 1h30m or 7d (units d, h, m, s in this order; at most "
    "99999d)",
)
#: A duration that may be zero (``minRuntime: 0s`` = no minimum).
Duration = Annotated[str, *checked_string(_DURATION_RULE, min_length=2, max_length=32)]
#: A duration where zero means nothing (a half-life, a time limit).
PositiveDuration = Annotated[
    str,
    *checked_string(
        _DURATION_RULE,
        not_matches(_ZERO_DURATION_PATTERN, "must be longer than zero"),
        min_length=2,
        max_length=32,
    ),
]
Sha256 = Annotated[
    str,
    *checked_string(
        matches(SHA256_PATTERN, "must be a SHA-256 digest: 64 lowercase hexadecimal digits"),
        Rule(
            f"self != '{EMPTY_SHA256}'",
            "is the SHA-256 of empty content: digest the artifact itself",
            lambda s: s != EMPTY_SHA256,
        ),
        min_length=64,
        max_length=64,
    ),
]


def _is_iana(name: str) -> bool:
    return name in _IANA_SET


TimeZone = Annotated[
    str,
    *checked_string(
        Rule(
            "self in [" + ", ".join(f"'{z}'" for z in IANA_TIME_ZONES) + "]",
            "must be an IANA time zone name such as Europe/Berlin, America/Lima or UTC "
            "(abbreviations such as CEST are not zones)",
            _is_iana,
        ),
        min_length=1,
        max_length=64,
    ),
]
_URI_RULES = (
    matches(
        URI_PATTERN,
        "must be a URI with a scheme, such as s3://bucket/key, hf://org/model or file:///path",
    ),
    not_matches(
        _URI_USERINFO_PATTERN,
        "must not carry credentials in its user part (user:password@host): give them to the "
        "job through a Secret",
    ),
)
URI = Annotated[str, *checked_string(*_URI_RULES, min_length=3, max_length=2048)]
#: Where a training job writes checkpoints: a scheme some Ray backend can write, never a
#: system directory; the pool's backend narrows the schemes (``api.checkpoints``).
CheckpointURI = Annotated[
    str,
    *checked_string(
        *_URI_RULES,
        matches(
            CHECKPOINT_SCHEME_PATTERN,
            "must use a scheme Ray can write checkpoints to: file, s3, gs, abfs or hdfs",
        ),
        not_matches(_DOTDOT_PATTERN, "must not contain '..' path segments"),
        Rule(
            f"!self.startsWith('file:') || self.matches(r'{_FILE_ABSOLUTE_PATTERN}')",
            "a file URI needs an absolute path and no host: file:///var/lib/polyculture/...",
            lambda s: not s.startswith("file:") or bool(re.match(_FILE_ABSOLUTE_PATTERN, s)),
        ),
        not_matches(
            _FILE_SYSTEM_PATTERN,
            "must not point at / or into a system directory (/etc, /proc, /sys, /dev, /usr, "
            "/run, /boot, /bin, /sbin, /lib)",
        ),
        min_length=3,
        max_length=2048,
    ),
]
GPUClassName = Annotated[
    str,
    *checked_string(
        matches(
            GPU_CLASS_PATTERN,
            "must be a GPU class name such as H100 or A100-80GB: letters, digits, '-', '_', '.'",
        ),
        min_length=1,
        max_length=63,
    ),
]
#: A non-blank text such as a shell command.
NonBlank = Annotated[
    str,
    *checked_string(
        not_matches(_BLANK_PATTERN, "must not be blank"), min_length=1, max_length=4096
    ),
]
LabelValue = Annotated[
    str,
    *checked_string(
        matches(
            LABEL_VALUE_PATTERN,
            "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit (or empty)",
        ),
        min_length=0,
        max_length=63,
    ),
]
LABEL_KEY_MESSAGE: Final = (
    "keys must be label keys: an optional DNS prefix and '/', then at most 63 letters, digits, "
    "'-', '_' or '.', starting and ending with a letter or digit (e.g. polyculture.dev/owner)"
)
ENV_NAME_MESSAGE: Final = (
    "keys must be environment variable names: letters, digits and '_', not starting with a "
    "digit (at most 256 characters)"
)


def keys_rule(pattern: str, max_length: int, message: str) -> dict[str, Any]:
    """A CEL rule on a map whose keys must match ``pattern`` and be at most ``max_length``."""
    return {
        "rule": f"self.all(k, size(k) <= {max_length} && k.matches(r'{pattern}'))",
        "message": message,
    }


def check_keys(pattern: str, max_length: int, message: str) -> AfterValidator:
    """The pydantic twin of ``keys_rule``."""
    compiled = re.compile(pattern)

    def check(value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if len(k) > max_length or not compiled.search(k)]
        if bad:
            raise ValueError(f"{bad[0][:80]!r}: {message}")
        return value

    return AfterValidator(check)


def _check_memory(value: str | int) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(MEMORY_MESSAGE)
    if not re.fullmatch(MEMORY_PATTERN, value):
        raise ValueError(MEMORY_MESSAGE)
    if re.fullmatch(_ZERO_MEMORY_PATTERN, value):
        raise ValueError("must be larger than zero")
    return value


MEMORY_MESSAGE: Final = (
    "must be a memory size with a unit, such as 24Gi, 80G or 512Mi (a bare number would be bytes)"
)
_MEMORY_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
    "maxLength": 32,
    "x-kubernetes-validations": [
        {
            "rule": f"type(self) == string && self.matches(r'{MEMORY_PATTERN}')",
            "message": MEMORY_MESSAGE,
        },
        {
            "rule": f"type(self) != string || !self.matches(r'{_ZERO_MEMORY_PATTERN}')",
            "message": "must be larger than zero",
        },
    ],
}
#: GPU memory: ``80Gi`` (a number and a unit). The schema stays int-or-string so that a bare
#: number is answered with the message above rather than a type error.
MemoryQuantity = Annotated[
    str | int,
    AfterValidator(_check_memory),
    WithJsonSchema(_MEMORY_SCHEMA),
]


def _check_quantity(value: str | int) -> str | int:
    parse_quantity(value)
    return value


_QUANTITY_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": QUANTITY_PATTERN,
    "x-kubernetes-int-or-string": True,
}
#: Any Kubernetes quantity (``80Gi`` or a plain integer), as in Pod resources.
Quantity = Annotated[
    str | int,
    AfterValidator(_check_quantity),
    WithJsonSchema(_QUANTITY_SCHEMA),
]
