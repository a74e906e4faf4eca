"""What a job must pass before anything else is tried: a known queue and the end of its retry backoff;
and the time rule every part of the scheduler shares (naive times are UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aidc.sched.snapshot import PendingJob


def as_utc(moment: datetime) -> datetime:
    """Aware UTC time; a naive time is taken to be UTC already (so naive and aware inputs can be
    compared)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def unknown_queue_reason(job: PendingJob) -> str:
    return f"queue {job.queue} does not exist"


def backoff_reason(job: PendingJob, now: datetime) -> str | None:
    """The wait reason of a job still in retry backoff at `now` (aware UTC), or None when it is
    eligible."""
    if job.not_before is None:
        return None
    until = as_utc(job.not_before)
    if until <= now:
        return None
    if until.microsecond:  # say the first whole second at which it is eligible, never one before
        until = until.replace(microsecond=0) + timedelta(seconds=1)
    same_day = until.date() == now.date()
    when = until.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
    return f"retry backoff until {when} UTC"
