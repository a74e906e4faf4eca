"""An in-memory `SeriesSource` for tests and benchmarks: series added whole, indexed by metric name, points
found by bisection. (The real buffer is aidc.telemetry.tsdb; both implement the same protocol.)"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence

from aidc.telemetry.series import NAME_LABEL, Labels, Matcher, Series, label_value, labels_of


class MemorySource:
    def __init__(self) -> None:
        # name -> labels -> (times, values)
        self._index: dict[str, dict[Labels, tuple[list[float], list[float]]]] = {}

    def add(self, name: str, labels: Mapping[str, str], points: Iterable[tuple[float, float]]) -> Labels:
        """Add points to series `name{labels}` (kept sorted by time); returns the series' identity."""
        key = labels_of(name, {k: v for k, v in labels.items() if v})
        times, values = self._index.setdefault(name, {}).setdefault(key, ([], []))
        merged = sorted([*zip(times, values, strict=True), *points], key=lambda p: p[0])
        times[:] = [t for t, _ in merged]
        values[:] = [v for _, v in merged]
        return key

    def add_series(self, series: Iterable[Series]) -> None:
        for s in series:
            labels = dict(s.labels)
            self.add(labels.pop(NAME_LABEL), labels, s.points)

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
