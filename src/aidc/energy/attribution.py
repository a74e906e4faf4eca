"""Attributing a node's measured CPU energy over an interval to the jobs that ran on it (pure).

Each job gets the node's energy in proportion to the CPU-seconds it used in the interval. What is not the
jobs' (other processes' share, the idle draw when given) stays unattributed: it is reported, not spread over
the jobs. Two ways to read "share", both offered:

- `node_busy_cpu_seconds` (the node's busy CPU-seconds over the interval, jobs and everything else): the jobs'
  shares of the busy time; the energy of other processes is unattributed.
- neither given: the jobs' shares among themselves (all the energy goes to the jobs).

A CPU package draws power when idle too; with `idle_watts` (the node's CPU idle draw, measured or estimated)
the idle part (idle_watts x interval, capped at the energy measured) is left unattributed and only the rest,
the dynamic part, is split by CPU-seconds. The figures are what a cgroup/psutil reading gives; clock skew
between the two readings can make the jobs' sum exceed the node's busy time: the larger of the two is used.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Attribution", "attribute_cpu_energy"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Attribution(Generic[K]):
    """Joules per job, and the joules no job is charged for (idle draw, other processes)."""

    jobs: dict[K, float]
    unattributed_joules: float

    @property
    def total_joules(self) -> float:
        return sum(self.jobs.values()) + self.unattributed_joules


def attribute_cpu_energy(
    energy_joules: float,
    cpu_seconds: Mapping[K, float],
    *,
    node_busy_cpu_seconds: float | None = None,
    idle_watts: float = 0.0,
    interval_seconds: float | None = None,
) -> Attribution[K]:
    """Splits `energy_joules` (the node's CPU energy over one interval, e.g. the difference of two RAPL
    readings) among jobs by `cpu_seconds` ({job: CPU-seconds used in the interval}). Raises ValueError on
    negative figures, or `idle_watts` without `interval_seconds`."""
    if energy_joules < 0:
        raise ValueError(f"energy_joules must be >= 0, not {energy_joules}")
    if any(v < 0 for v in cpu_seconds.values()):
        raise ValueError("cpu_seconds must be >= 0")
    if node_busy_cpu_seconds is not None and node_busy_cpu_seconds < 0:
        raise ValueError(f"node_busy_cpu_seconds must be >= 0, not {node_busy_cpu_seconds}")
    if idle_watts < 0:
        raise ValueError(f"idle_watts must be >= 0, not {idle_watts}")
    idle = 0.0
    if idle_watts:
        if interval_seconds is None or interval_seconds <= 0:
            raise ValueError("idle_watts needs interval_seconds > 0")
        idle = min(idle_watts * interval_seconds, energy_joules)
    dynamic = energy_joules - idle
    used = sum(cpu_seconds.values())
    whole = used if node_busy_cpu_seconds is None else max(used, node_busy_cpu_seconds)
    if whole <= 0:
        return Attribution(dict.fromkeys(cpu_seconds, 0.0), energy_joules)
    jobs = {job: dynamic * seconds / whole for job, seconds in cpu_seconds.items()}
    return Attribution(jobs, energy_joules - sum(jobs.values()))
