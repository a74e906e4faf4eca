"""Persisted history: the downsampler's per-minute rows, series keys, and merged queries that read old buckets
from history and recent ones from memory with no duplicate and no gap at the seam, across trimming and
restarts. History is a plain list here (the store's table is tested with the store)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest

from aidc.telemetry.history import (
    Downsampler,
    HistoryReader,
    HistoryRow,
    HistoryWriter,
    labels_from_key,
    merge_query,
    series_key,
)
from aidc.telemetry.series import Family, Labels, Matcher, Series, labels_of
from aidc.telemetry.tsdb import MemoryTSDB, labels_match

UTIL = "DCGM_FI_DEV_GPU_UTIL"
EVERY = 10.0  # the collection interval of these tests


class ListHistory:
    """An in-memory store of rows: what the control plane's table does, keyed by series and bucket."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, float], HistoryRow] = {}
        self.writes = 0

    def write(self, rows: Sequence[HistoryRow]) -> None:
        for row in rows:
            key = (series_key(row.labels), row.bucket_start)
            assert key not in self.rows, f"bucket written twice: {key}"
            self.rows[key] = row
        self.writes += 1

    def read(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[HistoryRow]:
        return [
            row
            for row in self.rows.values()
            if row.name == name and start <= row.bucket_start <= end and labels_match(row.labels, matchers)
        ]


def value(t: float, gpu: int) -> float:
    return t * (gpu + 1) + (t % 7)  # uneven within a bucket, different per GPU


def families(t: float, count: int = 2) -> list[Family]:
    return [Family(UTIL, "h", "gauge", [({"gpu": str(g)}, value(t, g)) for g in range(count)])]


def series_labels(gpu: int) -> Labels:
    return labels_of(UTIL, {"gpu": str(gpu)})


def run(tsdb: MemoryTSDB, history: HistoryWriter, times: Sequence[float], downsampler: Downsampler) -> None:
    """Collects at each time and rolls up after each collection, as the control plane does."""
    for t in times:
        tsdb.ingest(t, families(t), "node-1")
        history.write(downsampler.rollup(t))


def expected(times: Sequence[float], gpu: int, step: float) -> dict[float, float]:
    sums: dict[float, list[float]] = {}
    for t in times:
        acc = sums.setdefault(math.floor(t / step) * step, [])
        acc.append(value(t, gpu))
    return {b: sum(vs) / len(vs) for b, vs in sums.items()}


def as_dict(series: Series) -> dict[float, float]:
    times = [t for t, _ in series.points]
    assert times == sorted(set(times)), "a bucket appears twice or out of order"
    return dict(series.points)


def assert_close(got: dict[float, float], want: dict[float, float]) -> None:
    missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    assert sorted(got) == sorted(want), f"missing {missing}, extra {extra}"
    for b, v in want.items():
        assert got[b] == pytest.approx(v), b


def test_series_keys_are_canonical_json_and_round_trip() -> None:
    labels = labels_of(UTIL, {"gpu": "0", "Hostname": 'nöde "1"'})
    key = series_key(labels)
    assert key == '{"Hostname":"nöde \\"1\\"","__name__":"DCGM_FI_DEV_GPU_UTIL","gpu":"0"}'
    assert labels_from_key(key) == labels
    assert series_key(labels_of(UTIL, {"Hostname": 'nöde "1"', "gpu": "0"})) == key
    with pytest.raises(ValueError, match="not a series key"):
        labels_from_key('["gpu", "0"]')


def test_rollup_returns_each_completed_bucket_once_without_nan() -> None:
    tsdb = MemoryTSDB()
    downsampler = Downsampler(tsdb, step=60.0)
    for t, v in [(5.0, 4.0), (30.0, 1.0), (59.0, 7.0), (60.0, 2.0), (100.0, 3.0)]:
        tsdb.ingest(t, [Family(UTIL, "h", "gauge", [({"gpu": "0"}, v)])], "node-1")
    tsdb.ingest(110.0, [], "node-1")  # a staleness marker: not a value
    assert downsampler.rollup(59.9) == []  # nothing completed yet
    [first] = downsampler.rollup(60.0)
    assert first == HistoryRow(series_labels(0), 0.0, 4.0, 1.0, 7.0, 7.0, 3)
    assert first.name == UTIL
    assert downsampler.rollup(119.0) == []
    [second] = downsampler.rollup(125.0)
    assert second == HistoryRow(series_labels(0), 60.0, 2.5, 2.0, 3.0, 3.0, 2)
    assert downsampler.rollup(500.0) == []  # only a staleness marker since
    assert [row.bucket_start for row in Downsampler(tsdb, step=60.0, since=60.0).rollup(500.0)] == [60.0]
    with pytest.raises(ValueError, match="step"):
        Downsampler(tsdb, step=0.0)


def test_without_history_a_merged_query_is_the_memory_query() -> None:
    tsdb = MemoryTSDB()
    run(tsdb, ListHistory(), [float(t) for t in range(0, 1000, 10)], Downsampler(tsdb))
    empty = ListHistory()
    for step in (15.0, 60.0, 300.0):
        assert merge_query(tsdb, empty, UTIL, [], 0.0, 1000.0, step) == tsdb.query(UTIL, [], 0.0, 1000.0, step)


@pytest.mark.parametrize(
    "make_tsdb",
    [
        pytest.param(lambda: MemoryTSDB(retention=600.0), id="retention"),
        pytest.param(lambda: MemoryTSDB(max_points_per_series=20), id="points-cap"),
    ],
)
def test_old_buckets_come_from_history_recent_ones_from_memory_without_gap_or_duplicate(
    make_tsdb: Callable[[], MemoryTSDB],
) -> None:
    tsdb = make_tsdb()
    history = ListHistory()
    times = [float(t) for t in range(0, 3000, int(EVERY))]
    run(tsdb, history, times, Downsampler(tsdb))
    [covered] = tsdb.select_covered(UTIL, [Matcher("gpu", "=", "1")], 0.0, 3000.0)
    assert covered.covered_from > 2000
    assert covered.covered_from % 60
    reader: HistoryReader = history
    for step in (60.0, 120.0, 300.0, 3600.0):
        merged = merge_query(tsdb, reader, UTIL, [Matcher("gpu", "=", "1")], 0.0, 3000.0, step)
        assert [s.labels for s in merged] == [series_labels(1)]
        assert_close(as_dict(merged[0]), expected(times, 1, step))
    # Finer than the history: old data has one point per history bucket, recent data the full resolution.
    [fine] = merge_query(tsdb, reader, UTIL, [Matcher("gpu", "=", "1")], 0.0, 3000.0, 15.0)
    seam = math.ceil(covered.covered_from / 60.0) * 60.0
    old = {b: v for b, v in expected(times, 1, 60.0).items() if b < seam}
    recent = expected([t for t in times if t >= seam], 1, 15.0)
    assert_close(as_dict(fine), old | recent)


def test_a_restart_loses_only_what_was_not_rolled_up_and_the_seam_bucket_is_counted_once() -> None:
    history = ListHistory()
    before = MemoryTSDB()
    run(before, history, [float(t) for t in range(0, 1001, 10)], Downsampler(before))  # rows up to [900, 960)
    after = MemoryTSDB()  # the restarted control plane: empty memory, mid-bucket
    downsampler = Downsampler(after)
    run(after, history, [1005.0, 1015.0], downsampler)
    kept = [float(t) for t in range(0, 960, 10)] + [1005.0, 1015.0]
    [merged] = merge_query(after, history, UTIL, [Matcher("gpu", "=", "0")], 0.0, 2000.0, 60.0)
    assert_close(as_dict(merged), expected(kept, 0, 60.0))  # [960, 1020): memory's, not rolled up yet
    later = [float(t) for t in range(1025, 1300, 10)]
    run(after, history, later, downsampler)
    assert (series_key(series_labels(0)), 960.0) in history.rows
    [merged] = merge_query(after, history, UTIL, [Matcher("gpu", "=", "0")], 0.0, 2000.0, 60.0)
    assert_close(as_dict(merged), expected(kept + later, 0, 60.0))


def test_series_only_in_history_are_returned_and_loose_reader_rows_are_filtered() -> None:
    tsdb = MemoryTSDB()
    tsdb.ingest(5000.0, families(5000.0, count=1), "node-1")
    stray = labels_of("other_metric", {"gpu": "1"})
    rows = [
        HistoryRow(series_labels(1), 60.0, 2.0, 1.0, 3.0, 3.0, 4),  # a GPU memory no longer has
        HistoryRow(series_labels(1), 120.0, 4.0, 4.0, 4.0, 4.0, 1),
        HistoryRow(series_labels(1), 9000.0, 9.0, 9.0, 9.0, 9.0, 1),  # after `end`
        HistoryRow(stray, 60.0, 1.0, 1.0, 1.0, 1.0, 1),  # another metric
        HistoryRow(series_labels(2), 60.0, 1.0, 1.0, 1.0, 1.0, 1),  # not matching gpu=~"0|1"
    ]

    class Loose:
        def read(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[HistoryRow]:
            return rows

    merged = merge_query(tsdb, Loose(), UTIL, [Matcher("gpu", "=~", "0|1")], 0.0, 6000.0, 120.0)
    assert [(s.labels, s.points) for s in merged] == [
        (series_labels(0), ((4920.0, value(5000.0, 0)),)),
        (series_labels(1), ((0.0, 2.0), (120.0, 4.0))),
    ]
    with pytest.raises(ValueError, match="step"):
        merge_query(tsdb, Loose(), UTIL, [], 0.0, 1.0, -1.0)
