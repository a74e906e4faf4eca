"""What happens to a job when an attempt ends: success, retry with backoff, or failure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aidc.domain.jobs import Job, JobState


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `base` seconds before the first retry, doubling, capped at `cap`."""

    base: float = 10.0
    cap: float = 300.0

    def delay(self, attempts_made: int) -> float:
        return min(self.cap, self.base * 2.0 ** max(0, attempts_made - 1))


def after_attempt(job: Job, exit_code: int | None, reason: str, now: datetime, policy: RetryPolicy) -> Job:
    """The job once its latest attempt has ended. A job no longer RUNNING (e.g. CANCELLED) keeps its state."""
    if job.state != JobState.RUNNING:
        return job
    if exit_code == 0:
        return job.transition(JobState.SUCCEEDED, now, reason)
    if job.attempts_made <= job.spec.max_retries:
        delay = policy.delay(job.attempts_made)
        retried = job.transition(JobState.PENDING, now, f"attempt {job.attempts_made} failed ({reason}); retrying")
        return retried.model_copy(update={"not_before": now + timedelta(seconds=delay)})
    tries = f"after {job.attempts_made} attempts" if job.attempts_made > 1 else "on its only attempt"
    return job.transition(JobState.FAILED, now, f"{reason} {tries}")
