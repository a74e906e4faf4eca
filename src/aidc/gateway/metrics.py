"""The gateway's Prometheus metrics, in a registry of its own (names in aidc.telemetry.names).

The hot path only adds to plain dicts (one lookup per metric, no locks: every update and every scrape
runs on the gateway's event loop); a collector turns them into Prometheus families at scrape time,
together with in-flight and readiness per replica read from the route table.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from aidc.gateway.routing import RouteTable
from aidc.telemetry import names

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

Labels = tuple[str, ...]


class _Histogram:
    __slots__ = ("bounds", "series")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.series: dict[Labels, list[float]] = {}  # per labels: counts per bucket (+Inf last), then the sum

    def observe(self, labels: Labels, value: float) -> None:
        row = self.series.get(labels)
        if row is None:
            row = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        row[bisect.bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def family(self, series: names.SeriesName) -> HistogramMetricFamily:
        family = HistogramMetricFamily(series.name, series.help, labels=series.labels)
        edges = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        for labels, row in self.series.items():
            cumulative, buckets = 0.0, []
            for edge, count in zip(edges, row[:-1], strict=True):
                cumulative += count
                buckets.append((edge, cumulative))
            family.add_metric(list(labels), buckets, row[-1])
        return family


class _Collector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        m = self._metrics
        for series, values in m.counters():
            family = CounterMetricFamily(series.name, series.help, labels=series.labels)
            for key, value in values.items():
                family.add_metric(list(key), value)
            yield family
        yield m.duration_histogram.family(names.GATEWAY_REQUEST_DURATION)
        yield m.ttft_histogram.family(names.GATEWAY_TTFT)
        in_flight = GaugeMetricFamily(
            names.GATEWAY_IN_FLIGHT.name, names.GATEWAY_IN_FLIGHT.help, labels=names.GATEWAY_IN_FLIGHT.labels
        )
        ready = GaugeMetricFamily(
            names.GATEWAY_REPLICA_READY.name,
            names.GATEWAY_REPLICA_READY.help,
            labels=names.GATEWAY_REPLICA_READY.labels,
        )
        now = m.clock()
        for state in m.table.models():
            for replica in state.pool.replicas():
                pair = [state.model, replica.id]
                in_flight.add_metric(pair, state.pool.stats(replica.id).in_flight)
                ready.add_metric(pair, 1.0 if m.table.ready(state, replica.id, now) else 0.0)
        yield in_flight
        yield ready


class GatewayMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, table: RouteTable, clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self.clock = clock
        self.requests: dict[Labels, float] = {}
        self.errors: dict[Labels, float] = {}
        self.tokens_counted: dict[Labels, float] = {}
        self.ejections: dict[Labels, float] = {}
        self.readmissions: dict[Labels, float] = {}
        self.retries: dict[Labels, float] = {}
        self.limited: dict[Labels, float] = {}
        self.duration_histogram = _Histogram(DURATION_BUCKETS)
        self.ttft_histogram = _Histogram(TTFT_BUCKETS)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def counters(self) -> list[tuple[names.SeriesName, dict[Labels, float]]]:
        return [
            (names.GATEWAY_REQUESTS, self.requests),
            (names.GATEWAY_ERRORS, self.errors),
            (names.GATEWAY_TOKENS, self.tokens_counted),
            (names.GATEWAY_EJECTIONS, self.ejections),
            (names.GATEWAY_READMISSIONS, self.readmissions),
            (names.GATEWAY_RETRIES, self.retries),
            (names.GATEWAY_RATE_LIMITED, self.limited),
        ]

    @staticmethod
    def _add(counter: dict[Labels, float], labels: Labels, amount: float = 1.0) -> None:
        counter[labels] = counter.get(labels, 0.0) + amount

    def request(self, model: str, replica: str, code: int) -> None:
        key = (model, replica, str(code))
        self.requests[key] = self.requests.get(key, 0.0) + 1.0

    def served(self, model: str, replica: str, code: int, seconds: float) -> None:
        """request() and duration() together: a request that was proxied (the hot path's one call)."""
        key = (model, replica, str(code))
        self.requests[key] = self.requests.get(key, 0.0) + 1.0
        self.duration_histogram.observe((model,), seconds)

    def error(self, model: str, replica: str, kind: str) -> None:
        self._add(self.errors, (model, replica, kind))

    def duration(self, model: str, seconds: float) -> None:
        self.duration_histogram.observe((model,), seconds)

    def time_to_first_token(self, model: str, seconds: float) -> None:
        self.ttft_histogram.observe((model,), seconds)

    def tokens(self, model: str, prompt: int, completion: int) -> None:
        if prompt:
            self._add(self.tokens_counted, (model, "prompt"), prompt)
        if completion:
            self._add(self.tokens_counted, (model, "completion"), completion)

    def ejection(self, model: str, replica: str, reason: str) -> None:
        self._add(self.ejections, (model, replica, reason))

    def readmission(self, model: str, replica: str, reason: str) -> None:
        self._add(self.readmissions, (model, replica, reason))

    def retry(self, model: str) -> None:
        self._add(self.retries, (model,))

    def rate_limited(self, scope: str, limit: str) -> None:
        self._add(self.limited, (scope, limit))

    def render(self) -> bytes:
        return generate_latest(self.registry)
