"""Functions of a range vector: each series' points in the window give one value (or none), as in
promql/functions.go (extrapolatedRate, instantValue, the *_over_time family, deriv, predict_linear)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from aidc.telemetry.promql.aggregations import quantile
from aidc.telemetry.promql.nodes import MatrixNode, ScalarNode, VectorNode
from aidc.telemetry.promql.values import Context, Matrix, RangeSeries, Sample, Vector, check_unique, drop_name

Points = Sequence[tuple[float, float]]
# (points, the matrix they come from, extra scalar arguments) -> value, or None: no output element
RangeFn = Callable[[Points, Matrix, tuple[float, ...]], float | None]


def kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """One step of Neumaier's compensated sum (Prometheus' kahanSumInc)."""
    t = total + inc
    if math.isinf(t):
        c = 0.0  # no compensation once infinite (else Inf - Inf gives NaN)
    elif abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def extrapolated_rate(points: Points, m: Matrix, is_counter: bool, is_rate: bool) -> float | None:
    """delta/rate/increase: the change over the points, counter resets added back, extrapolated to the window's
    edges when the first/last point is close to them (promql/functions.go extrapolatedRate)."""
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    if is_counter:
        previous = 0.0
        for _, v in points:
            if v < previous:
                result += previous
            previous = v
    duration_to_start = first_t - m.start
    duration_to_end = m.end - last_t
    sampled = last_t - first_t
    average = sampled / (len(points) - 1)
    if is_counter and result > 0 and first_v >= 0:
        # A counter cannot go below zero: do not extrapolate past the time it would have been zero.
        duration_to_zero = sampled * (first_v / result)
        duration_to_start = min(duration_to_start, duration_to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += duration_to_start if duration_to_start < threshold else average / 2
    interval += duration_to_end if duration_to_end < threshold else average / 2
    factor = interval / sampled
    if is_rate:
        factor /= m.range
    return result * factor


def instant_value(points: Points, is_rate: bool) -> float | None:
    """idelta/irate: from the last two points."""
    if len(points) < 2:
        return None
    (t0, v0), (t1, v1) = points[-2], points[-1]
    result = v1 if is_rate and v1 < v0 else v1 - v0
    if t1 == t0:
        return None
    return result / (t1 - t0) if is_rate else result


def _sum(points: Points) -> float:
    total = c = 0.0
    for _, v in points:
        total, c = kahan_inc(v, total, c)
    return total if math.isinf(total) else total + c


def _avg(points: Points) -> float:
    mean = c = 0.0
    count = 0
    for _, v in points:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and not math.isnan(v):
                continue
        mean, c = kahan_inc(v / count - mean / count, mean, c)
    return mean if math.isinf(mean) else mean + c


def _stdvar(points: Points) -> float:
    count = 0
    mean = c_mean = aux = c_aux = 0.0
    for _, v in points:
        count += 1
        delta = v - (mean + c_mean)
        mean, c_mean = kahan_inc(delta / count, mean, c_mean)
        aux, c_aux = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux)
    return (aux + c_aux) / count


def _max(points: Points) -> float:
    best = points[0][1]
    for _, v in points:
        if v > best or math.isnan(best):
            best = v
    return best


def _min(points: Points) -> float:
    best = points[0][1]
    for _, v in points:
        if v < best or math.isnan(best):
            best = v
    return best


def _changes(points: Points) -> float:
    changes = 0
    previous = points[0][1]
    for _, v in points[1:]:
        if v != previous and not (math.isnan(v) and math.isnan(previous)):
            changes += 1
        previous = v
    return float(changes)


def _resets(points: Points) -> float:
    resets = 0
    previous = points[0][1]
    for _, v in points[1:]:
        if v < previous:
            resets += 1
        previous = v
    return float(resets)


def linear_regression(points: Points, intercept_time: float) -> tuple[float, float]:
    """Least-squares slope and intercept (at `intercept_time`) of the points, compensated sums as Prometheus."""
    n = 0.0
    sum_x = c_x = sum_y = c_y = sum_xy = c_xy = sum_x2 = c_x2 = 0.0
    first = points[0][1]
    constant = all(v == first for _, v in points)
    if constant:
        return (math.nan, math.nan) if math.isinf(first) else (0.0, first)
    for t, v in points:
        n += 1.0
        x = t - intercept_time
        sum_x, c_x = kahan_inc(x, sum_x, c_x)
        sum_y, c_y = kahan_inc(v, sum_y, c_y)
        sum_xy, c_xy = kahan_inc(x * v, sum_xy, c_xy)
        sum_x2, c_x2 = kahan_inc(x * x, sum_x2, c_x2)
    sum_x, sum_y, sum_xy, sum_x2 = sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x if var_x != 0 else math.nan
    return slope, sum_y / n - slope * sum_x / n


def _deriv(points: Points, m: Matrix, args: tuple[float, ...]) -> float | None:
    if len(points) < 2:
        return None
    return linear_regression(points, points[0][0])[0]


def _predict_linear(points: Points, m: Matrix, args: tuple[float, ...]) -> float | None:
    if len(points) < 2:
        return None
    slope, intercept = linear_regression(points, m.time)
    return slope * args[0] + intercept


def _quantile_over_time(points: Points, m: Matrix, args: tuple[float, ...]) -> float | None:
    return quantile(args[0], [v for _, v in points])


def _plain(fn: Callable[[Points], float]) -> RangeFn:
    return lambda points, m, args: fn(points)


RANGE_FUNCTIONS: dict[str, RangeFn] = {
    "rate": lambda p, m, a: extrapolated_rate(p, m, True, True),
    "increase": lambda p, m, a: extrapolated_rate(p, m, True, False),
    "delta": lambda p, m, a: extrapolated_rate(p, m, False, False),
    "irate": lambda p, m, a: instant_value(p, True),
    "idelta": lambda p, m, a: instant_value(p, False),
    "changes": _plain(_changes),
    "resets": _plain(_resets),
    "avg_over_time": _plain(_avg),
    "sum_over_time": _plain(_sum),
    "min_over_time": _plain(_min),
    "max_over_time": _plain(_max),
    "count_over_time": _plain(lambda p: float(len(p))),
    "last_over_time": _plain(lambda p: p[-1][1]),
    "present_over_time": _plain(lambda p: 1.0),
    "stdvar_over_time": _plain(_stdvar),
    "stddev_over_time": _plain(lambda p: math.sqrt(_stdvar(p))),
    "quantile_over_time": _quantile_over_time,
    "deriv": _deriv,
    "predict_linear": _predict_linear,
}
# Scalar arguments before the range vector (quantile_over_time) or after it (predict_linear).
SCALAR_FIRST = frozenset({"quantile_over_time"})


class RangeFunction(VectorNode):
    """A function of a range vector; the result drops the metric name except for last_over_time."""

    def __init__(self, name: str, matrix: MatrixNode, scalars: tuple[ScalarNode, ...]) -> None:
        self.name = name
        self.fn = RANGE_FUNCTIONS[name]
        self.matrix = matrix
        self.scalars = scalars
        self.keep_name = name == "last_over_time"

    def eval(self, ctx: Context) -> Vector:
        m = self.matrix.eval(ctx)
        args = tuple(s.eval(ctx) for s in self.scalars)
        fn = self.fn
        out: Vector = []
        for series in m.series:
            value = fn(series.points, m, args)
            if value is not None:
                out.append(Sample(series.labels if self.keep_name else drop_name(series.labels), value))
        if not self.keep_name:
            check_unique(out)
        return out


class AbsentOverTime(VectorNode):
    def __init__(self, matrix: MatrixNode, labels: tuple[tuple[str, str], ...]) -> None:
        self.matrix = matrix
        self.labels = labels

    def eval(self, ctx: Context) -> Vector:
        series: list[RangeSeries] = self.matrix.eval(ctx).series
        return [] if series else [Sample(self.labels, 1.0)]
