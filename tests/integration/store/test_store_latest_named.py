"""`JobRepository.latest_named`: how `depends_on: [{job: NAME}]` is resolved at submit."""

from __future__ import annotations

from aidc.domain.jobs import JobSpec, JobState
from aidc.store.sql_store import SqlStore
from tests.integration.store.conftest import T0


def test_the_users_most_recent_job_of_that_name_in_any_state(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        first = uow.jobs.add(JobSpec(name="prep", run="true"), "alice", T0)
        second = uow.jobs.add(JobSpec(name="prep", run="true"), "alice", T0)
        uow.jobs.add(JobSpec(name="prep", run="true"), "bob", T0)
        uow.jobs.add(JobSpec(name="train", run="true"), "alice", T0)
        uow.jobs.save(second.transition(JobState.FAILED, T0, "exit code 1"))
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        assert uow.jobs.latest_named("alice", "prep") == second.id
        assert uow.jobs.latest_named("carol", "prep") is None
        assert uow.jobs.latest_named("alice", "eval") is None
    assert first.id < second.id
