"""The embedded time-series buffer: the last hours of every gauge and counter the collectors report, in memory,
for the query API, the rule evaluator (as a `SeriesSource`) and `aidc top`.

Each series keeps its points in two `array('d')` (times, values: 16 bytes a point) so range lookups bisect
the times. Memory is bounded three ways: points older than `retention` are dropped by a sweep every
`retention / 16` of ingest time (so a series may hold up to 1/16 more than `retention` between sweeps), a
series keeps at most `max_points_per_series` (the oldest 1/16 dropped at once when full: both amortised,
never a shift per insert), and new series beyond `max_series` are refused.

One lock guards everything: ingest runs on the collector thread while the API and the rule evaluator read;
readers copy array slices under the lock and build their results after releasing it."""

from __future__ import annotations

import logging
import math
import re
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import promql_parser

from aidc.telemetry.series import NAME_LABEL, STALE, Family, Labels, Matcher, Series, is_stale, label_value, labels_of

log = logging.getLogger(__name__)

LATEST_WINDOW = 300.0  # Prometheus' default look-back: an older value is not "current"
_SWEEP_FRACTION = 16  # sweep (and cap trimming) granularity: 1/16 of the retention, 1/16 of the cap


def labels_match(labels: Labels, matchers: Sequence[Matcher]) -> bool:
    """Whether a series' labels satisfy every matcher (an absent label reads as "", as in PromQL)."""
    return all(m.matches(label_value(labels, m.name)) for m in matchers)


class _Series:
    __slots__ = ("alive", "covered_from", "gen", "labels", "ts", "vs")

    def __init__(self, labels: Labels, covered_from: float) -> None:
        self.labels = labels
        self.ts = array("d")
        self.vs = array("d")
        self.gen = 0  # the ingest that last appended a sample (staleness bookkeeping)
        self.covered_from = covered_from  # memory holds every point of this series from here on
        self.alive = True  # False once swept out: per-source caches must not append to it again


# A source's last report, family by family (name, then a copy of each sample's labels and its series): a
# collector reports the same series in the same order each time, so the next ingest finds each series by
# position and one dict comparison, without sorting labels or hashing them. Also what goes stale when missing.
_Layout = list[tuple[str, list[tuple[Mapping[str, str], _Series]]]]


@dataclass(slots=True)
class _Source:
    gen: int  # the ingest that stored `layout`
    layout: _Layout

    def series(self) -> Iterator[_Series]:
        return (series for _, entries in self.layout for _, series in entries)


@dataclass(frozen=True, slots=True)
class Covered:
    """A series' points in a range, and the time from which memory holds every point of it (older points were
    dropped, or came before this buffer started): where persisted history must take over."""

    labels: Labels
    times: array[float]
    values: array[float]
    covered_from: float


class MemoryTSDB:
    """In-memory time-series buffer. Times are Unix seconds; a sample older than or as old as its series' newest
    point is dropped (counted in `dropped_samples`), as Prometheus rejects out-of-order samples."""

    # The cap is a safety net against a collector faster than planned: the retention at the collectors' 5 s
    # interval is 4,320 points, and the cap trims by 1/16 when reached, so it sits a little above that.
    def __init__(
        self, max_series: int = 200_000, retention: float = 6 * 3600.0, max_points_per_series: int = 4800
    ) -> None:
        if max_series < 1 or retention <= 0 or max_points_per_series < 2:
            raise ValueError("max_series >= 1, retention > 0 and max_points_per_series >= 2 are required")
        self.max_series = max_series
        self.retention = retention
        self.max_points_per_series = max_points_per_series
        self.dropped_series = 0  # samples of new series refused because max_series was reached
        self.dropped_samples = 0  # out-of-order or duplicate-time samples
        self._index: dict[str, dict[Labels, _Series]] = {}  # metric name -> labels -> series
        self._count = 0
        self._sources: dict[str, _Source] = {}
        self._gen = 0
        self._first_ingest: float | None = None
        self._last_now = -math.inf
        self._last_sweep = -math.inf
        self._full_warned = False
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------------- ingest
    def ingest(self, now: float, families: Sequence[Family], source: str) -> None:
        """Appends one point at `now` per sample of `families` (histograms are skipped: they are exposed, not
        buffered). Series `source` reported at its previous ingest and not in this one get a staleness marker."""
        with self._lock:
            if self._first_ingest is None:
                self._first_ingest = now
            self._last_now = max(self._last_now, now)
            if now - self._last_sweep >= self.retention / _SWEEP_FRACTION:
                self._sweep(now)  # first, so that series expiring now make room for new ones
            self._gen += 1
            gen = self._gen
            state = self._sources.get(source)
            cap = self.max_points_per_series
            layout: _Layout = []
            earlier = iter(state.layout if state is not None else ())
            for family in families:
                if family.type == "histogram":
                    continue
                name = family.name
                cached = next(earlier, None)
                hits = cached[1] if cached is not None and cached[0] == name else []
                entries: list[tuple[Mapping[str, str], _Series]] = []
                for j, (sample_labels, value) in enumerate(family.samples):
                    if j < len(hits) and hits[j][0] == sample_labels and hits[j][1].alive:
                        entry = hits[j]
                    else:  # new, moved or swept out: look it up by its sorted labels
                        found = self._find_or_create(name, labels_of(name, sample_labels), now)
                        if found is None:
                            continue
                        entry = (dict(sample_labels), found)
                    entries.append(entry)
                    series = entry[1]
                    ts = series.ts
                    if ts and now <= ts[-1]:
                        self.dropped_samples += 1
                        continue
                    if len(ts) >= cap:
                        self._trim_oldest(series)
                    ts.append(now)
                    series.vs.append(value)
                    series.gen = gen
                layout.append((name, entries))
            if state is not None:
                for series in state.series():
                    # Reported by nobody since this source's previous ingest (another source may own it now).
                    if series.gen <= state.gen and series.alive:
                        self._mark_stale(series, now)
            self._sources[source] = _Source(gen, layout)

    def forget_source(self, now: float, source: str) -> None:
        """Ends every series `source` reported last (a node left): they get a staleness marker at `now`."""
        with self._lock:
            state = self._sources.pop(source, None)
            if state is not None:
                for series in state.series():
                    if series.gen <= state.gen and series.alive:
                        self._mark_stale(series, now)

    def _find_or_create(self, name: str, labels: Labels, now: float) -> _Series | None:
        by_name = self._index.setdefault(name, {})
        series = by_name.get(labels)
        if series is not None:
            return series
        if self._count >= self.max_series:
            self.dropped_series += 1
            if not self._full_warned:
                self._full_warned = True
                log.warning(
                    "time-series buffer full (%d series): new series are dropped until old ones expire; first: %s",
                    self.max_series,
                    dict(labels),
                )
            return None
        # Memory saw every ingest since the first, and keeps nothing older than the retention: a series new
        # to it had no point there, so memory covers it from then (history before that is authoritative).
        assert self._first_ingest is not None
        series = _Series(labels, max(self._first_ingest, now - self.retention))
        by_name[labels] = series
        self._count += 1
        return series

    def _trim_oldest(self, series: _Series) -> None:
        drop = max(1, self.max_points_per_series // _SWEEP_FRACTION)
        del series.ts[:drop]
        del series.vs[:drop]
        series.covered_from = max(series.covered_from, series.ts[0])

    def _mark_stale(self, series: _Series, now: float) -> None:
        ts = series.ts
        if ts and (now <= ts[-1] or is_stale(series.vs[-1])):
            return
        if len(ts) >= self.max_points_per_series:
            self._trim_oldest(series)
        ts.append(now)
        series.vs.append(STALE)

    def _sweep(self, now: float) -> None:
        cutoff = now - self.retention
        self._last_sweep = now
        for name, by_name in list(self._index.items()):
            for labels, series in list(by_name.items()):
                ts = series.ts
                if ts and ts[0] >= cutoff:
                    continue
                keep = bisect_left(ts, cutoff)
                series.covered_from = max(series.covered_from, cutoff)
                if keep == len(ts):
                    series.alive = False
                    del by_name[labels]
                    self._count -= 1
                else:
                    del ts[:keep]
                    del series.vs[:keep]
            if not by_name:
                del self._index[name]
        if self._count < self.max_series:
            self._full_warned = False  # room again: warn afresh when it fills up next

    # ------------------------------------------------------------------------------------------------ reads
    def _matching(self, matchers: Sequence[Matcher]) -> Iterator[_Series]:
        """Series satisfying `matchers`, through the name index when one matcher is `__name__="..."`.
        Call with the lock held."""
        by_name = next((m for m in matchers if m.name == NAME_LABEL and m.op == "="), None)
        rest = [m for m in matchers if m is not by_name]
        if by_name is not None:
            groups = [self._index.get(by_name.value, {})]
        else:
            names = [m for m in matchers if m.name == NAME_LABEL]
            groups = [group for name, group in self._index.items() if all(m.matches(name) for m in names)]
        for group in groups:
            for series in group.values():
                if labels_match(series.labels, rest):
                    yield series

    def select(self, matchers: Sequence[Matcher], start: float, end: float) -> list[Series]:
        """Raw points with start <= t <= end of every matching series that has some, staleness markers
        included (the PromQL evaluator needs them to end a series at once), sorted by labels."""
        with self._lock:
            copies = []
            for series in self._matching(matchers):
                i, j = bisect_left(series.ts, start), bisect_right(series.ts, end)
                if i < j:
                    copies.append((series.labels, series.ts[i:j], series.vs[i:j]))
        return sorted((Series(labels, tuple(zip(ts, vs, strict=True))) for labels, ts, vs in copies), key=_by_labels)

    def select_covered(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[Covered]:
        """Every series of `name` matching, with its points in [start, end] (possibly none) and the time
        memory covers it from, taken together under the lock: what merging with persisted history needs."""
        selector = [Matcher(NAME_LABEL, "=", name), *matchers]
        with self._lock:
            found = []
            for series in self._matching(selector):
                i, j = bisect_left(series.ts, start), bisect_right(series.ts, end)
                found.append(Covered(series.labels, series.ts[i:j], series.vs[i:j], series.covered_from))
        return sorted(found, key=_by_labels)

    def points_between(self, start: float, end: float) -> list[tuple[Labels, array[float], array[float]]]:
        """Copies of every series' points with start <= t < end: half-open, so that consecutive calls neither
        overlap nor miss a point (the downsampler's reads)."""
        with self._lock:
            found = []
            for by_name in self._index.values():
                for series in by_name.values():
                    i, j = bisect_left(series.ts, start), bisect_left(series.ts, end)
                    if i < j:
                        found.append((series.labels, series.ts[i:j], series.vs[i:j]))
        return found

    def query(self, name: str, matchers: Sequence[Matcher], start: float, end: float, step: float) -> list[Series]:
        """The series of `name` matching, resampled on a grid of multiples of `step`: the point at `b` is the
        average of the series' points with b <= t < b + step (and start <= t <= end). Buckets without a point
        are left out (a gap, not a zero); NaN values, staleness markers included, are not averaged."""
        if not step > 0:
            raise ValueError(f"step must be > 0, not {step}")
        found = []
        for covered in self.select_covered(name, matchers, start, end):
            points = tuple((b, total / count) for b, total, count in bucket_sums(covered.times, covered.values, step))
            if points:
                found.append(Series(covered.labels, points))
        return found

    def latest(self, name: str, matchers: Sequence[Matcher], now: float | None = None) -> list[tuple[Labels, float]]:
        """Each matching series' newest value if it is at most 5 minutes older than `now` (default: the latest
        ingest) and not a staleness marker (a series that ended has no current value), sorted by labels."""
        selector = [Matcher(NAME_LABEL, "=", name), *matchers]
        with self._lock:
            now = self._last_now if now is None else now
            found = []
            for series in self._matching(selector):
                if series.ts and series.ts[-1] >= now - LATEST_WINDOW and not is_stale(series.vs[-1]):
                    found.append((series.labels, series.vs[-1]))
        return sorted(found, key=lambda item: item[0])

    def series_count(self) -> int:
        with self._lock:
            return self._count

    def names(self) -> list[str]:
        """Metric names with at least one series, sorted."""
        with self._lock:
            return sorted(name for name, group in self._index.items() if group)


def _by_labels(item: Series | Covered) -> Labels:
    return item.labels


def bucket_sums(times: Sequence[float], values: Sequence[float], step: float) -> Iterator[tuple[float, float, int]]:
    """(bucket start, sum, count) of each non-empty bucket [b, b + step), b a multiple of `step`, over sorted
    `times`, NaN values left out. Walks bucket to bucket by bisection, summing each slice in C."""
    for b, chunk in buckets(times, values, step):
        total = sum(chunk)
        if math.isnan(total):  # a NaN (staleness marker) or inf - inf: filter, then sum again
            kept = [v for v in chunk if not math.isnan(v)]
            if not kept:
                continue
            total, count = sum(kept), len(kept)
        else:
            count = len(chunk)
        yield b, total, count


def buckets(times: Sequence[float], values: Sequence[float], step: float) -> Iterator[tuple[float, Sequence[float]]]:
    """(bucket start, values) of each non-empty bucket [b, b + step), b a multiple of `step`, NaNs included."""
    i, n = 0, len(times)
    while i < n:
        b = math.floor(times[i] / step) * step
        j = bisect_left(times, b + step, i, n)
        yield b, values[i:j]
        i = j


def parse_label_filter(text: str) -> list[Matcher]:
    """The matchers of a PromQL label filter without braces, e.g. `gpu="0",Hostname=~"node-.*"` (the query
    API's `labels=`), parsed by promql_parser so that quoting and escaping are Prometheus'. "" means none."""
    if not text.strip():
        return []
    try:
        expr = promql_parser.parse(f"x{{{text}}}")
    except ValueError as exc:
        if "metric name must not be set twice" in str(exc):
            raise ValueError(f"label filter {text!r}: select the metric by its name, not with __name__") from None
        hint = ' (expected name="value" matchers separated by commas)' if str(exc) == "invalid promql query" else ""
        raise ValueError(f"label filter {text!r}: {exc}{hint}") from None
    if not isinstance(expr, promql_parser.VectorSelector) or expr.offset is not None or expr.at is not None:
        raise ValueError(f'label filter {text!r}: expected only label matchers, like gpu="0",Hostname=~"node-.*"')
    if expr.matchers.or_matchers:
        raise ValueError(f"label filter {text!r}: 'or' between matchers is not supported")
    matchers = []
    for parsed in expr.matchers.matchers:
        op = _op(parsed.op)
        if op in ("=~", "!~"):
            try:
                re.compile(parsed.value)  # Prometheus' (RE2) syntax is checked above; ours must accept it too
            except re.error as exc:
                raise ValueError(f"label filter {text!r}: regular expression {parsed.value!r}: {exc}") from None
        matchers.append(Matcher(parsed.name, op, parsed.value))
    return matchers


def _op(op: promql_parser.MatchOp) -> Literal["=", "!=", "=~", "!~"]:
    # MatchOp compares equal to its members but is unhashable: no dict lookup
    if op == promql_parser.MatchOp.Equal:
        return "="
    if op == promql_parser.MatchOp.NotEqual:
        return "!="
    return "=~" if op == promql_parser.MatchOp.Re else "!~"
