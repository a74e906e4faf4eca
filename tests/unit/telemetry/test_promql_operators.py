"""Binary operators (arithmetic, comparisons, bool, set operators, vector matching) and aggregations."""

from __future__ import annotations

import math

import pytest

from aidc.telemetry.promql import QueryError, compile_query, instant_query
from tests.unit.telemetry.memory_source import MemorySource, as_dict


def q(source: MemorySource, expr: str, t: float = 0) -> dict[str, float]:
    return as_dict(compile_query(expr).vector(source, t))


@pytest.fixture
def source() -> MemorySource:
    return MemorySource.from_notation(
        {
            'temp{node="n1", gpu="0"}': "80",
            'temp{node="n1", gpu="1"}': "90",
            'temp{node="n2", gpu="0"}': "70",
            'limit{node="n1"}': "85",
            'limit{node="n2"}': "75",
            'info{node="n1", rack="r1"}': "1",
            'info{node="n2", rack="r2"}': "1",
            'up{node="n1"}': "1",
            'up{node="n2"}': "0",
            'up{node="n3"}': "1",
        }
    )


def test_arithmetic_with_scalars_drops_the_metric_name(source: MemorySource) -> None:
    assert q(source, 'temp{gpu="1"} * 2') == {'{gpu="1", node="n1"}': 180.0}
    assert q(source, 'temp{gpu="1"} - 100') == {'{gpu="1", node="n1"}': -10.0}
    assert q(source, '100 - temp{gpu="1"}') == {'{gpu="1", node="n1"}': 10.0}
    assert q(source, 'temp{gpu="1"} % 7') == {'{gpu="1", node="n1"}': 6.0}
    assert q(source, '2 ^ up{node="n1"}') == {'{node="n1"}': 2.0}
    assert q(source, '-temp{gpu="1"}') == {'{gpu="1", node="n1"}': -90.0}
    assert instant_query(source, "2 ^ 3 ^ 2", 0) == 512.0  # right-associative
    assert instant_query(source, "7 % -3", 0) == 1.0  # Go's math.Mod keeps the dividend's sign


def test_go_float_semantics_instead_of_exceptions(source: MemorySource) -> None:
    assert q(source, 'up{node="n1"} / 0') == {'{node="n1"}': math.inf}
    assert q(source, '-up{node="n1"} / 0') == {'{node="n1"}': -math.inf}
    assert math.isnan(q(source, 'up{node="n2"} / 0')['{node="n2"}'])
    assert math.isnan(q(source, 'up{node="n1"} % 0')['{node="n1"}'])
    assert q(source, 'up{node="n2"} ^ -1') == {'{node="n2"}': math.inf}
    assert math.isnan(instant_query(source, "(-8) ^ 0.5", 0))  # type: ignore[arg-type]
    assert instant_query(source, "10 ^ 400", 0) == math.inf


def test_comparisons_filter_and_keep_the_name(source: MemorySource) -> None:
    assert q(source, "temp > 75") == {'temp{gpu="0", node="n1"}': 80.0, 'temp{gpu="1", node="n1"}': 90.0}
    assert q(source, "75 < temp") == q(source, "temp > 75")  # the vector's value is kept either way
    assert q(source, "temp == 70") == {'temp{gpu="0", node="n2"}': 70.0}
    assert q(source, "temp != 70") == q(source, "temp > 75")
    assert q(source, "temp <= 80") == {'temp{gpu="0", node="n1"}': 80.0, 'temp{gpu="0", node="n2"}': 70.0}
    assert q(source, "temp >= 90") == {'temp{gpu="1", node="n1"}': 90.0}


def test_bool_comparisons_give_zero_or_one(source: MemorySource) -> None:
    assert q(source, "temp > bool 75") == {
        '{gpu="0", node="n1"}': 1.0,
        '{gpu="1", node="n1"}': 1.0,
        '{gpu="0", node="n2"}': 0.0,
    }
    assert instant_query(source, "1 < bool 2", 0) == 1.0
    assert instant_query(source, "2 == bool 3", 0) == 0.0


def test_one_to_one_matching(source: MemorySource) -> None:
    # Default matching: all labels but the name.
    assert q(source, "limit - up") == {'{node="n1"}': 84.0, '{node="n2"}': 75.0}
    assert q(source, "limit > up") == {'limit{node="n1"}': 85.0, 'limit{node="n2"}': 75.0}
    assert q(source, "limit > bool up") == {'{node="n1"}': 1.0, '{node="n2"}': 1.0}
    # on(): the result keeps only the matching labels.
    assert q(source, "info * on(node) limit") == {'{node="n1"}': 85.0, '{node="n2"}': 75.0}
    assert q(source, "info > on(node) up") == {'{node="n2"}': 1.0}  # only the on() labels are kept
    # ignoring(): the result drops the ignored labels.
    assert q(source, "info + ignoring(rack) limit") == {'{node="n1"}': 86.0, '{node="n2"}': 76.0}


def test_many_to_one_with_group_left_and_extra_labels(source: MemorySource) -> None:
    assert q(source, "temp > on(node) group_left limit") == {'temp{gpu="1", node="n1"}': 90.0}
    assert q(source, "temp - on(node) group_left(rack) info") == {
        '{gpu="0", node="n1", rack="r1"}': 79.0,
        '{gpu="1", node="n1", rack="r1"}': 89.0,
        '{gpu="0", node="n2", rack="r2"}': 69.0,
    }
    assert q(source, "limit / on(node) group_right temp") == {
        '{gpu="0", node="n1"}': 85 / 80,
        '{gpu="1", node="n1"}': 85 / 90,
        '{gpu="0", node="n2"}': 75 / 70,
    }
    assert q(source, "info * on(node) group_right(rack) temp") == {
        '{gpu="0", node="n1", rack="r1"}': 80.0,
        '{gpu="1", node="n1", rack="r1"}': 90.0,
        '{gpu="0", node="n2", rack="r2"}': 70.0,
    }


def test_matching_errors_name_the_problem(source: MemorySource) -> None:
    with pytest.raises(QueryError, match="many-to-one matching must be explicit"):
        q(source, "temp - on(node) limit")
    with pytest.raises(QueryError, match="duplicate series for the match group on the right hand-side"):
        q(source, "limit - on(node) group_left temp")
    with pytest.raises(QueryError, match="same labelset"):
        q(source, '{__name__=~"limit|up", node="n1"} * 2')


def test_set_operators(source: MemorySource) -> None:
    assert q(source, "up == 1 and on(node) limit") == {'up{node="n1"}': 1.0}
    assert q(source, "up and limit") == {'up{node="n1"}': 1.0, 'up{node="n2"}': 0.0}
    assert q(source, "up unless limit") == {'up{node="n3"}': 1.0}
    assert q(source, "limit or up") == {'limit{node="n1"}': 85.0, 'limit{node="n2"}': 75.0, 'up{node="n3"}': 1.0}
    assert q(source, "up == 5 or limit") == {'limit{node="n1"}': 85.0, 'limit{node="n2"}': 75.0}
    assert q(source, "limit or up == 5") == {'limit{node="n1"}': 85.0, 'limit{node="n2"}': 75.0}
    assert q(source, "temp and on(node) (up == 0)") == {'temp{gpu="0", node="n2"}': 70.0}
    assert q(source, "temp unless ignoring(gpu) (limit > 80)") == {'temp{gpu="0", node="n2"}': 70.0}
    assert q(source, "up unless nothing") == q(source, "up")
    assert q(source, "nothing and up") == {}


def test_aggregations(source: MemorySource) -> None:
    assert q(source, "sum(temp)") == {"{}": 240.0}
    assert q(source, "sum by (node) (temp)") == {'{node="n1"}': 170.0, '{node="n2"}': 70.0}
    assert q(source, "sum without (gpu) (temp)") == q(source, "sum by (node) (temp)")
    assert q(source, "avg by (node) (temp)") == {'{node="n1"}': 85.0, '{node="n2"}': 70.0}
    assert q(source, "min(temp)") == {"{}": 70.0}
    assert q(source, "max by (gpu) (temp)") == {'{gpu="0"}': 80.0, '{gpu="1"}': 90.0}
    assert q(source, "count by (node) (temp)") == {'{node="n1"}': 2.0, '{node="n2"}': 1.0}
    assert q(source, "group by (node) (temp)") == {'{node="n1"}': 1.0, '{node="n2"}': 1.0}
    assert q(source, "stddev(temp)") == {"{}": pytest.approx(math.sqrt(200 / 3))}
    assert q(source, "stdvar by (node) (temp)") == {'{node="n1"}': 25.0, '{node="n2"}': 0.0}
    assert q(source, "quantile(0.5, temp)") == {"{}": 80.0}
    assert q(source, "quantile(0.25, temp)") == {"{}": 75.0}
    assert q(source, "sum by (__name__) (temp)") == {"temp{}": 240.0}
    assert q(source, "sum by (missing) (temp)") == {"{}": 240.0}
    assert q(source, "sum(nothing)") == {}


def test_topk_bottomk_keep_the_series(source: MemorySource) -> None:
    assert q(source, "topk(2, temp)") == {'temp{gpu="1", node="n1"}': 90.0, 'temp{gpu="0", node="n1"}': 80.0}
    assert q(source, "bottomk by (node) (1, temp)") == {
        'temp{gpu="0", node="n1"}': 80.0,
        'temp{gpu="0", node="n2"}': 70.0,
    }
    assert [s.value for s in compile_query("topk(3, temp)").vector(source, 0)] == [90.0, 80.0, 70.0]
    assert q(source, "topk(0, temp)") == {}
    assert q(source, "topk(scalar(up{node='n1'}), temp)") == {'temp{gpu="1", node="n1"}': 90.0}


def test_count_values(source: MemorySource) -> None:
    assert q(source, 'count_values("v", up)') == {'{v="1"}': 2.0, '{v="0"}': 1.0}
    assert q(source, 'count_values by (node) ("v", up)') == {
        '{node="n1", v="1"}': 1.0,
        '{node="n2", v="0"}': 1.0,
        '{node="n3", v="1"}': 1.0,
    }
    with pytest.raises(QueryError, match="invalid label name"):
        q(source, 'count_values("not valid", up)')


def test_aggregations_follow_go_for_nan_and_inf() -> None:
    source = MemorySource.from_notation({'x{i="1"}': "NaN", 'x{i="2"}': "3", 'x{i="3"}': "Inf", 'x{i="4"}': "1"})
    assert q(source, "max(x)") == {"{}": math.inf}
    assert q(source, "min(x)") == {"{}": 1.0}  # a NaN first is replaced by any number
    assert q(source, 'avg(x{i!="1"})') == {"{}": math.inf}
    assert math.isnan(q(source, "sum(x)")["{}"])
