"""The gateway's metrics as the control plane's telemetry takes them in (`aidc up` with the gateway in-process).

Histograms become the series Prometheus stores for them: `NAME_bucket{le}`, `NAME_sum` and `NAME_count`, each a
counter family. The time-series buffer keeps counters by default, so quantiles over a window can be computed from
bucket increases (aidc.telemetry.quantile) without the buffer learning about histograms, and nothing else grows.

Thread-safety: GatewayMetrics' dicts and the route table are only ever touched on the gateway's event loop (no
locks on the hot path). The telemetry thread must not iterate them while the loop inserts, so `read_on_loop`
schedules the whole read on the loop and waits for it, a few milliseconds once per tick."""

from __future__ import annotations

import asyncio
import logging
import math
from concurrent.futures import TimeoutError as FutureTimeout

from prometheus_client.core import Metric

from aidc.gateway.metrics import GatewayMetrics
from aidc.telemetry.series import Family, MetricType

log = logging.getLogger(__name__)


def families_of(metrics: GatewayMetrics) -> list[Family]:
    """The gateway's counters, gauges and flattened histograms as aidc families. Call on the gateway's loop."""
    out: list[Family] = []
    for metric in metrics.registry.collect():
        out.extend(_flatten(metric))
    return out


def _flatten(metric: Metric) -> list[Family]:
    if metric.type in ("counter", "gauge"):
        kind: MetricType = "counter" if metric.type == "counter" else "gauge"
        by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            by_name.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        return [Family(name, metric.documentation, kind, rows) for name, rows in by_name.items()]
    if metric.type == "histogram":
        parts: dict[str, list[tuple[dict[str, str], float]]] = {"_bucket": [], "_sum": [], "_count": []}
        for sample in metric.samples:
            suffix = sample.name.removeprefix(metric.name)
            if suffix in parts:
                labels = dict(sample.labels)
                if "le" in labels:  # one spelling per bound ("+Inf", "0.25"), as Prometheus normalises it
                    bound = float(labels["le"])
                    labels["le"] = "+Inf" if math.isinf(bound) else repr(bound)
                parts[suffix].append((labels, float(sample.value)))
        return [
            Family(metric.name + suffix, f"{metric.documentation} ({suffix[1:]})", "counter", rows)
            for suffix, rows in parts.items()
        ]
    return []


class LoopReader:
    """Reads the gateway's families on its event loop from another thread (the telemetry thread)."""

    def __init__(self, metrics: GatewayMetrics, timeout: float = 2.0) -> None:
        self._metrics = metrics
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the gateway runs on (known once it starts)."""
        self._loop = loop

    def unbind(self) -> None:
        self._loop = None

    def families(self) -> list[Family]:
        """The current families; none before the gateway starts, after it stops, or when its loop does not
        answer in time (the counters are cumulative: the next tick catches up)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return []
        future = asyncio.run_coroutine_threadsafe(self._read(), loop)
        try:
            return future.result(self._timeout)
        except FutureTimeout:
            future.cancel()
            log.warning("the gateway's event loop did not answer within %gs: its metrics skip a tick", self._timeout)
            return []
        except RuntimeError:  # the loop stopped meanwhile
            return []

    async def _read(self) -> list[Family]:
        return families_of(self._metrics)
