"""What happens to a job when an attempt ends: success, requeue after preemption, retry with backoff, or failure.

A preemption is not a failure: attempts that ended because the job was preempted are not counted against
`max_retries`, and the job goes back to its queue at once (no backoff)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aidc.domain.jobs import Job, JobState
from aidc.services.sched_history import PREEMPTED_PREFIX


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `base` seconds before the first retry, doubling, capped at `cap`."""

    base: float = 10.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * 2.0 ** max(0, failures - 1))


def failures(job: Job) -> int:
    """Attempts that count against `max_retries`: all those made, less the ones ended by preemption or by a
    fault of the platform (a node lost, a known transient failure)."""
    return job.attempts_made - job.preemptions - job.interruptions


def preempted_attempt_reason(preempt_reason: str | None, exit_reason: str) -> str:
    """How an attempt that was preempted ended, e.g. "preempted: queue a reclaims its quota; killed by SIGTERM"."""
    return f"{PREEMPTED_PREFIX}: {preempt_reason or 'by the scheduler'}; {exit_reason}"


def after_attempt(job: Job, exit_code: int | None, reason: str, now: datetime, policy: RetryPolicy) -> Job:
    """The job once its latest attempt has ended at `now`.

    A PREEMPTED job goes back to PENDING, whatever the exit code (a job that catches SIGTERM may save a
    checkpoint and exit 0): `queued_at` is now, `preemptions` one more. An attempt that had ended before the
    preemption was decided (`now` before the job's update) is counted as if it had never been preempted.
    Any other job no longer RUNNING (e.g. CANCELLED) keeps its state."""
    if job.state == JobState.PREEMPTED:
        if now >= job.updated_at:
            return requeue_preempted(job, now)
        job = job.transition(JobState.RUNNING, now)  # the preemption came too late
    if job.state != JobState.RUNNING:
        return job
    if exit_code == 0:
        return job.transition(JobState.SUCCEEDED, now, reason)
    failed = failures(job)
    if failed <= job.spec.max_retries:
        delay = policy.delay(failed)
        retried = job.transition(JobState.PENDING, now, f"attempt {job.attempts_made} failed ({reason}); retrying")
        return retried.model_copy(update={"not_before": now + timedelta(seconds=delay)})
    tries = f"after {job.attempts_made} attempts" if job.attempts_made > 1 else "on its only attempt"
    return job.transition(JobState.FAILED, now, f"{reason} {tries}")


def requeue_preempted(job: Job, now: datetime) -> Job:
    """A PREEMPTED job whose attempt has exited, back in its queue: it resumes from its last checkpoint."""
    reason = f"preempted ({job.state_reason or 'by the scheduler'}); waiting to resume"
    requeued = job.transition(JobState.PENDING, now, reason)
    return requeued.model_copy(update={"queued_at": now, "preemptions": job.preemptions + 1, "not_before": None})
