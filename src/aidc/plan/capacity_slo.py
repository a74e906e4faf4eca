"""The service-level objective a capacity search aims at: `METRIC OP VALUE`, such as `p95_queue_wait<1h`
or `utilization>=0.6`, and the metrics of a simulated run it can name.

Every metric here falls (or stays level) as the cluster grows: waits and completion times because more
jobs start at once, the makespan likewise, the utilization (allocated share of the GPUs) because the same
work spreads over more of them. So an upper bound (`<`, `<=`) is met from some size up and the search
looks for the smallest size that meets it; a floor (`>`, `>=`, only for utilization: a floor on a wait
means nothing) is met up to some size and the search looks for the largest.

Times are seconds over the jobs of the run: queue wait = first start - submit, over the jobs that
started; JCT = end - submit, over the jobs that finished. Percentiles are nearest-rank
(`aidc.sim.metrics.percentile`)."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aidc.domain.units import format_duration, format_seconds, parse_duration
from aidc.sim.engine import SimResult
from aidc.sim.metrics import allocation_ratio, percentile

UTILIZATION = "utilization"


def _waits(result: SimResult) -> list[float]:
    return [r.started_at - r.job.submit_time for r in result.records.values() if r.started_at is not None]


def _jcts(result: SimResult) -> list[float]:
    return [
        r.ended_at - r.job.submit_time
        for r in result.records.values()
        if r.ended_at is not None and r.started_at is not None and not r.cancelled
    ]


def _first_submit(result: SimResult) -> float:
    return min((r.job.submit_time for r in result.records.values()), default=0.0)


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _pct(q: float, of: Callable[[SimResult], list[float]]) -> Callable[[SimResult], float]:
    return lambda result: percentile(of(result), q)


# name -> (what it is, how to read it from a run). Times in seconds; utilization a share 0..1.
METRICS: dict[str, tuple[str, Callable[[SimResult], float]]] = {
    "mean_queue_wait": ("mean time from submit to first start", lambda r: _mean(_waits(r))),
    "p50_queue_wait": ("median time from submit to first start", _pct(50, _waits)),
    "p90_queue_wait": ("90th percentile of the queue wait", _pct(90, _waits)),
    "p95_queue_wait": ("95th percentile of the queue wait", _pct(95, _waits)),
    "p99_queue_wait": ("99th percentile of the queue wait", _pct(99, _waits)),
    "max_queue_wait": ("longest queue wait", lambda r: max(_waits(r), default=0.0)),
    "mean_jct": ("mean job completion time (submit to end)", lambda r: _mean(_jcts(r))),
    "p50_jct": ("median job completion time", _pct(50, _jcts)),
    "p90_jct": ("90th percentile of the job completion time", _pct(90, _jcts)),
    "p95_jct": ("95th percentile of the job completion time", _pct(95, _jcts)),
    "p99_jct": ("99th percentile of the job completion time", _pct(99, _jcts)),
    "makespan": ("first submit to last end", lambda r: max(0.0, r.end_time - _first_submit(r))),
    UTILIZATION: (
        "time-weighted allocated share of the GPUs (allocation ratio)",
        lambda r: allocation_ratio(r, _first_submit(r)),
    ),
}

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}

_SLO = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=|<|>)\s*(\S.*?)\s*$")


def metric_names() -> list[str]:
    return list(METRICS)


def metric_value(name: str, result: SimResult) -> float:
    """The value of metric `name` (`METRICS`) in a run."""
    return METRICS[name][1](result)


@dataclass(frozen=True)
class Slo:
    """`metric op value`; `value` in seconds for times, a share 0..1 for utilization."""

    metric: str
    op: str
    value: float

    @property
    def grows(self) -> bool:
        """True for an upper bound, met from some size up (the search wants the smallest size); False for
        a floor, met up to some size (the search wants the largest)."""
        return self.op in ("<", "<=")

    @property
    def is_time(self) -> bool:
        return self.metric != UTILIZATION

    def met(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.value)

    def format_value(self, value: float) -> str:
        """A value of this SLO's metric the way people read it: 42s, 12.5m, 3.2h, or 61.2%."""
        return format_seconds(value) if self.is_time else f"{value * 100:.1f}%"

    def __str__(self) -> str:
        value = format_duration(self.value) if self.is_time else f"{self.value:g}"
        return f"{self.metric}{self.op}{value}"


def parse_slo(text: str) -> Slo:
    """`METRIC OP VALUE` (`p95_queue_wait<1h`, `mean_jct <= 90m`, `utilization>=0.6` or `>=60%`). Raises
    ValueError with a message fit for a user: the expected form, the known metrics, or what is wrong
    with the value."""
    match = _SLO.match(text)
    known = ", ".join(METRICS)
    if match is None:
        raise ValueError(f"expected METRIC OP VALUE such as p95_queue_wait<1h, got {text!r}; metrics: {known}")
    metric, op, raw = match.group(1).lower(), match.group(2), match.group(3)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; metrics: {known}")
    if metric == UTILIZATION:
        return Slo(metric, op, _share(raw))
    if op not in ("<", "<="):
        raise ValueError(f"{metric} is a time, an upper bound: use < or <= (a floor on it would ask for less capacity)")
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise ValueError(f"{metric}: {exc}") from None
    if op == "<" and seconds == 0:
        raise ValueError(f"{metric}<0 can never be met: a wait is never negative")
    return Slo(metric, op, seconds)


def _share(raw: str) -> float:
    text = raw.strip()
    percent = text.endswith("%")
    try:
        value = float(text.removesuffix("%")) / (100 if percent else 1)
    except ValueError:
        raise ValueError(f"utilization: {raw!r} is not a share such as 0.6 or 60%") from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"utilization: {raw!r} must be within 0..1 (or 0%..100%)")
    return value
