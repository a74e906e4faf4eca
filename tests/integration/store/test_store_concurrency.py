"""Many threads on one store: every submit gets its own id and is kept; no "database is locked"."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from aidc.domain.jobs import JobState
from aidc.store.sql_store import SqlStore

from .conftest import T0, spec

THREADS = 8
PER_THREAD = 40


def _submit_many(store: SqlStore, worker: int, start: threading.Barrier) -> list[int]:
    start.wait()
    ids = []
    for i in range(PER_THREAD):
        with store.unit_of_work() as uow:
            ids.append(uow.jobs.add(spec(f"w{worker}-{i}"), f"user{worker}", T0).id)
            uow.commit()
    return ids


def test_concurrent_submits_get_distinct_ids_and_are_all_stored(store: SqlStore) -> None:
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_submit_many, store, w, start) for w in range(THREADS)]
        ids = [job_id for f in futures for job_id in f.result()]
    assert len(set(ids)) == THREADS * PER_THREAD
    with store.unit_of_work() as uow:
        stored = uow.jobs.list()
    assert sorted(ids) == [j.id for j in stored]
    assert {j.spec.name for j in stored} == {f"w{w}-{i}" for w in range(THREADS) for i in range(PER_THREAD)}


def test_two_stores_on_one_database_do_not_lock_each_other_out(store: SqlStore, database_url: str) -> None:
    # A second store stands for a second process: only BEGIN IMMEDIATE and the busy timeout
    # (SQLite) or row locks (PostgreSQL) keep the two apart.
    other = SqlStore(database_url)
    start = threading.Barrier(THREADS)
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(_submit_many, store if w % 2 else other, w, start) for w in range(THREADS)]
            ids = [job_id for f in futures for job_id in f.result()]
    finally:
        other.close()
    assert len(set(ids)) == THREADS * PER_THREAD
    with store.unit_of_work() as uow:
        assert len(uow.jobs.list()) == THREADS * PER_THREAD


def test_readers_and_writers_run_side_by_side(store: SqlStore) -> None:
    stop = threading.Event()

    def read_until_stopped() -> list[int]:
        seen: list[int] = []
        while True:
            with store.unit_of_work(read_only=True) as uow:
                seen.append(len(uow.jobs.list(states=[JobState.PENDING])))
            if stop.is_set():
                return seen

    with ThreadPoolExecutor(THREADS) as pool:
        readers = [pool.submit(read_until_stopped) for _ in range(2)]
        start = threading.Barrier(THREADS - 2)
        writers = [pool.submit(_submit_many, store, w, start) for w in range(THREADS - 2)]
        for w in writers:
            w.result()
        stop.set()
        for reader in readers:
            seen = reader.result()
            assert seen == sorted(seen)  # committed jobs only ever grow in number
            assert seen[-1] <= (THREADS - 2) * PER_THREAD
