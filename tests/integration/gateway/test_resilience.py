"""Failures the client should not see (retries, ejection), the one it must (a stream broken after bytes
were sent: never retried), a client that leaves (the replica's request is closed), and route changes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.integration.gateway.conftest import FakeBackplane, Gateway, route
from tests.integration.gateway.stubs import CONTENT, StubReplica

MESSAGES = [{"role": "user", "content": "hi"}]
SLOW_PROBES = {"probe_interval": 60.0}  # readiness checks only at startup: failures are met by requests


def _chat(gw: Gateway, n: int, model: str = "chat-m") -> list[str]:
    client = gw.client()
    return [
        client.chat.completions.create(model=model, messages=MESSAGES).choices[0].message.content or ""  # type: ignore[arg-type]
        for _ in range(n)
    ]


def _metric(gw: Gateway, prefix: str) -> float:
    """The value of the exposition line starting with `prefix` (name and labels), 0 when absent."""
    text = gw.app.metrics.render().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)]
    return sum(values)


def test_a_replica_that_stops_costs_the_client_nothing(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    a, b = stubs("a"), stubs("b")
    gw = gateway(route("chat-m", a, b), **SLOW_PROBES)
    assert _chat(gw, 4) == ["".join(CONTENT)] * 4  # both serve, keep-alive connections open
    assert (a.total, b.total) == (2, 2)
    a.stop()  # connections refused from now on; its idle connections to the gateway are cut
    assert _chat(gw, 10) == ["".join(CONTENT)] * 10
    assert b.total == 12
    assert _metric(gw, 'aidc_gateway_retries_total{model="chat-m"}') >= 1
    assert _metric(gw, 'aidc_gateway_errors_total{kind="connect",model="chat-m",replica="100"}') >= 1
    # Two failures in a row eject it (the test's threshold): later requests do not even try it.
    assert _metric(gw, 'aidc_gateway_replica_ejections_total{model="chat-m",reason="passive",replica="100"}') == 1
    backplane.wait_for(lambda bp: bp.ejected(100) and bp.ready(101), what="a report of replica 100 ejected")


def test_5xx_is_retried_on_another_replica_and_ejects_after_repeated_failures(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    a, b = stubs("a", fail_status=503), stubs("b")
    gw = gateway(route("chat-m", a, b), **SLOW_PROBES)
    assert _chat(gw, 8) == ["".join(CONTENT)] * 8
    assert a.total == 2  # tried, failed twice, then ejected (threshold 2)
    assert b.total == 8
    backplane.wait_for(lambda bp: bp.ejected(100), what="a report of replica 100 ejected")
    # Healthy again: after its cool-down (0.5 s here) one request probes it, and it is readmitted.
    a.fail_status = None
    backplane.wait_for(lambda bp: bp.ready(100), what="replica 100 half-open")
    _chat(gw, 6)
    assert a.total >= 3
    assert _metric(gw, 'aidc_gateway_replica_readmissions_total{model="chat-m",reason="passive",replica="100"}') == 1
    backplane.wait_for(lambda bp: bp.reports[100].requests == a.total, what="a report of every request")
    assert backplane.reports[100].errors == 2


def test_a_stream_that_breaks_after_bytes_were_sent_is_not_retried(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    a, b = stubs("a", break_after=1), stubs("b")
    gw = gateway(route("chat-m", a, b), **SLOW_PROBES)  # round robin: the first request goes to a
    received: list[str | None] = []

    def read() -> None:
        for chunk in gw.client().chat.completions.create(model="chat-m", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            received.append(chunk.choices[0].delta.content if chunk.choices else None)

    with pytest.raises(openai.APIError, match="stream broke"):
        read()
    assert received == ["", CONTENT[0]]  # what a sent before it broke, and nothing from b
    assert (a.total, b.total) == (1, 0)


def test_a_client_that_leaves_a_stream_closes_the_replicas_request(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    a = stubs("a", endless=True)
    gw = gateway(route("chat-m", a))
    stream = gw.client().chat.completions.create(model="chat-m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    for n, _ in enumerate(stream):
        if n == 2:
            break
    stream.close()
    assert a.disconnected.wait(2.0), "the replica's connection stayed open"
    backplane.wait_for(lambda bp: bp.reports[100].in_flight == 0, what="no request in flight")


def test_a_client_that_gives_up_on_a_long_answer_closes_the_replicas_request(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    a = stubs("a", delay=30.0)
    gw = gateway(route("chat-m", a))
    with (
        httpx.Client(base_url=gw.url, headers={"Authorization": "Bearer tok-alice"}) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.post("/v1/chat/completions", json={"model": "chat-m", "messages": MESSAGES}, timeout=0.3)
    assert a.disconnected.wait(2.0), "the replica's connection stayed open"


def test_readiness_checks_eject_and_readmit(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    a, b = stubs("a"), stubs("b")
    gw = gateway(route("chat-m", a, b))
    b.ready = False
    backplane.wait_for(lambda bp: bp.ejected(101), what="replica 101 ejected by its readiness check")
    _chat(gw, 6)
    assert b.total == 0
    b.ready = True
    backplane.wait_for(lambda bp: bp.ready(101), what="replica 101 readmitted")
    _chat(gw, 6)
    assert b.total == 3
    assert _metric(gw, 'aidc_gateway_replica_ejections_total{model="chat-m",reason="probe",replica="101"}') == 1
    assert _metric(gw, 'aidc_gateway_replica_readmissions_total{model="chat-m",reason="probe",replica="101"}') == 1


def test_route_changes_add_a_replica_checked_at_once_and_drop_a_removed_one(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    a, b = stubs("a"), stubs("b")
    gw = gateway(route("chat-m", a), probe_interval=60.0)  # only the new-replica check can admit b
    backplane.set_routes([route("chat-m", a, b)])
    backplane.wait_for(lambda bp: bp.ready(101), what="the new replica ready")
    assert b.probes == 1
    _chat(gw, 4)
    assert (a.total, b.total) == (2, 2)
    backplane.set_routes([route("chat-m", b, first_job=101)])
    backplane.wait_for(backplane.next_routes_call(), what="the gateway to take the new routes")
    _chat(gw, 4)
    assert (a.total, b.total) == (2, 6)
    backplane.set_routes([])
    backplane.wait_for(backplane.next_routes_call(), what="the gateway to take the new routes")
    with pytest.raises(openai.NotFoundError):
        _chat(gw, 1)


def test_usage_is_flushed_at_shutdown(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    a = stubs("a")
    gw = gateway(route("chat-m", a), report_interval=60.0)
    _chat(gw, 3)
    assert backplane.usage == []
    gw.stop()
    assert backplane.tokens_used(1) == (3, 33, 12)
    report = backplane.reports[100]
    assert (report.gateway, report.endpoint, report.requests, report.errors) == ("test-gateway", a.url, 3, 0)
    assert report.latency_sum > 0


def test_concurrent_streams_all_arrive_whole(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    gw = gateway(route("chat-m", stubs("a"), stubs("b")))
    client = gw.client()
    texts: list[str] = []

    def one() -> None:
        chunks = client.chat.completions.create(model="chat-m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert texts == ["".join(CONTENT)] * 16


def test_a_stream_past_the_models_timeout_ends_with_an_error_event(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    gate = threading.Event()  # never opened by the test: the stub stalls before its last chunk
    a = stubs("a", gate=gate)
    gw = gateway(route("chat-m", a, timeout=0.5))
    received: list[str | None] = []

    def read() -> None:
        for chunk in gw.client().chat.completions.create(model="chat-m", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            received.append(chunk.choices[0].delta.content if chunk.choices else None)

    with pytest.raises(openai.APIError, match=r"did not answer within 0\.5 s"):
        read()
    assert received == ["", *CONTENT[:-1]]
    assert a.disconnected.wait(2.0), "the replica's request stayed open"
