"""What the fair policy's restarts are made of (``preemption_breakdown`` in ``--json``).

Each core call's preemptions are grouped into *events*: the victims of one preemptor (the
``by`` of :class:`~polyculture.scheduling.snapshot.Preemption`). An event is a fair-share
reclaim (``FairShare`` victims only), a consolidation move (``Consolidation`` only) or both
(victims preempted, then small workloads moved to gather their GPUs). A fair-share event is
*within the nominal share* when the preemptor's community, with the preemptor, holds no more
than its nominal share (its slice of the pool): the reclaim a private slice would not need.
The breakdown counts events and victims by cause, by the preemptor's gang size and by
victims per event, the victims by their restarts before, and lists the jobs restarted most
with the cause and the preemptor's size of each of their restarts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from polyculture.scheduling.snapshot import Preemption

#: how many of the jobs restarted most the breakdown lists
TOP = 8


@dataclass(slots=True)
class _Job:
    gpus: int
    duration: float
    community: str
    #: (cause, preemptor's GPUs) of each restart, in order
    causes: list[tuple[str, int]] = field(default_factory=list)


@dataclass(slots=True)
class PreemptionLog:
    """The events of a replay, counted as the core's decisions come (see the module doc)."""

    events: Counter[str] = field(default_factory=Counter)
    victims: Counter[str] = field(default_factory=Counter)
    first_victims: Counter[str] = field(default_factory=Counter)
    #: cause -> preemptor's GPUs -> [events, victims, first restarts]
    by_gang: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    #: cause -> victims in the event -> events
    per_event: dict[str, Counter[int]] = field(default_factory=dict)
    #: cause -> victim's restarts before -> victims
    restarts_before: dict[str, Counter[int]] = field(default_factory=dict)
    #: cause -> victim's GPUs -> victims
    victim_gpus: dict[str, Counter[int]] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)

    def record(
        self,
        preemptions: Sequence[Preemption],
        *,
        restarts: Mapping[str, int],
        preemptor: Mapping[str, tuple[int, bool]],
        victim: Mapping[str, tuple[int, float, str]],
    ) -> None:
        """Count one core call's ``preemptions``. ``restarts``: each victim's restarts before;
        ``preemptor``: per preemptor key, its GPUs and whether its community stays within its
        nominal share with it; ``victim``: per victim key, its GPUs, duration and community."""
        groups: dict[str, list[Preemption]] = {}
        for p in preemptions:
            if p.by:
                groups.setdefault(p.by, []).append(p)
        for by, group in groups.items():
            reasons = {p.reason for p in group}
            gpus, within = preemptor.get(by, (0, False))
            if reasons == {"FairShare"}:
                cause = "fair_share_within_nominal" if within else "fair_share_beyond_nominal"
            elif reasons == {"Consolidation"}:
                cause = "consolidation"
            else:
                cause = "fair_share_and_moves"
            self.events[cause] += 1
            firsts = sum(1 for p in group if not restarts.get(p.running.workload.key, 0))
            self.victims[cause] += len(group)
            self.first_victims[cause] += firsts
            row = self.by_gang.setdefault(cause, {}).setdefault(gpus, [0, 0, 0])
            row[0] += 1
            row[1] += len(group)
            row[2] += firsts
            self.per_event.setdefault(cause, Counter())[len(group)] += 1
            for p in group:
                key = p.running.workload.key
                self.restarts_before.setdefault(cause, Counter())[restarts.get(key, 0)] += 1
                vg, duration, community = victim.get(key, (0, 0.0, ""))
                self.victim_gpus.setdefault(cause, Counter())[vg] += 1
                job = self.jobs.get(key)
                if job is None:
                    job = self.jobs[key] = _Job(vg, duration, community)
                job.causes.append((cause, gpus))

    def report(self) -> dict[str, object]:
        """The breakdown as plain JSON values (keys of counters as strings, sorted)."""

        def plain(counter: Mapping[int, int]) -> dict[str, int]:
            return {str(k): counter[k] for k in sorted(counter)}

        top = sorted(self.jobs.items(), key=lambda kv: (-len(kv[1].causes), kv[0]))[:TOP]
        return {
            "events": dict(sorted(self.events.items())),
            "victims": dict(sorted(self.victims.items())),
            "first_restarts": dict(sorted(self.first_victims.items())),
            "by_preemptor_gpus": {
                cause: {
                    str(g): {"events": r[0], "victims": r[1], "first_restarts": r[2]}
                    for g, r in sorted(rows.items())
                }
                for cause, rows in sorted(self.by_gang.items())
            },
            "victims_per_event": {c: plain(v) for c, v in sorted(self.per_event.items())},
            "victim_restarts_before": {
                c: plain(v) for c, v in sorted(self.restarts_before.items())
            },
            "victim_gpus": {c: plain(v) for c, v in sorted(self.victim_gpus.items())},
            "most_restarted": [
                {
                    "job": key,
                    "gpus": job.gpus,
                    "duration_s": job.duration,
                    "community": job.community,
                    "restarts": len(job.causes),
                    "causes": dict(sorted(Counter(c for c, _ in job.causes).items())),
                    "preemptor_gpus": plain(Counter(g for _, g in job.causes)),
                }
                for key, job in top
            ],
        }
