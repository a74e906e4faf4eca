"""From promql_parser's AST (a port of Prometheus' own parser, which has checked syntax and types) to the
evaluator's nodes. Whatever the nodes do not implement is refused here, once, with UnsupportedQuery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import promql_parser as pp

from aidc.telemetry.promql.aggregations import Aggregate
from aidc.telemetry.promql.binary import (
    ARITHMETIC,
    COMPARISON,
    SET_OPERATORS,
    Card,
    Matching,
    ScalarBinary,
    SetBinary,
    VectorBinary,
    VectorScalarBinary,
)
from aidc.telemetry.promql.functions import (
    DATES,
    MATH,
    Absent,
    DateOfTime,
    ElementWise,
    LabelJoin,
    LabelReplace,
    Pi,
    ScalarOf,
    Sort,
    Time,
    Timestamp,
    VectorOf,
    WithScalars,
    string_arg,
)
from aidc.telemetry.promql.histogram import HistogramQuantile
from aidc.telemetry.promql.nodes import (
    MatrixNode,
    NegateScalar,
    NegateVector,
    Node,
    NumberNode,
    ScalarNode,
    StringNode,
    StringValueNode,
    VectorNode,
)
from aidc.telemetry.promql.range_functions import RANGE_FUNCTIONS, SCALAR_FIRST, AbsentOverTime, RangeFunction
from aidc.telemetry.promql.selectors import NOW, At, MatrixSelectorNode, SubqueryNode, VectorSelectorNode
from aidc.telemetry.promql.values import QueryError, UnsupportedQuery
from aidc.telemetry.series import NAME_LABEL, Labels, Matcher

_MATCH_OPS: dict[str, Literal["=", "!=", "=~", "!~"]] = {
    "Equal": "=",
    "NotEqual": "!=",
    "Re": "=~",
    "NotRe": "!~",
}
AGGREGATIONS = frozenset(
    {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values"}
)


def parse(expr: str) -> pp.Expr:
    try:
        return pp.parse(expr)
    except ValueError as exc:
        raise QueryError(f"{exc} in {expr!r}") from None


def compile_ast(node: Any) -> Node:
    if isinstance(node, pp.ParenExpr):
        return compile_ast(node.expr)
    if isinstance(node, pp.NumberLiteral):
        return NumberNode(float(node.val))
    if isinstance(node, pp.StringLiteral):
        return StringValueNode(node.val)
    if isinstance(node, pp.VectorSelector):
        matchers, offset, at = _selector(node)
        return VectorSelectorNode(matchers, offset, at)
    if isinstance(node, pp.MatrixSelector):
        matchers, offset, at = _selector(node.vector_selector)
        return MatrixSelectorNode(matchers, node.range.total_seconds(), offset, at)
    if isinstance(node, pp.SubqueryExpr):
        inner = _vector(compile_ast(node.expr), "subquery")
        step = node.step.total_seconds() if node.step is not None else None
        offset = node.offset.total_seconds() if node.offset is not None else 0.0
        assert node.range is not None
        return SubqueryNode(inner, node.range.total_seconds(), step or None, offset, _at(node.at))
    if isinstance(node, pp.UnaryExpr):
        arg = compile_ast(node.expr)
        if isinstance(arg, ScalarNode):
            return NegateScalar(arg)
        return NegateVector(_vector(arg, "unary minus"))
    if isinstance(node, pp.BinaryExpr):
        return _binary(node)
    if isinstance(node, pp.AggregateExpr):
        return _aggregate(node)
    if isinstance(node, pp.Call):
        return _call(node)
    raise UnsupportedQuery(f"expression {node} is not supported")


# ------------------------------------------------------------------------------------------- selectors
def _at(at: Any) -> At:
    if at is None:
        return NOW
    kind = str(at.type).rsplit(".", 1)[-1]
    if kind == "At":
        return At(fixed=at.at.timestamp())
    return At(query=True)  # start() and end(): an instant query's own time


def _selector(vs: Any) -> tuple[tuple[Matcher, ...], float, At]:
    if vs.matchers.or_matchers:
        raise UnsupportedQuery("'or' inside a label selector is not supported")
    matchers = [Matcher(m.name, _MATCH_OPS[str(m.op).rsplit(".", 1)[-1]], m.value) for m in vs.matchers.matchers]
    if vs.name:
        matchers.insert(0, Matcher(NAME_LABEL, "=", vs.name))
    elif not any(m.name == NAME_LABEL for m in matchers):
        # The source is asked by metric name: a selector without one reads every name.
        matchers.insert(0, Matcher(NAME_LABEL, "=~", ".+"))
    offset = vs.offset.total_seconds() if vs.offset is not None else 0.0
    return tuple(matchers), offset, _at(vs.at)


def _absent_labels(arg: Any) -> Labels:
    """absent()'s labels: those of the selector's equality matchers (none for a label matched twice)."""
    if isinstance(arg, pp.MatrixSelector):
        arg = arg.vector_selector
    if not isinstance(arg, pp.VectorSelector):
        return ()
    found: dict[str, str] = {}
    dropped: set[str] = set()
    for m in arg.matchers.matchers:
        if m.name == NAME_LABEL:
            continue
        if _MATCH_OPS[str(m.op).rsplit(".", 1)[-1]] == "=" and m.name not in found:
            found[m.name] = m.value
        else:
            dropped.add(m.name)
    return tuple(sorted((k, v) for k, v in found.items() if k not in dropped and v))


# -------------------------------------------------------------------------------------- type narrowing
def _vector(node: Node, where: str) -> VectorNode:
    if not isinstance(node, VectorNode):
        raise QueryError(f"{where} expects an instant vector")
    return node


def _scalar(node: Node, where: str) -> ScalarNode:
    if not isinstance(node, ScalarNode):
        raise QueryError(f"{where} expects a scalar")
    return node


def _matrix(node: Node, where: str) -> MatrixNode:
    if not isinstance(node, MatrixNode):
        raise QueryError(f"{where} expects a range vector")
    return node


def _string(node: Node, where: str) -> StringNode:
    if not isinstance(node, StringNode):
        raise QueryError(f"{where} expects a string")
    return node


# ----------------------------------------------------------------------------------------- operators
def _binary(node: Any) -> Node:
    op = str(node.op)
    lhs, rhs = compile_ast(node.lhs), compile_ast(node.rhs)
    modifier = node.modifier
    return_bool = bool(modifier is not None and modifier.return_bool)
    if op not in ARITHMETIC and op not in COMPARISON and op not in SET_OPERATORS:
        raise UnsupportedQuery(f"binary operator {op} is not supported")
    if modifier is not None and (modifier.fill_values.lhs is not None or modifier.fill_values.rhs is not None):
        raise UnsupportedQuery("fill() in vector matching is not supported")
    if isinstance(lhs, ScalarNode) and isinstance(rhs, ScalarNode):
        folded = ScalarBinary(op, lhs, rhs)
        if isinstance(lhs, NumberNode) and isinstance(rhs, NumberNode):  # constants: computed once
            return NumberNode(folded.fn(lhs.value, rhs.value))
        return folded
    if isinstance(lhs, ScalarNode):
        return VectorScalarBinary(op, _vector(rhs, op), lhs, True, return_bool)
    if isinstance(rhs, ScalarNode):
        return VectorScalarBinary(op, _vector(lhs, op), rhs, False, return_bool)
    matching = _matching(modifier)
    if op in SET_OPERATORS:
        return SetBinary(op, _vector(lhs, op), _vector(rhs, op), matching)
    return VectorBinary(op, _vector(lhs, op), _vector(rhs, op), matching, return_bool)


_CARDS: dict[str, Card] = {
    "OneToOne": "one-to-one",
    "ManyToOne": "many-to-one",
    "OneToMany": "one-to-many",
    "ManyToMany": "many-to-many",
}


def _matching(modifier: Any) -> Matching:
    if modifier is None:
        return Matching()
    card = _CARDS[str(modifier.card).rsplit(".", 1)[-1].split("(", 1)[0]]
    on = False
    labels: tuple[str, ...] = ()
    if modifier.matching is not None:
        on = str(modifier.matching.type).endswith("Include")
        labels = tuple(modifier.matching.labels)
    include = tuple(modifier.group_labels or ()) if card in ("many-to-one", "one-to-many") else ()
    return Matching(card, on, labels, include)


def _aggregate(node: Any) -> VectorNode:
    op = str(node.op)
    if op not in AGGREGATIONS:
        raise UnsupportedQuery(f"aggregation {op} is not supported")
    arg = _vector(compile_ast(node.expr), op)
    param: ScalarNode | StringNode | None = None
    if node.param is not None:
        compiled = compile_ast(node.param)
        param = _string(compiled, op) if op == "count_values" else _scalar(compiled, op)
    grouping: tuple[str, ...] = ()
    without = False
    if node.modifier is not None:
        without = str(node.modifier.type).endswith("Without")
        grouping = tuple(node.modifier.labels)
    return Aggregate(op, arg, param, grouping, without)


# ------------------------------------------------------------------------------------------- functions
def _call(node: Any) -> Node:
    name: str = node.func.name
    builder = _FUNCTIONS.get(name)
    if builder is None:
        raise UnsupportedQuery(f"function {name} is not supported")
    ast_args = list(node.args)
    return builder([compile_ast(a) for a in ast_args], ast_args)


def _range_function(name: str) -> Callable[[list[Node], list[Any]], Node]:
    def build(args: list[Node], ast_args: list[Any]) -> Node:
        if name in SCALAR_FIRST:
            scalars, matrix = args[:1], args[1]
        else:
            matrix, scalars = args[0], args[1:]
        return RangeFunction(name, _matrix(matrix, name), tuple(_scalar(s, name) for s in scalars))

    return build


def _element_wise(name: str, fn: Callable[[float], float]) -> Callable[[list[Node], list[Any]], Node]:
    return lambda args, ast_args: ElementWise(fn, _vector(args[0], name))


def _date(name: str, fn: Callable[[float], float]) -> Callable[[list[Node], list[Any]], Node]:
    return lambda args, ast_args: ElementWise(fn, _vector(args[0], name)) if args else DateOfTime(fn)


def _with_scalars(name: str) -> Callable[[list[Node], list[Any]], Node]:
    return lambda args, ast_args: WithScalars(name, _vector(args[0], name), tuple(_scalar(a, name) for a in args[1:]))


def _label_replace(args: list[Node], ast_args: list[Any]) -> Node:
    dst, replacement, src, regex = (string_arg(_string(a, "label_replace")) for a in args[1:])
    return LabelReplace(_vector(args[0], "label_replace"), dst, replacement, src, regex)


def _label_join(args: list[Node], ast_args: list[Any]) -> Node:
    dst, separator, *sources = (string_arg(_string(a, "label_join")) for a in args[1:])
    return LabelJoin(_vector(args[0], "label_join"), dst, separator, tuple(sources))


_FUNCTIONS: dict[str, Callable[[list[Node], list[Any]], Node]] = {
    **{name: _range_function(name) for name in RANGE_FUNCTIONS},
    **{name: _element_wise(name, fn) for name, fn in MATH.items()},
    **{name: _date(name, fn) for name, fn in DATES.items()},
    **{name: _with_scalars(name) for name in ("round", "clamp", "clamp_min", "clamp_max")},
    "absent": lambda a, ast: Absent(_vector(a[0], "absent"), _absent_labels(ast[0])),
    "absent_over_time": lambda a, ast: AbsentOverTime(_matrix(a[0], "absent_over_time"), _absent_labels(ast[0])),
    "time": lambda a, ast: Time(),
    "pi": lambda a, ast: Pi(),
    "scalar": lambda a, ast: ScalarOf(_vector(a[0], "scalar")),
    "vector": lambda a, ast: VectorOf(_scalar(a[0], "vector")),
    "timestamp": lambda a, ast: Timestamp(_vector(a[0], "timestamp")),
    "sort": lambda a, ast: Sort(_vector(a[0], "sort"), descending=False),
    "sort_desc": lambda a, ast: Sort(_vector(a[0], "sort_desc"), descending=True),
    "histogram_quantile": lambda a, ast: HistogramQuantile(
        _scalar(a[0], "histogram_quantile"), _vector(a[1], "histogram_quantile")
    ),
    "label_replace": _label_replace,
    "label_join": _label_join,
}
SUPPORTED_FUNCTIONS = frozenset(_FUNCTIONS)
