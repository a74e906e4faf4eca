"""Counter increases and histogram quantiles over a window, as PromQL's `increase()` and
`histogram_quantile()` compute them, on points read from the time-series buffer. Pure: no clock, no I/O.

Prometheus' rules kept here: a value lower than the one before is a counter reset (the counter restarted
from 0, so the new value is all increase); staleness markers and NaNs are skipped; a histogram needs its +Inf
bucket; an empty window has no quantile (NaN); a quantile in the +Inf bucket is the highest finite bound; the
lowest bucket starts at 0 when its bound is positive; buckets that are not monotonic (increases over a window
that saw a reset in one bucket but not another) are made so by carrying the running maximum.

Unlike `increase()`, nothing is extrapolated to the window's edges: the caller passes the value the counter
had before the window (`baseline`), 0 for a counter created inside it."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence


def counter_increase(values: Iterable[float], baseline: float = 0.0) -> float:
    """How much a counter went up over `values` (oldest first), starting from `baseline`; resets counted."""
    total, previous = 0.0, baseline
    for value in values:
        if math.isnan(value):  # a staleness marker: the series paused, its next value continues the counter
            continue
        total += value - previous if value >= previous else value
        previous = value
    return total


def parse_le(text: str) -> float:
    """A bucket's `le` label as a float ("+Inf" included); ValueError for anything else."""
    return float(text)  # float() reads "+Inf", "Inf", "1e-3"...


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The `q`-quantile of a histogram given as (upper bound, cumulative count) pairs, in any order, by linear
    interpolation within the bucket the rank falls in: Prometheus' `histogram_quantile` (bucketQuantile).

    NaN when `q` is NaN, the +Inf bucket is missing, fewer than two buckets remain, or there are no
    observations; -Inf for q < 0 and +Inf for q > 1."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for bound, count in buckets:  # the same bound twice (two series with one `le`): summed, as Prometheus does
        merged[bound] = merged.get(bound, 0.0) + count
    ordered = sorted(merged.items())
    if not ordered or ordered[-1][0] != math.inf or len(ordered) < 2:
        return math.nan
    bounds = [b for b, _ in ordered]
    counts: list[float] = []
    running = -math.inf
    for _, count in ordered:
        running = max(running, count)
        counts.append(running)
    observations = counts[-1]
    if not observations > 0:
        return math.nan
    rank = q * observations
    b = bisect_left(counts, rank, 0, len(counts) - 1)  # first bucket holding the rank (+Inf if none before it)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:  # q == 0 with an empty lowest bucket: Go's 0/0, NaN in Prometheus too
        return math.nan
    return start + (end - start) * (rank / count)


def step_increases(
    points: Sequence[tuple[float, float]], baseline: float, start: float, end: float, step: float
) -> list[float]:
    """A counter's increase in each step (start + k*step, start + (k+1)*step] up to `end` (left-open,
    right-closed, as Prometheus 3 selects ranges: the newest point counts), from its points (oldest first,
    those up to `start` included to set the value it had then; `baseline` before all of them): each rise (or,
    after a reset, each new value) counts in the step of the point that shows it."""
    if not step > 0 or end <= start:
        return []
    out = [0.0] * math.ceil((end - start) / step)
    previous = baseline
    for t, value in points:
        if math.isnan(value):
            continue
        rise = value - previous if value >= previous else value
        previous = value
        if start < t <= end:
            out[min(len(out) - 1, max(0, math.ceil((t - start) / step) - 1))] += rise
    return out
