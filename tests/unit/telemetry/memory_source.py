"""An in-memory `SeriesSource` for tests and benchmarks: series added whole, indexed by metric name, points
found by bisection. (The real buffer is aidc.telemetry.tsdb; both implement the same protocol.)

Series can be given in promtool's expanding notation, so that a test reads like a `promtool test rules` file:

    source = MemorySource.from_notation({'up{node="n1"}': "1 1 0 stale", 'x': "0+10x20"}, step=60)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence

import promql_parser

from aidc.telemetry.series import NAME_LABEL, STALE, Labels, Matcher, Series, label_value, labels_of


class MemorySource:
    def __init__(self) -> None:
        # name -> labels -> (times, values)
        self._index: dict[str, dict[Labels, tuple[list[float], list[float]]]] = {}

    @classmethod
    def from_notation(cls, series: Mapping[str, str], step: float = 60.0, start: float = 0.0) -> MemorySource:
        """Series `{'name{labels}': "values"}`, the values `step` seconds apart from `start` (see `expand`)."""
        source = cls()
        for text, values in series.items():
            name, labels = series_identity(text)
            points = [(start + i * step, v) for i, v in enumerate(expand(values)) if v is not None]
            source.add(name, labels, points)
        return source

    def add(self, name: str, labels: Mapping[str, str], points: Iterable[tuple[float, float]]) -> Labels:
        """Add points to series `name{labels}` (kept sorted by time); returns the series' identity."""
        key = labels_of(name, {k: v for k, v in labels.items() if v})
        times, values = self._index.setdefault(name, {}).setdefault(key, ([], []))
        merged = sorted([*zip(times, values, strict=True), *points], key=lambda p: p[0])
        times[:] = [t for t, _ in merged]
        values[:] = [v for _, v in merged]
        return key

    def select(self, matchers: Sequence[Matcher], start: float, end: float) -> list[Series]:
        by_name = next((m for m in matchers if m.name == NAME_LABEL and m.op == "="), None)
        if by_name is not None:
            groups = [self._index.get(by_name.value, {})]
            rest = [m for m in matchers if m is not by_name]
        else:
            groups = list(self._index.values())
            rest = list(matchers)
        found = []
        for group in groups:
            for labels, (times, values) in group.items():
                if not all(m.matches(label_value(labels, m.name)) for m in rest):
                    continue
                i, j = bisect_left(times, start), bisect_right(times, end)
                if i < j:
                    found.append(Series(labels, list(zip(times[i:j], values[i:j], strict=True))))
        # Sorted by labels, as Prometheus' storage (and aidc.telemetry.tsdb) returns them: aggregations add
        # in this order, and float sums depend on it in their last bits.
        found.sort(key=lambda s: s.labels)
        return found

    def series_count(self) -> int:
        return sum(len(group) for group in self._index.values())


def expand(values: str) -> list[float | None]:
    """promtool's expanding notation: "1 2 _ stale", "40+1x60" (61 values), "5-1x3", "_x3" (None: no sample)."""
    out: list[float | None] = []
    for token in values.split():
        if token == "_":
            out.append(None)
        elif token == "stale":
            out.append(STALE)
        elif token.startswith("_x"):
            out.extend([None] * int(token[2:]))
        elif "x" in token:
            start_delta, count = token.split("x")
            sign = "+" if "+" in start_delta[1:] else "-"
            start, delta = start_delta[0] + start_delta[1:].rsplit(sign, 1)[0], start_delta[1:].rsplit(sign, 1)[1]
            step = float(delta) if sign == "+" else -float(delta)
            value = float(start)
            out.append(value)
            for _ in range(int(count)):
                value += step  # accumulated, as promtool does (start + step * i can differ in the last bit)
                out.append(value)
        else:
            out.append(float(token))
    return out


def series_identity(text: str) -> tuple[str, dict[str, str]]:
    """`name{a="b"}` -> ("name", {"a": "b"})."""
    selector = promql_parser.parse(text)
    assert isinstance(selector, promql_parser.VectorSelector)
    assert selector.name
    return selector.name, {m.name: m.value for m in selector.matchers.matchers}


def metric_text(labels: Labels | Mapping[str, str]) -> str:
    """Labels as PromQL writes a series: `name{a="b", c="d"}` (`{}` for none)."""
    items = dict(labels)
    name = items.pop(NAME_LABEL, "")
    inner = ", ".join(f'{k}="{_escape(v)}"' for k, v in sorted(items.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def as_dict(vector: Iterable[tuple[Labels, float]]) -> dict[str, float]:
    """An instant vector as {metric_text: value}, for compact assertions."""
    return {metric_text(labels): value for labels, value in vector}
