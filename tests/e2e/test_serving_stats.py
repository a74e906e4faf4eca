"""Serving statistics on a real `aidc up` with its in-process gateway: two replicas of the fast OpenAI-shaped
stub (bench/stub_upstream.py, started as jobs by the control plane), N requests through the official openai
SDK, then GET /v1/serving/stats and `aidc models stats` count them, with latencies a loopback stub can have."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.server import AidcServer, wait_for
from tests.e2e.test_rollouts import deploy, ready_by_version, stub_spec

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESSAGES: Any = [{"role": "user", "content": "hi"}]
REQUESTS = 25


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    tmp = tmp_path_factory.mktemp("serving-stats")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIDC_METRICS_INTERVAL", "1")  # a telemetry tick a second: the test waits less
        srv = AidcServer(tmp / "data").start()
    try:
        assert deploy(srv, tmp, stub_spec())["outcome"] == "created"
        wait_for(lambda: ready_by_version(srv) == {1: 2}, timeout=60, what="two ready replicas")
        yield srv
    finally:
        srv.stop()
        srv.reap_jobs()


def _stats(server: AidcServer, window: str = "5m") -> list[dict[str, Any]]:
    result = server.cli("models", "stats", "--window", window, "--json")
    assert result.code == 0, result.stderr
    found: list[dict[str, Any]] = result.json()
    return found


def test_stats_count_the_requests_sent(server: AidcServer) -> None:
    client = openai.OpenAI(base_url=f"{server.gateway_url}/v1", api_key=server.token, max_retries=0)
    began = time.monotonic()
    for _ in range(REQUESTS):
        assert client.chat.completions.create(model="stub", messages=MESSAGES).choices[0].message.content == "ok"
    took = time.monotonic() - began

    def counted() -> dict[str, Any] | None:
        stub = next(s for s in _stats(server) if s["model"] == "stub")
        return stub if stub["requests"] >= REQUESTS else None

    stub = wait_for(counted, timeout=30, every=0.5, what="the stats to count the requests")
    assert stub["requests"] == REQUESTS
    assert stub["requests_per_second"] == pytest.approx(REQUESTS / 300)
    assert (stub["errors"], stub["error_ratio"]) == (0, 0)
    assert (stub["replicas"], stub["ready_replicas"]) == (2, 2)
    # Each request took at most the whole loop's time, as the client saw it; a quantile is a bucket's bound
    # at most, and the buckets go by factors of 2 to 2.5.
    assert 0 < stub["latency_p50_seconds"] <= stub["latency_p95_seconds"] <= max(0.01, 2.5 * took)
    assert stub["ttft_p95_seconds"] is None  # nothing was streamed


def test_the_table_and_bad_windows_from_the_cli(server: AidcServer) -> None:
    table = server.cli("models", "stats")
    assert table.code == 0, table.stderr
    assert "stub" in table.stdout
    assert "REQ/S" in table.stdout
    bad = server.cli("models", "stats", "--window", "soon")
    assert bad.code == 2
    assert bad.stderr.strip().startswith("aidc: --window")
    assert len(bad.stderr.strip().splitlines()) == 1
    too_long = server.cli("models", "stats", "--window", "2d")
    assert too_long.code == 2
    assert "window" in too_long.stderr
