"""Instant queries: an expression parsed and compiled once (`compile_query`), evaluated at any time over any
`SeriesSource`."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from aidc.telemetry.promql.compiler import compile_ast, parse
from aidc.telemetry.promql.nodes import MatrixNode, Node, ScalarNode, StringNode, VectorNode
from aidc.telemetry.promql.values import Context, Matrix, QueryError, Sample, Value, Vector
from aidc.telemetry.series import SeriesSource

ValueType = Literal["vector", "scalar", "matrix", "string"]

LOOKBACK = 300.0  # Prometheus' default look-back delta for instant selectors
SUBQUERY_STEP = 60.0  # the step of a subquery that names none (Prometheus: its global evaluation interval)


class Query:
    """A compiled expression. `evaluate` returns a list of `Sample` (instant vector), a float (scalar), a str
    (string) or a `Matrix` (range vector), as `value_type` says."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.root: Node = compile_ast(parse(expr))
        self.value_type: ValueType = _value_type(self.root)

    def __repr__(self) -> str:
        return f"Query({self.expr!r})"

    def _context(self, source: SeriesSource, t: float, lookback: float, subquery_step: float) -> Context:
        return Context(source, t, t, lookback, subquery_step)

    def evaluate(
        self, source: SeriesSource, t: float, *, lookback: float = LOOKBACK, subquery_step: float = SUBQUERY_STEP
    ) -> Value:
        return self.root.eval(self._context(source, t, lookback, subquery_step))

    def vector(
        self, source: SeriesSource, t: float, *, lookback: float = LOOKBACK, subquery_step: float = SUBQUERY_STEP
    ) -> Vector:
        """The result as rules read it: a scalar becomes one sample without labels (as Prometheus' rule
        manager does); a range vector or a string is an error."""
        ctx = self._context(source, t, lookback, subquery_step)
        root = self.root
        if isinstance(root, VectorNode):
            return root.eval(ctx)
        if isinstance(root, ScalarNode):
            return [Sample((), root.eval(ctx))]
        raise QueryError(f"{self.expr!r} gives a {self.value_type}, not an instant vector or a scalar")


def _value_type(node: Node) -> ValueType:
    if isinstance(node, VectorNode):
        return "vector"
    if isinstance(node, ScalarNode):
        return "scalar"
    if isinstance(node, MatrixNode):
        return "matrix"
    assert isinstance(node, StringNode)
    return "string"


@lru_cache(maxsize=1024)
def compile_query(expr: str) -> Query:
    """Parse and compile once (cached by text); raises QueryError (UnsupportedQuery for what is not implemented)."""
    return Query(expr)


def instant_query(source: SeriesSource, expr: str, t: float, *, lookback: float = LOOKBACK) -> Value:
    """Evaluate `expr` at time `t`."""
    return compile_query(expr).evaluate(source, t, lookback=lookback)


__all__ = ["Matrix", "Query", "ValueType", "compile_query", "instant_query"]
