"""Serving statistics from a real GatewayMetrics: requests recorded through its public methods, taken in by the
real TelemetryService (the periodic source `aidc up` adds for its in-process gateway) on ticks of a FakeClock,
then read per model by ServingStats over deployments in the real store (migrated SQLite)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest

from aidc.domain.errors import InvalidInput, PermissionDenied
from aidc.gateway.backplane import ModelRoute, Upstream
from aidc.gateway.metrics import GatewayMetrics
from aidc.gateway.routing import RouteTable
from aidc.gateway.telemetry_feed import families_of
from aidc.security.rbac import Role
from aidc.services.control_metrics import ControlMetrics
from aidc.services.serving_stats import ModelStats, ServingStats
from aidc.services.telemetry import TelemetryService
from aidc.store.sql_store import SqlStore
from aidc.telemetry.tsdb import MemoryTSDB
from tests.fixtures.identity import ADMIN, guard_and_audit, principal
from tests.integration.services.test_serving import ALICE, BOB, Harness, serve_spec

TICK = 5.0


class Feed:
    """A gateway's metrics and the control plane's telemetry taking them in each tick."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        guard, _ = guard_and_audit(h.store, h.clock)
        self.telemetry = TelemetryService(h.store, h.clock, guard, ControlMetrics(h.store, "fake"), MemoryTSDB())
        self.gateway = GatewayMetrics(RouteTable())
        self.telemetry.add_periodic("gateway", 0.0, lambda: None, lambda: families_of(self.gateway), expose=False)
        self.stats = ServingStats(h.service, self.telemetry.tsdb)

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            self.h.clock.advance(TICK)
            self.telemetry.tick()

    def one(self, model: str, window: float, who=ADMIN) -> ModelStats:  # type: ignore[no-untyped-def]
        found = [s for s in self.stats.stats(who, window) if s.model == model]
        assert len(found) == 1, found
        return found[0]


@pytest.fixture
def feed(store: SqlStore) -> Iterator[Feed]:
    h = Harness(store)
    try:
        h.apply(serve_spec("chat", replicas=2))
        h.apply(serve_spec("rival", job_queue="other"))
        h.steady("chat")
        h.steady("rival")
        f = Feed(h)
        f.tick()
        yield f
    finally:
        h.close()


def _traffic(gw: GatewayMetrics, fast: int, slow: int, failed: int) -> None:
    for _ in range(fast):
        gw.served("chat", "1", 200, 0.03)  # in (0.025, 0.05]
        gw.tokens("chat", 10, 20)
    for _ in range(slow):
        gw.served("chat", "2", 200, 0.3)  # in (0.25, 0.5]
        gw.tokens("chat", 10, 20)
    for _ in range(failed):
        gw.served("chat", "2", 502, 0.3)
        gw.error("chat", "2", "upstream_5xx")


def test_requests_errors_latency_and_tokens_of_a_window(feed: Feed) -> None:
    _traffic(feed.gateway, fast=20, slow=10, failed=3)
    for ttft in (0.02, 0.02, 0.2):
        feed.gateway.time_to_first_token("chat", ttft)
    feed.tick()
    s = feed.one("chat", 60.0)
    assert (s.requests, s.errors, s.failed_attempts) == (33, 3, 3)
    assert s.requests_per_second == pytest.approx(33 / 60)
    assert s.error_ratio == pytest.approx(3 / 33)
    assert s.prompt_tokens_per_second == pytest.approx(300 / 60)
    assert s.completion_tokens_per_second == pytest.approx(600 / 60)
    # The median request took 0.03 s: it is interpolated inside that bucket; the 95th percentile was 0.3 s.
    assert s.latency_p50 is not None
    assert 0.025 < s.latency_p50 <= 0.05
    assert s.latency_p95 is not None
    assert 0.25 < s.latency_p95 <= 0.5
    assert s.ttft_p50 is not None
    assert 0.01 < s.ttft_p50 <= 0.025
    assert s.ttft_p95 is not None
    assert 0.1 < s.ttft_p95 <= 0.25
    assert (s.deployment, s.replicas, s.ready_replicas) == ("chat", 2, 2)


def test_a_model_without_traffic_has_zero_rates_and_no_quantiles(feed: Feed) -> None:
    _traffic(feed.gateway, fast=5, slow=0, failed=0)  # no streamed request: no time to first token
    feed.tick()
    quiet = feed.one("rival", 60.0)
    assert (quiet.requests, quiet.requests_per_second, quiet.error_ratio) == (0, 0, None)
    assert (quiet.latency_p50, quiet.latency_p95, quiet.ttft_p50, quiet.ttft_p95) == (None, None, None, None)
    assert feed.one("chat", 60.0).ttft_p95 is None


def test_requests_before_the_window_do_not_count(feed: Feed) -> None:
    _traffic(feed.gateway, fast=40, slow=0, failed=0)
    feed.tick(times=13)  # 65 s: the burst is now outside a 60 s window
    _traffic(feed.gateway, fast=0, slow=6, failed=0)
    feed.tick()
    s = feed.one("chat", 60.0)
    assert s.requests == 6
    assert s.latency_p50 is not None
    assert s.latency_p50 > 0.25


def test_a_gateway_restart_is_a_counter_reset(feed: Feed) -> None:
    _traffic(feed.gateway, fast=8, slow=0, failed=0)
    feed.tick()
    feed.gateway = GatewayMetrics(RouteTable())  # counters back to 0 (the source reads the new one)
    _traffic(feed.gateway, fast=3, slow=0, failed=0)
    feed.tick()
    assert feed.one("chat", 60.0).requests == 11


def test_history_spreads_the_requests_over_its_steps(feed: Feed) -> None:
    began = feed.h.clock.now().timestamp()  # the buffer's first ingest (the fixture's tick)
    _traffic(feed.gateway, fast=12, slow=0, failed=0)
    feed.tick(times=12)
    _traffic(feed.gateway, fast=6, slow=0, failed=0)
    feed.tick()
    now = feed.h.clock.now().timestamp()
    by_model = {x.model: x for x in feed.stats.stats(ADMIN, 60.0, history=600.0)}
    ends = [t for t, _ in by_model["chat"].history]
    step = 60.0  # a minute per step for spans up to a day
    # From the step the buffer started in (nothing drawn before it), to now.
    assert ends[0] - step < began < ends[0]
    assert ends[-1] == now
    assert all(b - a == step for a, b in itertools.pairwise(ends[:-1]))  # the last one ends now
    begins = [math.ceil(e / step) * step - step for e in ends]
    counted = sum(v * (e - b) for (e, v), b in zip(by_model["chat"].history, begins, strict=True))
    assert counted == pytest.approx(18)
    assert by_model["rival"].history == []  # never served a request: no series, nothing to draw


def test_members_see_their_teams_models_only(feed: Feed) -> None:
    assert {s.model for s in feed.stats.stats(ALICE, 60.0)} == {"chat"}
    assert {s.model for s in feed.stats.stats(BOB, 60.0)} == {"rival"}
    assert {s.model for s in feed.stats.stats(ADMIN, 60.0)} == {"chat", "rival"}
    with pytest.raises(PermissionDenied):
        feed.stats.stats(principal("svc", Role.INFERENCE), 60.0)


def test_a_window_out_of_range_names_the_field(feed: Feed) -> None:
    for window in (1.0, 7 * 3600.0):
        with pytest.raises(InvalidInput) as caught:
            feed.stats.stats(ADMIN, window)
        assert caught.value.problems[0].field == "window"


def test_the_gateway_series_are_queryable_but_not_exposed_twice(feed: Feed) -> None:
    _traffic(feed.gateway, fast=2, slow=0, failed=0)
    feed.tick()
    assert "aidc_gateway_requests_total" in feed.telemetry.tsdb.names()
    assert "aidc_gateway_request_duration_seconds_bucket" in feed.telemetry.tsdb.names()
    assert b"aidc_gateway_" not in feed.telemetry.exposition(ADMIN)


def test_in_flight_is_summed_over_the_models_replicas(feed: Feed) -> None:
    table = RouteTable()
    upstreams = (Upstream(1, "http://127.0.0.1:1", 1), Upstream(2, "http://127.0.0.1:2", 1))
    table.update([ModelRoute("chat", "chat", "round_robin", 30.0, "/health", upstreams, 0.0)], 0.0)
    state = table.get("chat")
    assert state is not None
    for replica, busy in zip(state.pool.replicas(), (3, 4), strict=True):
        state.pool.stats(replica.id).in_flight = busy
    feed.gateway = GatewayMetrics(table)
    feed.tick()
    assert feed.one("chat", 60.0).in_flight == 7
    assert feed.one("rival", 60.0).in_flight == 0
