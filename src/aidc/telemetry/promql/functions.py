"""Functions of instant vectors and scalars: element-wise math (with Go's results where Python would raise),
clamp/round, time and timestamp, absent, scalar/vector, sort, label_replace/label_join and
histogram_quantile over classic `le` buckets."""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime

from aidc.telemetry.promql.nodes import ScalarNode, StringNode, StringValueNode, VectorNode
from aidc.telemetry.promql.selectors import VectorSelectorNode
from aidc.telemetry.promql.values import (
    Context,
    QueryError,
    Sample,
    Vector,
    check_unique,
    drop_name,
    go_div,
    go_max,
    go_min,
    set_label,
)
from aidc.telemetry.series import Labels, label_value

_VALID_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_NAME = re.compile(r"[A-Za-z0-9_]+")  # a $name in a replacement, as Go's regexp.Expand reads it


def _go_floor(v: float) -> float:
    return float(math.floor(v)) if math.isfinite(v) else v


def _go_ceil(v: float) -> float:
    if not math.isfinite(v):
        return v
    r = float(math.ceil(v))
    return math.copysign(r, v) if r == 0 else r


def _log(fn: Callable[[float], float]) -> Callable[[float], float]:
    def safe(v: float) -> float:
        if v > 0:
            return fn(v)
        return -math.inf if v == 0 else math.nan  # NaN stays NaN, negative gives NaN

    return safe


def _guarded(fn: Callable[[float], float], overflow: Callable[[float], float]) -> Callable[[float], float]:
    """Go's math returns NaN out of the domain and ±Inf on overflow where Python raises."""

    def safe(v: float) -> float:
        try:
            return fn(v)
        except ValueError:
            return math.nan
        except OverflowError:
            return overflow(v)

    return safe


def _sgn(v: float) -> float:
    if v > 0:
        return 1.0
    if v < 0:
        return -1.0
    return v  # 0 or NaN


def _inf(v: float) -> float:
    return math.inf


def _signed_inf(v: float) -> float:
    return math.copysign(math.inf, v)


MATH: dict[str, Callable[[float], float]] = {
    "abs": math.fabs,
    "ceil": _go_ceil,
    "floor": _go_floor,
    "exp": _guarded(math.exp, _inf),
    "sqrt": lambda v: math.sqrt(v) if v >= 0 else (v if math.isnan(v) else math.nan),
    "ln": _log(math.log),
    "log2": _log(math.log2),
    "log10": _log(math.log10),
    "sgn": _sgn,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
    "acos": _guarded(math.acos, _inf),
    "acosh": _guarded(math.acosh, _inf),
    "asin": _guarded(math.asin, _inf),
    "asinh": _guarded(math.asinh, _signed_inf),
    "atan": _guarded(math.atan, _inf),
    "atanh": lambda v: _signed_inf(v) if abs(v) == 1 else _guarded(math.atanh, _inf)(v),
    "cos": _guarded(math.cos, _inf),
    "cosh": _guarded(math.cosh, _inf),
    "sin": _guarded(math.sin, _inf),
    "sinh": _guarded(math.sinh, _signed_inf),
    "tan": _guarded(math.tan, _inf),
    "tanh": math.tanh,
}


def _date(part: Callable[[datetime], int]) -> Callable[[float], float]:
    def fn(v: float) -> float:
        if not math.isfinite(v):
            return math.nan
        return float(part(datetime.fromtimestamp(int(v), UTC)))

    return fn


DATES: dict[str, Callable[[float], float]] = {
    "day_of_month": _date(lambda d: d.day),
    "day_of_week": _date(lambda d: (d.weekday() + 1) % 7),  # Sunday is 0, as Go's time.Weekday
    "day_of_year": _date(lambda d: d.timetuple().tm_yday),
    "days_in_month": _date(lambda d: calendar.monthrange(d.year, d.month)[1]),
    "hour": _date(lambda d: d.hour),
    "minute": _date(lambda d: d.minute),
    "month": _date(lambda d: d.month),
    "year": _date(lambda d: d.year),
}


class ElementWise(VectorNode):
    """A function applied to each element's value; the metric name is dropped."""

    def __init__(self, fn: Callable[[float], float], arg: VectorNode) -> None:
        self.fn = fn
        self.arg = arg

    def eval(self, ctx: Context) -> Vector:
        fn = self.fn
        out = [Sample(drop_name(s.labels), fn(s.value)) for s in self.arg.eval(ctx)]
        check_unique(out)
        return out


class DateOfTime(VectorNode):
    """hour(), month()... without an argument: of the evaluation time, as one element without labels."""

    def __init__(self, fn: Callable[[float], float]) -> None:
        self.fn = fn

    def eval(self, ctx: Context) -> Vector:
        return [Sample((), self.fn(ctx.time))]


class WithScalars(VectorNode):
    """round(v, to_nearest), clamp(v, min, max), clamp_min(v, min), clamp_max(v, max)."""

    def __init__(self, name: str, arg: VectorNode, scalars: tuple[ScalarNode, ...]) -> None:
        self.name = name
        self.arg = arg
        self.scalars = scalars

    def eval(self, ctx: Context) -> Vector:
        vector = self.arg.eval(ctx)
        args = [s.eval(ctx) for s in self.scalars]
        fn: Callable[[float], float]
        if self.name == "round":
            inverse = go_div(1.0, args[0]) if args else 1.0
            fn = lambda v: go_div(_go_floor(v * inverse + 0.5), inverse)  # noqa: E731
        elif self.name == "clamp":
            low, high = args
            if high < low:
                return []
            fn = lambda v: go_max(low, go_min(high, v))  # noqa: E731
        elif self.name == "clamp_min":
            fn = lambda v: go_max(args[0], v)  # noqa: E731
        else:
            fn = lambda v: go_min(args[0], v)  # noqa: E731
        out = [Sample(drop_name(s.labels), fn(s.value)) for s in vector]
        check_unique(out)
        return out


class Time(ScalarNode):
    def eval(self, ctx: Context) -> float:
        return ctx.time


class Pi(ScalarNode):
    def eval(self, ctx: Context) -> float:
        return math.pi


class ScalarOf(ScalarNode):
    """scalar(v): the value of a one-element vector, NaN otherwise."""

    def __init__(self, arg: VectorNode) -> None:
        self.arg = arg

    def eval(self, ctx: Context) -> float:
        vector = self.arg.eval(ctx)
        return vector[0].value if len(vector) == 1 else math.nan


class VectorOf(VectorNode):
    def __init__(self, arg: ScalarNode) -> None:
        self.arg = arg

    def eval(self, ctx: Context) -> Vector:
        return [Sample((), self.arg.eval(ctx))]


class Timestamp(VectorNode):
    """timestamp(v): a selector's points' own times; of any other expression, the evaluation time."""

    def __init__(self, arg: VectorNode) -> None:
        self.arg = arg

    def eval(self, ctx: Context) -> Vector:
        if isinstance(self.arg, VectorSelectorNode):
            out = [Sample(drop_name(labels), t) for labels, t, _ in self.arg.eval_points(ctx)]
        else:
            out = [Sample(drop_name(s.labels), ctx.time) for s in self.arg.eval(ctx)]
        check_unique(out)
        return out


class Absent(VectorNode):
    def __init__(self, arg: VectorNode, labels: Labels) -> None:
        self.arg = arg
        self.labels = labels

    def eval(self, ctx: Context) -> Vector:
        return [] if self.arg.eval(ctx) else [Sample(self.labels, 1.0)]


class Sort(VectorNode):
    """sort/sort_desc order an instant query's result (NaN last); rules ignore order."""

    def __init__(self, arg: VectorNode, descending: bool) -> None:
        self.arg = arg
        self.descending = descending

    def eval(self, ctx: Context) -> Vector:
        vector = self.arg.eval(ctx)
        if self.descending:
            return sorted(vector, key=lambda s: (math.isnan(s.value), -s.value if s.value == s.value else 0.0))
        return sorted(vector, key=lambda s: (math.isnan(s.value), s.value if s.value == s.value else 0.0))


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's regexp.Expand: $1, ${1}, $name, ${name}, $$; an unknown group expands to ""."""
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "$" or i + 1 >= len(template):
            out.append(ch)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            close = template.find("}", i + 2)
            name = template[i + 2 : close] if close != -1 else ""
            if close == -1 or not _NAME.fullmatch(name):
                out.append(ch)
                i += 1
                continue
            i = close + 1
        else:
            found = _NAME.match(template, i + 1)
            if found is None:
                out.append(ch)
                i += 1
                continue
            name = found.group(0)
            i += 1 + len(name)
        out.append(_group(match, name))
    return "".join(out)


def _group(match: re.Match[str], name: str) -> str:
    try:
        value = match.group(int(name)) if name.isdigit() else match.group(name)
    except IndexError:  # no such group
        return ""
    return value or ""


class LabelReplace(VectorNode):
    def __init__(self, arg: VectorNode, dst: str, replacement: str, src: str, regex: str) -> None:
        if not _VALID_LABEL.match(dst):
            raise QueryError(f"invalid destination label name in label_replace(): {dst}")
        try:
            self.regex = re.compile(f"(?:{regex})\\Z", re.DOTALL)
        except re.error as exc:
            raise QueryError(f"invalid regular expression in label_replace(): {regex} ({exc})") from None
        self.arg = arg
        self.dst, self.replacement, self.src = dst, replacement, src

    def eval(self, ctx: Context) -> Vector:
        out = []
        for s in self.arg.eval(ctx):
            match = self.regex.match(label_value(s.labels, self.src))
            if match is None:
                out.append(s)
            else:
                out.append(Sample(set_label(s.labels, self.dst, _expand(self.replacement, match)), s.value))
        check_unique(out)
        return out


class LabelJoin(VectorNode):
    def __init__(self, arg: VectorNode, dst: str, separator: str, sources: tuple[str, ...]) -> None:
        for name in (dst, *sources):
            if not _VALID_LABEL.match(name):
                raise QueryError(f"invalid label name in label_join(): {name}")
        self.arg = arg
        self.dst, self.separator, self.sources = dst, separator, sources

    def eval(self, ctx: Context) -> Vector:
        out = []
        for s in self.arg.eval(ctx):
            value = self.separator.join(label_value(s.labels, name) for name in self.sources)
            out.append(Sample(set_label(s.labels, self.dst, value), s.value))
        check_unique(out)
        return out


def string_arg(node: StringNode) -> str:
    """Label functions take literal strings (the parser's types allow only those)."""
    if not isinstance(node, StringValueNode):
        raise QueryError("expected a string literal")
    return node.value
