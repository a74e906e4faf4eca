"""The webhook sender against a real HTTP receiver on 127.0.0.1 that records the bodies it gets."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aidc.telemetry.alert import Alert, AlertState
from aidc.telemetry.notify import NotifyConfig
from aidc.telemetry.webhook import WebhookNotifier, safe_url

T0 = 1_800_000_000.0


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, within: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.bodies) >= count:
                    return list(self.bodies)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} bodies, got {len(self.bodies)}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with rec.lock:
                rec.bodies.append(body)
                rec.headers.append(dict(self.headers))
                status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
    thread.join(5)


def hot(state: AlertState = AlertState.FIRING, resolved_at: float | None = None) -> Alert:
    return Alert(
        labels={"alertname": "GpuHot", "severity": "warning", "gpu": "0"},
        annotations={"summary": "GPU 0 is hot"},
        state=state,
        active_at=T0,
        value=90.0,
        fired_at=T0,
        resolved_at=resolved_at,
    )


def test_firing_then_resolved_arrive(receiver: Receiver) -> None:
    with WebhookNotifier(receiver.url, NotifyConfig(group_wait=30), headers={"X-Token": "t"}) as notifier:
        notifier.update([hot()], T0)
        assert notifier.flush(T0 + 10) == []
        [result] = notifier.flush(T0 + 30)
        assert result.ok
        assert result.status_code == 200
        notifier.update([hot(AlertState.RESOLVED, T0 + 100)], T0 + 100)
        [result] = notifier.flush(T0 + 330)
        assert result.ok
    bodies = receiver.wait_for(2)
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert receiver.headers[0]["X-Token"] == "t"


def test_receiver_answering_500_gets_the_body_again(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [500]
    with WebhookNotifier(receiver.url, NotifyConfig(group_wait=0, retry_backoff=2)) as notifier:
        notifier.update([hot()], T0)
        with caplog.at_level(logging.WARNING, "aidc.telemetry.webhook"):
            [failed] = notifier.flush(T0)
        assert not failed.ok
        assert failed.status_code == 500
        assert notifier.flush(T0 + 1) == []  # backing off
        [retried] = notifier.flush(T0 + 2)
        assert retried.ok
    bodies = receiver.wait_for(2)
    assert bodies[0] == bodies[1]
    [line] = [r.getMessage() for r in caplog.records]
    assert receiver.url in line
    assert "HTTP 500" in line
    assert "\n" not in line


def test_client_error_waits_for_the_group_interval(receiver: Receiver) -> None:
    receiver.statuses = [400]
    with WebhookNotifier(receiver.url, NotifyConfig(group_wait=0, group_interval=300)) as notifier:
        notifier.update([hot()], T0)
        assert not notifier.flush(T0)[0].ok
        assert notifier.flush(T0 + 60) == []
        notifier.update([hot()], T0 + 300)
        assert notifier.flush(T0 + 300)[0].ok


def test_connection_refused_is_logged_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    url = "http://user:secret@127.0.0.1:9/hook?token=secret2"  # port 9 (discard): nothing listens
    with WebhookNotifier(url, NotifyConfig(group_wait=0), timeout=2) as notifier:
        notifier.update([hot()], T0)
        with caplog.at_level(logging.WARNING, "aidc.telemetry.webhook"):
            [result] = notifier.flush(T0)
    assert not result.ok
    assert result.status_code is None
    [line] = [r.getMessage() for r in caplog.records]
    assert "secret" not in line
    assert "http://127.0.0.1:9/hook" in line


def test_safe_url() -> None:
    assert safe_url("https://a:b@example.com:8443/p?x=1#f") == "https://example.com:8443/p"
    assert safe_url("http://[::1]:9093/") == "http://[::1]:9093/"


def test_background_thread_flushes(receiver: Receiver) -> None:
    now = [T0]
    notifier = WebhookNotifier(receiver.url, NotifyConfig(group_wait=30))
    notifier.start(lambda: now[0], every=0.01)
    try:
        notifier.update([hot()], T0)
        now[0] = T0 + 30
        [body] = receiver.wait_for(1)
        assert body["status"] == "firing"
    finally:
        notifier.close()
