"""Persisted history, so that a site without Prometheus still has its graphs after a restart and beyond the
memory buffer's retention: the downsampler rolls the buffer up into per-minute rows (avg, min, max, last,
count) that the control plane stores, and `merge_query` reads old buckets from the rows and recent ones from
memory.

The seam: memory holds every point of a series from its `covered_from` on. A history bucket [h, h + step)
is read from memory when h >= covered_from (memory holds all of it) or when no row exists for it yet (not
rolled up yet: memory has all there is); otherwise from its row. Each bucket comes from exactly one side, so
there is no duplicate and no gap where the two meet."""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aidc.telemetry.series import NAME_LABEL, Labels, Matcher, Series, label_value
from aidc.telemetry.tsdb import MemoryTSDB, bucket_sums, buckets, labels_match

HISTORY_STEP = 60.0


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One series' summary over the bucket [bucket_start, bucket_start + step): NaNs (staleness markers) are
    not counted, so `count` >= 1 and the figures are plain numbers."""

    labels: Labels
    bucket_start: float
    avg: float
    min: float
    max: float
    last: float
    count: int

    @property
    def name(self) -> str:
        return label_value(self.labels, NAME_LABEL)


class HistoryWriter(Protocol):
    """Persists rows (the store keys a row by `series_key(labels)` and `bucket_start`)."""

    def write(self, rows: Sequence[HistoryRow]) -> None: ...


class HistoryReader(Protocol):
    """Rows of series named `name` with start <= bucket_start <= end. Matchers may be applied loosely (the
    reader may return more, e.g. leave regular expressions to Python): `merge_query` filters again."""

    def read(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[HistoryRow]: ...


def series_key(labels: Labels) -> str:
    """A series' identity as text: canonical JSON of its labels (sorted names, no spaces), for the store."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def labels_from_key(key: str) -> Labels:
    """The inverse of `series_key`."""
    loaded = json.loads(key)
    if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
        raise ValueError(f"not a series key: {key!r}")
    return tuple(sorted(loaded.items()))


class Downsampler:
    """Rolls the buffer up into `step`-second rows. Each `rollup(now)` returns the rows of the buckets that
    completed (b + step <= now) since the previous call, each bucket exactly once; the first call covers all
    the buffer holds, or what follows `since` (the end of the last bucket already persisted, after a restart).

    Not thread-safe: one caller (the control plane's housekeeping loop). If writing the rows fails, keep and
    retry them: they are not returned again."""

    def __init__(self, tsdb: MemoryTSDB, step: float = HISTORY_STEP, since: float | None = None) -> None:
        if not step > 0:
            raise ValueError(f"step must be > 0, not {step}")
        self.tsdb = tsdb
        self.step = step
        self._done_until = -math.inf if since is None else since

    def rollup(self, now: float) -> list[HistoryRow]:
        end = math.floor(now / self.step) * self.step
        if end <= self._done_until:
            return []
        rows = []
        for labels, times, values in self.tsdb.points_between(self._done_until, end):
            for b, chunk in buckets(times, values, self.step):
                kept = [v for v in chunk if not math.isnan(v)]
                if kept:
                    rows.append(HistoryRow(labels, b, sum(kept) / len(kept), min(kept), max(kept), kept[-1], len(kept)))
        self._done_until = end
        rows.sort(key=lambda row: (row.labels, row.bucket_start))
        return rows


def merge_query(
    tsdb: MemoryTSDB,
    reader: HistoryReader,
    name: str,
    matchers: Sequence[Matcher],
    start: float,
    end: float,
    step: float,
    history_step: float = HISTORY_STEP,
) -> list[Series]:
    """`MemoryTSDB.query` extended into the past with persisted history: the series of `name` matching, on a
    grid of multiples of `step`, each point the average over its bucket. A history row counts as `count` points
    of value `avg` at its bucket_start, so buckets made of rows and raw points (at the seam, or when `step` is
    coarser than `history_step`) average correctly; with `step` finer than `history_step`, old data has one
    point per history bucket."""
    if not step > 0:
        raise ValueError(f"step must be > 0, not {step}")
    selector = [Matcher(NAME_LABEL, "=", name), *matchers]
    rows_by_series: dict[Labels, dict[float, HistoryRow]] = {}
    for row in reader.read(name, matchers, start, end):
        if start <= row.bucket_start <= end and labels_match(row.labels, selector):
            rows_by_series.setdefault(row.labels, {})[row.bucket_start] = row
    memory = {covered.labels: covered for covered in tsdb.select_covered(name, matchers, start, end)}
    found = []
    for labels in sorted(rows_by_series.keys() | memory.keys()):
        sums: dict[float, list[float]] = {}  # output bucket -> [sum, count]
        covered = memory.get(labels)
        covered_from = covered.covered_from if covered is not None else math.inf
        used = {h: row for h, row in rows_by_series.get(labels, {}).items() if h < covered_from}
        for h, row in used.items():
            _add(sums, math.floor(h / step) * step, row.avg * row.count, row.count)
        if covered is not None:
            times, values = covered.times, covered.values
            # Only the history bucket holding covered_from can have both a row and points: skip its points.
            seam = math.ceil(covered_from / history_step) * history_step
            if seam - history_step in used:
                cut = bisect_left(times, seam)
                times, values = times[cut:], values[cut:]
            for b, total, count in bucket_sums(times, values, step):
                _add(sums, b, total, count)
        points = tuple((b, total / count) for b, (total, count) in sorted(sums.items()))
        if points:
            found.append(Series(labels, points))
    return found


def _add(sums: dict[float, list[float]], bucket: float, total: float, count: float) -> None:
    acc = sums.setdefault(bucket, [0.0, 0.0])
    acc[0] += total
    acc[1] += count
