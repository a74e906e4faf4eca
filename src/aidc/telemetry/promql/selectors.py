"""Selectors: instant (the latest point in the look-back window), range (the points in a window) and
subqueries. Windows are left-open, (start, end], as in Prometheus 3; a staleness marker ends a series."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from math import isnan
from operator import itemgetter

from aidc.telemetry.promql.nodes import MatrixNode, VectorNode
from aidc.telemetry.promql.values import Context, Matrix, RangeSeries, Sample, Vector
from aidc.telemetry.series import Labels, Matcher, is_stale

_time = itemgetter(0)


class At:
    """Where a selector's window ends before its offset: the evaluation time, a fixed time (`@ 1700000000`),
    or the query's time (`@ start()`, `@ end()`: an instant query has one time, kept inside subqueries)."""

    __slots__ = ("fixed", "query")

    def __init__(self, fixed: float | None = None, query: bool = False) -> None:
        self.fixed = fixed
        self.query = query

    def time(self, ctx: Context) -> float:
        if self.fixed is not None:
            return self.fixed
        return ctx.query_time if self.query else ctx.time


NOW = At()


def clip(points: Sequence[tuple[float, float]], start: float, end: float) -> Sequence[tuple[float, float]]:
    """The points with start < t <= end (the source returns [start, end]; tolerate sources that return more)."""
    if not points or (points[0][0] > start and points[-1][0] <= end):
        return points
    i = bisect_right(points, start, key=_time)
    j = bisect_right(points, end, key=_time)
    return points[i:j]


class VectorSelectorNode(VectorNode):
    def __init__(self, matchers: tuple[Matcher, ...], offset: float = 0.0, at: At = NOW) -> None:
        self.matchers = matchers
        self.offset = offset
        self.at = at

    def eval_points(self, ctx: Context) -> list[tuple[Labels, float, float]]:
        """(labels, time, value) of each series' latest point in (t - lookback, t], unless it is stale."""
        end = self.at.time(ctx) - self.offset
        start = end - ctx.lookback
        found = []
        for series in ctx.source.select(self.matchers, start, end):
            points = series.points
            if not points:
                continue
            t, v = points[-1]
            if t > end:  # a source that returned more than asked: find the latest point <= end
                j = bisect_right(points, end, key=_time)
                if j == 0:
                    continue
                t, v = points[j - 1]
            if t <= start or (isnan(v) and is_stale(v)):
                continue
            found.append((series.labels, t, v))
        return found

    def eval(self, ctx: Context) -> Vector:
        end = self.at.time(ctx) - self.offset
        start = end - ctx.lookback
        out: Vector = []
        append = out.append
        # The hot path of every rule: no per-point work, only each series' last point.
        for series in ctx.source.select(self.matchers, start, end):
            points = series.points
            if not points:
                continue
            t, v = points[-1]
            if t > end:
                j = bisect_right(points, end, key=_time)
                if j == 0:
                    continue
                t, v = points[j - 1]
            if t > start and (not isnan(v) or not is_stale(v)):
                append(Sample(series.labels, v))
        return out


class MatrixSelectorNode(MatrixNode):
    def __init__(self, matchers: tuple[Matcher, ...], range_: float, offset: float = 0.0, at: At = NOW) -> None:
        self.matchers = matchers
        self.range = range_
        self.offset = offset
        self.at = at

    def eval(self, ctx: Context) -> Matrix:
        end = self.at.time(ctx) - self.offset
        start = end - self.range
        out = []
        for series in ctx.source.select(self.matchers, start, end):
            points = clip(series.points, start, end)
            if any(isnan(v) for _, v in points):  # NaN: maybe staleness markers, which are not points
                points = [p for p in points if not is_stale(p[1])]
            if points:
                out.append(RangeSeries(series.labels, points))
        return Matrix(out, start, end, self.range, ctx.time)


class SubqueryNode(MatrixNode):
    """`expr[range:step]`: the inner expression evaluated at the multiples of `step` in the window."""

    def __init__(self, inner: VectorNode, range_: float, step: float | None, offset: float, at: At) -> None:
        self.inner = inner
        self.range = range_
        self.step = step
        self.offset = offset
        self.at = at

    def eval(self, ctx: Context) -> Matrix:
        end = self.at.time(ctx) - self.offset
        start = end - self.range
        step = self.step or ctx.subquery_step
        k = math.floor(start / step) + 1
        found: dict[Labels, list[tuple[float, float]]] = {}
        while (t := k * step) <= end:
            for sample in self.inner.eval(ctx.at(t)):
                found.setdefault(sample.labels, []).append((t, sample.value))
            k += 1
        series = [RangeSeries(labels, points) for labels, points in found.items()]
        return Matrix(series, start, end, self.range, ctx.time)
