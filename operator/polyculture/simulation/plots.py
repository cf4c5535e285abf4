"""PNG figures of replays, so that people see the fairness rather than read it.

- ``allocation-<policy>.png``: one small panel per community — GPUs allocated (filled) against
  GPUs entitled (line), both averaged over bins of time, and the shading of contended time.
- ``wait-cdf.png``: the distribution of job waits, one curve per policy (log time axis).

matplotlib runs with the Agg backend (no display). Figures carry the trace's credit line
(:data:`PHILLY_CREDIT` for the Philly trace, whose licence asks for attribution).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from polyculture.simulation.metrics import Array, entitlements, steps, waits
from polyculture.simulation.replay import Replay
from polyculture.simulation.trace import CommunityConfig

_DAY = 86400.0
_COLOURS = {"fair": "tab:blue", "fifo": "tab:orange", "partition": "tab:green"}


def binned(start: Array, dt: Array, values: Array, edges: Array) -> Array:
    """Time averages of the step function ``values`` [T, ...] over bins between ``edges``."""
    flat = values.reshape(len(start), -1)
    cumulative = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(flat * dt[:, None], axis=0)])
    row = np.clip(np.searchsorted(start, edges, side="right") - 1, 0, len(start) - 1)
    integral = cumulative[row] + flat[row] * np.clip(edges - start[row], 0, dt[row])[:, None]
    widths = np.diff(edges)
    means: Array = np.diff(integral, axis=0) / widths[:, None]
    return means.reshape((len(edges) - 1, *values.shape[1:]))


def allocation_figure(
    result: Replay,
    config: Mapping[str, CommunityConfig],
    path: Path,
    *,
    credit: str = "",
    slices: Mapping[str, int] | None = None,
) -> None:
    """Write ``path``: allocated vs entitled GPUs per community over time (``result``);
    ``slices`` (the partition's private GPUs per community) are drawn dotted."""
    arrays = steps(result)
    entitled = entitlements(arrays.demand, result.capacity, result.communities, config)
    span = max(float(arrays.dt.sum()), 1.0)
    bins = max(1, min(240, int(span // 3600)))
    edges = np.linspace(arrays.start[0], arrays.start[0] + span, bins + 1)
    allocated = binned(arrays.start, arrays.dt, arrays.allocated, edges)
    entitled_mean = binned(arrays.start, arrays.dt, entitled, edges)
    contended = binned(
        arrays.start,
        arrays.dt,
        (arrays.demand.sum(axis=1) >= result.capacity).astype(np.float64),
        edges,
    )
    days = (edges[:-1] + edges[1:]) / 2 / _DAY
    count = len(result.communities)
    columns = min(4, count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 2.6 * rows), sharex=True, squeeze=False
    )
    colour = _COLOURS.get(result.policy, "tab:blue")
    for i, name in enumerate(result.communities):
        axis = axes[i // columns][i % columns]
        top = max(float(entitled_mean[:, i].max()), float(allocated[:, i].max()), 1.0) * 1.1
        if slices is not None and name in slices:
            top = max(top, slices[name] * 1.1)
        axis.fill_between(days, 0, top, where=contended > 0.5, color="0.92", step="mid")
        axis.fill_between(days, allocated[:, i], color=colour, alpha=0.55, step="mid")
        axis.plot(days, entitled_mean[:, i], color="black", linewidth=0.9, drawstyle="steps-mid")
        if slices is not None and name in slices:
            axis.axhline(slices[name], color="0.3", linestyle=":", linewidth=1.0)
        axis.set_ylim(0, top)
        axis.set_title(name, fontsize=9)
        axis.tick_params(labelsize=7)
        if i % columns == 0:
            axis.set_ylabel("GPUs", fontsize=8)
        if i // columns == rows - 1:
            axis.set_xlabel("day of trace", fontsize=8)
    for j in range(count, rows * columns):
        axes[j // columns][j % columns].set_visible(False)
    figure.suptitle(
        f"{result.policy}: GPUs allocated (filled) vs entitled (black), "
        f"{result.capacity} GPUs; grey = contended"
        + ("; dotted = private slice" if slices is not None else ""),
        fontsize=10,
    )
    figure.text(0.01, 0.003, credit, fontsize=6, color="0.4")
    figure.tight_layout(rect=(0, 0.02, 1, 0.97))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def wait_cdf_figure(results: Sequence[Replay], path: Path, *, credit: str = "") -> None:
    """Write ``path``: the CDF of job waits for each replay in ``results`` (never-served jobs
    censored at the end of their replay, as in :mod:`polyculture.simulation.metrics`)."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for result in results:
        every = np.sort(np.array([w for values in waits(result).values() for w in values]))
        if not len(every):
            continue
        fraction = np.arange(1, len(every) + 1) / len(every)
        shown = np.maximum(every, 1.0)  # a zero wait sits at 1 s on the log axis
        label = (
            f"{result.policy} (p50 {_duration(np.percentile(every, 50))}, "
            f"p95 {_duration(np.percentile(every, 95))})"
        )
        axis.step(shown, fraction, where="post", label=label, color=_COLOURS.get(result.policy))
    axis.set_xscale("log")
    axis.set_xlabel("wait before running (s, log; zero shown at 1 s)")
    axis.set_ylabel("fraction of jobs")
    axis.set_ylim(0, 1.01)
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    if results:
        axis.set_title(f"Job waits per policy, {results[0].capacity} GPUs", fontsize=10)
    figure.text(0.01, 0.005, credit, fontsize=6, color="0.4")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _duration(seconds: float) -> str:
    for unit, size in (("d", _DAY), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


#: credit line for figures made from the Philly trace (its licence asks for attribution)
PHILLY_CREDIT = (
    "Trace: Microsoft Philly (Jeon et al., USENIX ATC 2019, CC BY 4.0), "
    "as processed by petuum/adaptdl (Apache-2.0)"
)
