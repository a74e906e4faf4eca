"""Group commit: concurrent submits share commits, each returns only after its own commit, and one failing
insert does not fail the others. A fake store stands in for the database (the e2e tests use the real one)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from aidc.domain.identity import AuditEntry
from aidc.domain.jobs import Job, JobSpec, JobState
from aidc.services.group_commit import JobInserter

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeJobs:
    def __init__(self, store: FakeStore) -> None:
        self._store = store
        self.added: list[Job] = []

    def add(self, spec: JobSpec, user: str, now: datetime) -> Job:
        if spec.name == "bad":
            raise RuntimeError("constraint violated")
        self._store.next_id += 1
        job = Job(id=self._store.next_id, spec=spec, state=JobState.PENDING, user=user, submitted_at=now,
                  updated_at=now)  # fmt: skip
        self.added.append(job)
        return job


class FakeAudit:
    def __init__(self) -> None:
        self.appended: list[AuditEntry] = []

    def append_many(self, entries: list[AuditEntry]) -> None:
        self.appended.extend(entries)


class FakeUow:
    def __init__(self, store: FakeStore) -> None:
        self.jobs = FakeJobs(store)
        self.audit = FakeAudit()
        self._store = store

    def commit(self) -> None:
        self._store.committed.extend(self.jobs.added)
        self._store.audited.extend(self.audit.appended)  # only what commits is audited
        self._store.commits += 1


class FakeStore:
    def __init__(self) -> None:
        self.next_id = 0
        self.committed: list[Job] = []
        self.audited: list[AuditEntry] = []
        self.commits = 0
        self.gate = threading.Event()
        self.gate.set()

    @contextmanager
    def unit_of_work(self, *, read_only: bool = False) -> Iterator[FakeUow]:
        self.gate.wait()
        saved = self.next_id
        uow = FakeUow(self)
        try:
            yield uow
        except BaseException:
            self.next_id = saved  # rolled back
            raise

    def close(self) -> None:
        pass


def test_concurrent_submits_share_commits_and_all_are_committed_before_returning() -> None:
    store = FakeStore()
    inserter = JobInserter(store)  # type: ignore[arg-type]
    results: list[Job] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        job = inserter.insert(JobSpec(name=f"j{i}", run="true"), "u", T0)
        assert job in store.committed  # acknowledged only once committed
        with lock:
            results.append(job)

    store.gate.clear()  # hold the first commit so that the others queue up behind it
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    store.gate.set()
    for t in threads:
        t.join(timeout=10)
    inserter.close()
    assert sorted(j.id for j in results) == list(range(1, 33))
    assert store.commits < 32  # batched


def test_a_failing_insert_fails_alone() -> None:
    store = FakeStore()
    inserter = JobInserter(store)  # type: ignore[arg-type]
    errors: list[BaseException] = []
    done: list[Job] = []

    def entry(job: Job) -> AuditEntry:
        return AuditEntry(at=T0, actor="u", action="job.submit", target=f"job/{job.spec.name}", outcome="ok")

    def submit(name: str) -> None:
        try:
            done.append(inserter.insert(JobSpec(name=name, run="true"), "u", T0, audit=entry))
        except RuntimeError as exc:
            errors.append(exc)

    store.gate.clear()
    threads = [threading.Thread(target=submit, args=(n,)) for n in ("a", "bad", "b", "c")]
    for t in threads:
        t.start()
    store.gate.set()
    for t in threads:
        t.join(timeout=10)
    inserter.close()
    assert sorted(j.spec.name for j in done) == ["a", "b", "c"]
    assert [str(e) for e in errors] == ["constraint violated"]
    assert sorted(j.spec.name for j in store.committed) == ["a", "b", "c"]
    # Each committed job has its audit record, committed with it; the failed one has none.
    assert sorted(e.target for e in store.audited) == ["job/a", "job/b", "job/c"]


def test_close_stops_the_writer_thread() -> None:
    inserter = JobInserter(FakeStore())  # type: ignore[arg-type]
    inserter.insert(JobSpec(name="x", run="true"), "u", T0)
    writers = [t for t in threading.enumerate() if t.name == "aidc-job-inserter"]
    assert writers
    inserter.close()
    assert not any(t.is_alive() for t in writers)
