"""Whether a stored ComputePool can be used at all: pure, and it never raises.

The API server rejects bad pools at ``kubectl apply`` (schema and CEL rules). An object can
still be stored bad: written before a schema change, by a client that skipped validation, or
bad in a way only the operator can judge. ``judge_pool`` takes the whole body as stored and
returns the parsed pool, or the problems that make it unusable, each naming its field. The
operator then sets the pool's ``Valid`` condition to False with an Event, makes its models
``Invalid`` with reason ``PoolInvalid``, and judges every other pool as before.

Reasons (the pool's ``Valid`` condition; the first problem's reason is the condition's):

- ``SpecInvalid``: the spec does not parse (a type, a bound, a format).
- ``UnknownCredit``, ``ReserveWithoutCredits``, ``ReserveAboveMax``, ``GuaranteeAboveMax``,
  ``EmptyWindow``, ``DuplicateName``, ``SelectorsOverlap``, ``ProductInTwoClasses``,
  ``RayImageMismatch``, ``GuaranteesExceedCapacity``, ``ReserveExceedsCredits``: the CEL
  rules of the CRD, checked again for objects stored without them.
- ``OverlappingWindows`` (operator only): two lending windows of one member, in one time zone,
  are open at the same time. Windows in different time zones are not compared (their overlap
  moves with daylight saving time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from polyculture.api.admissibility import KnownPools, Problem
from polyculture.api.compute_pool import ComputePool, ComputePoolSpec, ComputePoolStatus, Member
from polyculture.api.gpu_products import same_product
from polyculture.api.meta import ObjectMeta
from polyculture.api.windows import CLOCK_END_PATTERN, CLOCK_PATTERN, LendingWindow, Weekday

SPEC_INVALID: Final = "SpecInvalid"
POOL_INVALID: Final = "PoolInvalid"
_WEEK: Final = 7 * 1440
_DAYS: Final = list(Weekday)
_CLOCK_PATTERNS: Final = (CLOCK_PATTERN, CLOCK_END_PATTERN)


@dataclass(frozen=True, slots=True)
class PoolJudgement:
    """The parsed pool when it is usable, else ``pool`` None and at least one problem."""

    pool: ComputePool | None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return self.pool is not None and not self.problems

    def summary(self) -> str:
        """One line naming every problem's field: the condition's and the Event's message."""
        return "; ".join(f"{p.field}: {p.message}" for p in self.problems)


def validation_problems(error: ValidationError, prefix: str = "") -> list[Problem]:
    """Each error of a pydantic ``ValidationError`` as a ``Problem`` naming its field."""
    problems: list[Problem] = []
    for item in error.errors(include_url=False, include_input=False):
        path = prefix
        for part in item.get("loc", ()):
            path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}".lstrip(".")
        message = str(item.get("msg", "is invalid")).removeprefix("Value error, ")
        problems.append(Problem(SPEC_INVALID, message, path or prefix or "spec"))
    return problems


#: at most this many problems are reported (a broken spec can have hundreds)
MAX_PROBLEMS: Final = 10


def judge_spec(spec: Any) -> tuple[ComputePoolSpec | None, tuple[Problem, ...]]:
    """Judge a pool's ``spec`` as stored (any JSON): the parsed spec, or the problems."""
    try:
        parsed = ComputePoolSpec.model_validate(spec)
    except ValidationError as error:
        return None, tuple(validation_problems(error, "spec")[:MAX_PROBLEMS])
    problems = spec_problems(parsed)
    return (None, tuple(problems[:MAX_PROBLEMS])) if problems else (parsed, ())


def judge_pool(body: Any) -> PoolJudgement:
    """Judge a ComputePool body as stored (any JSON): usable, or why not. Never raises."""
    if not isinstance(body, Mapping):
        return PoolJudgement(None, (Problem(SPEC_INVALID, "is not an object", "spec"),))
    spec, problems = judge_spec(body.get("spec"))
    if spec is None:
        return PoolJudgement(None, problems)
    try:
        metadata = ObjectMeta.model_validate(body.get("metadata") or {})
    except ValidationError as error:
        return PoolJudgement(None, tuple(validation_problems(error, "metadata")[:MAX_PROBLEMS]))
    try:  # the status is the operator's own: a bad one is dropped, never a reason
        status: ComputePoolStatus | None = ComputePoolStatus.model_validate(
            body.get("status") or {}
        )
    except ValidationError:
        status = None
    pool = ComputePool(metadata=metadata, spec=spec, status=status)
    return PoolJudgement(pool)


def judge_pools(bodies: Mapping[str, Any]) -> KnownPools:
    """The usable pools by name; ``invalid`` holds why each other pool cannot be used."""
    usable: dict[str, ComputePool] = {}
    invalid: dict[str, str] = {}
    for name, body in bodies.items():
        judgement = judge_pool(body)
        if judgement.pool is not None and judgement.valid:
            usable[name] = judgement.pool
        else:
            invalid[name] = judgement.summary()
    return KnownPools(usable, invalid)


def spec_problems(spec: ComputePoolSpec) -> list[Problem]:
    """What is wrong across the fields of a parsed spec (empty when nothing is)."""
    return [
        *_duplicates(spec),
        *_member_rules(spec),
        *_selector_overlaps(spec.members),
        *_product_clashes(spec),
        *_ray_image(spec),
        *_guarantees(spec),
        *_window_overlaps(spec.members),
    ]


def _duplicates(spec: ComputePoolSpec) -> Iterable[Problem]:
    lists: tuple[tuple[str, list[str]], ...] = (
        ("spec.members", [m.owner for m in spec.members]),
        ("spec.communities", [c.name for c in spec.communities]),
        ("spec.fairShare.gpuClasses", [c.name for c in spec.fair_share.gpu_classes]),
    )
    for path, names in lists:
        for name, count in Counter(names).items():
            if count > 1:
                yield Problem("DuplicateName", f"{name} is listed {count} times", path)


def _member_rules(spec: ComputePoolSpec) -> Iterable[Problem]:
    communities = {c.name: c for c in spec.communities}
    for i, m in enumerate(spec.members):
        path = f"spec.members[{i}]"
        unknown = [c for c in m.credits if c not in communities]
        if unknown:
            yield Problem(
                "UnknownCredit",
                f"credits {', '.join(unknown)}, not listed in spec.communities",
                f"{path}.credits",
            )
        if m.reserved_gpus and not m.credits:
            yield Problem(
                "ReserveWithoutCredits",
                "reservedGPUs needs credits: name the communities the reserve is kept for",
                f"{path}.credits",
            )
        if m.max_gpus is not None and m.reserved_gpus > m.max_gpus:
            yield Problem(
                "ReserveAboveMax",
                "reservedGPUs must be less than or equal to maxGPUs",
                f"{path}.reservedGPUs",
            )
        for j, w in enumerate(m.windows):
            if w.from_ == w.to:
                yield Problem("EmptyWindow", "from and to must differ", f"{path}.windows[{j}].to")
    for i, c in enumerate(spec.communities):
        if c.max_gpus is not None and c.guaranteed_gpus > c.max_gpus:
            yield Problem(
                "GuaranteeAboveMax",
                "guaranteedGPUs must be less than or equal to maxGPUs",
                f"spec.communities[{i}].guaranteedGPUs",
            )


def _selector_overlaps(members: list[Member]) -> Iterable[Problem]:
    """A member whose selector's labels are all in another member's: both claim its nodes."""
    for i, a in enumerate(members):
        for b in members:
            if a.owner != b.owner and all(
                b.node_selector.get(k) == v for k, v in a.node_selector.items()
            ):
                yield Problem(
                    "SelectorsOverlap",
                    f"the nodeSelector of member {a.owner} is contained in member {b.owner}'s: "
                    "both would claim the same nodes; give each owner a label of its own",
                    f"spec.members[{i}].nodeSelector",
                )
                break


def _product_clashes(spec: ComputePoolSpec) -> Iterable[Problem]:
    """A product (in the agent's normal form) that two classes claim."""
    classes = spec.fair_share.gpu_classes
    for i, a in enumerate(classes):
        for b in classes[i + 1 :]:
            clash = next(
                (p for p in a.products or [a.name] for q in b.products or [b.name]
                 if same_product(p, q)),
                None,
            )  # fmt: skip
            if clash is not None:
                yield Problem(
                    "ProductInTwoClasses",
                    f"product {clash!r} belongs to classes {a.name} and {b.name}: a GPU "
                    "product belongs to one class only",
                    f"spec.fairShare.gpuClasses[{i}].products",
                )


def image_tag(image: str) -> str | None:
    """The tag of a container image reference (None: no tag, or pinned by digest)."""
    if "@" in image:
        return None
    colon, slash = image.rfind(":"), image.rfind("/")
    return image[colon + 1 :] if colon > slash else None


def _ray_image(spec: ComputePoolSpec) -> Iterable[Problem]:
    tag, version = image_tag(spec.ray.image), spec.ray.version
    if tag is not None and tag != version and not tag.startswith(version + "-"):
        yield Problem(
            "RayImageMismatch",
            f"the image tag {tag} must be the Ray version {version} or start with it (e.g. "
            f"rayproject/ray:{version}-py311-gpu): every node and client of a Ray cluster "
            "runs one version",
            "spec.ray.image",
        )


def _weights(spec: ComputePoolSpec) -> list[float]:
    return [c.weight for c in spec.fair_share.gpu_classes] + [1.0]


def _guarantees(spec: ComputePoolSpec) -> Iterable[Problem]:
    members, communities = spec.members, spec.communities
    caps = [m.max_gpus for m in members]
    guaranteed = sum(c.guaranteed_gpus for c in communities)
    if all(cap is not None for cap in caps):
        most = sum(cap or 0 for cap in caps) * max(_weights(spec))
        if guaranteed > most:
            yield Problem(
                "GuaranteesExceedCapacity",
                f"the communities' guaranteedGPUs add up to {guaranteed} units, more than the "
                f"members could ever lend ({most:g} units: the sum of their maxGPUs)",
                "spec.communities",
            )
    by_name = {c.name: c for c in communities}
    least = min(_weights(spec))
    for i, m in enumerate(members):
        credited = [by_name.get(c) for c in m.credits]
        if not m.reserved_gpus or not credited:
            continue
        if any(c is None or c.max_gpus is None for c in credited):
            continue
        usable = sum(c.max_gpus or 0 for c in credited if c is not None)
        if m.reserved_gpus * least > usable:
            yield Problem(
                "ReserveExceedsCredits",
                f"reservedGPUs {m.reserved_gpus} exceed what the communities it credits may "
                f"ever use ({usable} units: their maxGPUs): the reserve would sit idle",
                f"spec.members[{i}].reservedGPUs",
            )


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _intervals(window: LendingWindow) -> list[tuple[int, int]]:
    """The window's open minutes of the week (local time), as half-open intervals."""
    start, end = _minutes(window.from_), _minutes(window.to)
    out: list[tuple[int, int]] = []
    for day in set(window.days):
        base = _DAYS.index(day) * 1440
        length = end - start if end > start else end + 1440 - start
        lo, hi = base + start, base + start + length
        if hi <= _WEEK:
            out.append((lo, hi))
        else:  # Sunday night into Monday morning
            out += [(lo, _WEEK), (0, hi - _WEEK)]
    return out


def _overlap(a: LendingWindow, b: LendingWindow) -> bool:
    return any(lo1 < hi2 and lo2 < hi1 for lo1, hi1 in _intervals(a) for lo2, hi2 in _intervals(b))


def _window_overlaps(members: list[Member]) -> Iterable[Problem]:
    for i, m in enumerate(members):
        for j, a in enumerate(m.windows):
            clash = next(
                (k for k, b in enumerate(m.windows[j + 1 :], start=j + 1)
                 if a.time_zone == b.time_zone and a.from_ != a.to and b.from_ != b.to
                 and _overlap(a, b)),
                None,
            )  # fmt: skip
            if clash is not None:
                yield Problem(
                    "OverlappingWindows",
                    f"windows {j} and {clash} of member {m.owner} are open at the same time: "
                    "merge them into one",
                    f"spec.members[{i}].windows[{clash}]",
                )


def guarantee_shortfall(spec: ComputePoolSpec, potential_units: float) -> str | None:
    """Why the guarantees cannot all be honoured by the nodes the members have now (None:
    they can). ``potential_units``: the most the members could lend, in normalised units."""
    guaranteed = sum(c.guaranteed_gpus for c in spec.communities)
    if guaranteed <= potential_units + 1e-9:
        return None
    return (
        f"the communities are guaranteed {guaranteed} units in total but the members' nodes "
        f"could lend at most {potential_units:g} units (within their maxGPUs)"
    )
