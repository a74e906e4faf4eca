"""Canary judgment: the canary's error rate and mean latency against the stable version's, once it has served
enough requests; the reason names the figures."""

from __future__ import annotations

import pytest

from aidc.control.canary import Traffic, rollback_reason
from aidc.domain.serving import RolloutPolicy, RolloutStrategy

POLICY = RolloutPolicy(
    strategy=RolloutStrategy.CANARY, max_error_rate_increase=0.05, max_latency_ratio=1.5, min_requests=50
)


def _traffic(requests: int, errors: int = 0, mean_latency: float = 0.1) -> Traffic:
    return Traffic(requests, errors, mean_latency * (requests - errors))


# --------------------------------------------------------------------------------------------- Traffic


def test_traffic_rates() -> None:
    t = Traffic(requests=200, errors=10, latency_sum=38.0)
    assert t.error_rate == pytest.approx(0.05)
    assert t.mean_latency == pytest.approx(0.2)  # over the 190 successful requests


def test_no_traffic_has_no_error_rate_and_no_latency() -> None:
    assert Traffic().error_rate == 0.0
    assert Traffic().mean_latency is None
    assert Traffic(requests=5, errors=5).mean_latency is None


def test_traffic_adds_up() -> None:
    assert Traffic(10, 1, 2.0) + Traffic(5, 2, 1.0) == Traffic(15, 3, 3.0)


# ------------------------------------------------------------------------------------------- judgment


def test_latency_not_judged_before_min_requests() -> None:
    stable = _traffic(10_000, errors=0)
    assert rollback_reason(stable, _traffic(49, mean_latency=30.0), POLICY) is None
    assert rollback_reason(stable, _traffic(50, mean_latency=30.0), POLICY) is not None


def test_errors_judged_early_only_when_the_outcome_is_certain() -> None:
    # Limit 0 % + 5 % over at least 50 requests: 2 errors could still end at 4 %; 3 cannot end under 6 %.
    stable = _traffic(10_000, errors=0)
    assert rollback_reason(stable, Traffic(requests=2, errors=2), POLICY) is None
    assert rollback_reason(stable, Traffic(requests=3, errors=3), POLICY) is not None
    assert rollback_reason(stable, Traffic(requests=49, errors=2), POLICY) is None
    # An ejected canary gets few requests: its errors alone decide.
    assert rollback_reason(stable, Traffic(requests=4, errors=3), POLICY) is not None


def test_a_healthy_canary_is_kept() -> None:
    assert rollback_reason(_traffic(1000, errors=10), _traffic(100, errors=1), POLICY) is None


def test_error_rate_within_the_margin_is_kept() -> None:
    # stable 1 %, canary 5.5 %: within 1 % + 5 %.
    assert rollback_reason(_traffic(1000, errors=10), _traffic(200, errors=11), POLICY) is None


def test_error_rate_beyond_the_margin_rolls_back_naming_the_figures() -> None:
    reason = rollback_reason(_traffic(1000, errors=10), _traffic(100, errors=20), POLICY)
    assert reason is not None
    assert "error rate" in reason
    assert "20.0%" in reason  # the canary's
    assert "100 requests" in reason
    assert "1.0%" in reason  # the stable version's
    assert "+5.0%" in reason  # the margin


def test_the_margin_is_configurable() -> None:
    strict = POLICY.model_copy(update={"max_error_rate_increase": 0.0})
    assert rollback_reason(_traffic(1000), _traffic(100, errors=1), strict) is not None
    lenient = POLICY.model_copy(update={"max_error_rate_increase": 0.5})
    assert rollback_reason(_traffic(1000), _traffic(100, errors=40), lenient) is None


def test_a_canary_against_a_stable_version_without_traffic() -> None:
    assert rollback_reason(Traffic(), _traffic(100, errors=2), POLICY) is None
    assert rollback_reason(Traffic(), _traffic(100, errors=10), POLICY) is not None


def test_latency_within_the_ratio_is_kept() -> None:
    assert rollback_reason(_traffic(1000, mean_latency=0.1), _traffic(100, mean_latency=0.14), POLICY) is None


def test_latency_beyond_the_ratio_rolls_back_naming_the_figures() -> None:
    reason = rollback_reason(_traffic(1000, mean_latency=0.1), _traffic(100, mean_latency=0.2), POLICY)
    assert reason is not None
    assert "latency" in reason
    assert "200 ms" in reason
    assert "100 ms" in reason
    assert "x1.5" in reason


def test_the_latency_ratio_is_configurable() -> None:
    loose = POLICY.model_copy(update={"max_latency_ratio": 3.0})
    assert rollback_reason(_traffic(1000, mean_latency=0.1), _traffic(100, mean_latency=0.25), loose) is None
    assert rollback_reason(_traffic(1000, mean_latency=0.1), _traffic(100, mean_latency=0.35), loose) is not None


def test_latency_is_not_judged_without_a_stable_latency() -> None:
    assert rollback_reason(Traffic(), _traffic(100, mean_latency=30.0), POLICY) is None
    all_failed = Traffic(requests=100, errors=100)
    assert rollback_reason(all_failed, _traffic(100, errors=0, mean_latency=30.0), POLICY) is None


def test_errors_are_judged_before_latency() -> None:
    reason = rollback_reason(_traffic(1000, mean_latency=0.1), _traffic(100, errors=50, mean_latency=9.0), POLICY)
    assert reason is not None
    assert "error rate" in reason
