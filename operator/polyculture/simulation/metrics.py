"""The measures of a replay, defined once and applied the same way to every policy.

Let the timeline (:class:`~polyculture.simulation.replay.Timeline`) cut time into intervals
``i`` of length ``dt_i`` on which nothing changes; ``a_ic`` is the GPUs allocated to
community ``c`` (running jobs), ``q_ic`` the GPUs of its queued jobs, ``d_ic = a_ic + q_ic``
its demand, and ``C`` the pool's GPUs.

- **contended**: interval ``i`` is contended when ``sum_c d_ic >= C`` (demand at least the
  capacity). ``contended_fraction`` is the contended share of the replay's duration.
- **utilization_contended** = ``sum_i dt_i * sum_c a_ic / (C * sum_i dt_i)``, both sums over
  contended intervals: how much of the pool is busy when there is work for all of it.
- **entitlement** ``e_ic``: weighted max-min (water-filling) of ``C`` over the demands of
  interval ``i`` — ``e_ic = clip(w_c * L, lo_c, hi_c)`` with ``hi_c = min(cap_c, d_ic)``,
  ``lo_c = min(guarantee_c, hi_c)`` (scaled down together when they exceed ``C``) and the level
  ``L`` such that ``sum_c e_ic = min(C, sum_c hi_c)`` — the definition of
  :mod:`polyculture.scheduling.entitlement`, computed here for all intervals at once. It is
  the same reference for every policy, whatever the policy computes internally.
- **jain_contended**: on each contended interval, Jain's index
  ``J_i = (sum x)^2 / (n * sum x^2)`` of ``x_c = a_ic / e_ic`` over the ``n`` communities with
  ``e_ic > 0``; ``jain_contended`` is the ``dt``-weighted mean of ``J_i``. 1 means every
  contending community holds the same fraction of its entitlement.
- **jain_span**: Jain's index over the contended span as a whole, of
  ``X_c = sum_i dt_i a_ic / sum_i dt_i e_ic`` (sums over contended intervals) over the
  communities with ``sum_i dt_i e_ic > 0``: whether each community received, over the
  replay, the same fraction of the GPU-time it was entitled to. ``jain_contended`` judges
  every instant; a gang larger than its community's entitlement (a fifth of a five-community
  pool, gangs up to half of it) makes the instantaneous ratios unequal whatever the order,
  and a pool can then be fair only over time, which this measures. Both are reported.
- **wait** of a job: total time queued — from arrival to first start, plus from each
  preemption to the next start (a start delayed by a victim's grace period counts from when
  it runs). A job that never starts — never served: unplaceable, or still queued when the
  replay ends — is *censored*: its wait is counted up to the end of the replay (``end`` of
  the timeline), a lower bound, never 0. ``wait_p50_s`` / ``wait_p95_s`` are percentiles
  (linear interpolation) over every job of the trace; per community the same plus the
  mean. ``never_served_jobs`` counts the censored ones.
- **job completion time** (JCT): finish minus arrival, censored at the end like the wait;
  ``jct_p50_s`` / ``jct_p95_s``. **slowdown**: bounded slowdown (Feitelson)
  ``max(JCT / max(duration, 10 s), 1)``; ``slowdown_p95``.
- **sharing_incentive_fraction**: among communities with at least one job, the fraction
  whose mean wait under the policy is no more than (``<=``) under the ``partition``
  baseline, both means over *all* the community's jobs — a job its private slice cannot
  hold counts under ``partition`` as never served (censored), so both policies are
  measured on the same jobs.
- **sharing_incentive_grace_fraction**: the same with a tolerance of one grace period
  ``g`` (the replay's ``grace_s``): a community counts as no worse off when its mean wait
  is at most its mean wait on the slice plus ``g``. A shared pool lends idle GPUs and must
  stop the borrower to give them back, which takes ``g``; a private slice never lends, so a
  community that never waits on its slice waits ``g`` in the pool whenever it reclaims.
  Within ``g`` is the promise a pool that lends can keep (Kueue's and KAI's reclaim of a
  nominal quota waits for the borrower's termination too); beyond ``g`` the community
  waited for something other than the hand-back itself. Both fractions are reported.
- **preemptions**: preemption events, moves included (a job preempted twice counts twice);
  ``restarted_jobs`` counts the jobs preempted or moved at least once,
  ``preempted_job_fraction`` the same over all jobs; ``max_restarts`` and ``restarts_p99``
  are over all jobs.
- **gpu_time_lost_fraction**: GPU-seconds held without progress kept (work redone after a
  preemption, restart cost, GPUs held idle in a grace period; see
  :mod:`polyculture.simulation.replay`) over all GPU-seconds held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from polyculture.simulation.replay import JobState, Replay
from polyculture.simulation.trace import CommunityConfig

Array = npt.NDArray[np.float64]

_BISECTIONS = 60


@dataclass(frozen=True, slots=True)
class Steps:
    """A replay's timeline as arrays: interval lengths ``dt`` [T], allocated and demand [T, C]."""

    start: Array
    dt: Array
    allocated: Array
    demand: Array


def steps(result: Replay) -> Steps:
    """The timeline of ``result`` as arrays (one row per interval, the last one of length 0)."""
    timeline = result.timeline
    start = np.asarray(timeline.times, dtype=np.float64)
    dt = np.diff(start, append=timeline.end)
    allocated = np.asarray(timeline.allocated, dtype=np.float64).reshape(len(start), -1)
    pending = np.asarray(timeline.pending, dtype=np.float64).reshape(len(start), -1)
    return Steps(start=start, dt=dt, allocated=allocated, demand=allocated + pending)


def entitlements(
    demand: Array,
    capacity: float,
    communities: Sequence[str],
    config: Mapping[str, CommunityConfig],
) -> Array:
    """Weighted max-min entitlement per row of ``demand`` [T, C] (definition in the module doc)."""
    weights = np.array([config.get(c, CommunityConfig()).weight for c in communities])
    floors = np.array([config.get(c, CommunityConfig()).guaranteed_gpus for c in communities])
    caps = np.array(
        [
            np.inf if config.get(c, CommunityConfig()).max_gpus is None else config[c].max_gpus
            for c in communities
        ],
        dtype=np.float64,
    )
    hi = np.minimum(caps[None, :], demand)
    lo = np.minimum(floors[None, :], hi)
    # floors that together exceed the capacity are scaled down to it
    over = lo.sum(axis=1)
    lo = np.where((over > capacity)[:, None], lo * capacity / np.maximum(over, 1e-12)[:, None], lo)
    target = np.minimum(capacity, hi.sum(axis=1))
    # bisection on the water level, row by row at once: level * weight reaches every hi
    low = np.zeros(len(demand))
    high = np.full(len(demand), (hi / weights[None, :]).max(initial=0.0) + 1.0)
    for _ in range(_BISECTIONS):
        mid = (low + high) / 2
        filled = np.clip(mid[:, None] * weights[None, :], lo, hi).sum(axis=1)
        below = filled < target
        low = np.where(below, mid, low)
        high = np.where(below, high, mid)
    result: Array = np.clip(high[:, None] * weights[None, :], lo, hi)
    return result


def jain(x: Array, mask: npt.NDArray[np.bool_]) -> Array:
    """Jain's index per row of ``x`` over the entries where ``mask`` is true (nan if none)."""
    values = np.where(mask, x, 0.0)
    count = mask.sum(axis=1)
    squares = (values**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        index: Array = values.sum(axis=1) ** 2 / (count * squares)
    index[count == 0] = np.nan
    # every holder at 0 of its entitlement is equal, if not useful: the index is defined as 1
    index[(count > 0) & (squares == 0)] = 1.0
    return index


def fairness(result: Replay, config: Mapping[str, CommunityConfig]) -> dict[str, float]:
    """``contended_fraction``, ``utilization_contended``, ``jain_contended`` and ``jain_span``
    of ``result``."""
    arrays = steps(result)
    total = arrays.dt.sum()
    contended = (arrays.demand.sum(axis=1) >= result.capacity) & (arrays.dt > 0)
    contended_time = arrays.dt[contended].sum()
    if contended_time <= 0:
        return {
            "contended_fraction": 0.0,
            "utilization_contended": 1.0,
            "jain_contended": 1.0,
            "jain_span": 1.0,
        }
    used = (arrays.allocated[contended].sum(axis=1) * arrays.dt[contended]).sum()
    entitled = entitlements(arrays.demand[contended], result.capacity, result.communities, config)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(entitled > 0, arrays.allocated[contended] / entitled, 0.0)
    index = jain(ratio, entitled > 0)
    weights = np.where(np.isnan(index), 0.0, arrays.dt[contended])
    # over the span: each community's GPU-time held over GPU-time entitled
    dt = arrays.dt[contended][:, None]
    held, owed = (arrays.allocated[contended] * dt).sum(axis=0), (entitled * dt).sum(axis=0)
    span = jain((held / np.where(owed > 0, owed, 1.0))[None, :], (owed > 0)[None, :])[0]
    return {
        "contended_fraction": float(contended_time / total) if total > 0 else 0.0,
        "utilization_contended": float(used / (result.capacity * contended_time)),
        "jain_contended": float(np.nansum(index * weights) / weights.sum())
        if weights.sum() > 0
        else 1.0,
        "jain_span": 1.0 if np.isnan(span) else float(span),
    }


#: bounded slowdown's floor on the duration (seconds)
SLOWDOWN_FLOOR_S = 10.0


def everyone(result: Replay) -> tuple[JobState, ...]:
    """Every job of the trace: those the policy could run, then the unplaceable ones."""
    return result.jobs + result.unplaceable


def wait_of(jobstate: JobState, end: float) -> float:
    """The job's wait; a job queued at ``end`` (never served, or preempted last) is censored."""
    if jobstate.finished is not None:
        return jobstate.waited
    return jobstate.waited + max(0.0, end - jobstate.queued_since)


def jct_of(jobstate: JobState, end: float) -> float:
    """Finish minus arrival, censored at ``end`` for a job that never finished."""
    finished = end if jobstate.finished is None else jobstate.finished
    return finished - jobstate.job.arrival


def waits(result: Replay) -> dict[str, list[float]]:
    """Waits of every job of the trace (censored where never served), per community."""
    end = result.timeline.end
    per: dict[str, list[float]] = {}
    for jobstate in everyone(result):
        per.setdefault(jobstate.job.community, []).append(wait_of(jobstate, end))
    return per


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def wait_summary(result: Replay) -> dict[str, object]:
    """Pool-wide p50/p95/mean wait and the same per community."""
    per = waits(result)
    every = [wait for values in per.values() for wait in values]
    return {
        "wait_p50_s": _percentile(every, 50),
        "wait_p95_s": _percentile(every, 95),
        "wait_mean_s": float(np.mean(every)) if every else 0.0,
        "per_community": {
            name: {
                "jobs": len(values),
                "wait_p50_s": _percentile(values, 50),
                "wait_p95_s": _percentile(values, 95),
                "wait_mean_s": float(np.mean(values)),
            }
            for name, values in sorted(per.items())
        },
    }


def completion(result: Replay) -> dict[str, float]:
    """JCT percentiles and the p95 bounded slowdown over every job (censored at the end)."""
    end = result.timeline.end
    jobs = everyone(result)
    jct = np.asarray([jct_of(j, end) for j in jobs], dtype=np.float64)
    duration = np.asarray([j.job.duration for j in jobs], dtype=np.float64)
    slowdown = np.maximum(jct / np.maximum(duration, SLOWDOWN_FLOOR_S), 1.0)
    return {
        "jct_p50_s": _percentile(jct.tolist(), 50),
        "jct_p95_s": _percentile(jct.tolist(), 95),
        "slowdown_p95": _percentile(slowdown.tolist(), 95),
    }


def churn(result: Replay) -> dict[str, float | int]:
    """Restarts per job and the GPU time lost to preemption (definitions in the module doc)."""
    jobs = everyone(result)
    restarts = [j.restarts for j in jobs]
    lost = sum(j.lost_gpu_s for j in jobs)
    useful = sum(j.job.gpus * j.job.duration for j in jobs if j.finished is not None)
    restarted = sum(1 for count in restarts if count)
    return {
        "restarted_jobs": restarted,
        "preempted_job_fraction": restarted / len(jobs) if jobs else 0.0,
        "max_restarts": max(restarts, default=0),
        "restarts_p99": _percentile(restarts, 99),
        "gpu_time_lost_fraction": lost / (useful + lost) if useful + lost > 0 else 0.0,
    }


def sharing_incentive(
    result: Replay, partition: Replay, tolerance_s: float = 0.0
) -> tuple[float, dict[str, bool]]:
    """The fraction of communities no worse off than on their private slice (mean wait at
    most the slice's plus ``tolerance_s``), and who is.

    Both means are over all of a community's jobs, censored where never served (module doc).
    """
    shared = waits(result)
    alone = waits(partition)
    verdict = {
        name: bool(np.mean(shared[name]) <= np.mean(alone[name]) + tolerance_s)
        for name in sorted(shared)
        if alone.get(name)
    }
    fraction = sum(verdict.values()) / len(verdict) if verdict else 1.0
    return fraction, verdict


def summary(
    result: Replay,
    partition: Replay,
    config: Mapping[str, CommunityConfig],
    grace_s: float = 0.0,
) -> dict[str, object]:
    """Every measure of ``result`` (keys as in the module doc), against ``partition``;
    ``grace_s`` is the grace period of the replay (the tolerance of the second sharing
    incentive)."""
    fraction, verdict = sharing_incentive(result, partition)
    within, verdict_within = sharing_incentive(result, partition, grace_s)
    waited = wait_summary(result)
    per_community = waited.pop("per_community")
    assert isinstance(per_community, dict)
    for name, entry in per_community.items():
        entry["no_worse_than_partition"] = verdict.get(name)
        entry["no_worse_within_grace"] = verdict_within.get(name)
    return {
        "policy": result.policy,
        **fairness(result, config),
        "sharing_incentive_fraction": fraction,
        "sharing_incentive_grace_fraction": within,
        **waited,
        **completion(result),
        "preemptions": result.preemptions,
        **churn(result),
        "jobs": len(everyone(result)),
        "unplaceable_jobs": len(result.unplaceable),
        "never_served_jobs": sum(1 for j in everyone(result) if j.first_start is None),
        "cycles": result.cycles,
        "per_community": per_community,
    }
