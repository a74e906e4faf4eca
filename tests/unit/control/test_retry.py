from datetime import UTC, datetime, timedelta

from aidc.control.retry import RetryPolicy, after_attempt
from aidc.domain.jobs import Job, JobSpec, JobState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _running(attempts_made: int, max_retries: int) -> Job:
    spec = JobSpec(name="j", run="false", max_retries=max_retries)
    job = Job(id=1, spec=spec, state=JobState.PENDING, user="u", submitted_at=T0, updated_at=T0)
    return job.transition(JobState.RUNNING, T0).model_copy(update={"attempts_made": attempts_made})


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base=10, cap=35)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [10, 20, 35, 35]


def test_success_ends_the_job() -> None:
    assert after_attempt(_running(1, 2), 0, "exit code 0", T0, RetryPolicy()).state == JobState.SUCCEEDED


def test_failures_are_retried_while_attempts_le_max_retries() -> None:
    policy = RetryPolicy(base=5, cap=60)
    first = after_attempt(_running(1, 2), 1, "exit code 1", T0, policy)
    assert first.state == JobState.PENDING
    assert first.not_before == T0 + timedelta(seconds=5)
    assert "attempt 1 failed (exit code 1)" in (first.state_reason or "")
    second = after_attempt(_running(2, 2), 1, "exit code 1", T0, policy)
    assert second.state == JobState.PENDING
    assert second.not_before == T0 + timedelta(seconds=10)
    third = after_attempt(_running(3, 2), 1, "exit code 1", T0, policy)
    assert third.state == JobState.FAILED
    assert third.state_reason == "exit code 1 after 3 attempts"


def test_no_retries_fails_at_once() -> None:
    failed = after_attempt(_running(1, 0), 2, "exit code 2", T0, RetryPolicy())
    assert failed.state == JobState.FAILED
    assert failed.state_reason == "exit code 2 on its only attempt"


def test_unknown_exit_counts_as_failure() -> None:
    assert after_attempt(_running(1, 0), None, "lost", T0, RetryPolicy()).state == JobState.FAILED


def test_cancelled_job_keeps_its_state() -> None:
    cancelled = _running(1, 2).transition(JobState.CANCELLED, T0)
    assert after_attempt(cancelled, 143, "terminated", T0, RetryPolicy()) is cancelled
