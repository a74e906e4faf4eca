"""Bad and unsupported expressions fail at compile time with a QueryError naming the problem."""

from __future__ import annotations

import pytest

from aidc.telemetry.promql import SUPPORTED_FUNCTIONS, QueryError, UnsupportedQuery, compile_query


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("sum(", "unclosed left parenthesis"),
        ("rate(x)", "expected type matrix in call to function 'rate'"),
        ("x[5x]", "bad number or duration syntax"),
        ("foo(x)", "unknown function with name 'foo'"),
        ("1 > 2", "comparisons between scalars must use BOOL modifier"),
        ('{a=""}', "at least one non-empty matcher"),
        ("x and 1", "set operator 'and' not allowed"),
    ],
)
def test_parse_errors_name_the_problem(expr: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as caught:
        compile_query(expr)
    assert expr in str(caught.value)
    assert not isinstance(caught.value, UnsupportedQuery)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("histogram_count(x)", "function histogram_count is not supported"),
        ("sort_by_label(x)", "function sort_by_label is not supported"),
        ("mad_over_time(x[5m])", "function mad_over_time is not supported"),
        ("limitk(2, x)", "aggregation limitk is not supported"),
        ('x{a="1" or b="2"}', "'or' inside a label selector is not supported"),
        ("x - fill(0) y", "fill"),
    ],
)
def test_valid_but_unsupported_promql_is_refused_clearly(expr: str, message: str) -> None:
    with pytest.raises(UnsupportedQuery, match=message):
        compile_query(expr)


def test_the_required_functions_are_supported() -> None:
    required = {
        *("rate", "irate", "increase", "delta", "idelta", "changes", "resets"),
        *("avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time"),
        *("quantile_over_time", "stddev_over_time", "present_over_time", "absent", "absent_over_time"),
        *("abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "sqrt", "exp", "ln", "log2", "log10"),
        *("time", "timestamp", "vector", "scalar", "histogram_quantile", "label_replace", "label_join"),
        *("sort", "sort_desc"),
    }
    assert required <= SUPPORTED_FUNCTIONS
