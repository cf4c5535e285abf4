"""Totals of a ledger: GPU-ms given per owner, used per community and per model.

Rendered as a readable table or as CSV (``kind,owner_or_community,model,gpu_seconds``), the
forms ``polyculture ledger show`` prints.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polyculture.ledger.entries import Entry


@dataclass(kw_only=True)
class Totals:
    """Running sums in GPU-milliseconds (exact)."""

    given: dict[str, int] = field(default_factory=dict)
    used: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        for owner, amount in entry.given.items():
            self.given[owner] = self.given.get(owner, 0) + amount
        for community, models in entry.used.items():
            into = self.used.setdefault(community, {})
            for model, amount in models.items():
                into[model] = into.get(model, 0) + amount

    def used_by_community(self) -> dict[str, int]:
        return {c: sum(models.values()) for c, models in self.used.items()}

    def used_by_model(self) -> dict[str, int]:
        return {m: v for models in self.used.values() for m, v in models.items()}

    def copy(self) -> Totals:
        return Totals(given=dict(self.given), used={c: dict(m) for c, m in self.used.items()})

    def to_json(self) -> dict[str, Any]:
        return {
            "given": dict(sorted(self.given.items())),
            "used": {c: dict(sorted(m.items())) for c, m in sorted(self.used.items())},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Totals:
        return cls(
            given={str(k): int(v) for k, v in (obj.get("given") or {}).items()},
            used={
                str(c): {str(m): int(v) for m, v in models.items()}
                for c, models in (obj.get("used") or {}).items()
            },
        )

    def rows(self) -> list[tuple[str, str, str, float]]:
        """``(kind, owner or community, model, GPU-seconds)``, owners first, then usage."""
        out: list[tuple[str, str, str, float]] = [
            ("given", owner, "", ms / 1000) for owner, ms in sorted(self.given.items())
        ]
        for community, models in sorted(self.used.items()):
            out.append(("used", community, "", sum(models.values()) / 1000))
            out += [("used", community, m, ms / 1000) for m, ms in sorted(models.items())]
        return out

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["kind", "owner_or_community", "model", "gpu_seconds"])
        writer.writerows((k, who, m, f"{s:.3f}") for k, who, m, s in self.rows())
        return buf.getvalue()

    def table(self) -> str:
        lines = ["GIVEN (GPU-hours, GPU-seconds) per owner"]
        lines += [
            f"  {o:<32} {ms / 3.6e6:>12.3f} h {ms / 1000:>16.3f} s"
            for o, ms in sorted(self.given.items())
        ]
        lines.append(f"  {'total':<32} {sum(self.given.values()) / 3.6e6:>12.3f} h")
        lines.append("USED (GPU-hours, GPU-seconds) per community and model")
        for community, models in sorted(self.used.items()):
            total = sum(models.values())
            lines.append(f"  {community:<32} {total / 3.6e6:>12.3f} h {total / 1000:>16.3f} s")
            lines += [
                f"    {m:<30} {ms / 3.6e6:>12.3f} h {ms / 1000:>16.3f} s"
                for m, ms in sorted(models.items())
            ]
        return "\n".join(lines)
