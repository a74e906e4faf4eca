"""The gateway's metrics as the control plane's telemetry takes them in: histograms flattened into the
`_bucket{le}`, `_sum` and `_count` counters Prometheus stores, and read on the gateway's event loop only."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator

import pytest

from aidc.gateway.metrics import DURATION_BUCKETS, GatewayMetrics
from aidc.gateway.routing import RouteTable
from aidc.gateway.telemetry_feed import LoopReader, families_of
from aidc.telemetry.names import all_names
from aidc.telemetry.series import Family


def _metrics() -> GatewayMetrics:
    m = GatewayMetrics(RouteTable(), clock=lambda: 0.0)
    m.served("chat", "1", 200, 0.03)
    m.served("chat", "1", 200, 0.3)
    m.served("chat", "2", 503, 20.0)
    m.time_to_first_token("chat", 0.02)
    m.tokens("chat", 7, 9)
    return m


def _by_name(families: list[Family]) -> dict[str, Family]:
    return {f.name: f for f in families}


def test_histograms_become_bucket_sum_and_count_counters() -> None:
    found = _by_name(families_of(_metrics()))
    assert all(f.type in ("counter", "gauge") for f in found.values())
    buckets = {dict(labels)["le"]: v for labels, v in found["aidc_gateway_request_duration_seconds_bucket"].samples}
    assert len(buckets) == len(DURATION_BUCKETS) + 1
    # Cumulative, as Prometheus stores them: 0.03 s and 0.3 s are under 0.5, 20 s only under 30 and +Inf.
    assert (buckets["0.025"], buckets["0.05"], buckets["0.5"], buckets["10.0"], buckets["30.0"]) == (0, 1, 2, 2, 3)
    assert buckets["+Inf"] == 3
    (count,) = found["aidc_gateway_request_duration_seconds_count"].samples
    (total,) = found["aidc_gateway_request_duration_seconds_sum"].samples
    assert (dict(count[0]), count[1]) == ({"model": "chat"}, 3)
    assert total[1] == pytest.approx(20.33)
    assert [v for _, v in found["aidc_gateway_time_to_first_token_seconds_count"].samples] == [1]


def test_counters_keep_their_exposed_names_and_labels() -> None:
    found = _by_name(families_of(_metrics()))
    requests = {(d["replica"], d["code"]): v for d, v in (found["aidc_gateway_requests_total"].samples)}
    assert requests == {("1", "200"): 2, ("2", "503"): 1}
    catalog = all_names()
    for name in found:
        base = name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        assert name in catalog or base in catalog, name


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.call_soon_threadsafe(running.stop)
        thread.join(timeout=5)
        running.close()


def test_the_reader_reads_on_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    metrics = _metrics()
    reader = LoopReader(metrics)
    assert reader.families() == []  # not started yet
    reader.bind(loop)
    caller = threading.get_ident()
    seen: list[int] = []
    original = metrics.registry.collect

    def collect():  # type: ignore[no-untyped-def]
        seen.append(threading.get_ident())
        return original()

    metrics.registry.collect = collect  # type: ignore[method-assign]
    assert _by_name(reader.families()).keys() == _by_name(families_of(_metrics())).keys()
    assert len(seen) == 1
    assert seen[0] != caller  # on the loop's thread, not the caller's
    reader.unbind()
    assert reader.families() == []


def test_a_loop_that_does_not_answer_skips_the_read(loop: asyncio.AbstractEventLoop) -> None:
    reader = LoopReader(_metrics(), timeout=0.05)
    reader.bind(loop)
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait)  # the loop is busy until released
    try:
        assert reader.families() == []
    finally:
        release.set()


def test_le_labels_are_normalised() -> None:
    found = _by_name(families_of(_metrics()))
    for labels, _ in found["aidc_gateway_time_to_first_token_seconds_bucket"].samples:
        le = dict(labels)["le"]
        assert le == "+Inf" or repr(float(le)) == le
        assert not math.isnan(float(le))
