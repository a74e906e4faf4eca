"""What the scheduler needs to know of the past, kept in memory by the control loop.

- Each queue's decayed usage (`fairshare.DecayBook`), for fair share.
- Recent run times of jobs that succeeded (`estimates.RuntimeHistory`), for shortest-job-first and backfill.
- The GPU-seconds each active job has received in its ended attempts, for least-attained-service.
- The final state of jobs that pending jobs depend on (a finished job never changes again).

Everything is read from the store once, at start (attempts that ended within `USAGE_HALF_LIVES` half-lives,
the last `HISTORY_RUNS` successful runs), then kept current as the loop records attempts ending: a cycle
never re-reads the past. Until `load()` has run, ended attempts are not added (load reads them anyway).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from aidc.domain.jobs import Attempt, Job, JobSpec, JobState
from aidc.ports import EndedAttempt, UnitOfWork
from aidc.sched.config import DEFAULT_HALF_LIFE
from aidc.sched.estimates import RuntimeHistory
from aidc.sched.fairshare import DecayBook, UsageVector

USAGE_HALF_LIVES = 10  # older usage counts less than 1/1000: not worth reading
MAX_USAGE_ATTEMPTS = 200_000  # newest first; bounds the time a start spends reading the past
HISTORY_RUNS = 5_000
MAX_FINAL_STATES = 100_000
PREEMPTED_PREFIX = "preempted"  # how the reason of an attempt that ended by preemption starts


def attempt_seconds(attempt: Attempt) -> float:
    """How long an ended attempt ran, in seconds (0 for an open one, or a clock that went back)."""
    if attempt.ended_at is None:
        return 0.0
    return max(0.0, (attempt.ended_at - attempt.started_at).total_seconds())


def gpus_held(spec: JobSpec) -> float:
    """GPUs a job holds across all its nodes; fractions of a GPU count as such."""
    res = spec.resources
    milli: int = getattr(res, "gpu_milli", 1000)
    return res.gpus * milli / 1000 * spec.num_nodes


def gpu_seconds(spec: JobSpec, attempt: Attempt) -> float:
    """The GPU-seconds an ended attempt used: GPUs x fraction x nodes x seconds."""
    return gpus_held(spec) * attempt_seconds(attempt)


def counts_as_run(ended: EndedAttempt) -> bool:
    """A successful attempt that ran the job to its end (not one that exited 0 after being preempted)."""
    attempt = ended.attempt
    return attempt.exit_code == 0 and not (attempt.reason or "").startswith(PREEMPTED_PREFIX)


class SchedulingHistory:
    """Owned by the control loop, which alone adds to it. Other threads may call `usage_at`, `attained` and
    `dependency_states` (one dict operation at a time, safe under the GIL; the usage book has a lock)."""

    def __init__(self, half_life: float = DEFAULT_HALF_LIFE) -> None:
        self.half_life = half_life
        self.runtimes = RuntimeHistory()
        self._usage = DecayBook(half_life)
        self._usage_lock = threading.Lock()
        self._attained: dict[int, float] = {}
        self._final_states: dict[int, JobState] = {}
        self.loaded = False

    # ------------------------------------------------------------------ the past, at start

    def load(self, uow: UnitOfWork, now: datetime) -> None:
        """Read recent usage and run times from the store (once; later calls do nothing)."""
        if self.loaded:
            return
        since = now - timedelta(seconds=USAGE_HALF_LIVES * self.half_life)
        ended = uow.jobs.ended_attempts(since=since, limit=MAX_USAGE_ATTEMPTS)
        with self._usage_lock:
            for item in ended:  # newest first: the book never has to rescale
                self._add_usage(item)
        runs = uow.jobs.ended_attempts(succeeded=True, limit=HISTORY_RUNS)
        for item in reversed(runs):  # in the order they ended: the newest are kept
            if counts_as_run(item):
                self._add_run(item)
        self.loaded = True

    # ------------------------------------------------------------------ as attempts end

    def attempt_ended(self, ended: EndedAttempt) -> None:
        """Count an attempt that has just ended (the loop calls this after committing its end)."""
        if not self.loaded:
            return  # load() will read it from the store
        with self._usage_lock:
            self._add_usage(ended)
        if counts_as_run(ended):
            self._add_run(ended)
        job_id = ended.attempt.job_id
        if job_id in self._attained:
            self._attained[job_id] += gpu_seconds(ended.spec, ended.attempt)

    def job_finished(self, job: Job) -> None:
        """Forget what only an active job needs; remember its final state for its dependents."""
        self._attained.pop(job.id, None)
        if job.state.is_terminal:
            self._remember_final(job.id, job.state)

    def _add_usage(self, ended: EndedAttempt) -> None:
        attempt, spec = ended.attempt, ended.spec
        if attempt.ended_at is None:
            return
        res, nodes = spec.resources, spec.num_nodes
        self._usage.add(
            spec.queue,
            gpus_held(spec),
            res.cpus * nodes,
            float(res.memory * nodes),
            attempt.started_at,
            attempt.ended_at,
        )

    def _add_run(self, ended: EndedAttempt) -> None:
        self.runtimes.add(ended.user, ended.spec.name, ended.spec.queue, attempt_seconds(ended.attempt))

    # ------------------------------------------------------------------ read by the snapshot

    def usage_at(self, now: datetime) -> dict[str, UsageVector]:
        """Each queue's usage by ended attempts, decayed to `now` (thread-safe)."""
        with self._usage_lock:
            return self._usage.at(now)

    def attained(self, job_id: int) -> float:
        """GPU-seconds of the job's ended attempts (0 until `load_attained` has seen the job)."""
        return self._attained.get(job_id, 0.0)

    def load_attained(self, uow: UnitOfWork, jobs: Iterable[Job]) -> None:
        """Read the ended attempts of active jobs not seen before that have run (one query for all of them)."""
        known = self._attained
        new = [job.id for job in jobs if job.attempts_made > 0 and job.id not in known]
        if not new:
            return
        for job_id in new:
            known[job_id] = 0.0
        for item in uow.jobs.ended_attempts(job_ids=new):
            known[item.attempt.job_id] += gpu_seconds(item.spec, item.attempt)

    def forget_inactive(self, active: Mapping[int, Job]) -> None:
        """Drop attained service of jobs no longer active (ended elsewhere, e.g. cancelled by a user)."""
        if len(self._attained) > len(active):
            self._attained = {job_id: v for job_id, v in self._attained.items() if job_id in active}

    def dependency_states(self, uow: UnitOfWork, ids: Sequence[int], active: Mapping[int, Job]) -> dict[int, JobState]:
        """The state of each job in `ids` that exists: active jobs from `active`, finished ones from memory
        once read, the rest in one query."""
        states: dict[int, JobState] = {}
        missing: list[int] = []
        for job_id in ids:
            job = active.get(job_id)
            if job is not None:
                states[job_id] = job.state
                continue
            final = self._final_states.get(job_id)
            if final is not None:
                states[job_id] = final
            elif job_id > 0:  # 0 stands for a dependency that names no job
                missing.append(job_id)
        if missing:
            for job_id, state in uow.jobs.states(missing).items():
                states[job_id] = state
                if state.is_terminal:
                    self._remember_final(job_id, state)
        return states

    def _remember_final(self, job_id: int, state: JobState) -> None:
        if len(self._final_states) >= MAX_FINAL_STATES:
            self._final_states.clear()  # re-read on demand; a bound matters more than the odd query
        self._final_states[job_id] = state
