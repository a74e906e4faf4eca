"""How an attempt ended, from what is known of it: the exit record its batch script wrote, Slurm's record of
the job (squeue, or sacct where the cluster keeps accounting) and the signal aidc sent (pure)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

from aidc.backends.local import records
from aidc.backends.slurm.parsing import SlurmJob

LOST_REASON = "lost: Slurm no longer knows the job and its batch script left no exit record"
# Endings Slurm decided on its own, worth naming next to the exit code.
_NOTABLE = frozenset({"TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"})


def describe(
    record: records.ExitRecord | None, job: SlurmJob | None, signal_sent: int | None
) -> tuple[int | None, str] | None:
    """(exit code, reason in words); None when nothing says how it ended."""
    note = _slurm_note(job, signal_sent)
    if record is not None:
        reason = records.describe_exit(record)
        return record.exit_code, f"{reason}; {note}" if note else reason
    if signal_sent is not None:
        # The batch shell died before it could write its record: of aidc's SIGKILL, or while still queued.
        code = records.exit_code_for_signal(signal_sent)
        if job is not None and not job.started:
            return code, "cancelled before it started"
        return code, _signal_words(signal_sent)
    if job is None:
        return None
    if job.exit is None or not job.started:
        return None if note is None else (None, note)
    sig = job.exit.signal
    reason = _signal_words(sig) if sig is not None else f"exit code {job.exit.exit_code}"
    return job.exit.exit_code, f"{reason}; {note}" if note else reason


def _slurm_note(job: SlurmJob | None, signal_sent: int | None) -> str | None:
    if job is None:
        return None
    if job.state in _NOTABLE or (job.state == "CANCELLED" and signal_sent is None):
        return f"Slurm: {job.state}"
    return None


def _signal_words(signum: int) -> str:
    verb = "terminated" if signum == signal.SIGTERM else "killed"
    return f"{verb} by {records.signal_name(signum)}"


def ended_at(record: records.ExitRecord | None, job: SlurmJob | None, now: datetime) -> datetime:
    if record is not None:
        try:
            when = datetime.fromisoformat(record.ended_at)
            return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        except ValueError:
            pass
    if job is not None and job.end_time:
        return datetime.fromtimestamp(job.end_time, UTC)
    return now
