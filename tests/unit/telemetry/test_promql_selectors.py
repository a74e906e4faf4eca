"""Selectors: the 5-minute look-back, staleness, offset and @, range windows (left-open), subqueries, and the
Query API around them."""

from __future__ import annotations

import math

import pytest

from aidc.telemetry.promql import Matrix, QueryError, compile_query, instant_query
from aidc.telemetry.series import STALE, Matcher
from tests.unit.telemetry.memory_source import MemorySource, as_dict


def q(source: MemorySource, expr: str, t: float) -> dict[str, float]:
    return as_dict(compile_query(expr).vector(source, t))


@pytest.fixture
def source() -> MemorySource:
    s = MemorySource()
    s.add("temp", {"gpu": "0"}, [(0, 50.0), (60, 51.0), (120, 52.0)])
    s.add("temp", {"gpu": "1"}, [(0, 70.0), (60, STALE), (120, 72.0)])
    s.add("temp", {"gpu": "2"}, [(0, 90.0), (60, 91.0), (90, STALE)])
    s.add("power", {"gpu": "0"}, [(100, 300.0)])
    return s


def test_instant_selector_takes_the_latest_point_in_the_look_back(source: MemorySource) -> None:
    assert q(source, "temp", 130) == {'temp{gpu="0"}': 52.0, 'temp{gpu="1"}': 72.0}
    assert q(source, "temp", 59) == {'temp{gpu="0"}': 50.0, 'temp{gpu="1"}': 70.0, 'temp{gpu="2"}': 90.0}
    # 5 minutes later the last point (120) is still seen; at exactly 5 minutes it is not: (t - 5m, t].
    assert q(source, "temp", 419) == {'temp{gpu="0"}': 52.0, 'temp{gpu="1"}': 72.0}
    assert q(source, "temp", 420) == {}


def test_a_staleness_marker_ends_a_series_at_once(source: MemorySource) -> None:
    assert 'temp{gpu="1"}' not in q(source, "temp", 61)  # stale at 60, back at 120
    assert 'temp{gpu="1"}' in q(source, "temp", 120)
    assert 'temp{gpu="2"}' not in q(source, "temp", 95)  # not its value of 60 for 5 minutes


def test_label_matchers(source: MemorySource) -> None:
    assert q(source, 'temp{gpu!="0"}', 130) == {'temp{gpu="1"}': 72.0}
    assert q(source, 'temp{gpu=~"0|1"}', 130) == {'temp{gpu="0"}': 52.0, 'temp{gpu="1"}': 72.0}
    assert q(source, 'temp{gpu!~"1"}', 130) == {'temp{gpu="0"}': 52.0}
    assert q(source, 'temp{gpu=~"1."}', 130) == {}  # regexes are anchored
    assert q(source, '{__name__=~"temp|power", gpu="0"}', 130) == {'temp{gpu="0"}': 52.0, 'power{gpu="0"}': 300.0}
    assert q(source, '{gpu="0"}', 130) == {'temp{gpu="0"}': 52.0, 'power{gpu="0"}': 300.0}
    assert q(source, 'power{node=""}', 130) == {'power{gpu="0"}': 300.0}  # "" matches an absent label


def test_offset_and_at(source: MemorySource) -> None:
    assert q(source, "temp offset 1m", 130) == {'temp{gpu="0"}': 51.0, 'temp{gpu="2"}': 91.0}
    assert q(source, "temp offset -1m", 60) == {'temp{gpu="0"}': 52.0, 'temp{gpu="1"}': 72.0}
    assert q(source, "temp @ 30", 1000) == {'temp{gpu="0"}': 50.0, 'temp{gpu="1"}': 70.0, 'temp{gpu="2"}': 90.0}
    assert q(source, "temp @ 90 offset 30s", 1000)['temp{gpu="0"}'] == 51.0
    assert q(source, "temp @ end()", 61) == q(source, "temp", 61)


def test_range_selector_window_is_left_open_and_skips_stale_points(source: MemorySource) -> None:
    result = compile_query("temp[2m]").evaluate(source, 120)
    assert isinstance(result, Matrix)
    points = {dict(s.labels)["gpu"]: list(s.points) for s in result.series}
    assert points == {"0": [(60, 51.0), (120, 52.0)], "1": [(120, 72.0)], "2": [(60, 91.0)]}
    assert (result.start, result.end, result.range) == (0, 120, 120)
    shifted = compile_query("temp[1m] offset 1m").evaluate(source, 120)
    assert isinstance(shifted, Matrix)
    assert {dict(s.labels)["gpu"]: list(s.points) for s in shifted.series} == {"0": [(60, 51.0)], "2": [(60, 91.0)]}


def test_subquery_evaluates_the_inner_expression_at_multiples_of_the_step() -> None:
    source = MemorySource.from_notation({"x": "0+1x20"}, step=60)
    assert q(source, "max_over_time(x[5m:1m])", 600) == {"{}": 10.0}
    assert q(source, "min_over_time(x[5m:1m])", 600) == {"{}": 6.0}  # 360..600: 5 steps, 300 left out
    assert q(source, "count_over_time(x[5m:2m])", 630) == {"{}": 3.0}  # 360, 480, 600
    assert q(source, "sum_over_time(x[3m:1m] offset 2m)", 600) == {"{}": 6.0 + 7 + 8}
    # Without a step, the default (Prometheus' evaluation interval) is used.
    assert compile_query("count_over_time(x[5m:])").vector(source, 600, subquery_step=30)[0].value == 10.0


def test_value_types_and_results() -> None:
    source = MemorySource.from_notation({'x{a="1"}': "1 2 3"})
    assert compile_query("x").value_type == "vector"
    assert compile_query("1 + 2").value_type == "scalar"
    assert compile_query('"text"').value_type == "string"
    assert compile_query("x[5m]").value_type == "matrix"
    assert instant_query(source, "1 + 2 * 3", 0) == 7.0
    assert instant_query(source, '"text"', 0) == "text"
    assert instant_query(source, "time()", 42) == 42.0
    assert compile_query("2 ^ 3").vector(source, 0) == [((), 8.0)]  # a scalar as rules read it
    with pytest.raises(QueryError, match="not an instant vector or a scalar"):
        compile_query("x[5m]").vector(source, 120)
    assert compile_query("x") is compile_query("x")  # parsed and compiled once


def test_custom_look_back() -> None:
    source = MemorySource.from_notation({"x": "1"})
    assert compile_query("x").vector(source, 100, lookback=60) == []
    assert compile_query("x").vector(source, 100)[0].value == 1.0


def test_selector_without_a_metric_name_asks_the_source_for_any_name() -> None:
    seen: list[list[Matcher]] = []

    class Spy(MemorySource):
        def select(self, matchers, start, end):  # type: ignore[no-untyped-def]
            seen.append(list(matchers))
            return super().select(matchers, start, end)

    spy = Spy()
    spy.add("x", {"a": "1"}, [(0, 1.0)])
    assert q(spy, '{a="1"}', 0) == {'x{a="1"}': 1.0}
    assert Matcher("__name__", "=~", ".+") in seen[0]
    assert math.isnan(instant_query(spy, "scalar(nothing)", 0))  # type: ignore[arg-type]
