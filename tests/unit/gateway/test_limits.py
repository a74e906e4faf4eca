"""Rate limits: the limits file, and the limiter's sliding windows (time passed in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aidc.gateway.limits import CONCURRENCY_RETRY_AFTER, Admission, Limit, Limits, RateLimiter, Refusal, load_limits

T0 = 1000.0


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    return path


def test_load_limits_reads_default_teams_and_keys_merged_over_the_default(tmp_path: Path) -> None:
    limits = load_limits(
        _write(
            tmp_path,
            """
default: {requests_per_minute: 60, tokens_per_minute: 10000, concurrent: 4}
teams:
  ml: {requests_per_minute: 600}
keys:
  17: {concurrent: 32}
  "18": {tokens_per_minute: null}
""",
        )
    )
    assert limits.default == Limit(60, 10000, 4)
    assert limits.teams == {"ml": Limit(requests_per_minute=600)}
    assert limits.for_key(17) == Limit(60, 10000, 32)
    assert limits.for_key(18) == Limit(60, None, 4)
    assert limits.for_key(99) == limits.default
    assert limits.for_key(None) == limits.default
    assert limits.for_team("ml") == Limit(requests_per_minute=600)
    assert limits.for_team("other") is None


def test_an_empty_file_is_unlimited(tmp_path: Path) -> None:
    assert load_limits(_write(tmp_path, "")).unlimited


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("default: {requests_per_minute: 0}", "default.requests_per_minute: must be a whole number of at least 1"),
        ("default: {rpm: 5}", "default.rpm: unknown field"),
        ("teams: {ml: {concurrent: 1.5}}", "teams.ml.concurrent: must be a whole number"),
        ("keys: {alice: {concurrent: 1}}", "keys.alice: a key is an API token id"),
        ("keys: {3: {concurrent: true}}", "keys.3.concurrent: must be a whole number"),
        ("limits: {}", "limits: unknown field"),
        ("teams: [ml]", "teams: must be a mapping"),
        ("- 1", "a limits file is a mapping"),
        ("default: {requests_per_minute: [", "invalid YAML at line 1"),
    ],
)
def test_bad_files_name_the_file_the_field_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match="limits") as caught:
        load_limits(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read it"):
        load_limits(tmp_path / "nope.yaml")


def _admitted(result: Admission | Refusal) -> Admission:
    assert isinstance(result, Admission), result
    return result


def _refused(result: Admission | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_requests_per_minute_is_a_sliding_window_with_an_exact_retry_after() -> None:
    limiter = RateLimiter(Limits(default=Limit(requests_per_minute=3)))
    for t in (0.0, 10.0, 20.0):
        limiter.release(_admitted(limiter.admit(1, 1, None, T0 + t)), 0, T0 + t)
    refusal = _refused(limiter.admit(1, 1, None, T0 + 30))
    assert (refusal.scope, refusal.limit, refusal.retry_after) == ("key", "requests", 30.0)
    assert refusal.message == "Rate limit reached: requests per minute for this API key. Retry in 30 s."
    _refused(limiter.admit(1, 1, None, T0 + 59.9))
    _admitted(limiter.admit(1, 1, None, T0 + 60.0))  # the first one left the window
    assert _refused(limiter.admit(1, 1, None, T0 + 60.5)).retry_after == pytest.approx(9.5)


def test_a_refusal_takes_nothing() -> None:
    limiter = RateLimiter(Limits(default=Limit(requests_per_minute=1)))
    _admitted(limiter.admit(1, 1, None, T0))
    for t in range(1, 50):
        _refused(limiter.admit(1, 1, None, T0 + t))
    _admitted(limiter.admit(1, 1, None, T0 + 60))


def test_keys_are_limited_apart_and_overrides_apply() -> None:
    limiter = RateLimiter(Limits(default=Limit(requests_per_minute=1), keys={2: Limit(requests_per_minute=2)}))
    _admitted(limiter.admit(1, 1, None, T0))
    _refused(limiter.admit(1, 1, None, T0))
    _admitted(limiter.admit(2, 2, None, T0))
    _admitted(limiter.admit(2, 2, None, T0))
    _refused(limiter.admit(2, 2, None, T0))
    _admitted(limiter.admit("service", None, None, T0))  # a principal without a token id, by name


def test_a_team_limit_counts_all_its_keys_together() -> None:
    limiter = RateLimiter(Limits(teams={"ml": Limit(requests_per_minute=2)}))
    _admitted(limiter.admit(1, 1, "ml", T0))
    _admitted(limiter.admit(2, 2, "ml", T0 + 1))
    refusal = _refused(limiter.admit(3, 3, "ml", T0 + 2))
    assert (refusal.scope, refusal.retry_after) == ("team", 58.0)
    _admitted(limiter.admit(4, 4, "other", T0 + 2))
    _admitted(limiter.admit(5, 5, None, T0 + 2))


def test_concurrency_frees_a_slot_on_release() -> None:
    limiter = RateLimiter(Limits(default=Limit(concurrent=2), teams={"ml": Limit(concurrent=3)}))
    first = _admitted(limiter.admit(1, 1, "ml", T0))
    _admitted(limiter.admit(1, 1, "ml", T0))
    refusal = _refused(limiter.admit(1, 1, "ml", T0))
    assert (refusal.scope, refusal.limit, refusal.retry_after) == ("key", "concurrent", CONCURRENCY_RETRY_AFTER)
    _admitted(limiter.admit(2, 2, "ml", T0))
    assert _refused(limiter.admit(2, 2, "ml", T0)).scope == "team"
    limiter.release(first, 0, T0)
    limiter.release(first, 0, T0)  # once only
    _admitted(limiter.admit(1, 1, "ml", T0))
    _refused(limiter.admit(3, 3, "ml", T0))


def test_tokens_per_minute_admits_while_under_and_charges_actual_usage() -> None:
    limiter = RateLimiter(Limits(default=Limit(tokens_per_minute=100)))
    a = _admitted(limiter.admit(1, 1, None, T0))
    b = _admitted(limiter.admit(1, 1, None, T0))  # nothing charged yet: admitted too
    limiter.release(a, 70, T0 + 1)
    _admitted(limiter.admit(1, 1, None, T0 + 2))  # 70 < 100
    limiter.release(b, 50, T0 + 5)  # 120 now: over
    refusal = _refused(limiter.admit(1, 1, None, T0 + 6))
    assert (refusal.limit, refusal.retry_after) == ("tokens", 55.0)  # when the 70 leave, 50 < 100
    _admitted(limiter.admit(1, 1, None, T0 + 61))


def test_unlimited_admits_everything_and_keeps_no_state() -> None:
    limiter = RateLimiter()
    for _ in range(1000):
        limiter.release(_admitted(limiter.admit(1, 1, "ml", T0)), 10**6, T0)
    assert not limiter._keys
    assert not limiter._teams


def test_prune_forgets_idle_keys_only() -> None:
    limiter = RateLimiter(Limits(default=Limit(requests_per_minute=10, concurrent=5)))
    held = _admitted(limiter.admit(1, 1, None, T0))
    limiter.release(_admitted(limiter.admit(2, 2, None, T0)), 0, T0)
    limiter.prune(T0 + 61)
    assert set(limiter._keys) == {1}  # key 1 still has a request in flight
    limiter.release(held, 0, T0 + 61)
    limiter.prune(T0 + 61)
    assert not limiter._keys
