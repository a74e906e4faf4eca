"""SQLite specifics: the pragmas that make it durable and concurrent, and in-memory databases."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aidc.domain.errors import NotFound
from aidc.domain.jobs import Attempt, JobSpec
from aidc.store.engine import make_engine
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore

from .conftest import T0


def _pragmas(url: str, **engine_options: object) -> dict[str, object]:
    engine = make_engine(url, **engine_options)  # type: ignore[arg-type]
    try:
        with engine.connect() as connection:
            return {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_with_full_sync_foreign_keys_and_a_busy_timeout(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'aidc.db'}"  # parents are created
    upgrade(url)
    assert _pragmas(url) == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "foreign_keys": 1,
        "busy_timeout": 30_000,
    }
    assert _pragmas(url, sqlite_synchronous="NORMAL")["synchronous"] == 1


def test_a_nested_unit_of_work_fails_fast_instead_of_waiting_forever(tmp_path: Path) -> None:
    # Units of work of one process take turns on SQLite: an inner one would wait for the outer.
    url = f"sqlite:///{tmp_path / 'aidc.db'}"
    upgrade(url)
    store = SqlStore(url)
    try:
        with (
            store.unit_of_work(),
            pytest.raises(RuntimeError, match="already open in this thread"),
            store.unit_of_work(),
        ):
            pass
    finally:
        store.close()


def test_an_in_memory_database_is_one_database_shared_by_threads() -> None:
    store = SqlStore("sqlite://")
    try:
        store.upgrade_schema()
        ids: list[int] = []

        def submit() -> None:
            with store.unit_of_work() as uow:
                ids.append(uow.jobs.add(JobSpec(name="m", run="true"), "u", T0).id)
                uow.commit()

        threads = [threading.Thread(target=submit) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with store.unit_of_work(read_only=True) as uow:
            assert sorted(j.id for j in uow.jobs.list()) == sorted(ids)
            assert uow.queues.get("default") is not None
        assert len(set(ids)) == 4
        # The migration turned foreign keys off for its table rebuilds; they are back on.
        with store.unit_of_work() as uow, pytest.raises(NotFound, match="job 999"):
            uow.jobs.add_attempt(Attempt(job_id=999, number=1, nodes=("n",), started_at=T0))
    finally:
        store.close()
