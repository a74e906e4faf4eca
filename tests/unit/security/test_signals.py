"""Burst counting over a sliding window, with the time passed in."""

from __future__ import annotations

from aidc.security.signals import BurstCounter


def test_a_burst_is_raised_once_per_window() -> None:
    counter = BurstCounter(threshold=3, window=60)
    assert [counter.hit("10.0.0.1", t) for t in (0, 1, 2, 3, 4)] == [False, False, True, False, False]
    assert counter.count("10.0.0.1", 4) == 5
    assert not counter.hit("10.0.0.2", 4)  # per key
    assert counter.count("10.0.0.1", 70) == 0  # all left the window
    assert [counter.hit("10.0.0.1", t) for t in (70, 71, 72)] == [False, False, True]  # a new burst


def test_retry_after_is_when_the_key_falls_under_the_threshold() -> None:
    counter = BurstCounter(threshold=2, window=10)
    assert counter.retry_after("c", 0) is None
    counter.hit("c", 0)
    counter.hit("c", 4)
    assert counter.retry_after("c", 5) == 5.0  # the event at 0 leaves at 10
    assert counter.retry_after("c", 10) is None


def test_memory_is_bounded() -> None:
    counter = BurstCounter(threshold=2, window=10, max_keys=100)
    for i in range(1000):
        counter.hit(f"k{i}", float(i))
    assert len(counter._keys) <= 100
