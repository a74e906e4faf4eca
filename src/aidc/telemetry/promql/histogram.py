"""histogram_quantile over classic histograms: the `le` buckets of each series group, interpolated linearly
inside the bucket the rank falls in (promql/quantile.go bucketQuantile)."""

from __future__ import annotations

import math
from bisect import bisect_left

from aidc.telemetry.promql.nodes import ScalarNode, VectorNode
from aidc.telemetry.promql.values import Context, Sample, Vector, check_unique
from aidc.telemetry.series import NAME_LABEL, Labels

_EXCLUDED = frozenset({NAME_LABEL, "le", "quantile"})


def parse_bound(text: str) -> float | None:
    """An `le` value as Go's strconv.ParseFloat reads it (None: not a number, the bucket is skipped)."""
    if not text or "_" in text or text != text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """`buckets`: (upper bound, cumulative count). NaN when the +Inf bucket is missing or nothing was observed."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets, key=lambda b: b[0])
    if not buckets or not math.isinf(buckets[-1][0]) or buckets[-1][0] < 0:
        return math.nan
    merged: list[list[float]] = []  # buckets with the same bound (e.g. "1" and "1.0") count together
    for bound, count in buckets:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    highest = -math.inf  # counts must not decrease with the bound (they may, through rate()'s extrapolation)
    for bucket in merged:
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    counts = [b[1] for b in merged[:-1]]
    b = bisect_left(counts, rank)  # the first bucket whose count reaches the rank
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start = 0.0
    end, count = merged[b]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    if count == 0:  # q == 0 with an empty lowest bucket: Go's 0/0, NaN in Prometheus too
        return math.nan
    return start + (end - start) * (rank / count)


class HistogramQuantile(VectorNode):
    def __init__(self, q: ScalarNode, buckets: VectorNode) -> None:
        self.q = q
        self.buckets = buckets

    def eval(self, ctx: Context) -> Vector:
        q = self.q.eval(ctx)
        groups: dict[Labels, tuple[Labels, list[tuple[float, float]]]] = {}
        for s in self.buckets.eval(ctx):
            le = ""
            for name, value in s.labels:
                if name == "le":
                    le = value
                    break
            bound = parse_bound(le)
            if bound is None:
                continue
            # Grouped by all labels but `le` (the name included), reported without name, le and quantile.
            key = tuple(item for item in s.labels if item[0] != "le")
            group = groups.get(key)
            if group is None:
                group = groups[key] = (tuple(item for item in s.labels if item[0] not in _EXCLUDED), [])
            group[1].append((bound, s.value))
        out = [Sample(labels, bucket_quantile(q, buckets)) for labels, buckets in groups.values()]
        check_unique(out)
        return out
