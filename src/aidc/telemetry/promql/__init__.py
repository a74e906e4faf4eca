"""PromQL over our own series: instant queries with Prometheus' semantics (look-back, staleness, vector
matching, aggregations, rate's extrapolation, histogram_quantile...). Expressions are parsed by
`promql_parser` (a port of Prometheus' parser) and compiled once into a tree of evaluator nodes.

    query = compile_query('DCGM_FI_DEV_GPU_TEMP > 85')
    for sample in query.vector(source, time.time()):
        ...
"""

from aidc.telemetry.promql.compiler import AGGREGATIONS, SUPPORTED_FUNCTIONS
from aidc.telemetry.promql.evaluator import LOOKBACK, Query, ValueType, compile_query, instant_query
from aidc.telemetry.promql.values import (
    Matrix,
    QueryError,
    RangeSeries,
    Sample,
    UnsupportedQuery,
    Value,
    Vector,
)

__all__ = [
    "AGGREGATIONS",
    "LOOKBACK",
    "SUPPORTED_FUNCTIONS",
    "Matrix",
    "Query",
    "QueryError",
    "RangeSeries",
    "Sample",
    "UnsupportedQuery",
    "Value",
    "ValueType",
    "Vector",
    "compile_query",
    "instant_query",
]
