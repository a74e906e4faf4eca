"""Jobs and attempts: add, get, list, save, pending reasons, timestamps, rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from aidc.domain.errors import Conflict, NotFound
from aidc.domain.jobs import Attempt, JobState
from aidc.store import repositories
from aidc.store.sql_store import SqlStore

from .conftest import T0, at, spec


def test_add_returns_a_pending_job_with_a_new_id(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        first = uow.jobs.add(spec("a"), "alice", T0)
        second = uow.jobs.add(spec("b"), "bob", T0)
        uow.commit()
    assert first.id > 0
    assert second.id > first.id
    assert first.state == JobState.PENDING
    assert (first.user, first.submitted_at, first.updated_at) == ("alice", T0, T0)


def test_get_returns_the_stored_job_and_none_for_unknown_ids(store: SqlStore) -> None:
    submitted = spec(
        "train-1",
        queue="default",
        priority=7,
        resources={"gpus": "H100:8", "cpus": 32, "memory": "512GiB"},
        num_nodes=2,
        estimated_duration="2h30m",
        max_retries=3,
        env={"EPOCHS": "5"},
        setup="pip list",
    )
    with store.unit_of_work() as uow:
        added = uow.jobs.add(submitted, "alice", T0)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.jobs.get(added.id) == added
        assert uow.jobs.get(added.id + 1000) is None


def test_spec_is_read_back_from_the_database_not_only_from_the_cache(store: SqlStore, database_url: str) -> None:
    submitted = spec("x", resources={"gpus": 2, "memory": 5 * 2**40}, env={"A": "1"})
    with store.unit_of_work() as uow:
        job_id = uow.jobs.add(submitted, "alice", T0).id
        uow.commit()
    cold = SqlStore(database_url)  # a new process: empty spec cache
    try:
        with cold.unit_of_work() as uow:
            job = uow.jobs.get(job_id)
    finally:
        cold.close()
    assert job is not None
    assert job.spec == submitted


def test_list_reads_uncached_specs_in_chunks(
    store: SqlStore, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repositories, "_IN_CHUNK", 2)
    submitted = [spec(f"j{i}", priority=i) for i in range(5)]
    with store.unit_of_work() as uow:
        for s in submitted:
            uow.jobs.add(s, "u", T0)
        uow.commit()
    cold = SqlStore(database_url)
    try:
        with cold.unit_of_work() as uow:
            first = uow.jobs.list()
        with cold.unit_of_work() as uow:
            again = uow.jobs.list()  # now from the cache
    finally:
        cold.close()
    assert [j.spec for j in first] == submitted
    assert again == first


def test_list_filters_by_state_and_queue(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        a = uow.jobs.add(spec("a"), "u", T0)
        b = uow.jobs.add(spec("b", queue="research"), "u", T0)
        c = uow.jobs.add(spec("c", queue="research"), "u", T0)
        uow.jobs.save(b.transition(JobState.RUNNING, at(1)))
        uow.jobs.save(c.transition(JobState.CANCELLED, at(1)))
        uow.commit()
    with store.unit_of_work() as uow:
        assert [j.id for j in uow.jobs.list()] == [a.id, b.id, c.id]
        assert [j.id for j in uow.jobs.list(states=[JobState.PENDING])] == [a.id]
        active = uow.jobs.list(states=[JobState.PENDING, JobState.RUNNING])
        assert [j.id for j in active] == [a.id, b.id]
        assert [j.id for j in uow.jobs.list(queue="research")] == [b.id, c.id]
        in_research = uow.jobs.list(states=[JobState.RUNNING], queue="research")
        assert [j.id for j in in_research] == [b.id]
        assert uow.jobs.list(states=[]) == []
        assert uow.jobs.list(queue="nope") == []


def test_list_orders_by_id_and_limits(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        ids = [uow.jobs.add(spec(f"j{i}"), "u", at(i)).id for i in range(5)]
        uow.commit()
    with store.unit_of_work() as uow:
        assert [j.id for j in uow.jobs.list(limit=2)] == ids[:2]
        assert [j.id for j in uow.jobs.list(descending=True)] == ids[::-1]
        assert [j.id for j in uow.jobs.list(descending=True, limit=3)] == ids[:1:-1]


def test_save_writes_back_every_mutable_field(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec("a", max_retries=2), "u", T0)
        uow.commit()
    running = job.transition(JobState.RUNNING, at(10)).model_copy(update={"attempts_made": 1})
    retrying = running.transition(JobState.PENDING, at(20), reason="exit code 3").model_copy(
        update={"not_before": at(30), "pending_reason": "retry backoff"}
    )
    with store.unit_of_work() as uow:
        uow.jobs.save(retrying)
        uow.commit()
    with store.unit_of_work() as uow:
        stored = uow.jobs.get(job.id)
    assert stored == retrying
    assert stored is not None
    assert (stored.started_at, stored.attempts_made, stored.not_before) == (at(10), 1, at(30))
    assert (stored.state_reason, stored.pending_reason) == ("exit code 3", "retry backoff")

    done = stored.transition(JobState.RUNNING, at(40)).transition(JobState.SUCCEEDED, at(50))
    with store.unit_of_work() as uow:
        uow.jobs.save(done)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.jobs.get(job.id) == done


def test_save_of_an_unknown_job_raises_not_found(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec("a"), "u", T0)
        ghost = job.model_copy(update={"id": job.id + 1000})
        with pytest.raises(NotFound, match="job"):
            uow.jobs.save(ghost)


def test_timestamps_come_back_timezone_aware_utc(store: SqlStore) -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2026, 7, 1, 14, 30, 0, 5, tzinfo=paris)
    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec("a"), "u", local)
        uow.jobs.add_attempt(Attempt(job_id=job.id, number=1, nodes=("n1",), started_at=local))
        uow.commit()
    with store.unit_of_work() as uow:
        stored = uow.jobs.get(job.id)
        (attempt,) = uow.jobs.attempts(job.id)
    assert stored is not None
    for value in (stored.submitted_at, stored.updated_at, attempt.started_at):
        assert value.tzinfo is UTC
        assert value == local  # the same instant
        assert value.hour == 12


def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    with store.unit_of_work() as uow, pytest.raises(Exception, match="naive datetime"):
        uow.jobs.add(spec("a"), "u", datetime(2026, 1, 1, 12, 0))


def test_attempts_are_added_finished_and_open_ones_listed(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        j1 = uow.jobs.add(spec("a"), "u", T0)
        j2 = uow.jobs.add(spec("b", num_nodes=2), "u", T0)
        first = Attempt(job_id=j1.id, number=1, nodes=("n1",), gpus=((0, 1),), started_at=at(1))
        other = Attempt(job_id=j2.id, number=1, nodes=("n1", "n2"), started_at=at(2))
        uow.jobs.add_attempt(first)
        uow.jobs.add_attempt(other)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.jobs.open_attempts() == [first, other]
        ended = first.model_copy(update={"ended_at": at(5), "exit_code": 3, "reason": "exit 3"})
        uow.jobs.save_attempt(ended)
        second = Attempt(job_id=j1.id, number=2, nodes=("n2",), gpus=((3,),), started_at=at(6))
        uow.jobs.add_attempt(second)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.jobs.attempts(j1.id) == [ended, second]
        assert uow.jobs.open_attempts() == [second, other]
        assert uow.jobs.attempts(j1.id + 1000) == []


def test_attempt_errors_name_what_is_wrong(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec("a"), "u", T0)
        attempt = Attempt(job_id=job.id, number=1, nodes=("n1",), started_at=at(1))
        uow.jobs.add_attempt(attempt)
        with pytest.raises(Conflict, match="attempt 1 of job"):
            uow.jobs.add_attempt(attempt)
        with pytest.raises(NotFound, match="attempt"):
            uow.jobs.save_attempt(attempt.model_copy(update={"number": 9, "ended_at": at(2)}))
        uow.commit()  # a Conflict leaves the transaction usable, on PostgreSQL too
    with store.unit_of_work() as uow:
        assert uow.jobs.attempts(job.id) == [attempt]
        with pytest.raises(NotFound, match="job"):
            uow.jobs.add_attempt(attempt.model_copy(update={"job_id": job.id + 1000}))


def test_set_pending_reasons_updates_many_jobs_at_once(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        jobs = [uow.jobs.add(spec(f"j{i}"), "u", T0) for i in range(4)]
        uow.jobs.save(jobs[3].transition(JobState.RUNNING, at(1)))
        uow.commit()
    with store.unit_of_work() as uow:
        uow.jobs.set_pending_reasons({jobs[0].id: "waiting for 8 GPUs", jobs[1].id: "queue quota", jobs[3].id: "stale"})
        uow.commit()
    with store.unit_of_work() as uow:
        reasons = {j.id: j.pending_reason for j in uow.jobs.list()}
    assert reasons == {
        jobs[0].id: "waiting for 8 GPUs",
        jobs[1].id: "queue quota",
        jobs[2].id: None,
        jobs[3].id: None,  # not PENDING: left alone
    }
    with store.unit_of_work() as uow:
        uow.jobs.set_pending_reasons({jobs[0].id: None, jobs[1].id: "queue quota"})
        uow.jobs.set_pending_reasons({})
        uow.commit()
    with store.unit_of_work() as uow:
        assert [j.pending_reason for j in uow.jobs.list()][:2] == [None, "queue quota"]


def _add_then_fail(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.jobs.add(spec("b"), "u", T0)
        raise RuntimeError("boom")


def test_leaving_without_commit_rolls_everything_back(store: SqlStore) -> None:
    from aidc.domain.nodes import Node
    from aidc.domain.queues import Queue

    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec("a"), "u", T0)
        uow.jobs.add_attempt(Attempt(job_id=job.id, number=1, nodes=("n1",), started_at=T0))
        uow.queues.add(Queue(name="research"))
        uow.nodes.upsert(Node(name="n1", cpus=4, memory=2**34))
        uow.tokens.add(name="t", user="u", prefix="aidc_x", token_hash="h", now=T0)
    with pytest.raises(RuntimeError, match="boom"):
        _add_then_fail(store)
    with store.unit_of_work() as uow:
        assert uow.jobs.list() == []
        assert uow.jobs.open_attempts() == []
        assert uow.queues.get("research") is None
        assert uow.nodes.list() == []
        assert uow.tokens.count() == 0


def test_an_id_reused_after_a_rollback_serves_the_new_spec(store: SqlStore) -> None:
    # SQLite may give a rolled-back job's id to the next job: the spec cache must not keep the
    # old spec for it.
    with store.unit_of_work() as uow:
        abandoned = uow.jobs.add(spec("abandoned"), "u", T0)
        assert uow.jobs.get(abandoned.id) is not None
    with store.unit_of_work() as uow:
        kept = uow.jobs.add(spec("kept"), "u", T0)
        uow.commit()
    with store.unit_of_work() as uow:
        assert [j.spec.name for j in uow.jobs.list()] == ["kept"]
        stored = uow.jobs.get(kept.id)
    assert stored is not None
    assert stored.spec.name == "kept"


def test_work_goes_on_after_a_commit_in_the_same_unit(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        first = uow.jobs.add(spec("a"), "u", T0)
        uow.commit()
        uow.jobs.add(spec("b"), "u", T0)  # a new transaction, never committed
    with store.unit_of_work() as uow:
        assert [j.id for j in uow.jobs.list()] == [first.id]


def test_timestamps_keep_microseconds(store: SqlStore) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec("a"), "u", moment)
        uow.commit()
    with store.unit_of_work() as uow:
        stored = uow.jobs.get(job.id)
    assert stored is not None
    assert stored.submitted_at == moment
