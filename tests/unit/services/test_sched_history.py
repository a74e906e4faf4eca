"""The scheduler's memory of the past: decayed usage, run times, attained service, final states of
dependencies. A fake repository stands in for the store and counts what is read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from aidc.domain.jobs import Attempt, Job, JobSpec, JobState
from aidc.ports import EndedAttempt, UnitOfWork
from aidc.sched.fairshare import DecayBook
from aidc.services.sched_history import SchedulingHistory, gpu_seconds

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = 3600.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _spec(name: str = "train", queue: str = "default", **fields: Any) -> JobSpec:
    return JobSpec.model_validate({"name": name, "queue": queue, "run": "true", **fields})


def _ended(
    job_id: int, number: int, start: float, end: float, code: int | None, spec: JobSpec, **kw: Any
) -> EndedAttempt:
    attempt = Attempt(
        job_id=job_id, number=number, nodes=("n",), started_at=at(start), ended_at=at(end), exit_code=code, **kw
    )
    return EndedAttempt(attempt, "alice", spec)


class FakeJobs:
    def __init__(self, ended: list[EndedAttempt], states: dict[int, JobState] | None = None) -> None:
        self.ended = sorted(ended, key=lambda e: cast(datetime, e.attempt.ended_at), reverse=True)
        self.known_states = states or {}
        self.calls: list[tuple[str, Any]] = []

    def ended_attempts(
        self,
        *,
        since: datetime | None = None,
        job_ids: Sequence[int] | None = None,
        succeeded: bool = False,
        limit: int | None = None,
    ) -> list[EndedAttempt]:
        self.calls.append(("ended_attempts", (since, job_ids, succeeded, limit)))
        found = [
            e
            for e in self.ended
            if (since is None or cast(datetime, e.attempt.ended_at) >= since)
            and (job_ids is None or e.attempt.job_id in job_ids)
            and (not succeeded or e.attempt.exit_code == 0)
        ]
        return found[:limit] if limit is not None else found

    def states(self, ids: Sequence[int]) -> dict[int, JobState]:
        self.calls.append(("states", list(ids)))
        return {i: self.known_states[i] for i in ids if i in self.known_states}


class FakeUow:
    def __init__(self, jobs: FakeJobs) -> None:
        self.jobs = jobs


def _uow(jobs: FakeJobs) -> UnitOfWork:
    return cast(UnitOfWork, FakeUow(jobs))


def test_gpu_seconds_count_gpus_fractions_nodes_and_time() -> None:
    spec = _spec(resources={"gpus": 2}, num_nodes=3)
    attempt = _ended(1, 1, 0, 100, 0, spec).attempt
    assert gpu_seconds(spec, attempt) == 2 * 3 * 100
    assert gpu_seconds(_spec(), attempt) == 0  # a CPU job


def test_load_reads_recent_usage_and_successful_runs_once() -> None:
    gpu = _spec("train", "research", resources={"gpus": 4, "cpus": 2, "memory": 2**30})
    cpu = _spec("etl", "batch")
    past = [
        _ended(1, 1, 0, HOUR, 0, gpu),
        _ended(2, 1, 0, 2 * HOUR, 1, cpu),  # failed: counts as usage, not as a run
        _ended(3, 1, HOUR, 3 * HOUR, 0, gpu, reason="preempted: make room; exit code 0"),  # not a whole run
        _ended(4, 1, -100 * HOUR, -90 * HOUR, 0, cpu),  # more than 10 half-lives ago: not read as usage
    ]
    jobs = FakeJobs(past)
    history = SchedulingHistory(half_life=HOUR)
    now = at(4 * HOUR)
    history.load(_uow(jobs), now)
    history.load(_uow(jobs), now)
    assert len(jobs.calls) == 2  # the second load reads nothing
    assert jobs.calls[0][1][0] == now - timedelta(seconds=10 * HOUR)

    book = DecayBook(HOUR)
    for e in (past[0], past[2]):
        book.add("research", 4, 2, 2**30, e.attempt.started_at, cast(datetime, e.attempt.ended_at))
    book.add("batch", 0, 1, 2**30, at(0), at(2 * HOUR))
    usage = history.usage_at(now)
    expected = book.at(now)
    assert set(usage) == {"batch", "research"}
    for queue in usage:
        assert usage[queue] == pytest.approx(expected[queue])
    assert history.runtimes.job_runs("alice", "train") == (HOUR,)
    assert history.runtimes.job_runs("alice", "etl") == (10 * HOUR,)  # a run, however old


def test_attempts_ending_after_load_are_added_and_before_load_ignored() -> None:
    spec = _spec(resources={"gpus": 1})
    history = SchedulingHistory(half_life=HOUR)
    history.attempt_ended(_ended(1, 1, 0, 10, 0, spec))  # not loaded yet: load() will read it from the store
    assert history.usage_at(at(10)) == {}
    history.load(_uow(FakeJobs([])), at(0))
    history.attempt_ended(_ended(1, 1, 0, 10, 0, spec))
    assert history.usage_at(at(10))["default"].gpu_seconds == pytest.approx(_decayed(0, 10, 10))
    assert _decayed(0, 10, 10) == pytest.approx(10, rel=0.01)  # ten GPU-seconds, barely decayed
    assert history.runtimes.job_runs("alice", "train") == (10.0,)


def _decayed(start: float, end: float, now: float) -> float:
    book = DecayBook(HOUR)
    book.add("q", 1, 0, 0, at(start), at(end))
    return book.at(at(now))["q"].gpu_seconds


def _job(job_id: int, state: JobState = JobState.PENDING, attempts: int = 1, **fields: Any) -> Job:
    return Job(id=job_id, spec=_spec(**fields), state=state, user="alice", submitted_at=T0, updated_at=T0,
               attempts_made=attempts)  # fmt: skip


def test_attained_service_is_read_once_per_job_then_kept_current() -> None:
    spec = _spec(resources={"gpus": 2})
    jobs = FakeJobs([_ended(1, 1, 0, 50, 143, spec), _ended(1, 2, 60, 70, 1, spec)])
    history = SchedulingHistory(half_life=HOUR)
    history.load(_uow(jobs), at(100))
    active = {1: _job(1, attempts=2, resources={"gpus": 2}), 2: _job(2, attempts=0)}
    history.load_attained(_uow(jobs), active.values())
    assert history.attained(1) == 2 * 60
    assert history.attained(2) == 0
    calls = len(jobs.calls)
    history.load_attained(_uow(jobs), active.values())
    assert len(jobs.calls) == calls  # nothing new to read
    history.attempt_ended(_ended(1, 3, 100, 110, 143, spec))
    assert history.attained(1) == 2 * 70
    history.job_finished(active[1].model_copy(update={"state": JobState.CANCELLED}))
    assert history.attained(1) == 0


def test_dependency_states_come_from_active_jobs_memory_then_one_query() -> None:
    jobs = FakeJobs([], states={5: JobState.SUCCEEDED, 6: JobState.RUNNING})
    history = SchedulingHistory()
    active = {3: _job(3, JobState.RUNNING)}
    first = history.dependency_states(_uow(jobs), [0, 3, 5, 6, 9], active)
    assert first == {3: JobState.RUNNING, 5: JobState.SUCCEEDED, 6: JobState.RUNNING}
    assert jobs.calls == [("states", [5, 6, 9])]  # never id 0 (a dependency that names no job)
    history.dependency_states(_uow(jobs), [3, 5, 6], active)
    assert jobs.calls[-1] == ("states", [6])  # a finished job's state is final: remembered
