"""The active (PENDING, RUNNING and PREEMPTED) jobs as the control loop last saw them, kept up to date
incrementally.

Reading every active job each cycle costs O(pending): 10,000 pending jobs take a few hundred milliseconds of
the process's time per cycle. Instead, jobs this process changed, or was told of (`touch`: a submit, a
cancel), are read again by id, and everything is read afresh every `full_every` seconds, which also picks
up writes by any other process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from aidc.domain.jobs import Job, JobState
from aidc.ports import UnitOfWork
from aidc.sched.snapshot import PendingJob
from aidc.services.snapshots import ACTIVE_STATES, pending_view


class ActiveJobs:
    def __init__(self, full_every: float) -> None:
        self._full_every = full_every
        self._jobs: dict[int, Job] = {}
        self._views: dict[int, PendingJob] = {}
        self._touched: set[int] = set()
        self._lock = threading.Lock()
        self._last_full: float | None = None
        self._changed: set[int] | None = None  # since take_changed(); None: everything (a full read)

    def touch(self, job_id: int) -> None:
        """This job changed elsewhere (thread-safe): read it again on the next refresh."""
        with self._lock:
            self._touched.add(job_id)

    def refresh(self, uow: UnitOfWork, now: float) -> None:
        """Bring the cache up to date; `now` is a monotonic time in seconds."""
        with self._lock:
            touched, self._touched = self._touched, set()
        if self._last_full is None or now - self._last_full >= self._full_every:
            self._jobs = {j.id: j for j in uow.jobs.list(states=ACTIVE_STATES)}
            self._views = {}
            self._last_full = now
            self._changed = None
        elif touched:
            self.update(uow.jobs.list(ids=sorted(touched)), gone=touched)

    def update(self, jobs: Iterable[Job], gone: Iterable[int] = ()) -> None:
        """Record jobs as they are now (the loop's own writes); ids in `gone` not among them are dropped."""
        seen = set()
        changed = self._changed
        for job in jobs:
            seen.add(job.id)
            if changed is not None:
                changed.add(job.id)
            self._views.pop(job.id, None)
            if job.state in ACTIVE_STATES:
                self._jobs[job.id] = job
            else:
                self._jobs.pop(job.id, None)
        for job_id in gone:
            if job_id not in seen:
                self._jobs.pop(job_id, None)
                self._views.pop(job_id, None)

    def take_changed(self) -> list[Job]:
        """The active jobs read or updated since the last call (all of them after a full read)."""
        changed, self._changed = self._changed, set()
        if changed is None:
            return list(self._jobs.values())
        jobs = self._jobs
        return [jobs[i] for i in changed if i in jobs]

    def set_pending_reasons(self, reasons: Mapping[int, str | None]) -> None:
        for job_id, reason in reasons.items():
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = job.model_copy(update={"pending_reason": reason})

    @property
    def jobs(self) -> Mapping[int, Job]:
        return self._jobs

    def pending(self, attained: Callable[[int], float] | None = None) -> tuple[PendingJob, ...]:
        """Views of the PENDING jobs for the scheduler. `attained` gives a job's GPU-seconds so far; it only
        changes when one of the job's attempts ends, which `update()`s the job, so views stay cached."""
        views = self._views
        out = []
        for job in self._jobs.values():
            if job.state == JobState.PENDING:
                view = views.get(job.id)
                if view is None:
                    service = attained(job.id) if attained is not None and job.attempts_made else 0.0
                    view = views[job.id] = pending_view(job, service)
                out.append(view)
        return tuple(out)
