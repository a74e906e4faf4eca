"""Job dependencies (Slurm's afterok and afterany): a job starts only once the jobs it depends on have
succeeded (`when: succeeded`) or ended in any way (`when: finished`). When a dependency it needs to
succeed fails or is cancelled, or no longer exists, the job can never start and is cancelled with that
reason, so a broken pipeline stops instead of waiting forever."""

from __future__ import annotations

from collections.abc import Mapping

from aidc.domain.decisions import Cancel, Wait
from aidc.domain.jobs import DependencyCondition, JobState
from aidc.sched.snapshot import DependencyRef, PendingJob

_ENDED_BADLY = {JobState.FAILED: "failed", JobState.CANCELLED: "was cancelled"}


def dependency_met(ref: DependencyRef, state: JobState) -> bool:
    """Does a dependency in `state` let its dependent start?"""
    if state == JobState.SUCCEEDED:
        return True
    return ref.when == DependencyCondition.FINISHED and state.is_terminal


def dependency_decision(job: PendingJob, states: Mapping[int, JobState]) -> Wait | Cancel | None:
    """Cancel when some dependency can never be met (it does not exist, or must succeed but failed or
    was cancelled; a job naming itself), Wait while some is not met yet, None when all are met.

    `states` holds the state of each job named; a job missing from it does not exist (any more)."""
    unmet: list[tuple[DependencyRef, JobState]] = []
    for ref in job.depends_on:
        if ref.job_id == job.id:
            return Cancel(job.id, f"job {job.id} depends on itself")
        state = states.get(ref.job_id)
        if state is None:
            return Cancel(job.id, f"dependency job {ref.job_id} does not exist")
        if dependency_met(ref, state):
            continue
        if state.is_terminal:  # failed or cancelled, and it had to succeed
            return Cancel(job.id, f"dependency job {ref.job_id} {_ENDED_BADLY.get(state, state.value.lower())}")
        unmet.append((ref, state))
    if not unmet:
        return None
    ref, state = unmet[0]
    goal = "succeed" if ref.when == DependencyCondition.SUCCEEDED else "finish"
    more = f" (+{len(unmet) - 1} more)" if len(unmet) > 1 else ""
    return Wait(job.id, f"waiting for job {ref.job_id} ({state.value}) to {goal}{more}")
