"""How much energy one GPU or one node's CPUs used over an interval, from what telemetry recorded (pure).

Sources, best first (the name is what reports show):
- `nvml-counter`: NVML's total-energy counter (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, mJ since the driver
  loaded; Volta and newer). The difference across the interval is exact; a drop means the driver reloaded,
  and counting restarts from the new value.
- `nvml-power`: NVML's power reading (DCGM_FI_DEV_POWER_USAGE, W), integrated with the trapezoid rule.
  Older GPUs and some vGPU setups have power but no counter.
- `rapl`: the CPU packages' RAPL counters (`/sys/class/powercap`, J).
- `estimate`: a model: idle watts + (TDP - idle) x utilization from the GPU catalog, utilization as measured
  for the job (or 100 % for an allocated GPU with no measurement: an upper bound), and CPU watts per busy
  core. Reports label it `estimate` wherever it shows.

A measured source is used when its samples cover at least `MIN_COVERAGE` of the interval; the rate over
what they cover is then taken for the whole interval (samples arrive every few seconds, intervals are a
minute: the edges are a few percent of it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

__all__ = [
    "MIN_COVERAGE",
    "Reading",
    "Source",
    "counter_joules",
    "gpu_joules",
    "modeled_watts",
    "power_joules",
]

MIN_COVERAGE = 0.5
MJ_PER_J = 1000.0

Points = Sequence[tuple[float, float]]


class Source(StrEnum):
    NVML_COUNTER = "nvml-counter"
    NVML_POWER = "nvml-power"
    RAPL = "rapl"
    ESTIMATE = "estimate"

    @property
    def measured(self) -> bool:
        return self is not Source.ESTIMATE


@dataclass(frozen=True, slots=True)
class Reading:
    """Energy of an interval and where the figure comes from."""

    joules: float
    source: Source


def _inside(points: Points, t0: float, t1: float) -> list[tuple[float, float]]:
    return [(t, v) for t, v in points if t0 <= t <= t1 and not math.isnan(v)]  # NaN: staleness markers


def _covers(points: Sequence[tuple[float, float]], t0: float, t1: float) -> bool:
    return len(points) >= 2 and points[-1][0] - points[0][0] >= MIN_COVERAGE * (t1 - t0)


def counter_joules(points: Points, t0: float, t1: float, scale: float = 1.0 / MJ_PER_J) -> float | None:
    """Energy over [t0, t1] from a cumulative counter's samples (`scale` turns its unit into joules: mJ by
    default), None when the samples do not cover enough of the interval. A decrease is a reset: the new
    value counts from zero."""
    pts = _inside(points, t0, t1)
    if t1 <= t0 or not _covers(pts, t0, t1):
        return None
    total = 0.0
    for (_, a), (_, b) in pairwise(pts):
        total += b - a if b >= a else b
    span = pts[-1][0] - pts[0][0]
    return total * scale * (t1 - t0) / span


def power_joules(points: Points, t0: float, t1: float) -> float | None:
    """Energy over [t0, t1] from power samples in watts (trapezoid rule), None when they cover too little."""
    pts = _inside(points, t0, t1)
    if t1 <= t0 or not _covers(pts, t0, t1):
        return None
    area = sum((tb - ta) * (a + b) / 2 for (ta, a), (tb, b) in pairwise(pts))
    span = pts[-1][0] - pts[0][0]
    return area * (t1 - t0) / span


def modeled_watts(tdp_watts: float, idle_watts: float, utilization: float) -> float:
    """The model's draw of a GPU busy `utilization` (0..1) of the time: linear between idle and TDP."""
    u = min(1.0, max(0.0, utilization))
    return idle_watts + (tdp_watts - idle_watts) * u


def gpu_joules(
    t0: float,
    t1: float,
    *,
    counter: Points = (),
    power: Points = (),
    tdp_watts: float | None = None,
    idle_watts: float | None = None,
    utilization: float | None = None,
) -> Reading | None:
    """One GPU's energy over [t0, t1]: the counter, else power samples, else the model at `utilization`
    (None: idle). None when nothing was measured and the catalog does not know the model."""
    measured = counter_joules(counter, t0, t1)
    if measured is not None:
        return Reading(measured, Source.NVML_COUNTER)
    measured = power_joules(power, t0, t1)
    if measured is not None:
        return Reading(measured, Source.NVML_POWER)
    if tdp_watts is None or idle_watts is None:
        return None
    return Reading(modeled_watts(tdp_watts, idle_watts, utilization or 0.0) * (t1 - t0), Source.ESTIMATE)
