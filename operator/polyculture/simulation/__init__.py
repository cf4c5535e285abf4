"""Replays of GPU-cluster traces through the scheduler, and the measures of fairness.

``polyculture simulate`` (:mod:`.cli`) reads a trace (:mod:`.trace`, the Philly format),
replays it in virtual time (:mod:`.replay`) under the ``fair`` policy — the scheduling core
itself (:mod:`.fair`) — and under the two baselines (:mod:`.baselines`: ``fifo`` and a
private ``partition`` per community), then measures each replay the same way
(:mod:`.metrics`) and draws it (:mod:`.plots`).

Pure: no kopf, no Kubernetes client, no Ray; virtual time only (nothing reads the clock,
except the command timing itself).
"""
