"""The evaluator's tree: an expression is compiled once into these nodes, each typed by what it yields (the
parser has already checked the types), so evaluation never dispatches on a value's kind."""

from __future__ import annotations

from abc import ABC, abstractmethod

from aidc.telemetry.promql.values import Context, Matrix, Sample, Vector, check_unique, drop_name


class VectorNode(ABC):
    @abstractmethod
    def eval(self, ctx: Context) -> Vector: ...


class ScalarNode(ABC):
    @abstractmethod
    def eval(self, ctx: Context) -> float: ...


class MatrixNode(ABC):
    @abstractmethod
    def eval(self, ctx: Context) -> Matrix: ...


class StringNode(ABC):
    @abstractmethod
    def eval(self, ctx: Context) -> str: ...


Node = VectorNode | ScalarNode | MatrixNode | StringNode


class NumberNode(ScalarNode):
    def __init__(self, value: float) -> None:
        self.value = value

    def eval(self, ctx: Context) -> float:
        return self.value


class StringValueNode(StringNode):
    def __init__(self, value: str) -> None:
        self.value = value

    def eval(self, ctx: Context) -> str:
        return self.value


class NegateScalar(ScalarNode):
    def __init__(self, arg: ScalarNode) -> None:
        self.arg = arg

    def eval(self, ctx: Context) -> float:
        return -self.arg.eval(ctx)


class NegateVector(VectorNode):
    """Unary minus drops the metric name, as arithmetic does."""

    def __init__(self, arg: VectorNode) -> None:
        self.arg = arg

    def eval(self, ctx: Context) -> Vector:
        out = [Sample(drop_name(s.labels), -s.value) for s in self.arg.eval(ctx)]
        check_unique(out)
        return out
