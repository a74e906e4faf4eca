"""Retry rules, the retry budget, backoff and Retry-After."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from aidc.gateway.retry import Backoff, BudgetConfig, Outcome, RetryBudget, may_retry, parse_retry_after, retryable

T = 500.0
CONNECT = Outcome(connection_error=True)


def roomy() -> RetryBudget:
    return RetryBudget(BudgetConfig(ratio=0, min_per_second=100))


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (CONNECT, True),
        (Outcome(status=500), True),
        (Outcome(status=502), True),
        (Outcome(status=503), True),
        (Outcome(status=599), True),
        (Outcome(status=501), False),
        (Outcome(status=200), False),
        (Outcome(status=400), False),
        (Outcome(status=429), False),
        (Outcome(), False),  # e.g. a timeout: retrying a long generation would only double the load
    ],
)
def test_retryable_outcomes(outcome: Outcome, expected: bool) -> None:
    assert retryable(outcome, bytes_sent=False) is expected


@pytest.mark.parametrize("outcome", [CONNECT, Outcome(status=503)])
def test_never_after_bytes_reached_the_client(outcome: Outcome) -> None:
    budget = roomy()
    assert not may_retry(outcome, True, 1, budget, now=T)
    assert budget.available(T) == 1000  # and the refusal cost nothing
    assert may_retry(outcome, False, 1, budget, now=T)


def test_attempts_are_bounded() -> None:
    budget = roomy()
    assert may_retry(CONNECT, False, 2, budget, now=T, max_attempts=3)
    assert not may_retry(CONNECT, False, 3, budget, now=T, max_attempts=3)


def test_a_retry_after_too_long_to_hold_the_request_is_not_retried() -> None:
    budget = roomy()
    assert not may_retry(Outcome(status=503, retry_after=30), False, 1, budget, now=T, max_retry_after=10)
    assert may_retry(Outcome(status=503, retry_after=5), False, 1, budget, now=T, max_retry_after=10)


def test_budget_exhausts_then_refills_as_the_window_slides() -> None:
    budget = RetryBudget(BudgetConfig(ratio=0.2, min_per_second=0.5, window=10))  # reserve: 5 retries
    assert sum(may_retry(CONNECT, False, 1, budget, now=T) for _ in range(8)) == 5
    assert not budget.try_spend(T + 5)
    assert budget.try_spend(T + 11)  # the retries taken at T have left the window


def test_budget_grows_with_requests() -> None:
    budget = RetryBudget(BudgetConfig(ratio=0.2, min_per_second=0, window=10))
    assert not budget.try_spend(T)
    for i in range(100):
        budget.record_request(T + i * 0.01)
    assert budget.available(T + 1) == pytest.approx(20)
    assert sum(budget.try_spend(T + 1) for _ in range(30)) == 20
    assert budget.available(T + 12) == 0  # deposits and withdrawals both expired


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(base=0.1, cap=0.5)
    rng = random.Random(4)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (40, 0.5), (10_000, 0.5)]:
        waits = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # jittered over the whole range, not stuck at its bottom
        assert len(set(waits)) > 100


def test_backoff_is_never_shorter_than_retry_after() -> None:
    backoff = Backoff(base=0.1, cap=0.5)
    rng = random.Random(5)
    assert all(backoff.delay(1, rng, retry_after=2.0) == 2.0 for _ in range(50))
    waits = [backoff.delay(3, rng, retry_after=0.2) for _ in range(200)]
    assert min(waits) == 0.2
    assert max(waits) > 0.2


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0
    for bad in (None, "", "-3", "soon", "Wed, 99 Foo 2024"):
        assert parse_retry_after(bad, now) is None


def test_bad_budget_config_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        BudgetConfig(window=0)
