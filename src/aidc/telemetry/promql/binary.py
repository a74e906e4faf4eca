"""Binary operators: arithmetic, comparisons (filters, or 0/1 with `bool`) and the set operators, between
scalars and vectors, with vector matching (on/ignoring, group_left/group_right) as promql/engine.go does it."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aidc.telemetry.promql.nodes import ScalarNode, VectorNode
from aidc.telemetry.promql.values import (
    Context,
    QueryError,
    Sample,
    Vector,
    check_unique,
    drop_name,
    format_labels,
    go_div,
    go_mod,
    go_pow,
    keep_labels,
    set_label,
    without_labels,
)
from aidc.telemetry.series import NAME_LABEL, Labels

ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": go_div,
    "%": go_mod,
    "^": go_pow,
    "atan2": math.atan2,
}
COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}
SET_OPERATORS = frozenset({"and", "or", "unless"})

Card = Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]


@dataclass(frozen=True)
class Matching:
    """How two vectors' elements pair up: on the listed labels (`on`) or on all but them (`ignoring`; the
    metric name is always ignored), and which labels group_left/group_right copy from the "one" side."""

    card: Card = "one-to-one"
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()

    def signature(self) -> Callable[[Labels], tuple[object, ...]]:
        if self.on:
            names = tuple(sorted(self.labels))

            def by_on(labels: Labels) -> tuple[object, ...]:
                found = dict(labels)
                return tuple(found.get(name, "") for name in names)

            return by_on
        ignored = frozenset((NAME_LABEL, *self.labels))

        def by_ignoring(labels: Labels) -> tuple[object, ...]:
            return tuple(item for item in labels if item[0] not in ignored)

        return by_ignoring


class ScalarBinary(ScalarNode):
    def __init__(self, op: str, lhs: ScalarNode, rhs: ScalarNode) -> None:
        self.lhs, self.rhs = lhs, rhs
        self.fn: Callable[[float, float], float]
        if op in ARITHMETIC:
            self.fn = ARITHMETIC[op]
        else:  # the parser allows scalar comparisons only with `bool`
            compare = COMPARISON[op]
            self.fn = lambda a, b: 1.0 if compare(a, b) else 0.0

    def eval(self, ctx: Context) -> float:
        return self.fn(self.lhs.eval(ctx), self.rhs.eval(ctx))


class VectorScalarBinary(VectorNode):
    """`vector op scalar` or, swapped, `scalar op vector`. A comparison keeps the vector's value either way."""

    def __init__(self, op: str, vector: VectorNode, scalar: ScalarNode, swapped: bool, return_bool: bool) -> None:
        self.op = op
        self.vector, self.scalar = vector, scalar
        self.swapped = swapped
        self.return_bool = return_bool

    def eval(self, ctx: Context) -> Vector:
        vector = self.vector.eval(ctx)
        s = self.scalar.eval(ctx)
        if self.op in COMPARISON:
            cmp = COMPARISON[self.op]
            if self.return_bool:
                if self.swapped:
                    return [Sample(drop_name(x.labels), 1.0 if cmp(s, x.value) else 0.0) for x in vector]
                return [Sample(drop_name(x.labels), 1.0 if cmp(x.value, s) else 0.0) for x in vector]
            if self.swapped:
                return [x for x in vector if cmp(s, x.value)]
            return [x for x in vector if cmp(x.value, s)]
        fn = ARITHMETIC[self.op]
        if self.swapped:
            out = [Sample(drop_name(x.labels), fn(s, x.value)) for x in vector]
        else:
            out = [Sample(drop_name(x.labels), fn(x.value, s)) for x in vector]
        check_unique(out)
        return out


class VectorBinary(VectorNode):
    """Arithmetic or comparison between two vectors: one-to-one, or many-to-one/one-to-many with group_x."""

    def __init__(self, op: str, lhs: VectorNode, rhs: VectorNode, matching: Matching, return_bool: bool) -> None:
        self.op = op
        self.lhs, self.rhs = lhs, rhs
        self.matching = matching
        self.return_bool = return_bool
        self.signature = matching.signature()
        self.comparison = op in COMPARISON
        self.drop_name = not self.comparison or return_bool
        self.matching_labels = frozenset(matching.labels)

    def _result_labels(self, lhs: Labels, rhs: Labels) -> Labels:
        labels = drop_name(lhs) if self.drop_name else lhs
        m = self.matching
        if m.card == "one-to-one":
            names = self.matching_labels
            labels = keep_labels(labels, names) if m.on else without_labels(labels, names)
        if m.include:  # group_x(labels) copies these from the "one" side
            one = dict(rhs)
            for name in m.include:
                labels = set_label(labels, name, one.get(name, ""))
        return labels

    def eval(self, ctx: Context) -> Vector:
        lhs, rhs = self.lhs.eval(ctx), self.rhs.eval(ctx)
        if not lhs or not rhs:
            return []
        m = self.matching
        swapped = m.card == "one-to-many"
        if swapped:  # the code below treats the right-hand side as the "one" side
            lhs, rhs = rhs, lhs
        sig = self.signature
        one: dict[tuple[object, ...], Sample] = {}
        for r in rhs:
            key = sig(r.labels)
            if key in one:
                side = "left" if swapped else "right"
                raise QueryError(
                    f"found duplicate series for the match group on the {side} hand-side of the operation: "
                    f"[{format_labels(r.labels)}, {format_labels(one[key].labels)}]; many-to-many matching not "
                    "allowed: matching labels must be unique on one side"
                )
            one[key] = r
        matched: dict[tuple[object, ...], set[Labels] | None] = {}
        out: Vector = []
        arith = ARITHMETIC.get(self.op)
        cmp = COMPARISON.get(self.op)
        for ls in lhs:
            key = sig(ls.labels)
            rs = one.get(key)
            if rs is None:
                continue
            a, b = (rs.value, ls.value) if swapped else (ls.value, rs.value)
            if cmp is not None:
                keep = cmp(a, b)
                if self.return_bool:
                    value = 1.0 if keep else 0.0
                elif not keep:
                    continue
                else:
                    value = a
            else:
                assert arith is not None
                value = arith(a, b)
            labels = self._result_labels(ls.labels, rs.labels)
            if m.card == "one-to-one":
                if key in matched:
                    raise QueryError(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                    )
                matched[key] = None
            else:
                seen = matched.setdefault(key, set())
                assert seen is not None
                if labels in seen:
                    raise QueryError("multiple matches for labels: grouping labels must ensure unique results")
                seen.add(labels)
            out.append(Sample(labels, value))
        if self.drop_name:
            check_unique(out)
        return out


class SetBinary(VectorNode):
    """and / or / unless: which left (or right) elements to keep, by their matching labels; values untouched."""

    def __init__(self, op: str, lhs: VectorNode, rhs: VectorNode, matching: Matching) -> None:
        self.op = op
        self.lhs, self.rhs = lhs, rhs
        self.signature = matching.signature()

    def eval(self, ctx: Context) -> Vector:
        lhs, rhs = self.lhs.eval(ctx), self.rhs.eval(ctx)
        sig = self.signature
        if self.op == "and":
            if not lhs or not rhs:
                return []
            right = {sig(r.labels) for r in rhs}
            return [x for x in lhs if sig(x.labels) in right]
        if self.op == "or":
            if not lhs:
                return rhs
            if not rhs:
                return lhs
            left = {sig(x.labels) for x in lhs}
            return lhs + [r for r in rhs if sig(r.labels) not in left]
        if not lhs or not rhs:  # unless
            return lhs
        right = {sig(r.labels) for r in rhs}
        return [x for x in lhs if sig(x.labels) not in right]
