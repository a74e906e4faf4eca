"""ActiveJobs reads everything once, then only what changed (a fake repository stands in for the store)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from aidc.control.active import ActiveJobs
from aidc.domain.jobs import Job, JobSpec, JobState
from aidc.ports import UnitOfWork

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _job(job_id: int, state: JobState = JobState.PENDING) -> Job:
    return Job(id=job_id, spec=JobSpec(name=f"j{job_id}", run="true"), state=state, user="u",
               submitted_at=T0, updated_at=T0)  # fmt: skip


class FakeJobs:
    def __init__(self) -> None:
        self.rows: dict[int, Job] = {}
        self.calls: list[dict[str, Any]] = []

    def list(self, *, states: Sequence[JobState] | None = None, ids: Sequence[int] | None = None) -> list[Job]:
        self.calls.append({"states": states, "ids": ids})
        rows = sorted(self.rows.items())
        return [j for i, j in rows if (ids is None or i in ids) and (states is None or j.state in states)]


class FakeUow:
    def __init__(self) -> None:
        self.jobs = FakeJobs()


def test_first_refresh_reads_all_then_only_touched_jobs() -> None:
    uow = FakeUow()
    uow.jobs.rows = {1: _job(1), 2: _job(2, JobState.RUNNING), 3: _job(3, JobState.SUCCEEDED)}
    active = ActiveJobs(full_every=30)
    active.refresh(cast(UnitOfWork, uow), now=0)
    assert set(active.jobs) == {1, 2}
    assert [p.id for p in active.pending()] == [1]

    uow.jobs.rows[4] = _job(4)
    uow.jobs.rows[1] = _job(1, JobState.CANCELLED)
    active.refresh(cast(UnitOfWork, uow), now=1)
    assert set(active.jobs) == {1, 2}  # nobody said anything changed: no read at all
    assert len(uow.jobs.calls) == 1

    active.touch(4)
    active.touch(1)
    active.refresh(cast(UnitOfWork, uow), now=2)
    assert uow.jobs.calls[-1]["ids"] == [1, 4]
    assert set(active.jobs) == {2, 4}
    assert [p.id for p in active.pending()] == [4]


def test_full_refresh_after_the_period_picks_up_other_writers() -> None:
    uow = FakeUow()
    active = ActiveJobs(full_every=30)
    active.refresh(cast(UnitOfWork, uow), now=0)
    uow.jobs.rows[9] = _job(9)  # written by another process, never touched here
    active.refresh(cast(UnitOfWork, uow), now=10)
    assert 9 not in active.jobs
    active.refresh(cast(UnitOfWork, uow), now=31)
    assert 9 in active.jobs


def test_loop_updates_replace_views_and_drop_ended_jobs() -> None:
    uow = FakeUow()
    uow.jobs.rows = {1: _job(1)}
    active = ActiveJobs(full_every=30)
    active.refresh(cast(UnitOfWork, uow), now=0)
    [view] = active.pending()
    assert view.not_before is None
    retry = _job(1).model_copy(update={"not_before": T0})
    active.update([retry])
    assert active.pending()[0].not_before == T0
    active.set_pending_reasons({1: "needs 1 GPU"})
    assert active.jobs[1].pending_reason == "needs 1 GPU"
    active.update([_job(1, JobState.SUCCEEDED)])
    assert active.jobs == {}
    assert active.pending() == ()


def test_preempted_jobs_stay_active_but_are_not_pending() -> None:
    uow = FakeUow()
    uow.jobs.rows = {1: _job(1, JobState.PREEMPTED), 2: _job(2)}
    active = ActiveJobs(full_every=30)
    active.refresh(cast(UnitOfWork, uow), now=0)
    assert set(active.jobs) == {1, 2}
    assert [p.id for p in active.pending()] == [2]


def test_changed_jobs_are_all_after_a_full_read_then_only_those_updated() -> None:
    uow = FakeUow()
    uow.jobs.rows = {1: _job(1), 2: _job(2)}
    active = ActiveJobs(full_every=30)
    active.refresh(cast(UnitOfWork, uow), now=0)
    assert sorted(j.id for j in active.take_changed()) == [1, 2]
    assert active.take_changed() == []
    active.update([_job(2, JobState.RUNNING), _job(1, JobState.CANCELLED)])
    assert [(j.id, j.state) for j in active.take_changed()] == [(2, JobState.RUNNING)]  # 1 is no longer active
    active.touch(3)
    uow.jobs.rows[3] = _job(3)
    active.refresh(cast(UnitOfWork, uow), now=1)
    assert [j.id for j in active.take_changed()] == [3]


def test_pending_views_carry_attained_service_of_jobs_that_ran() -> None:
    uow = FakeUow()
    uow.jobs.rows = {1: _job(1).model_copy(update={"attempts_made": 2}), 2: _job(2)}
    active = ActiveJobs(full_every=30)
    active.refresh(cast(UnitOfWork, uow), now=0)
    views = {p.id: p for p in active.pending({1: 120.0, 2: 99.0}.__getitem__)}
    assert (views[1].attained_service, views[2].attained_service) == (120.0, 0.0)  # 2 never ran: not asked
