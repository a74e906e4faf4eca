"""What PromQL expressions produce (instant vectors, range vectors, scalars, strings), the errors they raise,
and the label and float helpers that keep our results identical to Prometheus' (Go's float semantics: no
exceptions, NaN and infinities instead)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from aidc.telemetry.series import NAME_LABEL, Labels, SeriesSource


class QueryError(Exception):
    """An expression that does not parse, or that fails when evaluated; the message names the problem."""


class UnsupportedQuery(QueryError):
    """Valid PromQL that this evaluator does not implement (e.g. `function foo is not supported`)."""


class Sample(NamedTuple):
    """One element of an instant vector."""

    labels: Labels
    value: float


class RangeSeries(NamedTuple):
    """One element of a range vector: its points (time, value) in the window, oldest first, none stale."""

    labels: Labels
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Matrix:
    """A range vector and the window it was selected over, (start, end]: rate() extrapolates to its edges."""

    series: list[RangeSeries]
    start: float
    end: float
    range: float  # end - start as written in the query (not recomputed: keeps rate() exact)
    time: float  # the evaluation time (predict_linear predicts from it, whatever the offset)


Vector = list[Sample]
Value = Vector | float | str | Matrix


@dataclass(frozen=True, slots=True)
class Context:
    """One evaluation: the source, the time of this step, the time of the query (what `@ start()` and
    `@ end()` mean: subqueries step through other times), the look-back of instant selectors and the step
    of subqueries that name none (Prometheus uses its global evaluation interval)."""

    source: SeriesSource
    time: float
    query_time: float
    lookback: float = 300.0
    subquery_step: float = 60.0

    def at(self, time: float) -> Context:
        return Context(self.source, time, self.query_time, self.lookback, self.subquery_step)


# ------------------------------------------------------------------------------------------------ labels
def drop_name(labels: Labels) -> Labels:
    return tuple(item for item in labels if item[0] != NAME_LABEL)


def keep_labels(labels: Labels, names: frozenset[str]) -> Labels:
    return tuple(item for item in labels if item[0] in names)


def without_labels(labels: Labels, names: frozenset[str]) -> Labels:
    return tuple(item for item in labels if item[0] not in names)


def set_label(labels: Labels, name: str, value: str) -> Labels:
    """`labels` with `name` set to `value`, or removed when `value` is empty (PromQL has no empty labels)."""
    rest = [item for item in labels if item[0] != name]
    if value:
        rest.append((name, value))
        rest.sort()
    return tuple(rest)


def format_labels(labels: Labels) -> str:
    name = ""
    inner = []
    for key, value in labels:
        if key == NAME_LABEL:
            name = value
        else:
            inner.append(f'{key}="{value}"')
    return f"{name}{{{', '.join(inner)}}}"


def check_unique(samples: Iterable[Sample]) -> None:
    """Prometheus refuses a result with two elements of one label set (e.g. after dropping the metric name)."""
    seen: set[Labels] = set()
    for sample in samples:
        if sample.labels in seen:
            raise QueryError(f"vector cannot contain metrics with the same labelset: {format_labels(sample.labels)}")
        seen.add(sample.labels)


# ---------------------------------------------------------------------------------- Go float arithmetic
def go_div(a: float, b: float) -> float:
    if b != 0.0:
        return a / b
    if a == 0.0 or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def go_mod(a: float, b: float) -> float:
    if b == 0.0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


def go_pow(a: float, b: float) -> float:
    if b == 0.0:
        return 1.0
    if a == 0.0 and b < 0.0:
        odd = float(b).is_integer() and int(b) % 2 == 1
        return math.copysign(math.inf, a) if odd else math.inf
    try:
        return math.pow(a, b)
    except OverflowError:
        odd = math.isfinite(b) and float(b).is_integer() and int(b) % 2 == 1
        return -math.inf if a < 0.0 and odd else math.inf
    except ValueError:
        return math.nan


def go_max(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a > b else b


def go_min(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a < b else b


def format_go_float(value: float) -> str:
    """Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an exponent (count_values)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" not in text and "E" not in text:
        return text[:-2] if text.endswith(".0") else text
    formatted = format(Decimal(text), "f")
    return formatted.rstrip("0").rstrip(".") if "." in formatted else formatted
