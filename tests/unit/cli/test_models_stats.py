"""`aidc models stats`: a bad window is refused before anything is sent (one line naming --window, exit 2); the
window reaches the request; the table writes each figure with its unit and "-" where there is none."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from aidc.cli import main as cli_main
from aidc.client import AidcClient

ROW: dict[str, Any] = {
    "model": "chat-m", "deployment": "chat", "team": "ml", "window_seconds": 300.0, "requests": 600.0,
    "requests_per_second": 2.0, "errors": 6.0, "error_ratio": 0.01, "failed_attempts": 7.0,
    "latency_p50_seconds": 0.042, "latency_p95_seconds": 1.5, "ttft_p50_seconds": None, "ttft_p95_seconds": None,
    "prompt_tokens_per_second": 40.0, "completion_tokens_per_second": 12.5, "in_flight": 3.0, "replicas": 2,
    "ready_replicas": 1, "history": [],
}  # fmt: skip


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aidc", "--url", "http://127.0.0.1:9", "--token", "t", "models", "stats", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    windows: list[str] = []

    def serving_stats(self: AidcClient, window: str = "5m") -> list[dict[str, Any]]:
        windows.append(window)
        return [ROW]

    monkeypatch.setattr(AidcClient, "serving_stats", serving_stats)
    return windows


@pytest.mark.parametrize("window", ["soon", "-5m", "5 parsecs"])
def test_a_bad_window_names_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], asked: list[str], window: str
) -> None:
    code, out, err = run(monkeypatch, capsys, "--window", window)
    assert code == 2
    assert err.startswith("aidc: --window:")
    assert len(err.strip().splitlines()) == 1
    assert (out, asked) == ("", [])


def test_json_is_what_the_api_answered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], asked: list[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "--window", "1h", "--json")
    assert code == 0
    assert json.loads(out) == [ROW]
    assert asked == ["1h"]


def test_the_table_writes_units_and_dashes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], asked: list[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys)
    assert code == 0
    assert asked == ["5m"]
    line = next(x for x in out.splitlines() if "chat-m" in x)
    for text in ("1/2", "2.00", "1.0% (6)", "42 ms", "1.50 s", "40.0/12.5"):
        assert text in line, (text, line)
    assert line.count(" - ") >= 2  # no streamed request: no time to first token
