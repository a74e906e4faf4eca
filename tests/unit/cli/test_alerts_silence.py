"""`aidc alerts silence|silences|expire|ack`: bad values are refused before anything is sent, in one line naming
the option, exit 2; good ones become the request the server gets (the HTTP transport is replaced, so no server)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from aidc.cli import main as cli_main
from aidc.client import AidcClient

SILENCE_ID = "00000000-0000-4000-8000-000000000001"
SILENCE: dict[str, Any] = {
    "id": SILENCE_ID,
    "matchers": [{"name": "alertname", "value": "GpuHot", "is_regex": False, "is_equal": True}],
    "starts_at": "2026-11-24T12:00:00Z",
    "ends_at": "2026-11-24T14:00:00Z",
    "created_by": "olivia",
    "comment": "fan swap",
    "updated_at": "2026-11-24T12:00:00Z",
    "state": "active",
}


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aidc", "--url", "http://127.0.0.1:9", "--token", "t", "alerts", *args])
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def serve(monkeypatch: pytest.MonkeyPatch, answer: Callable[[httpx.Request], httpx.Response]) -> list[httpx.Request]:
    """Route the CLI's client to `answer` instead of the network; returns the requests it got."""
    seen: list[httpx.Request] = []
    original = AidcClient.__init__

    def init(self: AidcClient, base_url: str, token: str | None, timeout: float = 30.0) -> None:
        original(self, base_url, token, timeout)

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return answer(request)

        self._http = httpx.Client(base_url=self.base_url, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(AidcClient, "__init__", init)
    return seen


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--match", "alertname", "--for", "1h", "--comment", "x"], "--match: 'alertname' is not a matcher"),
        (["--match", "a b=c", "--for", "1h", "--comment", "x"], "--match:"),
        (["--match", "a=b", "--for", "soon", "--comment", "x"], "--for: cannot read 'soon' as a duration"),
        (["--match", "a=b", "--for", "0s", "--comment", "x"], "--for: must be longer than 0s"),
        (["--match", "a=b", "--for", "1h", "--comment", "  "], "--comment: required"),
    ],
)
def test_bad_values_name_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    seen = serve(monkeypatch, lambda r: httpx.Response(500))
    code, out, err = run(monkeypatch, capsys, "silence", *args)
    assert (code, out) == (2, "")
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert seen == []  # refused before anything was sent


def test_silence_sends_the_matchers_and_prints_the_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = serve(monkeypatch, lambda r: httpx.Response(201, json=SILENCE))
    matches = ["--match", "alertname=GpuHot", "--match", 'Hostname=~"gpu-.*"', "--match", "severity!=info"]
    code, out, err = run(monkeypatch, capsys, "silence", *matches, "--for", "2h", "--comment", "fan swap")
    assert (code, out, err) == (0, SILENCE_ID + "\n", "")
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/v1/silences")
    assert json.loads(request.content) == {
        "matchers": [
            {"name": "alertname", "value": "GpuHot", "is_regex": False, "is_equal": True},
            {"name": "Hostname", "value": "gpu-.*", "is_regex": True, "is_equal": True},
            {"name": "severity", "value": "info", "is_regex": False, "is_equal": False},
        ],
        "duration": "2h",
        "comment": "fan swap",
    }


def test_a_field_the_server_refuses_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = {"field": "matchers[0].value", "problem": "not a valid regular expression: missing )"}
    serve(monkeypatch, lambda r: httpx.Response(422, json={"detail": "x", "errors": [problem]}))
    code, out, err = run(monkeypatch, capsys, "silence", "--match", "node=~gpu-(", "--for", "1h", "--comment", "x")
    assert (code, out) == (2, "")
    assert "matchers[0].value" in err
    assert len(err.strip().splitlines()) == 1


def test_silences_leaves_out_the_expired_unless_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expired = {**SILENCE, "id": "00000000-0000-4000-8000-000000000002", "state": "expired"}
    serve(monkeypatch, lambda r: httpx.Response(200, json=[SILENCE, expired]))
    code, out, _ = run(monkeypatch, capsys, "silences", "--json")
    assert code == 0
    assert [s["id"] for s in json.loads(out)] == [SILENCE["id"]]
    code, out, _ = run(monkeypatch, capsys, "silences", "--json", "--all")
    assert [s["state"] for s in json.loads(out)] == ["active", "expired"]


def test_expire_and_ack_call_their_routes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(200, json={**SILENCE, "state": "expired"})
        return httpx.Response(200, json={"by": "olivia", "at": "2026-11-24T12:00:00Z", "comment": "on it"})

    seen = serve(monkeypatch, answer)
    assert run(monkeypatch, capsys, "expire", SILENCE_ID)[:2] == (0, f"expired silence {SILENCE_ID}\n")
    assert run(monkeypatch, capsys, "ack", "0123456789abcdef", "--comment", "on it")[:2] == (
        0,
        "acknowledged 0123456789abcdef as olivia\n",
    )
    assert [(r.method, r.url.path) for r in seen] == [
        ("DELETE", f"/v1/silences/{SILENCE_ID}"),
        ("POST", "/v1/alerts/0123456789abcdef/ack"),
    ]
    assert json.loads(seen[1].content) == {"comment": "on it"}
