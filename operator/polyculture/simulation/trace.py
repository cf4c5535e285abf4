"""Traces to replay: the Philly format, and the configuration of the communities in it.

A trace is a list of training jobs, each with an arrival time, a duration it runs once
admitted (its work, in seconds of wall time on its GPUs), a number of GPUs it needs all at
once (a gang) and the community that submitted it. The Philly format (as processed for the
Pollux simulator) is a CSV with the columns ``timestamp,duration,num_gpus,gpu_time,cluster``;
each ``cluster`` (a hashed virtual cluster, a tenant) is one community.

Origin of the Philly trace: Microsoft Philly traces (msr-fiddle/philly-traces, CC BY 4.0 —
Jeon et al., "Analysis of Large-Scale Multi-Tenant GPU Clusters for DNN Training Workloads",
USENIX ATC 2019), processed by petuum/adaptdl (osdi21-artifact, Apache-2.0).

Arrival times are seconds since the first arrival in the file, so a replay starts at 0.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

#: timestamp format of the Philly file
_PHILLY_TIME = "%Y-%m-%d %H:%M:%S"


class TraceError(ValueError):
    """The trace or its configuration cannot be read; the message says which line or key."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace: a gang of ``gpus`` GPUs that runs ``duration`` seconds once admitted."""

    key: str
    community: str
    arrival: float
    duration: float
    gpus: int


@dataclass(frozen=True, slots=True)
class CommunityConfig:
    """How a community shares the pool (DESIGN.md, ComputePool ``communities[]``)."""

    weight: float = 1.0
    guaranteed_gpus: int = 0
    max_gpus: int | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    """Jobs sorted by arrival (ties by file order), and every community named in the file.

    ``origin`` is the wall-clock time of arrival 0; ``communities`` is sorted by name so
    that every run orders them the same way.
    """

    jobs: tuple[TraceJob, ...]
    communities: tuple[str, ...]
    origin: datetime | None = None
    config: Mapping[str, CommunityConfig] = field(default_factory=dict)

    def community_config(self, name: str) -> CommunityConfig:
        """The configuration of ``name``: what the config file says, else weight 1."""
        return self.config.get(name, CommunityConfig())

    def head(self, count: int) -> Trace:
        """The first ``count`` arrivals: a slice that keeps every community's configuration."""
        jobs = self.jobs[:count]
        names = tuple(sorted({job.community for job in jobs}))
        return Trace(jobs=jobs, communities=names, origin=self.origin, config=self.config)


def load_philly(path: Path | str, *, limit: int | None = None) -> Trace:
    """Read a Philly CSV; ``limit`` keeps only the first ``limit`` arrivals.

    Jobs with no GPU or a non-positive duration cannot be replayed and raise
    :class:`TraceError` naming the line, as do unreadable timestamps.
    """
    rows: list[tuple[datetime, int, str, float, int]] = []
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"timestamp", "duration", "num_gpus", "cluster"} - set(reader.fieldnames or ())
        if missing:
            raise TraceError(f"{path}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                stamp = datetime.strptime(row["timestamp"], _PHILLY_TIME)
                duration = float(row["duration"])
                gpus = int(row["num_gpus"])
            except ValueError as error:
                raise TraceError(f"{path}:{line}: {error}") from error
            if gpus <= 0 or not math.isfinite(duration) or duration <= 0:
                raise TraceError(f"{path}:{line}: needs num_gpus > 0 and duration > 0")
            rows.append((stamp, line, row["cluster"], duration, gpus))
    if not rows:
        raise TraceError(f"{path}: no jobs")
    rows.sort(key=lambda row: (row[0], row[1]))
    if limit is not None:
        rows = rows[:limit]
    origin = rows[0][0]
    jobs = tuple(
        TraceJob(
            key=f"job-{line:06d}",
            community=cluster,
            arrival=(stamp - origin).total_seconds(),
            duration=duration,
            gpus=gpus,
        )
        for stamp, line, cluster, duration, gpus in rows
    )
    return Trace(
        jobs=jobs, communities=tuple(sorted({job.community for job in jobs})), origin=origin
    )


def load_config(path: Path | str) -> dict[str, CommunityConfig]:
    """Read a community configuration YAML.

    Layout (keys as in the ComputePool spec; every key optional)::

        communities:
          6214e9: {weight: 2, guaranteedGPUs: 16, maxGPUs: 200}
    """
    try:
        document: Any = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise TraceError(f"{path}: {error}") from error
    communities = (document or {}).get("communities") or {}
    if not isinstance(communities, dict):
        raise TraceError(f"{path}: `communities` must be a mapping of name to settings")
    config: dict[str, CommunityConfig] = {}
    for name, given in communities.items():
        settings = given or {}
        unknown = set(settings) - {"weight", "guaranteedGPUs", "maxGPUs"}
        if unknown:
            raise TraceError(f"{path}: community {name}: unknown keys {sorted(unknown)}")
        weight = float(settings.get("weight", 1.0))
        if weight <= 0:
            raise TraceError(f"{path}: community {name}: weight must be > 0")
        cap = settings.get("maxGPUs")
        config[str(name)] = CommunityConfig(
            weight=weight,
            guaranteed_gpus=int(settings.get("guaranteedGPUs", 0)),
            max_gpus=None if cap is None else int(cap),
        )
    return config


def with_config(trace: Trace, config: Mapping[str, CommunityConfig]) -> Trace:
    """``trace`` with the communities' configuration replaced by ``config``."""
    return Trace(jobs=trace.jobs, communities=trace.communities, origin=trace.origin, config=config)


def gang_shape(gpus: int, node_gpus: int) -> tuple[int, int]:
    """Split a job of ``gpus`` GPUs into (workers, GPUs per worker) for nodes of ``node_gpus``.

    A job that fits one node is one worker. A larger one becomes the fewest equal workers
    that each fit a node (24 GPUs on 8-GPU nodes: 3 × 8; 12 GPUs: 2 × 6), since a worker
    cannot span nodes and Ray gangs are equal workers.
    """
    if gpus <= node_gpus:
        return 1, gpus
    per_worker = max(d for d in range(1, node_gpus + 1) if gpus % d == 0)
    return gpus // per_worker, per_worker
