"""Migration 0002 and the scheduler's fields: queue cohorts, limits and time-sharing; job queued_at and
preemptions; reading ended attempts for the scheduler's history; states of given jobs; queue upsert."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from aidc.domain.jobs import Attempt, JobState
from aidc.domain.queues import DEFAULT_QUANTUM, Queue, Quota, TimeShare
from aidc.store.engine import make_engine
from aidc.store.migrate import current_revision, head_revision, upgrade
from aidc.store.sql_store import SqlStore

from .conftest import T0, at, spec


def test_migration_0002_keeps_old_rows_and_fills_the_new_fields(database_url: str) -> None:
    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    old_spec = spec("old").model_dump_json(exclude={"depends_on", "preemptible"})
    on_postgres = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    'INSERT INTO jobs (id, name, queue, state, priority, "user", spec, submitted_at, updated_at,'
                    " attempts_made) VALUES (7, 'old', 'default', 'PENDING', 0, 'u', :spec, :t, :t, 1)"
                ),
                # SQLite: naive UTC text, as UtcDateTime writes it.
                {"spec": old_spec, "t": T0 if on_postgres else T0.replace(tzinfo=None).isoformat(sep=" ")},
            )
            conn.execute(
                text("INSERT INTO queues (name, quota, weight) VALUES ('team', :quota, 2.0)"),
                {"quota": '{"gpus": 4, "cpus": 8.0}'},
            )
    finally:
        engine.dispose()
    upgrade(database_url)  # through 0002 and every later revision: today's store reads the rows back
    assert current_revision(database_url) == head_revision()
    store = SqlStore(database_url)
    try:
        with store.unit_of_work() as uow:
            job = uow.jobs.get(7)
            team = uow.queues.get("team")
            default = uow.queues.get("default")
    finally:
        store.close()
    assert job is not None
    assert (job.queued_at, job.preemptions, job.attempts_made) == (T0, 0, 1)
    assert job.spec.depends_on == ()
    assert job.spec.preemptible
    assert team == Queue(name="team", quota=Quota(gpus=4, cpus=8), weight=2)
    assert default is not None
    assert (default.cohort, default.borrowing_limit, default.timeshare, default.quantum) == (
        None,
        None,
        TimeShare.NONE,
        DEFAULT_QUANTUM,
    )


def test_queues_keep_cohort_limits_and_time_sharing(store: SqlStore) -> None:
    lab = Queue(
        name="research",
        quota=Quota(gpus=16.5, gpu_models={"H100": 8, "A100": 0.5}, cpus=256, memory=2**40),
        weight=2,
        cohort="lab",
        borrowing_limit=Quota(gpus=8),
        lending_limit=Quota(),  # no cap on any resource: lends everything
        timeshare=TimeShare.LAS,
        quantum=120,
        created_at=T0,
    )
    plain = Queue(name="plain", cohort="lab", created_at=T0)
    with store.unit_of_work() as uow:
        uow.queues.add(lab)
        uow.queues.add(plain)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.queues.get("research") == lab
        assert uow.queues.get("plain") == plain


def test_upsert_creates_then_overwrites_a_queue_but_keeps_its_creation_time(store: SqlStore) -> None:
    first = Queue(name="sweeps", quota=Quota(gpus=8), cohort="lab", timeshare=TimeShare.ROUNDROBIN, created_at=T0)
    with store.unit_of_work() as uow:
        uow.queues.upsert(first)
        uow.commit()
    changed = Queue(name="sweeps", quota=Quota(cpus=4), weight=3, created_at=at(100))
    with store.unit_of_work() as uow:
        assert uow.queues.get("sweeps") == first
        uow.queues.upsert(changed)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.queues.get("sweeps") == changed.model_copy(update={"created_at": T0})
        assert [q.name for q in uow.queues.list()] == ["default", "sweeps"]


def test_jobs_enter_their_queue_at_submit_and_keep_preemptions(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec("a", depends_on=[{"job": 3, "when": "finished"}], preemptible=False), "u", T0)
        uow.commit()
    assert job.queued_at == T0
    running = job.transition(JobState.RUNNING, at(1)).model_copy(update={"attempts_made": 1})
    preempted = running.transition(JobState.PREEMPTED, at(2), "make room")
    requeued = preempted.transition(JobState.PENDING, at(3)).model_copy(update={"queued_at": at(3), "preemptions": 1})
    with store.unit_of_work() as uow:
        uow.jobs.save(preempted)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.jobs.get(job.id) == preempted
        assert uow.jobs.list(states=[JobState.PREEMPTED]) == [preempted]
        uow.jobs.save(requeued)
        uow.commit()
    with store.unit_of_work() as uow:
        stored = uow.jobs.get(job.id)
    assert stored == requeued
    assert stored is not None
    assert (stored.queued_at, stored.preemptions, stored.spec.preemptible) == (at(3), 1, False)
    assert stored.spec.depends_on[0].job == 3


def test_states_of_given_jobs(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        a = uow.jobs.add(spec("a"), "u", T0)
        b = uow.jobs.add(spec("b"), "u", T0)
        uow.jobs.save(a.transition(JobState.CANCELLED, at(1)))
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        assert uow.jobs.states([b.id, a.id, a.id, 999]) == {a.id: JobState.CANCELLED, b.id: JobState.PENDING}
        assert uow.jobs.states([]) == {}
        many = uow.jobs.states(list(range(1, 2000)))  # more ids than one IN (...) takes
    assert many == {a.id: JobState.CANCELLED, b.id: JobState.PENDING}


def test_ended_attempts_newest_first_with_filters(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        a = uow.jobs.add(spec("a", resources={"gpus": 2}), "alice", T0)
        b = uow.jobs.add(spec("b", queue="default"), "bob", T0)
        attempts = [
            Attempt(job_id=a.id, number=1, nodes=("n",), started_at=at(0), ended_at=at(10), exit_code=143),
            Attempt(job_id=a.id, number=2, nodes=("n",), started_at=at(20), ended_at=at(50), exit_code=0),
            Attempt(job_id=b.id, number=1, nodes=("n",), started_at=at(5), ended_at=at(30), exit_code=0),
            Attempt(job_id=b.id, number=2, nodes=("n",), started_at=at(60)),  # open: never listed
        ]
        for attempt in attempts:
            uow.jobs.add_attempt(attempt)
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        every = uow.jobs.ended_attempts()
        assert [(e.attempt.job_id, e.attempt.number) for e in every] == [(a.id, 2), (b.id, 1), (a.id, 1)]
        assert (every[0].user, every[0].spec.name, every[0].spec.resources.gpus) == ("alice", "a", 2)
        assert every[0].attempt == attempts[1]
        recent = uow.jobs.ended_attempts(since=at(30))
        assert [(e.attempt.job_id, e.attempt.number) for e in recent] == [(a.id, 2), (b.id, 1)]
        ok = uow.jobs.ended_attempts(succeeded=True, limit=1)
        assert [(e.attempt.job_id, e.attempt.number) for e in ok] == [(a.id, 2)]
        of_a = uow.jobs.ended_attempts(job_ids=[a.id])
        assert [e.attempt.number for e in of_a] == [2, 1]
        chunked = uow.jobs.ended_attempts(job_ids=[*range(b.id + 1, b.id + 2000), a.id, b.id], limit=2)
        assert [(e.attempt.job_id, e.attempt.number) for e in chunked] == [(a.id, 2), (b.id, 1)]
        assert uow.jobs.ended_attempts(since=at(51)) == []
    assert at(50) - at(20) == timedelta(seconds=30)
