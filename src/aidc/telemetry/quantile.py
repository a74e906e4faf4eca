"""Counter increases over a window, as PromQL's `increase()` computes them, on points read from the
time-series buffer (quantiles over the increases: aidc.telemetry.promql.histogram.bucket_quantile, the
PromQL engine's own). Pure: no clock, no I/O.

Prometheus' rule kept here: a value lower than the one before is a counter reset (the counter restarted from
0, so the new value is all increase); staleness markers and NaNs are skipped.

Unlike `increase()`, nothing is extrapolated to the window's edges: the caller passes the value the counter
had before the window (`baseline`), 0 for a counter created inside it."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
