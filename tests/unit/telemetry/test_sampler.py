"""The sampler: each collector at its own interval, failures contained, latest families, the sink; stepped by
hand through run_due (no thread), and once on its thread."""

from __future__ import annotations

import logging
import threading

import pytest

from aidc.telemetry.collectors.base import Collector, Sampler
from aidc.telemetry.series import Family

T0 = 1_790_000_000.0


class Counting:
    """A collector that reports how often it ran, or raises what `error` says."""

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self.runs: list[float] = []
        self.error: Exception | None = None

    def collect(self, now: float) -> list[Family]:
        self.runs.append(now)
        if self.error is not None:
            raise self.error
        return [Family(f"{self.name}_runs", "Runs.", "counter", [({"c": self.name}, float(len(self.runs)))])]


def test_each_collector_runs_at_its_own_interval() -> None:
    fast, slow = Counting("fast", 1.0), Counting("slow", 5.0)
    sampler = Sampler([fast, slow], clock=lambda: T0)
    assert sampler.run_due() == ["fast", "slow"]  # all due at once
    assert sampler.run_due(T0 + 0.5) == []
    assert sampler.run_due(T0 + 1.0) == ["fast"]
    for second in range(2, 6):
        sampler.run_due(T0 + second)
    assert fast.runs == [T0 + s for s in range(6)]
    assert slow.runs == [T0, T0 + 5]
    assert sampler.next_due() == T0 + 6


def test_late_runs_keep_the_grid_and_a_long_pause_is_not_caught_up() -> None:
    one = Counting("one", 1.0)
    sampler = Sampler([one])
    sampler.run_due(T0)
    sampler.run_due(T0 + 1.3)  # late: the next one is still due at T0 + 2
    assert sampler.next_due() == T0 + 2
    assert sampler.run_due(T0 + 100) == ["one"]  # one run after a suspend, not 98
    assert sampler.next_due() == T0 + 101


def test_a_clock_set_back_does_not_stall_sampling() -> None:
    one = Counting("one", 1.0)
    sampler = Sampler([one])
    sampler.run_due(T0)
    assert sampler.run_due(T0 - 3600) == ["one"]
    assert sampler.next_due() == T0 - 3599


def test_latest_and_sink() -> None:
    a, b = Counting("a", 1.0), Counting("b", 2.0)
    received: list[tuple[float, str, list[Family]]] = []
    sampler = Sampler([a, b], sink=lambda now, name, families: received.append((now, name, families)))
    assert sampler.latest() == []
    sampler.run_due(T0)
    sampler.run_due(T0 + 1)
    assert [f.name for f in sampler.latest()] == ["a_runs", "b_runs"]
    assert sampler.latest()[0].samples[0][1] == 2.0
    assert [(now, name) for now, name, _ in received] == [(T0, "a"), (T0, "b"), (T0 + 1, "a")]
    assert received[-1][2][0].samples[0][1] == 2.0


def test_a_failing_collector_is_logged_once_per_message_and_goes_stale(caplog: pytest.LogCaptureFixture) -> None:
    good, bad = Counting("good", 1.0), Counting("bad", 1.0)
    received: list[tuple[str, list[Family]]] = []
    sampler = Sampler([good, bad], sink=lambda now, name, families: received.append((name, families)))
    sampler.run_due(T0)
    assert len(sampler.latest()) == 2
    bad.error = OSError("sensor gone")
    with caplog.at_level(logging.INFO):
        for second in range(1, 11):
            assert sampler.run_due(T0 + second) == ["good", "bad"]
        bad.error = OSError("another failure")
        sampler.run_due(T0 + 11)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "sensor gone" in warnings[0]
    assert "another failure" in warnings[1]
    assert [f.name for f in sampler.latest()] == ["good_runs"]  # bad's previous families dropped
    assert received[-1] == ("bad", [])  # the sink learns its series ended
    assert len(good.runs) == 12

    caplog.clear()
    bad.error = None
    with caplog.at_level(logging.INFO):
        sampler.run_due(T0 + 12)
        bad.error = OSError("sensor gone")
        sampler.run_due(T0 + 13)
    messages = [r.getMessage() for r in caplog.records]
    assert any("works again" in m for m in messages)
    assert any("sensor gone" in m for m in messages)  # after a recovery, the same failure is news again


def test_a_failing_sink_does_not_stop_sampling(caplog: pytest.LogCaptureFixture) -> None:
    one = Counting("one", 1.0)

    def sink(now: float, name: str, families: list[Family]) -> None:
        raise RuntimeError("buffer full")

    sampler = Sampler([one], sink=sink)
    with caplog.at_level(logging.WARNING):
        for second in range(5):
            sampler.run_due(T0 + second)
    assert len(one.runs) == 5
    assert len(sampler.latest()) == 1
    assert sum("buffer full" in r.getMessage() for r in caplog.records) == 1


def test_invalid_configurations() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Sampler([Counting("x", 1.0), Counting("x", 2.0)])
    with pytest.raises(ValueError, match="interval"):
        Sampler([Counting("x", 0.0)])


def test_the_thread_samples_until_stopped() -> None:
    one = Counting("one", 0.01)
    three = threading.Event()

    def sink(now: float, name: str, families: list[Family]) -> None:
        if len(one.runs) >= 3:
            three.set()

    collectors: list[Collector] = [one]
    sampler = Sampler(collectors, sink=sink)
    sampler.start()
    with pytest.raises(RuntimeError, match="already"):
        sampler.start()
    try:
        assert three.wait(10)
    finally:
        sampler.stop()
    runs = len(one.runs)
    assert runs >= 3
    assert sampler.latest()[0].samples[0][1] == float(runs)
    assert not any(t.name == "aidc-telemetry-sampler" for t in threading.enumerate())
