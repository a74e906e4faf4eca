"""The circuit breaker's transitions, with explicit times."""

from __future__ import annotations

import pytest

from aidc.gateway.health import BreakerState, CircuitBreaker, HealthConfig

T = 100.0


def fail(b: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        b.record_failure(now, b.dispatch(now))


def test_ejected_after_threshold_consecutive_failures_only() -> None:
    b = CircuitBreaker(HealthConfig(failure_threshold=3))
    fail(b, T, 2)
    b.record_success(T, b.dispatch(T))  # a success in between resets the count
    fail(b, T, 2)
    assert b.state(T) is BreakerState.CLOSED
    assert b.admits(T)
    fail(b, T)
    assert b.state(T) is BreakerState.OPEN
    assert not b.admits(T + 9.9)
    assert b.ejections == 1
    assert b.ejected_until == pytest.approx(T + 10)


def test_half_open_admits_exactly_one_probe_and_success_readmits() -> None:
    b = CircuitBreaker()
    fail(b, T, 3)
    assert b.state(T + 10) is BreakerState.HALF_OPEN
    assert b.admits(T + 10)
    probe = b.dispatch(T + 10)
    assert not b.admits(T + 10.5)
    b.record_success(T + 11, probe)
    assert b.state(T + 11) is BreakerState.CLOSED
    assert b.admits(T + 11)
    assert b.ejected_until is None


def test_probe_failure_ejects_again_for_longer_up_to_the_cap() -> None:
    b = CircuitBreaker(HealthConfig(base_ejection=10, max_ejection=30, growth=2))
    fail(b, T, 3)
    fail(b, T + 10)  # the probe fails: ejected again, 20 s
    assert b.state(T + 10) is BreakerState.OPEN
    assert b.ejected_until == pytest.approx(T + 30)
    fail(b, T + 30)  # 40 s, capped at 30
    assert b.ejected_until == pytest.approx(T + 60)
    assert b.ejections == 3


def test_cool_down_starts_again_at_base_after_a_long_healthy_stretch() -> None:
    b = CircuitBreaker(HealthConfig(base_ejection=10, forgive_after=100))
    fail(b, T, 3)
    b.record_success(T + 10, b.dispatch(T + 10))
    fail(b, T + 20, 3)  # soon after: the cool-down grows
    assert b.ejected_until == pytest.approx(T + 40)
    b.record_success(T + 40, b.dispatch(T + 40))
    fail(b, T + 200, 3)  # long after: base again
    assert b.ejected_until == pytest.approx(T + 210)


def test_results_of_requests_sent_before_the_ejection_are_ignored() -> None:
    b = CircuitBreaker()
    old = [b.dispatch(T) for _ in range(5)]
    for g in old[:3]:
        b.record_failure(T, g)
    assert b.state(T) is BreakerState.OPEN
    b.record_failure(T + 1, old[3])  # does not extend the cool-down
    assert b.ejected_until == pytest.approx(T + 10)
    probe = b.dispatch(T + 10)
    b.record_success(T + 10.5, old[4])  # a late success is no probe result
    assert b.state(T + 10.5) is BreakerState.HALF_OPEN
    assert not b.admits(T + 10.5)
    b.record_success(T + 11, probe)
    assert b.state(T + 11) is BreakerState.CLOSED


def test_a_cancelled_probe_frees_the_slot() -> None:
    b = CircuitBreaker()
    fail(b, T, 3)
    probe = b.dispatch(T + 10)
    assert not b.admits(T + 10)
    b.release(probe)
    assert b.admits(T + 10)
    assert b.state(T + 10) is BreakerState.HALF_OPEN


def test_not_ready_is_never_admitted_whatever_the_breaker() -> None:
    b = CircuitBreaker(ready=False)
    assert not b.admits(T)
    b.mark_ready(True)
    assert b.admits(T)


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"base_ejection": 0}, {"base_ejection": 20, "max_ejection": 10}, {"growth": 0.5}],
)
def test_bad_config_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        HealthConfig(**kwargs)  # type: ignore[arg-type]
