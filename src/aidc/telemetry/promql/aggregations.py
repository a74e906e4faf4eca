"""Aggregation operators (sum, avg, min, max, count, group, stddev, stdvar, topk, bottomk, quantile,
count_values) with by/without, accumulating in the order and with the formulas of Prometheus 2.x's engine,
so that results match it to the last bit (e.g. avg's incremental mean, stddev's Welford update)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from functools import reduce

from aidc.telemetry.promql.nodes import ScalarNode, StringNode, VectorNode
from aidc.telemetry.promql.values import Context, QueryError, Sample, Vector, format_go_float, set_label
from aidc.telemetry.series import NAME_LABEL, Labels

_VALID_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def quantile(q: float, values: list[float]) -> float:
    """Prometheus' `quantile`: linear interpolation between the closest ranks (NaN sorts first, as in Go)."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=lambda v: (not math.isnan(v), v))
    n = float(len(ordered))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[int(lower)] * (1 - weight) + ordered[int(upper)] * weight


def _mean(values: list[float]) -> float:
    mean = values[0]
    count = 1
    for v in values[1:]:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue  # Inf of the same sign: the mean is right already (Inf - Inf would give NaN)
            if not math.isinf(v) and not math.isnan(v):
                continue
        mean += v / count - mean / count
    return mean


def _stdvar(values: list[float]) -> float:
    count = 0
    mean = 0.0
    value = 0.0
    for v in values:
        count += 1
        delta = v - mean
        mean += delta / count
        value += delta * (v - mean)
    return value / count


def _max(values: list[float]) -> float:
    best = values[0]
    for v in values[1:]:
        if best < v or math.isnan(best):
            best = v
    return best


def _min(values: list[float]) -> float:
    best = values[0]
    for v in values[1:]:
        if best > v or math.isnan(best):
            best = v
    return best


SIMPLE: dict[str, Callable[[list[float]], float]] = {
    "sum": lambda values: reduce(operator.add, values),  # left to right, uncompensated: as Prometheus 2.x
    "avg": _mean,
    "min": _min,
    "max": _max,
    "count": lambda values: float(len(values)),
    "group": lambda values: 1.0,
    "stdvar": _stdvar,
    "stddev": lambda values: math.sqrt(_stdvar(values)),
}


def _heap_less(a: Sample, b: Sample, reverse: bool) -> bool:
    if reverse:
        return a.value > b.value or (math.isnan(a.value) and not math.isnan(b.value))
    return a.value < b.value or (math.isnan(a.value) and not math.isnan(b.value))


def _up(heap: list[Sample], j: int, reverse: bool) -> None:
    while j > 0:
        i = (j - 1) // 2
        if i == j or not _heap_less(heap[j], heap[i], reverse):
            break
        heap[i], heap[j] = heap[j], heap[i]
        j = i


def _down(heap: list[Sample], i0: int, n: int, reverse: bool) -> None:
    i = i0
    while True:
        j1 = 2 * i + 1
        if j1 >= n:
            break
        j = j1
        if j1 + 1 < n and _heap_less(heap[j1 + 1], heap[j1], reverse):
            j = j1 + 1
        if not _heap_less(heap[j], heap[i], reverse):
            break
        heap[i], heap[j] = heap[j], heap[i]
        i = j


def top(samples: list[Sample], k: int, bottom: bool) -> list[Sample]:
    """topk/bottomk with Go's container/heap, so ties resolve as in Prometheus."""
    heap: list[Sample] = []
    for s in samples:
        if not heap:
            heap.append(s)
            continue
        head = heap[0].value
        better = head > s.value if bottom else head < s.value
        if len(heap) < k or better or math.isnan(head):
            if len(heap) == k:
                if k == 1:
                    heap[0] = s
                    continue
                heap[0], heap[-1] = heap[-1], heap[0]  # heap.Pop
                _down(heap, 0, len(heap) - 1, bottom)
                heap.pop()
            heap.append(s)  # heap.Push
            _up(heap, len(heap) - 1, bottom)
    nan_last = (lambda s: (math.isnan(s.value), s.value)) if bottom else (lambda s: (not math.isnan(s.value), s.value))
    return sorted(heap, key=nan_last, reverse=not bottom)


class Aggregate(VectorNode):
    def __init__(
        self,
        op: str,
        arg: VectorNode,
        param: ScalarNode | StringNode | None,
        grouping: tuple[str, ...],
        without: bool,
    ) -> None:
        self.op = op
        self.arg = arg
        self.param = param
        self.grouping = grouping
        self.without = without
        self.dropped = frozenset((*grouping, NAME_LABEL))
        self.kept = frozenset(grouping)

    def _group_labels(self, labels: Labels) -> Labels:
        if self.without:
            return tuple(item for item in labels if item[0] not in self.dropped)
        if not self.grouping:
            return ()
        return tuple(item for item in labels if item[0] in self.kept)

    def eval(self, ctx: Context) -> Vector:
        vector = self.arg.eval(ctx)
        param = self.param.eval(ctx) if self.param is not None else None
        if self.op == "count_values":
            assert isinstance(param, str)
            return self._count_values(vector, param)
        groups: dict[Labels, list[Sample]] = {}
        for s in vector:
            groups.setdefault(self._group_labels(s.labels), []).append(s)
        if self.op in ("topk", "bottomk"):
            assert isinstance(param, float)
            if not -(2.0**63) <= param <= 2.0**63 - 1:
                raise QueryError(f"scalar value {param} overflows int64")
            k = int(param)
            if k < 1:
                return []
            return [s for members in groups.values() for s in top(members, k, self.op == "bottomk")]
        if self.op == "quantile":
            assert isinstance(param, float)
            return [Sample(labels, quantile(param, [s.value for s in ms])) for labels, ms in groups.items()]
        fn = SIMPLE[self.op]
        return [Sample(labels, fn([s.value for s in members])) for labels, members in groups.items()]

    def _count_values(self, vector: Vector, label: str) -> Vector:
        if not _VALID_LABEL.match(label):
            raise QueryError(f'invalid label name "{label}" in count_values')
        counts: dict[Labels, int] = {}
        kept = self.kept | {label}
        for s in vector:
            labels = set_label(s.labels, label, format_go_float(s.value))
            if self.without:
                key = tuple(item for item in labels if item[0] not in self.dropped)
            else:
                key = tuple(item for item in labels if item[0] in kept)
            counts[key] = counts.get(key, 0) + 1
        return [Sample(labels, float(n)) for labels, n in counts.items()]
