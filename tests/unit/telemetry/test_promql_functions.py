"""Functions: rate and friends (with Prometheus' extrapolation), *_over_time, math, time, absent, labels,
histogram_quantile, sort."""

from __future__ import annotations

import math

import pytest

from aidc.telemetry.promql import QueryError, compile_query, instant_query
from aidc.telemetry.series import STALE
from tests.unit.telemetry.memory_source import MemorySource, as_dict


def q(source: MemorySource, expr: str, t: float = 0) -> dict[str, float]:
    return as_dict(compile_query(expr).vector(source, t))


def one(series: str, expr: str, t: float) -> float:
    """The single value of `expr` over series `x` (values a minute apart from 0)."""
    result = compile_query(expr).vector(MemorySource.from_notation({"x": series}), t)
    assert len(result) == 1, result
    return result[0].value


def test_rate_increase_extrapolate_to_the_window() -> None:
    # +1 per second; in (300, 600] the points 360..600 cover 240 s of the 300-s window: extrapolated to 300.
    assert one("0+60x10", "rate(x[5m])", 600) == 1.0
    assert one("0+60x10", "increase(x[5m])", 600) == 300.0
    # Extrapolation stops where the counter would have been zero.
    assert one("0 60 120 10 70", "increase(x[5m])", 240) == 190.0  # 70 + the 120 lost at the reset
    assert one("0 60 120 10 70", "rate(x[5m])", 240) == pytest.approx(190 / 300)
    # A window with a lone point gives nothing.
    assert compile_query("rate(x[1m])").vector(MemorySource.from_notation({"x": "1 2"}), 300) == []


def test_delta_and_instant_functions() -> None:
    assert one("10 5 20", "delta(x[3m])", 120) == 15.0  # 10 over 120 s, extrapolated by one interval to 180 s
    assert one("0 60 120 10", "irate(x[5m])", 180) == pytest.approx(10 / 60)  # a reset: the new value counts
    assert one("0 60 120 10", "idelta(x[5m])", 180) == -110.0
    assert one("1 1 2 2 1", "changes(x[10m])", 240) == 2.0
    assert one("5 3 4 1", "resets(x[10m])", 180) == 2.0
    assert one("0+60x10", "deriv(x[5m])", 600) == pytest.approx(1.0)
    assert one("0+60x10", "predict_linear(x[5m], 600)", 600) == pytest.approx(1200.0)


def test_over_time_functions() -> None:
    series = "1 2 3 4 10"
    assert one(series, "avg_over_time(x[5m])", 240) == 4.0
    assert one(series, "sum_over_time(x[5m])", 240) == 20.0
    assert one(series, "min_over_time(x[5m])", 240) == 1.0
    assert one(series, "max_over_time(x[5m])", 240) == 10.0
    assert one(series, "count_over_time(x[5m])", 240) == 5.0
    assert one(series, "last_over_time(x[5m])", 240) == 10.0
    assert one(series, "present_over_time(x[5m])", 240) == 1.0
    assert one(series, "stdvar_over_time(x[5m])", 240) == 10.0
    assert one(series, "stddev_over_time(x[5m])", 240) == pytest.approx(math.sqrt(10))
    assert one(series, "quantile_over_time(0.5, x[5m])", 240) == 3.0
    assert one(series, "quantile_over_time(0.75, x[5m])", 240) == 4.0
    assert one(series, "count_over_time(x[2m])", 240) == 2.0  # 180 and 240: the window is (120, 240]
    assert one("1 2 stale 4", "count_over_time(x[5m])", 180) == 3.0  # a staleness marker is not a point


def test_range_functions_drop_the_name_except_last_over_time() -> None:
    source = MemorySource.from_notation({'x{a="1"}': "1 2"})
    assert q(source, "max_over_time(x[5m])", 60) == {'{a="1"}': 2.0}
    assert q(source, "last_over_time(x[5m])", 60) == {'x{a="1"}': 2.0}


def test_absent() -> None:
    source = MemorySource.from_notation({'up{job="a"}': "1 1 1"})
    assert q(source, 'absent(up{job="a"})', 60) == {}
    assert q(source, 'absent(up{job="b", instance=~"i.*"})', 60) == {'{job="b"}': 1.0}
    assert q(source, 'absent(up{job="b", job="c"})', 60) == {"{}": 1.0}  # a label matched twice is left out
    assert q(source, "absent(sum(nothing))", 60) == {"{}": 1.0}
    assert q(source, 'absent_over_time(up{job="a"}[5m])', 300) == {}  # points at 60 and 120 in (0, 300]
    assert q(source, 'absent_over_time(up{job="a"}[5m])', 420) == {'{job="a"}': 1.0}  # none in (120, 420]
    assert q(source, 'absent_over_time(nothing{job="x"}[5m])', 60) == {'{job="x"}': 1.0}


def test_math_functions_return_go_values() -> None:
    source = MemorySource.from_notation(
        {'v{k="neg"}': "-2.5", 'v{k="pos"}': "2.5", 'v{k="zero"}': "0", 'v{k="big"}': "1000", 'v{k="inf"}': "Inf"}
    )

    def f(fn: str) -> dict[str, float]:
        return {key.split('"')[1]: value for key, value in q(source, fn).items()}

    assert f("abs(v)") == {"neg": 2.5, "pos": 2.5, "zero": 0.0, "big": 1000.0, "inf": math.inf}
    assert f("ceil(v)") == {"neg": -2.0, "pos": 3.0, "zero": 0.0, "big": 1000.0, "inf": math.inf}
    assert f("floor(v)") == {"neg": -3.0, "pos": 2.0, "zero": 0.0, "big": 1000.0, "inf": math.inf}
    assert f("round(v)") == {"neg": -2.0, "pos": 3.0, "zero": 0.0, "big": 1000.0, "inf": math.inf}
    assert f("round(v, 2)") == {"neg": -2.0, "pos": 2.0, "zero": 0.0, "big": 1000.0, "inf": math.inf}
    assert f("sgn(v)") == {"neg": -1.0, "pos": 1.0, "zero": 0.0, "big": 1.0, "inf": 1.0}
    assert f("exp(v)")["big"] == math.inf
    assert f("ln(v)")["zero"] == -math.inf
    assert math.isnan(f("ln(v)")["neg"])
    assert math.isnan(f("sqrt(v)")["neg"])
    assert f("sqrt(v)")["pos"] == math.sqrt(2.5)
    assert f("log2(v)")["big"] == math.log2(1000)
    assert f("log10(v)")["big"] == 3.0
    assert f("clamp(v, -1, 1)") == {"neg": -1.0, "pos": 1.0, "zero": 0.0, "big": 1.0, "inf": 1.0}
    assert f("clamp_min(v, 0)") == {"neg": 0.0, "pos": 2.5, "zero": 0.0, "big": 1000.0, "inf": math.inf}
    assert f("clamp_max(v, 0)") == {"neg": -2.5, "pos": 0.0, "zero": 0.0, "big": 0.0, "inf": 0.0}
    assert f("clamp(v, 1, -1)") == {}  # max below min: nothing
    assert all(key.startswith("{") for key in q(source, "abs(v)"))  # the metric name is dropped


def test_time_and_conversions() -> None:
    source = MemorySource.from_notation({'x{a="1"}': "5 _ 7", 'x{a="2"}': "1"})
    assert instant_query(source, "time()", 150) == 150.0
    assert q(source, "timestamp(x)", 150) == {'{a="1"}': 120.0, '{a="2"}': 0.0}  # the points' own times
    assert q(source, "timestamp(x * 1)", 150) == {'{a="1"}': 150.0, '{a="2"}': 150.0}
    assert q(source, "vector(3)", 0) == {"{}": 3.0}
    assert instant_query(source, 'scalar(x{a="2"})', 0) == 1.0
    assert math.isnan(instant_query(source, "scalar(x)", 0))  # type: ignore[arg-type]  # two elements
    assert instant_query(source, "pi()", 0) == math.pi


def test_date_functions() -> None:
    source = MemorySource.from_notation({"t": "1700000000"})  # 2023-11-14 22:13:20 UTC, a Tuesday
    expected = {
        "hour": 22,
        "minute": 13,
        "month": 11,
        "year": 2023,
        "day_of_month": 14,
        "day_of_week": 2,
        "day_of_year": 318,
        "days_in_month": 30,
    }
    for fn, value in expected.items():
        assert q(source, f"{fn}(t)", 0) == {"{}": value}, fn
    assert q(source, "hour()", 3600 * 5) == {"{}": 5.0}


def test_label_replace_and_join() -> None:
    source = MemorySource.from_notation({'up{instance="host-1:9100", job="node"}': "1"})
    assert q(source, 'label_replace(up, "host", "$1", "instance", "(.*):.*")') == {
        'up{host="host-1", instance="host-1:9100", job="node"}': 1.0
    }
    assert q(source, 'label_replace(up, "host", "${name}-x$$", "instance", "(?P<name>[a-z]+).*")') == {
        'up{host="host-x$", instance="host-1:9100", job="node"}': 1.0
    }
    assert q(source, 'label_replace(up, "job", "", "job", ".*")') == {'up{instance="host-1:9100"}': 1.0}
    assert q(source, 'label_replace(up, "job", "x", "instance", "nomatch")') == {
        'up{instance="host-1:9100", job="node"}': 1.0
    }
    assert q(source, 'label_replace(up, "a", "$1x", "job", "(.*)")') == {  # "$1x" names group "1x": none
        'up{instance="host-1:9100", job="node"}': 1.0
    }
    assert q(source, 'label_join(up, "both", "/", "job", "missing", "instance")') == {
        'up{both="node//host-1:9100", instance="host-1:9100", job="node"}': 1.0
    }
    with pytest.raises(QueryError, match="invalid regular expression"):
        q(source, 'label_replace(up, "a", "b", "job", "(")')
    with pytest.raises(QueryError, match="invalid destination label name"):
        q(source, 'label_replace(up, "not-valid", "b", "job", ".*")')


def test_histogram_quantile_over_classic_buckets() -> None:
    source = MemorySource.from_notation(
        {
            'lat_bucket{svc="a", le="1"}': "10",
            'lat_bucket{svc="a", le="2"}': "20",
            'lat_bucket{svc="a", le="+Inf"}': "20",
            'lat_bucket{svc="b", le="1"}': "10",
            'lat_bucket{svc="b", le="+Inf"}': "20",
            'lat_bucket{svc="c", le="1"}': "10",  # no +Inf bucket: NaN
            'lat_bucket{svc="d", le="0.5"}': "8",  # not monotonic (e.g. after rate()): fixed up
            'lat_bucket{svc="d", le="1"}': "6",
            'lat_bucket{svc="d", le="+Inf"}': "10",
            'lat_bucket{svc="e", le="x"}': "1",  # not a bound: skipped
        }
    )
    result = q(source, "histogram_quantile(0.75, lat_bucket)")
    assert result['{svc="a"}'] == 1.5
    assert result['{svc="b"}'] == 1.0  # the rank is in the +Inf bucket: the highest finite bound
    assert math.isnan(result['{svc="c"}'])
    assert result['{svc="d"}'] == 0.5 * 7.5 / 8  # counts 8, 6 -> 8, 10: the rank 7.5 falls in the first bucket
    assert '{svc="e"}' not in result
    assert q(source, 'histogram_quantile(0.5, lat_bucket{svc="a"})') == {'{svc="a"}': 1.0}
    assert q(source, 'histogram_quantile(0.99, lat_bucket{svc="a"})') == {'{svc="a"}': pytest.approx(1.98)}
    assert q(source, 'histogram_quantile(2, lat_bucket{svc="a"})') == {'{svc="a"}': math.inf}
    assert q(source, 'histogram_quantile(-1, lat_bucket{svc="a"})') == {'{svc="a"}': -math.inf}


def test_sort() -> None:
    source = MemorySource.from_notation({'x{i="1"}': "2", 'x{i="2"}': "NaN", 'x{i="3"}': "1", 'x{i="4"}': "3"})
    assert [s.value for s in compile_query("sort(x)").vector(source, 0)][:3] == [1.0, 2.0, 3.0]
    assert [s.value for s in compile_query("sort_desc(x)").vector(source, 0)][:3] == [3.0, 2.0, 1.0]
    assert math.isnan(compile_query("sort(x)").vector(source, 0)[3].value)  # NaN last


def test_stale_point_inside_a_range_does_not_end_the_series() -> None:
    source = MemorySource()
    source.add("x", {}, [(0, 1.0), (60, STALE), (120, 3.0)])
    assert q(source, "sum_over_time(x[5m])", 120) == {"{}": 4.0}
