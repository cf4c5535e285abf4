"""The fair-share scheduling core: a pure function from a pool snapshot to decisions.

``schedule(snapshot) -> Decisions`` admits gangs with a placement, preempts (owner reclaim,
fair share) and says why everything else waits (a caller that reads no reason, the
simulator, passes ``waiting_reasons=False`` and gets none, with the same decisions). No kopf,
no Kubernetes client, no Ray, no clock: ``now`` comes in the snapshot. The policies are
described in ``DESIGN.md`` next to this file, one module each: ``capacity``,
``entitlement``, ``ordering``, ``placement``, ``preemption``, ``consolidation``, ``reasons``,
``usage``; ``intake`` reads a snapshot into dense ids, ``victims`` builds the views of the
running workloads that preemption and consolidation read (on first use) and ``cycle`` ties
them together.
``testing`` holds fluent builders of snapshots for tests, the benchmark and the simulator.
"""

from polyculture.scheduling.cycle import schedule
from polyculture.scheduling.entitlement import water_fill
from polyculture.scheduling.snapshot import (
    FAIR_SHARE,
    OWNER_RECLAIM,
    Admission,
    Community,
    Decisions,
    GPUClass,
    Node,
    Policy,
    Preemption,
    Running,
    Snapshot,
    Waiting,
    Workload,
)
from polyculture.scheduling.usage import accrue, decay

__all__ = [
    "FAIR_SHARE",
    "OWNER_RECLAIM",
    "Admission",
    "Community",
    "Decisions",
    "GPUClass",
    "Node",
    "Policy",
    "Preemption",
    "Running",
    "Snapshot",
    "Waiting",
    "Workload",
    "accrue",
    "decay",
    "schedule",
    "water_fill",
]
