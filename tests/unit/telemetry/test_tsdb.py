"""The time-series buffer: selection by name and labels, staleness per source, bounded memory (retention, per
series cap, series limit), resampled queries, latest values, and the label filter of the query API."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence

import pytest

from aidc.telemetry.series import STALE, Family, Labels, Matcher, SeriesSource, is_stale, label_value, labels_of
from aidc.telemetry.tsdb import MemoryTSDB, bucket_sums, parse_label_filter

UTIL = "DCGM_FI_DEV_GPU_UTIL"
TEMP = "DCGM_FI_DEV_GPU_TEMP"


def gauge(name: str, *samples: tuple[Mapping[str, str], float]) -> Family:
    return Family(name, "help", "gauge", samples)


def gpus(name: str, values: Sequence[float], host: str = "node-1") -> Family:
    return gauge(name, *(({"gpu": str(i), "Hostname": host}, v) for i, v in enumerate(values)))


def by_name(name: str) -> Matcher:
    return Matcher("__name__", "=", name)


def util(gpu: str, host: str = "node-1") -> Labels:
    return labels_of(UTIL, {"gpu": gpu, "Hostname": host})


def test_select_uses_the_name_and_every_label_matcher_within_the_inclusive_range() -> None:
    tsdb = MemoryTSDB()
    for t in (10.0, 20.0, 30.0):
        tsdb.ingest(t, [gpus(UTIL, [t, t + 1]), gpus(TEMP, [50.0])], "node-1")
    source: SeriesSource = tsdb  # the PromQL evaluator reads it through the protocol
    found = source.select([by_name(UTIL)], 10.0, 20.0)
    assert [s.labels for s in found] == [util("0"), util("1")]
    assert found[0].points == ((10.0, 10.0), (20.0, 20.0))
    assert [s.labels for s in tsdb.select([by_name(UTIL), Matcher("gpu", "!=", "0")], 0, 99)] == [util("1")]
    assert [s.labels for s in tsdb.select([by_name(UTIL), Matcher("gpu", "=~", "1|2")], 0, 99)] == [util("1")]
    assert tsdb.select([by_name(UTIL), Matcher("gpu", "!~", ".*")], 0, 99) == []
    assert tsdb.select([by_name(UTIL), Matcher("absent", "=", "")], 0, 99) != []  # absent reads as ""
    assert tsdb.select([by_name(UTIL)], 31.0, 99.0) == []  # no point in range: no series
    assert tsdb.select([by_name("nope")], 0, 99) == []
    regex_name = tsdb.select([Matcher("__name__", "=~", "DCGM_FI_DEV_GPU_.*"), Matcher("gpu", "=", "0")], 0, 99)
    assert [label_value(s.labels, "__name__") for s in regex_name] == [TEMP, UTIL]
    assert tsdb.names() == [TEMP, UTIL]
    assert tsdb.series_count() == 3


def test_results_are_copies_that_later_ingests_do_not_change() -> None:
    tsdb = MemoryTSDB()
    tsdb.ingest(1.0, [gpus(UTIL, [1.0])], "node-1")
    before = tsdb.select([by_name(UTIL)], 0, 99)
    tsdb.ingest(2.0, [gpus(UTIL, [2.0])], "node-1")
    assert before[0].points == ((1.0, 1.0),)
    assert len(tsdb.select([by_name(UTIL)], 0, 99)[0].points) == 2


def test_series_a_source_stops_reporting_get_a_staleness_marker_at_once() -> None:
    tsdb = MemoryTSDB()
    tsdb.ingest(10.0, [gpus(UTIL, [1.0, 2.0])], "node-1")
    tsdb.ingest(20.0, [gpus(UTIL, [3.0])], "node-1")  # gpu 1 vanished
    gone = tsdb.select([by_name(UTIL), Matcher("gpu", "=", "1")], 0, 99)[0]
    assert gone.points[0] == (10.0, 2.0)
    assert gone.points[1][0] == 20.0
    assert is_stale(gone.points[1][1])
    assert [labels for labels, _ in tsdb.latest(UTIL, [])] == [util("0")]
    assert [s.labels for s in tsdb.query(UTIL, [], 15.0, 25.0, 10.0)] == [util("0")]
    tsdb.ingest(30.0, [gpus(UTIL, [4.0])], "node-1")  # one marker only, however long it stays away
    assert len(tsdb.select([by_name(UTIL), Matcher("gpu", "=", "1")], 0, 99)[0].points) == 2
    tsdb.ingest(40.0, [], "node-1")  # a failed collection: everything of the source ends
    assert tsdb.latest(UTIL, []) == []
    tsdb.ingest(50.0, [gpus(UTIL, [5.0, 6.0])], "node-1")  # back: the series resume after the marker
    assert [v for _, v in tsdb.latest(UTIL, [])] == [5.0, 6.0]


def test_staleness_is_per_source_and_a_series_taken_over_by_another_source_stays() -> None:
    tsdb = MemoryTSDB()
    tsdb.ingest(10.0, [gpus(UTIL, [1.0], host="a")], "a")
    tsdb.ingest(10.0, [gpus(UTIL, [2.0], host="b")], "b")
    tsdb.ingest(20.0, [gpus(UTIL, [3.0], host="a")], "a")  # b has not reported again yet: not stale
    assert len(tsdb.latest(UTIL, [])) == 2
    tsdb.ingest(30.0, [gpus(UTIL, [4.0], host="a")], "moved")  # a's series now come from another source
    tsdb.ingest(40.0, [], "a")
    assert [v for _, v in tsdb.latest(UTIL, [Matcher("Hostname", "=", "a")])] == [4.0]
    tsdb.forget_source(45.0, "b")
    assert tsdb.latest(UTIL, [Matcher("Hostname", "=", "b")]) == []
    tsdb.forget_source(46.0, "never-seen")


def test_samples_find_their_series_whatever_the_order_and_a_label_dict_changed_in_place() -> None:
    tsdb = MemoryTSDB()
    reused = {"gpu": "0", "Hostname": "node-1"}
    tsdb.ingest(1.0, [gauge(UTIL, (reused, 1.0), ({"gpu": "1", "Hostname": "node-1"}, 2.0)), gpus(TEMP, [9.0])], "n")
    tsdb.ingest(2.0, [gpus(TEMP, [9.5]), gauge(UTIL, ({"Hostname": "node-1", "gpu": "1"}, 4.0), (reused, 3.0))], "n")
    reused["gpu"] = "7"  # the collector reuses its dict for another GPU: a different series
    tsdb.ingest(3.0, [gauge(UTIL, (reused, 5.0))], "n")
    assert [(s.labels, [v for _, v in s.points if not is_stale(v)]) for s in tsdb.select([by_name(UTIL)], 0, 9)] == [
        (util("0"), [1.0, 3.0]),
        (util("1"), [2.0, 4.0]),
        (util("7"), [5.0]),
    ]
    assert [labels for labels, _ in tsdb.latest(UTIL, [])] == [util("7")]  # 0 and 1 went stale at 3
    assert tsdb.latest(TEMP, []) == []


def test_points_older_than_the_retention_are_swept_and_empty_series_removed() -> None:
    tsdb = MemoryTSDB(retention=160.0)  # sweeps every 10 s of ingest time
    for t in range(0, 400, 5):
        families = [gpus(UTIL, [float(t)])] + ([gpus(TEMP, [1.0])] if t < 100 else [])
        tsdb.ingest(float(t), families, "node-1")
    times = [p[0] for p in tsdb.select([by_name(UTIL)], -math.inf, math.inf)[0].points]
    assert times[0] >= 395 - 160 - 10
    assert times[-1] == 395.0
    assert tsdb.names() == [UTIL]  # TEMP went stale at 100 and aged out entirely
    assert tsdb.series_count() == 1


def test_points_per_series_are_capped_dropping_the_oldest_in_chunks() -> None:
    tsdb = MemoryTSDB(max_points_per_series=32)
    for t in range(100):
        tsdb.ingest(float(t), [gpus(UTIL, [float(t)])], "node-1")
        assert len(tsdb.select([by_name(UTIL)], -math.inf, math.inf)[0].points) <= 32
    points = tsdb.select([by_name(UTIL)], -math.inf, math.inf)[0].points
    assert points[-1] == (99.0, 99.0)
    assert [t for t, _ in points] == list(range(int(points[0][0]), 100))  # contiguous: only the oldest went


def test_new_series_beyond_the_limit_are_refused_counted_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tsdb = MemoryTSDB(max_series=3, retention=100.0)
    with caplog.at_level(logging.WARNING, logger="aidc.telemetry.tsdb"):
        tsdb.ingest(0.0, [gpus(UTIL, [1.0, 2.0, 3.0, 4.0, 5.0])], "node-1")
        tsdb.ingest(1.0, [gpus(UTIL, [1.0, 2.0, 3.0, 4.0, 5.0])], "node-1")
    assert tsdb.series_count() == 3
    assert tsdb.dropped_series == 4
    assert len([r for r in caplog.records if "buffer full" in r.getMessage()]) == 1
    assert [s.labels for s in tsdb.select([by_name(UTIL)], 0, 9)] == [util("0"), util("1"), util("2")]
    tsdb.ingest(200.0, [gpus(TEMP, [1.0])], "other")  # the old series expire: room again
    assert tsdb.names() == [TEMP]


def test_out_of_order_and_duplicate_time_samples_are_dropped() -> None:
    tsdb = MemoryTSDB()
    tsdb.ingest(10.0, [gpus(UTIL, [1.0])], "a")
    tsdb.ingest(10.0, [gpus(UTIL, [2.0])], "b")
    tsdb.ingest(5.0, [gpus(UTIL, [3.0])], "c")
    assert tsdb.select([by_name(UTIL)], 0, 99)[0].points == ((10.0, 1.0),)
    assert tsdb.dropped_samples == 2


def test_histogram_families_are_not_buffered() -> None:
    tsdb = MemoryTSDB()
    tsdb.ingest(1.0, [Family("aidc_queue_wait_seconds", "h", "histogram", [({"le": "1"}, 3.0)])], "cp")
    assert tsdb.series_count() == 0


def test_query_averages_each_step_bucket_aligned_to_multiples_of_the_step() -> None:
    tsdb = MemoryTSDB()
    for t, v in [(61.0, 1.0), (70.0, 3.0), (119.0, 5.0), (120.0, 7.0), (300.0, 9.0), (301.0, 11.0)]:
        tsdb.ingest(t, [gpus(UTIL, [v])], "node-1")
    tsdb.ingest(302.0, [], "node-1")  # staleness marker in the 300 bucket: not averaged
    [series] = tsdb.query(UTIL, [], 0.0, 400.0, 60.0)
    assert series.labels == util("0")
    assert series.points == ((60.0, 3.0), (120.0, 7.0), (300.0, 10.0))  # 180 and 240: a gap, not zeros
    [clipped] = tsdb.query(UTIL, [Matcher("gpu", "=", "0")], 70.0, 119.0, 60.0)
    assert clipped.points == ((60.0, 4.0),)  # only points within [start, end]
    assert tsdb.query(UTIL, [Matcher("gpu", "=", "9")], 0.0, 400.0, 60.0) == []
    with pytest.raises(ValueError, match="step"):
        tsdb.query(UTIL, [], 0.0, 400.0, 0.0)


def test_bucket_sums_leave_nan_out_and_skip_buckets_of_only_nan() -> None:
    times = [0.0, 1.0, 10.0, 11.0]
    values = [1.0, STALE, math.nan, STALE]
    assert list(bucket_sums(times, values, 10.0)) == [(0.0, 1.0, 1)]


def test_latest_is_the_newest_value_of_the_last_five_minutes() -> None:
    tsdb = MemoryTSDB()
    tsdb.ingest(0.0, [gpus(UTIL, [1.0], host="old")], "old")
    tsdb.ingest(100.0, [gpus(UTIL, [2.0, 3.0])], "node-1")
    tsdb.ingest(400.0, [gpus(TEMP, [50.0])], "cp")
    assert tsdb.latest(UTIL, []) == [(util("0"), 2.0), (util("1"), 3.0)]  # "old" is 400 s old
    assert tsdb.latest(UTIL, [Matcher("gpu", "=", "1")]) == [(util("1"), 3.0)]
    assert tsdb.latest(UTIL, [], now=200.0) == [(util("0"), 2.0), (util("1"), 3.0), (util("0", "old"), 1.0)]
    assert tsdb.latest(UTIL, [], now=1000.0) == []


def test_readers_and_an_ingesting_thread_can_run_together() -> None:
    tsdb = MemoryTSDB(retention=50.0, max_points_per_series=40)
    errors: list[BaseException] = []

    def collect() -> None:
        try:
            for t in range(2000):
                tsdb.ingest(float(t), [gpus(UTIL, [float(t)] * (1 + t % 5))], "node-1")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=collect)
    thread.start()
    while thread.is_alive():
        for series in tsdb.select([by_name(UTIL)], -math.inf, math.inf):
            times = [t for t, _ in series.points]
            assert times == sorted(times)
            assert len(times) <= 40
        tsdb.query(UTIL, [], 0.0, 2000.0, 10.0)
        tsdb.latest(UTIL, [])
    thread.join()
    assert errors == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("  ", []),
        ('gpu="0"', [Matcher("gpu", "=", "0")]),
        ('gpu="0",Hostname=~"node-.*"', [Matcher("gpu", "=", "0"), Matcher("Hostname", "=~", "node-.*")]),
        ("state!='down', queue!~`a|b`,", [Matcher("state", "!=", "down"), Matcher("queue", "!~", "a|b")]),
        (r'modelName="NVIDIA \"H100\"\n"', [Matcher("modelName", "=", 'NVIDIA "H100"\n')]),
    ],
)
def test_label_filters_parse_with_prometheus_quoting(text: str, expected: list[Matcher]) -> None:
    assert parse_label_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('gpu="0', 'gpu="0'),
        ("gpu=0", "gpu=0"),
        ('gpu="0" Hostname="a"', "Hostname"),
        ('gpu=~"("', "regex"),
        ('__name__="x"', "not with __name__"),
        ('gpu="0" or gpu="1"', "'or'"),
        ('gpu="0"} offset 5m or y{a="b"', "only label matchers"),
        ('gpu="0"}[5m', ""),
    ],
)
def test_bad_label_filters_raise_a_clear_value_error(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="label filter") as raised:
        parse_label_filter(text)
    assert problem in str(raised.value)
