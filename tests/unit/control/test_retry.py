from datetime import UTC, datetime, timedelta

from aidc.control.retry import RetryPolicy, after_attempt, preempted_attempt_reason
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


def _preempted(attempts_made: int, preemptions: int, max_retries: int, at: datetime = T0) -> Job:
    running = _running(attempts_made, max_retries).model_copy(update={"preemptions": preemptions})
    return running.transition(JobState.PREEMPTED, at, "queue a reclaims its quota")


def test_a_preempted_job_goes_back_to_its_queue_without_backoff_whatever_its_exit_code() -> None:
    later = T0 + timedelta(seconds=3)
    for code in (143, 0, None):
        requeued = after_attempt(_preempted(1, 0, 0), code, "terminated by SIGTERM", later, RetryPolicy())
        assert requeued.state == JobState.PENDING
        assert (requeued.preemptions, requeued.attempts_made) == (1, 1)
        assert (requeued.queued_at, requeued.not_before) == (later, None)
        assert requeued.state_reason == "preempted (queue a reclaims its quota); waiting to resume"


def test_preemptions_do_not_count_against_max_retries() -> None:
    policy = RetryPolicy(base=5, cap=60)
    # Two attempts ended by preemption, the third fails: the first failure, retried once (max_retries=1).
    third = _running(3, 1).model_copy(update={"preemptions": 2})
    retried = after_attempt(third, 1, "exit code 1", T0, policy)
    assert retried.state == JobState.PENDING
    assert retried.not_before == T0 + timedelta(seconds=5)  # the first failure's backoff
    fourth = retried.transition(JobState.RUNNING, T0).model_copy(update={"attempts_made": 4})
    assert after_attempt(fourth, 1, "exit code 1", T0, policy).state == JobState.FAILED
    # With no retries at all, a job preempted once still gets its next attempt, and fails on a real failure.
    assert after_attempt(_preempted(1, 0, 0), 143, "SIGTERM", T0, policy).state == JobState.PENDING
    resumed = _running(2, 0).model_copy(update={"preemptions": 1})
    assert after_attempt(resumed, 0, "exit code 0", T0, policy).state == JobState.SUCCEEDED
    assert after_attempt(resumed, 1, "exit code 1", T0, policy).state == JobState.FAILED


def test_an_attempt_that_ended_before_its_preemption_counts_as_usual() -> None:
    preempted_at = T0 + timedelta(seconds=10)
    done = after_attempt(_preempted(1, 0, 0, preempted_at), 0, "exit code 0", T0, RetryPolicy())
    assert done.state == JobState.SUCCEEDED
    assert done.preemptions == 0


def test_a_cancelled_preempted_job_stays_cancelled() -> None:
    cancelled = _preempted(1, 0, 0).transition(JobState.CANCELLED, T0, "cancelled by alice")
    assert after_attempt(cancelled, 143, "SIGTERM", T0, RetryPolicy()) is cancelled


def test_preempted_attempt_reason_says_why_then_how() -> None:
    assert preempted_attempt_reason("make room", "killed by SIGTERM") == "preempted: make room; killed by SIGTERM"
    assert preempted_attempt_reason(None, "exit code 143").startswith("preempted: by the scheduler")
